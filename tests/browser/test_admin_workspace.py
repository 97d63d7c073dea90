"""The admin workspace in headless Chromium: generate, watch it finish, refused combinations, retry.

Screenshots of every step go to test-artifacts/browser/<test>/ (look at them).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from django_gptimage.access.plans import assign
from django_gptimage.models import ImageGeneration, Status
from django_gptimage.providers import reset_providers
from django_gptimage.service import estimate, request_generation

pytestmark = pytest.mark.slow

ADD = "/admin/django_gptimage/imagegeneration/add/"


def page_of(generation: ImageGeneration) -> str:
    return f"/admin/django_gptimage/imagegeneration/{generation.pk}/change/"


@pytest.fixture
def editor(admin_page: Any) -> Any:
    assign(admin_page.user, "paid")
    return admin_page


def test_generate_and_watch_it_finish_without_a_reload(
    editor: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    # A slow offline provider with a partial preview, so "queued" and "running" can be seen.
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER_OPTIONS": {"delay": 3.0}, "PARTIAL_IMAGES": 1}
    reset_providers()
    editor.visit(ADD)
    shot(editor, "generate-page")
    editor.fill("#id_prompt", "A red bicycle leaning against a yellow wall, morning light")
    editor.click('label[data-gptimage-value="16:9"]')
    editor.click('label[data-gptimage-value="2K"]')
    editor.select_option("#id_quality", "low")
    expected = estimate(ratio="16:9", tier="2K", quality="low", prompt=editor.input_value("#id_prompt"))
    cost = editor.locator('[data-gptimage-out="cost"]')
    assert cost.inner_text() == expected.display
    assert (
        editor.locator('[data-gptimage-out="size"]').inner_text()
        == f"{expected.width} × {expected.height} px"
    )
    editor.select_option("#id_quality", "high")
    assert cost.inner_text() != expected.display  # the estimate follows the options
    assert cost.inner_text().endswith(" USD")
    editor.select_option("#id_quality", "low")
    shot(editor, "options-chosen", docs="admin-generate-page")

    thread_worker(concurrency=1)
    editor.click('input[type="submit"][value="Generate"]')
    editor.wait_for_url(re.compile(r"/imagegeneration/[0-9a-f-]{36}/change/$"))
    editor.evaluate("window.gptimageNoReload = true")  # a reload would lose this
    line = editor.locator('[data-gptimage-slot="line"]')
    assert re.search(r"Queued|Running", line.inner_text())
    shot(editor, "in-progress")
    editor.locator(".gptimage-result img").first.wait_for(timeout=60_000)
    assert line.inner_text().startswith("Succeeded: 1 image, ")
    assert editor.evaluate("window.gptimageNoReload") is True
    generation = ImageGeneration.objects.get()
    assert (generation.status, generation.tier, generation.ratio) == (Status.SUCCEEDED, "2K", "16:9")
    natural = editor.evaluate("document.querySelector('.gptimage-result img').naturalWidth")
    assert natural == generation.width
    shot(editor, "finished", docs="admin-generation-finished")
    assert editor.console_errors == []


def test_an_invalid_combination_is_disabled_with_its_reason(admin_page: Any, shot: Any) -> None:
    assign(admin_page.user, "paid")
    admin_page.visit(ADD)
    admin_page.click('label[data-gptimage-value="1:1"]')
    four_k = admin_page.locator('input[name="tier"][value="4K"]')
    assert four_k.is_disabled()
    why = admin_page.locator('[data-gptimage-why="tier"]')
    assert "1:1 at 4K would be 3840x3840" in why.inner_text()
    assert "choose 2K, or a ratio of 16:9 or wider" in why.inner_text()
    label = admin_page.locator('label[data-gptimage-value="4K"]')
    assert "over the 8,294,400-pixel cap" in label.get_attribute("title")
    shot(admin_page, "4k-disabled-at-1-1", docs="admin-invalid-combination")

    admin_page.click('label[data-gptimage-value="16:9"]')
    admin_page.click('label[data-gptimage-value="4K"]')
    assert admin_page.locator('input[name="ratio"][value="1:1"]').is_disabled()
    assert "Not available at 4K" in admin_page.locator('[data-gptimage-why="ratio"]').inner_text()
    admin_page.hover('label[data-gptimage-value="1:1"]')
    assert "1:1: 1:1 at 4K would be" in admin_page.locator('[data-gptimage-why="ratio"]').inner_text()
    shot(admin_page, "1-1-disabled-at-4k")

    admin_page.select_option("#id_output_format", "jpeg")
    assert admin_page.locator('#id_background option[value="transparent"]').is_disabled()
    assert "needs png or webp" in admin_page.locator('[data-gptimage-why="background"]').inner_text()
    shot(admin_page, "transparent-needs-png")


def test_the_free_plan_sees_locked_tiers_with_the_unlock_rule(admin_page: Any, shot: Any) -> None:
    admin_page.visit(ADD)  # the default plan: free (1K)
    two_k = admin_page.locator('label[data-gptimage-value="2K"]')
    assert "gptimage-locked" in two_k.get_attribute("class")
    assert admin_page.locator('input[name="tier"][value="2K"]').is_disabled()
    assert "Paid" in admin_page.locator('[data-gptimage-why="tier"]').inner_text()
    shot(admin_page, "locked-tiers", docs="admin-locked-tiers")


def test_retry_a_failed_generation(
    editor: Any, gptimage_openai: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    gptimage_openai.add_fault("server_error")  # the loopback server fails once, then answers
    generation = request_generation(
        prompt="A harbour at night", quality="low", run_mode="sync", user=editor.user
    )
    assert generation.status == Status.FAILED
    editor.visit(page_of(generation))
    failure = editor.locator(".gptimage-failure")
    assert "The image service had an internal error or is overloaded." in failure.inner_text()
    assert "Retry in a few minutes." in failure.inner_text()
    shot(editor, "failed", docs="admin-generation-failed")
    thread_worker(concurrency=1)
    editor.click("button.gptimage-retry")
    editor.locator(".gptimage-result img").first.wait_for(timeout=60_000)
    assert editor.locator('[data-gptimage-slot="line"]').inner_text().startswith("Succeeded: 1 image")
    assert "Attempt 2" in editor.locator(".gptimage-attempts").inner_text()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED and generation.attempts == 2
    shot(editor, "retried-and-succeeded")


def test_the_history_is_readable_at_1366_px(editor: Any, shot: Any) -> None:
    request_generation(prompt="A very long prompt " + "with many many words " * 60, quality="low")
    request_generation(prompt="Short one", quality="low", ratio="9:16", n=3)
    editor.visit("/admin/django_gptimage/imagegeneration/")
    table = editor.locator("#result_list")
    right = editor.evaluate("document.querySelector('#result_list').getBoundingClientRect().right")
    filters = editor.evaluate("document.querySelector('#changelist-filter').getBoundingClientRect().left")
    assert right <= filters + 1, (right, filters)  # no column under the filters or off-screen
    assert editor.evaluate("document.documentElement.scrollWidth") <= 1366
    assert table.locator(".gptimage-badge-succeeded").count() == 2
    shot(editor, "history", docs="admin-history")


def test_generate_for_two_articles_and_apply_a_candidate(
    editor: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    from tests.testapp.models import Article

    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER_OPTIONS": {"delay": 1.0}}
    reset_providers()
    first = Article.objects.create(title="Harbour festival")
    second = Article.objects.create(title="Night market")
    thread_worker(concurrency=2)
    editor.visit("/admin/testapp/article/")
    editor.check(f'input[name="_selected_action"][value="{first.pk}"]')
    editor.check(f'input[name="_selected_action"][value="{second.pk}"]')
    editor.select_option('select[name="action"]', "generate_cover_images_square")
    shot(editor, "articles-selected")
    editor.click('button[name="index"]')
    editor.wait_for_url(re.compile(r"/imagegeneration/review/"))
    assert "2 queued." in editor.locator(".messagelist").inner_text()
    shot(editor, "review-pending")
    # The grid refreshes itself when the generations finish.
    editor.locator("[data-gptimage-candidate]").nth(1).wait_for(timeout=60_000)
    assert editor.locator("[data-gptimage-row]").count() == 2
    shot(editor, "review-candidates", docs="admin-review-candidates")
    row = editor.locator("[data-gptimage-row]", has_text="Harbour festival")
    candidate = row.locator("[data-gptimage-candidate]").first
    candidate.focus()
    editor.keyboard.press("Enter")  # accept with the keyboard
    row.locator(".gptimage-accepted").wait_for()
    assert "Applied to article “Harbour festival”'s cover." in row.inner_text()
    assert row.locator("img[data-gptimage-current]").count() == 1
    shot(editor, "accepted")
    other = (
        editor.locator("[data-gptimage-row]", has_text="Night market")
        .locator("[data-gptimage-candidate]")
        .first
    )
    other.focus()
    editor.keyboard.press("r")  # reject: nothing applied
    assert other.is_hidden()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.cover.name and not second.cover
    editor.visit(f"/admin/testapp/article/{first.pk}/change/")
    link = editor.locator(".field-cover a").first  # the admin's file widget links the stored cover
    assert link.get_attribute("href") == first.cover.url
    panel = editor.locator("#gptimage-panel")
    assert panel.locator(".gptimage-badge-succeeded").count() == 1
    shot(editor, "cover-on-the-article", docs="admin-article-generations-panel")
    editor.visit(first.cover.url)
    assert editor.evaluate("document.images[0].naturalWidth") == 1024
    shot(editor, "the-cover-itself")
