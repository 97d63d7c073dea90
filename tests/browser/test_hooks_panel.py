"""Save hooks as an editor sees them: save an article, the cover arrives; a refused hook says why.

Screenshots go to test-artifacts/browser/<test>/ (look at them).
"""

from __future__ import annotations

from typing import Any

import pytest

from django_gptimage.models import HookEvent, ImageGeneration, Status
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

ADD = "/admin/testapp/article/add/"


def hooks(settings: Any, *entries: dict[str, Any], **extra: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "AUTOGENERATE": list(entries), **extra}


def test_a_saved_article_gets_its_cover_and_the_panel_says_so(
    admin_page: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    from tests.testapp.models import Article

    hooks(settings, {"model": "testapp.Article", "field": "cover", "template": "Cover for {{ object.title }}",
                     "when": "empty", "apply": "direct", "alt_field": "cover_alt"})  # fmt: skip
    thread_worker(concurrency=1)
    admin_page.visit(ADD)
    admin_page.fill('input[name="title"]', "Harbour festival")
    shot(admin_page, "add-form")
    admin_page.click('input[name="_continue"]')
    article = wait_for(lambda: Article.objects.filter(title="Harbour festival").first(), what="the save")
    wait_for(
        lambda: HookEvent.objects.filter(outcome="applied").exists(), timeout=60, what="the cover applied"
    )
    admin_page.reload()
    panel = admin_page.locator("#gptimage-panel")
    assert "Applied" in panel.inner_text() and "automatically" in panel.inner_text()
    [generation] = ImageGeneration.objects.all()
    assert generation.status == Status.SUCCEEDED and generation.source == "hook"
    article.refresh_from_db()
    assert article.cover and article.cover_alt == "Cover for Harbour festival"
    assert admin_page.locator(".field-cover a").first.get_attribute("href").endswith(article.cover.name)
    shot(admin_page, "cover-applied")


def test_a_refused_hook_does_not_stop_the_save_and_the_panel_says_why(
    admin_page: Any, thread_worker: Any, settings: Any, shot: Any
) -> None:
    from tests.testapp.models import Article

    hooks(settings, {"model": "testapp.Article", "field": "cover", "preset": "cover", "when": "empty"},
          ALLOWED_TIERS=["1K"])  # fmt: skip
    thread_worker(concurrency=1)
    admin_page.visit(ADD)
    admin_page.fill('input[name="title"]', "Marathon")
    admin_page.click('input[name="_continue"]')
    assert "was added successfully" in admin_page.locator(".messagelist").inner_text()
    article = Article.objects.get(title="Marathon")
    event = wait_for(lambda: HookEvent.objects.filter(object_id=str(article.pk)).first(), timeout=60,
                     what="the refusal recorded")  # fmt: skip
    admin_page.reload()
    text = admin_page.locator(".gptimage-hook-event-refused").inner_text()
    assert event.outcome == "refused" and "No image was generated on save. 2K is not unlocked here" in text
    assert not ImageGeneration.objects.exists()
    shot(admin_page, "refused-on-panel")
