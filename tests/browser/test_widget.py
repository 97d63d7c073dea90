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
    editor.click('input[name="_continue"]')
    editor.wait_for_url(re.compile(rf"/admin/testapp/article/{article.pk}/change/$"))
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
