"""The Generate widget in headless Chromium: an article's own form, generate, pick, save.

Screenshots of every step go to test-artifacts/browser/<test>/ (look at them).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from django_gptimage.access.plans import assign
from django_gptimage.models import AppliedImage, GeneratedImage, ImageGeneration, Status
from django_gptimage.providers import reset_providers
from tests.testapp.models import Article

pytestmark = pytest.mark.slow

PANEL = "#gptimage-cover"


@pytest.fixture
def editor(admin_page: Any) -> Any:
    assign(admin_page.user, "paid")
    return admin_page


def open_panel(page: Any) -> Any:
    page.click(f"{PANEL} summary")
    return page.locator(PANEL)


def test_generate_in_the_change_form_pick_and_save(
    editor: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER_OPTIONS": {"delay": 2.0}, "PARTIAL_IMAGES": 1}
    reset_providers()
    article = Article.objects.create(title="Harbour festival", venue="Pier 4")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    shot(editor, "change-form")
    panel = open_panel(editor)
    prompt = panel.locator("textarea")
    assert prompt.input_value().startswith("Editorial cover image for Harbour festival.")
    assert panel.locator('input[name="cover-gptimage-ratio"][value="16:9"]').is_checked()
    assert panel.locator('input[name="cover-gptimage-tier"][value="2K"]').is_checked()
    editor.select_option("#id_cover-gptimage-quality", "low")
    assert panel.locator('[data-gptimage-out="cost"]').inner_text().endswith(" USD")
    assert panel.locator('[data-gptimage-out="size"]').inner_text() == "2048 × 1152 px"
    shot(editor, "panel-open")
    shot(editor, "panel", locator=editor.locator(".field-cover"), docs="widget-panel")
    thread_worker(concurrency=1)
    panel.locator('[data-gptimage-action="generate"]').click()
    card = panel.locator(".gptimage-w-card").first
    card.wait_for()
    assert re.search(r"Queued|Running", card.locator(".gptimage-w-line").inner_text())
    shot(editor, "in-progress")
    thumb = panel.locator(".gptimage-w-thumb").first
    thumb.wait_for(timeout=60_000)
    assert card.locator(".gptimage-w-line").inner_text().startswith("Succeeded: 1 image")
    shot(editor, "candidate")
    article.refresh_from_db()
    assert not article.cover  # nothing changes before the pick is saved
    thumb.click()
    assert thumb.get_attribute("aria-pressed") == "true"
    assert "Save the form" in panel.locator("[data-gptimage-picked]").inner_text()
    suggested = GeneratedImage.objects.get().alt_text
    assert suggested and editor.input_value("#id_cover_alt") == suggested  # editable before saving
    editor.fill("#id_cover_alt", "Boats in the harbour at dusk")
    shot(editor, "picked")
    shot(editor, "picked-field", locator=editor.locator(".field-cover"), docs="widget-candidate-picked")
    with editor.expect_navigation():
        editor.click('input[name="_continue"]')
    assert "was changed successfully" in editor.locator(".messagelist").inner_text()
    article.refresh_from_db()
    image = GeneratedImage.objects.get()
    assert article.cover.name.endswith(f"cover-{image.sha256[:12]}.png")
    assert AppliedImage.objects.get().applied_by == editor.user
    assert article.cover_alt == "Boats in the harbour at dusk"
    assert editor.locator(".field-cover a").first.get_attribute("href") == article.cover.url
    shot(editor, "saved")
    assert editor.console_errors == []


def test_generate_on_the_add_form_binds_to_the_new_article(
    editor: Any, thread_worker: Any, shot: Any
) -> None:
    editor.visit("/admin/testapp/article/add/")
    editor.fill("#id_title", "Night market")
    panel = open_panel(editor)
    prompt = panel.locator("textarea")
    editor.wait_for_function(
        "document.querySelector('#gptimage-cover textarea').value.indexOf('Night market') !== -1"
    )
    assert prompt.input_value().startswith("Editorial cover image for Night market.")
    editor.click('#gptimage-cover label[data-gptimage-value="1K"]')
    thread_worker(concurrency=1)
    panel.locator('[data-gptimage-action="generate"]').click()
    thumb = panel.locator(".gptimage-w-thumb").first
    thumb.wait_for(timeout=60_000)
    thumb.focus()
    editor.keyboard.press("Enter")  # the keyboard picks too
    assert thumb.get_attribute("aria-pressed") == "true"
    shot(editor, "picked-on-add-form")
    editor.click('input[name="_save"]')
    editor.wait_for_url(re.compile(r"/admin/testapp/article/$"))
    article = Article.objects.get()
    generation = ImageGeneration.objects.get()
    assert generation.target_object_id == str(article.pk) and generation.status == Status.SUCCEEDED
    assert article.cover.name.endswith(f"cover-{generation.images.get().sha256[:12]}.png")
    assert editor.console_errors == []


def test_invalid_combinations_are_disabled_with_their_reason(editor: Any, shot: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    panel = open_panel(editor)
    editor.click('#gptimage-cover label[data-gptimage-value="1:1"]')
    assert panel.locator('input[name="cover-gptimage-tier"][value="4K"]').is_disabled()
    assert "1:1 at 4K would be 3840x3840" in panel.locator('[data-gptimage-why="tier"]').inner_text()
    shot(editor, "4k-disabled")


def test_a_refusal_shows_on_its_field_and_no_worker_has_its_own_state(
    editor: Any, queue_mode: Any, shot: Any
) -> None:
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    panel = open_panel(editor)
    panel.locator("textarea").fill("")
    panel.locator('[data-gptimage-action="generate"]').click()
    error = panel.locator('[data-gptimage-error-for="prompt"] .gptimage-w-field-error')
    error.wait_for()
    assert "the prompt is empty" in error.inner_text()
    assert "Nothing was sent" in panel.locator("[data-gptimage-errors]").inner_text()
    shot(editor, "empty-prompt")
    panel.locator("textarea").fill("A lighthouse at dusk")
    editor.click('#gptimage-cover label[data-gptimage-value="1K"]')
    panel.locator('[data-gptimage-action="generate"]').click()  # no worker is running
    note = panel.locator('.gptimage-w-note[data-kind="no-worker"]')
    note.wait_for()
    assert note.inner_text() == "No worker is taking jobs; the generation will start when one does."
    assert "Queued" in panel.locator(".gptimage-w-line").first.inner_text()
    shot(editor, "no-worker")
    shot(editor, "no-worker-field", locator=editor.locator(".field-cover"), docs="widget-no-worker")


# -- never a spinner forever: each failure has its own message and the step that helps ---------


def generate_with(page: Any, *, tier: str = "1K") -> Any:
    panel = open_panel(page)
    page.click(f'{PANEL} label[data-gptimage-value="{tier}"]')
    panel.locator('[data-gptimage-action="generate"]').click()
    card = panel.locator(".gptimage-w-card").first
    card.wait_for()
    return panel, card


def final_card(card: Any, status: str) -> Any:
    card.page.wait_for_function(
        f"document.querySelector('#gptimage-cover .gptimage-w-card').getAttribute('data-status') === '{status}'",
        timeout=60_000,
    )
    return card


@pytest.mark.parametrize(
    ("fault", "options", "message", "button"),
    [
        (
            "moderation_blocked",
            {},
            "Rephrase the prompt (or use another input image) and generate again.",
            "Edit the prompt",
        ),
        (
            "insufficient_quota",
            {},
            "Ask an administrator to top up the site's OpenAI quota or billing credit.",
            None,
        ),
        ("delay", {"seconds": 4.0}, "Retry, or choose a lower quality or a smaller tier", "Try again"),
    ],
)
def test_each_failure_says_what_helps(
    editor: Any,
    gptimage_openai: Any,
    thread_worker: Any,
    settings: Any,
    shot: Any,
    fault: str,
    options: dict[str, Any],
    message: str,
    button: str | None,
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1, "READ_TIMEOUT": 1.5}
    reset_providers()
    gptimage_openai.add_fault(fault, **options)
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    thread_worker(concurrency=1)
    panel, card = generate_with(editor)
    final_card(card, "failed")
    note = card.locator('.gptimage-w-note[data-kind="error"]')
    assert message in note.inner_text()
    assert card.locator(".gptimage-w-line").inner_text().startswith("Failed: ")
    assert panel.locator(".gptimage-w-thumb").count() == 0
    steps = card.locator('[data-gptimage-action="step"]')
    if button is None:
        assert steps.count() == 0  # nothing the editor can do here but ask
    else:
        assert steps.inner_text() == button
    shot(editor, f"failed-{fault}")
    if fault == "insufficient_quota":
        shot(editor, "failed-field", locator=editor.locator(".field-cover"), docs="widget-failed-quota")
    if fault == "moderation_blocked":
        steps.click()
        assert editor.evaluate("document.activeElement.name") == "cover-gptimage-prompt"
    if fault == "delay":  # a retry now succeeds (the loopback server answers at once again)
        steps.click()
        panel.locator(".gptimage-w-thumb").first.wait_for(timeout=60_000)
        shot(editor, "retried")
    assert editor.console_errors == []


def test_a_rate_limit_is_retried_by_itself_and_then_succeeds(
    editor: Any, gptimage_openai: Any, thread_worker: Any, shot: Any
) -> None:
    gptimage_openai.add_fault("rate_limited", retry_after=1.0)
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    thread_worker(concurrency=1)
    panel, card = generate_with(editor)
    panel.locator(".gptimage-w-thumb").first.wait_for(timeout=60_000)
    assert card.locator(".gptimage-w-line").inner_text().startswith("Succeeded: 1 image")
    generation = ImageGeneration.objects.get()
    assert generation.attempts == 2 and generation.status == Status.SUCCEEDED
    shot(editor, "succeeded-after-429")


def test_a_lost_connection_says_reconnecting_and_recovers(
    editor: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER_OPTIONS": {"delay": 4.0}}
    reset_providers()
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    thread_worker(concurrency=1)
    panel, card = generate_with(editor)
    editor.context.set_offline(True)
    note = card.locator('.gptimage-w-note[data-kind="reconnecting"]')
    note.wait_for(timeout=30_000)
    assert note.inner_text() == "Connection lost, reconnecting…"
    shot(editor, "reconnecting")
    editor.context.set_offline(False)
    panel.locator(".gptimage-w-thumb").first.wait_for(timeout=60_000)
    assert note.count() == 0 or not note.is_visible()
    shot(editor, "reconnected")


def test_a_job_past_the_job_timeout_has_its_own_state(
    editor: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER_OPTIONS": {"delay": 6.0}, "JOB_TIMEOUT": 2}
    reset_providers()
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    thread_worker(concurrency=1)
    panel, card = generate_with(editor)
    note = card.locator('.gptimage-w-note[data-kind="timeout"]')
    note.wait_for(timeout=30_000)
    assert "longer than the server's job timeout (2 s)" in note.inner_text()
    shot(editor, "past-the-job-timeout")


# -- keyboard and accessibility -------------------------------------------------------------------


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_the_whole_flow_with_the_keyboard_alone(
    editor: Any, thread_worker: Any, axe_scan: Any, shot: Any
) -> None:
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    tab_to(editor, f"{PANEL} summary")
    editor.keyboard.press("Enter")
    assert editor.locator(f"{PANEL} details").get_attribute("open") is not None
    tab_to(editor, 'input[name="cover-gptimage-ratio"]:checked')
    editor.keyboard.press("ArrowRight")  # 16:9 -> 9:16
    assert editor.locator('input[name="cover-gptimage-ratio"][value="9:16"]').is_checked()
    tab_to(editor, 'input[name="cover-gptimage-tier"]:checked')
    editor.keyboard.press("ArrowLeft")  # 2K -> 1K
    assert editor.locator('input[name="cover-gptimage-tier"][value="1K"]').is_checked()
    shot(editor, "chosen-with-the-keyboard")
    violations = axe_scan(editor, PANEL)
    assert violations == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in violations]
    thread_worker(concurrency=1)
    tab_to(editor, f'{PANEL} [data-gptimage-action="generate"]')
    editor.keyboard.press("Enter")
    thumb = editor.locator(f"{PANEL} .gptimage-w-thumb").first
    thumb.wait_for(timeout=60_000)
    tab_to(editor, f"{PANEL} .gptimage-w-thumb")
    editor.keyboard.press("Space")
    assert thumb.get_attribute("aria-pressed") == "true"
    violations = axe_scan(editor, PANEL)
    assert violations == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in violations]
    shot(editor, "picked-with-the-keyboard")
    tab_to(editor, 'input[name="_continue"]')
    with editor.expect_navigation():
        editor.keyboard.press("Enter")
    assert "was changed successfully" in editor.locator(".messagelist").inner_text()
    article.refresh_from_db()
    assert article.cover.name.endswith(f"cover-{GeneratedImage.objects.get().sha256[:12]}.png")
    assert (article.cover.width, article.cover.height) == (608, 1088)


def test_the_panel_in_dark_mode(editor: Any, shot: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    editor.emulate_media(color_scheme="dark")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    open_panel(editor)
    background = editor.evaluate(
        "getComputedStyle(document.querySelector('#gptimage-cover .gptimage-w-panel')).backgroundColor"
    )
    assert background != "rgb(255, 255, 255)"
    shot(editor, "dark-mode")
    shot(editor, "dark-mode-field", locator=editor.locator(".field-cover"), docs="widget-dark-mode")


# -- refine, preview in context, history, inlines -------------------------------------------------


def test_preview_edit_this_image_and_the_history(editor: Any, thread_worker: Any, shot: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/admin/testapp/article/{article.pk}/change/")
    thread_worker(concurrency=1)
    panel, card = generate_with(editor)
    first = panel.locator(".gptimage-w-candidate").first
    first.wait_for(timeout=60_000)
    first.locator('[data-gptimage-action="preview"]').click()
    frames = first.locator(".gptimage-w-frame")
    assert frames.count() == 3
    assert [frames.nth(i).locator("figcaption").inner_text() for i in range(3)] == [
        "card (4:3)", "hero (21:9)", "social (1.91:1)",
    ]  # fmt: skip
    box = frames.nth(1).locator(".gptimage-w-frame-box").bounding_box()
    assert abs(box["width"] / box["height"] - 21 / 9) < 0.05
    assert (
        first.locator(".gptimage-w-alt")
        .inner_text()
        .startswith("Alt text: Editorial cover image for Harbour")
    )
    shot(editor, "preview-in-place")
    shot(editor, "preview-field", locator=editor.locator(".field-cover"), docs="widget-preview-in-place")
    first.locator('[data-gptimage-action="edit"]').click()
    assert editor.input_value("#id_cover-gptimage-mode") == "image-to-image"
    assert editor.evaluate("document.activeElement.name") == "cover-gptimage-prompt"
    editor.keyboard.type("Same harbour, at night, lanterns lit")
    shot(editor, "editing-a-candidate")
    panel.locator('[data-gptimage-action="generate"]').click()
    editor.wait_for_function(
        "document.querySelectorAll('#gptimage-cover .gptimage-w-candidate').length === 2", timeout=60_000
    )
    parent = GeneratedImage.objects.get(generation__mode="text-to-image")
    edited = ImageGeneration.objects.get(mode="image-to-image")
    assert edited.parent_image == parent and edited.prompt == "Same harbour, at night, lanterns lit"
    assert panel.locator(".gptimage-w-card").count() == 2  # the earlier candidate is kept beside the new one
    shot(editor, "edited-beside-the-first")
    # The history, one click away: both generations, and an earlier one picked again costs nothing.
    panel.locator('[data-gptimage-action="history"]').click()
    history = panel.locator("[data-gptimage-history] .gptimage-w-history-item")
    history.nth(1).wait_for()
    assert history.count() == 2
    assert "Same harbour, at night" in history.nth(0).inner_text()
    shot(editor, "history")
    shot(editor, "history-field", locator=editor.locator(".field-cover"), docs="widget-history")
    history.nth(1).locator(".gptimage-w-thumb").click()
    with editor.expect_navigation():
        editor.click('input[name="_continue"]')
    article.refresh_from_db()
    assert article.cover.name.endswith(f"cover-{parent.sha256[:12]}.png")
    assert ImageGeneration.objects.count() == 2  # applied again without paying twice
    assert editor.console_errors == []


def test_inline_rows_have_independent_widgets(editor: Any, thread_worker: Any, shot: Any) -> None:
    from tests.testapp.models import Slide

    editor.visit("/admin/testapp/gallery/add/")
    editor.fill("#id_title", "Harbour")
    editor.fill("#id_slides-0-caption", "the pier at dawn")
    editor.fill("#id_slides-1-caption", "the market at night")
    editor.click("#gptimage-slides-1-image summary")
    second = editor.locator("#gptimage-slides-1-image")
    editor.wait_for_function(
        "document.querySelector('#gptimage-slides-1-image textarea').value === 'A slide for the market at night'"
    )
    editor.click('#gptimage-slides-1-image label[data-gptimage-value="16:9"]')
    assert (
        editor.locator('input[name="slides-0-image-gptimage-ratio"]:checked').get_attribute("value") == "1:1"
    )
    thread_worker(concurrency=1)
    second.locator('[data-gptimage-action="generate"]').click()
    second.locator(".gptimage-w-thumb").first.wait_for(timeout=60_000)
    assert editor.locator("#gptimage-slides-0-image .gptimage-w-card").count() == 0
    # A row added with "Add another" gets a working widget of its own.
    editor.click(".add-row a")
    third = editor.locator("#gptimage-slides-2-image")
    third.locator("summary").click()
    assert third.locator('[data-gptimage-out="size"]').inner_text() != "-"
    second.locator(".gptimage-w-thumb").first.click()
    shot(editor, "inline-picked", docs="widget-inlines")
    with editor.expect_navigation():
        editor.click('input[name="_save"]')
    slides = {s.caption: s for s in Slide.objects.all()}
    assert set(slides) == {"the pier at dawn", "the market at night"}
    assert not slides["the pier at dawn"].image
    assert slides["the market at night"].image.name.startswith("slides/image-")
    assert (slides["the market at night"].image.width, slides["the market at night"].image.height) == (
        1088,
        608,
    )
    assert editor.console_errors == []


def test_a_plain_front_end_form(editor: Any, thread_worker: Any, shot: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    editor.visit(f"/articles/{article.pk}/cover/")
    panel = open_panel(editor)
    assert panel.locator("textarea").input_value().startswith("A square image for Harbour festival")
    thread_worker(concurrency=1)
    panel.locator('[data-gptimage-action="generate"]').click()
    thumb = panel.locator(".gptimage-w-thumb").first
    thumb.wait_for(timeout=60_000)
    thumb.click()
    shot(editor, "front-end-picked", docs="widget-front-end-form")
    with editor.expect_navigation():
        editor.click("#save")
    assert editor.locator("#saved").inner_text() == "Saved."
    article.refresh_from_db()
    image = GeneratedImage.objects.get()
    assert article.cover.name.endswith(f"cover-{image.sha256[:12]}.png")
    assert article.cover_alt == image.alt_text  # filled in the form's own alt field, then saved
    assert editor.console_errors == []
