"""Save hooks: generation on save, after the commit, through real RQ jobs and the loopback server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import transaction

from django_gptimage import autogenerate, hooks
from django_gptimage.models import HookEvent, ImageGeneration, Status
from tests.testapp.models import Article, Product

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = {"URL": "redis://127.0.0.1:1/0"}  # nothing listens there
COVER = "Cover for {{ object.title }}"


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def openai(queue_mode: Any, gptimage_openai: Any) -> Any:
    """Queue mode, the openai provider talking to the loopback server."""
    return gptimage_openai


@pytest.fixture
def configure(settings: Any) -> Any:
    """``configure(entry, ...)``: set GPTIMAGE["AUTOGENERATE"] (over the fixtures' GPTIMAGE)."""

    def set_hooks(*entries: dict[str, Any], **extra: Any) -> None:
        settings.GPTIMAGE = {**settings.GPTIMAGE, "AUTOGENERATE": list(entries), **extra}

    return set_hooks


def image_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/images/")]


def cover_hook(**extra: Any) -> dict[str, Any]:
    return {"model": "testapp.Article", "field": "cover", "template": COVER, **extra}


def generations(obj: Any = None) -> list[ImageGeneration]:
    qs = ImageGeneration.objects.order_by("created_at")
    if obj is not None:
        qs = qs.filter(target_object_id=str(obj.pk))
    return list(qs)


# -- firing after the commit ------------------------------------------------------------------------


def test_a_created_object_gets_its_cover_through_real_jobs(
    openai: Any, configure: Any, run_worker: Any
) -> None:
    configure(cover_hook(when="created"))
    article = Article.objects.create(title="Jazz night")
    assert not ImageGeneration.objects.exists()  # the save only queued the hook's job

    run_worker()

    [generation] = generations(article)
    assert generation.status == Status.SUCCEEDED and generation.source == "hook"
    assert (generation.target_field, generation.prompt) == ("cover", "Cover for Jazz night")
    assert generation.metadata["hook"] == {"name": "testapp.Article.cover", "apply": "candidates"}
    assert [r.json["prompt"] for r in image_requests(openai)] == ["Cover for Jazz night"]
    article.refresh_from_db()
    assert not article.cover  # candidates wait for an editor

    article.title = "Jazz night, again"
    article.save()  # not created: nothing
    run_worker()
    assert len(generations()) == 1 and len(image_requests(openai)) == 1


def test_a_rolled_back_save_starts_nothing(openai: Any, configure: Any, run_worker: Any) -> None:
    configure(cover_hook(when="created"))
    with pytest.raises(RuntimeError), transaction.atomic():
        Article.objects.create(title="Never saved")
        raise RuntimeError("the view failed after the save")
    assert openai is not None and run_worker().succeeded == 0
    assert not ImageGeneration.objects.exists() and not HookEvent.objects.exists()
    assert image_requests(openai) == []


def test_loaddata_starts_nothing(openai: Any, configure: Any, run_worker: Any, tmp_path: Any) -> None:
    configure(cover_hook(when="created"), cover_hook(when="empty", name="empty-cover"))
    fixture = tmp_path / "articles.json"
    fixture.write_text(
        json.dumps([{"model": "testapp.article", "pk": 7, "fields": {"title": "Imported", "body": ""}}])
    )
    call_command("loaddata", str(fixture), verbosity=0)
    assert Article.objects.get(pk=7).title == "Imported"
    assert run_worker().succeeded == 0
    assert not ImageGeneration.objects.exists() and image_requests(openai) == []


def test_direct_apply_never_triggers_another_generation(openai: Any, configure: Any, run_worker: Any) -> None:
    # Watching the target field itself: the apply's own save would retrigger it without the guard.
    configure(cover_hook(when="changed", fields=["title", "cover"], apply="direct", alt_field="cover_alt"))
    article = Article.objects.create(title="Harbour festival")
    assert run_worker().succeeded == 2  # the hook's job and the generation: the apply queued nothing

    [generation] = generations(article)
    article.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert article.cover.name.startswith("covers/") and article.cover_alt == "Cover for Harbour festival"
    [event] = HookEvent.objects.all()
    assert (event.outcome, event.generation_id, event.field) == ("applied", generation.pk, "cover")
    assert len(image_requests(openai)) == 1
    assert run_worker().succeeded == 0  # nothing left behind


def test_an_unchanged_prompt_reuses_the_generation(openai: Any, configure: Any, run_worker: Any) -> None:
    configure(cover_hook(when="empty"))
    article = Article.objects.create(title="Book fair")
    run_worker()
    article.body = "Now with a longer text the template does not use."
    article.save()
    article.save()
    run_worker()
    assert len(generations(article)) == 1 and len(image_requests(openai)) == 1

    article.title = "Book fair 2027"  # the prompt changes: a new generation
    article.save()
    run_worker()
    assert [g.prompt for g in generations(article)] == ["Cover for Book fair", "Cover for Book fair 2027"]
    assert len(image_requests(openai)) == 2


def test_empty_means_empty_a_filled_field_starts_nothing(
    openai: Any, configure: Any, run_worker: Any
) -> None:
    configure(cover_hook(when="empty"))
    article = Article.objects.create(title="Has a cover", cover="covers/mine.png")
    article.save()
    run_worker()
    assert not ImageGeneration.objects.exists()


def test_changed_fires_only_for_the_listed_fields(openai: Any, configure: Any, run_worker: Any) -> None:
    configure(cover_hook(when="changed", fields=["title"], template="{{ object.title }}: {{ object.venue }}"))
    article = Article.objects.create(title="Opera", venue="Old hall")
    run_worker()
    assert len(generations(article)) == 1

    article.venue = "New hall"  # in the template, but not a watched field
    article.save()
    article.body = "Programme notes"
    article.save(update_fields=["body"])  # not even looked at
    run_worker()
    assert len(generations(article)) == 1 and len(image_requests(openai)) == 1

    article.title = "Opera gala"
    article.save()
    run_worker()
    assert [g.prompt for g in generations(article)] == ["Opera: Old hall", "Opera gala: New hall"]
    assert len(image_requests(openai)) == 2


def test_a_save_while_one_is_in_flight_is_looked_at_when_it_finishes(
    openai: Any, configure: Any, run_worker: Any
) -> None:
    article = Article.objects.create(title="Regatta")
    configure(cover_hook(when="changed", fields=["title"]))
    assert hooks.run_hook("testapp.Article.cover", "testapp.Article", str(article.pk)) == "started"
    [first] = generations(article)
    assert first.status == Status.QUEUED

    article.title = "Regatta (postponed)"
    article.save()  # queues the hook's job; and here, the same check at once:
    assert hooks.run_hook("testapp.Article.cover", "testapp.Article", str(article.pk)) == "busy"
    assert len(generations(article)) == 1  # at most one in flight per object and field
    assert HookEvent.objects.get().outcome == "deferred"

    run_worker()
    prompts = [g.prompt for g in generations(article)]
    assert prompts == ["Cover for Regatta", "Cover for Regatta (postponed)"]
    assert all(g.status == Status.SUCCEEDED for g in generations(article))
    assert len(image_requests(openai)) == 2


def test_a_preset_with_several_outputs_fills_each_field(openai: Any, configure: Any, run_worker: Any) -> None:
    preset = {
        "models": ["testapp.Product"],
        "outputs": [
            {"key": "main", "field": "main_visual", "prompt_template": "{{ object.name }} on white"},
            {
                "key": "ad",
                "field": "ad_creative",
                "ratio": "16:9",
                "prompt_template": "Ad for {{ object.name }}",
            },
        ],
    }
    configure(
        {
            "model": "testapp.Product",
            "field": "main_visual",
            "preset": "shop",
            "when": "created",
            "apply": "direct",
        },
        PRESETS={"shop": preset},
    )
    product = Product.objects.create(name="Teapot")
    run_worker()
    product.refresh_from_db()
    assert sorted(g.target_field for g in generations(product)) == ["ad_creative", "main_visual"]
    assert product.main_visual and product.ad_creative and not product.detail_image
    assert len(image_requests(openai)) == 2


# -- a hook never breaks the save --------------------------------------------------------------------


def test_a_refused_hook_is_recorded_and_shown_the_save_succeeds(
    gptimage_openai: Any, configure: Any, admin_client: Any
) -> None:
    configure(  # sync mode: the hook runs in the saving process, right after the commit
        {"model": "testapp.Article", "field": "cover", "preset": "cover", "when": "empty"},
        ALLOWED_TIERS=["1K"],  # the cover preset asks for 2K
    )
    article = Article.objects.create(title="Marathon")
    assert Article.objects.filter(title="Marathon").exists()
    [event] = HookEvent.objects.all()
    assert event.outcome == "refused" and "2K" in event.message
    assert not ImageGeneration.objects.exists() and image_requests(gptimage_openai) == []

    page = admin_client.get(f"/admin/testapp/article/{article.pk}/change/").content.decode()
    assert "gptimage-hook-event-refused" in page and event.message in page


def test_redis_down_is_recorded_and_the_save_succeeds(queue_mode: Any, configure: Any, settings: Any) -> None:
    configure(cover_hook(when="created"))
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_mode.name: DEAD_REDIS}
    article = Article.objects.create(title="Storm")  # must not raise
    assert Article.objects.filter(pk=article.pk).exists()
    [event] = HookEvent.objects.all()
    assert event.outcome == "unavailable" and "not reachable" in event.message
    assert (event.object_id, event.field) == (str(article.pk), "cover")
    assert not ImageGeneration.objects.exists()


def test_an_editor_without_the_hook_is_not_involved(
    gptimage_openai: Any, configure: Any, django_user_model: Any
) -> None:
    # Hooks run as the site, not as the editor who saved: no permission of theirs is needed.
    configure(cover_hook(when="created"))
    user = django_user_model.objects.create_user("writer")
    user.user_permissions.add(Permission.objects.get(codename="add_article"))
    Article.objects.create(title="By a writer")
    [generation] = generations()
    assert generation.requested_by is None and generation.status == Status.SUCCEEDED


def test_autogenerate_from_code(gptimage_openai: Any) -> None:
    hook = autogenerate(Article, field="cover", template=COVER, when="created", name="code-cover")
    try:
        assert hook in hooks.hooks_for(Article)
        Article.objects.create(title="From code")
        [generation] = generations()
        assert generation.metadata["hook"]["name"] == "code-cover"
    finally:
        hooks.unregister(hook)
    assert hook not in hooks.hooks_for(Article)


# -- configuration errors are system checks ----------------------------------------------------------


def check_ids(settings: Any, *entries: Any) -> dict[str, list[str]]:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "AUTOGENERATE": list(entries)}
    out: dict[str, list[str]] = {}
    for message in run_checks(tags=["django_gptimage"]):
        if message.id in {"django_gptimage.E030", "django_gptimage.E031", "django_gptimage.E032",
                          "django_gptimage.E033", "django_gptimage.E034"}:  # fmt: skip
            out.setdefault(message.id.split(".")[1], []).append(message.msg)
    return out


def test_checks_report_configuration_errors(settings: Any) -> None:
    found = check_ids(
        settings,
        {"model": "testapp.Article", "field": "cover", "template": COVER, "when": "sometimes"},
        {"model": "testapp.Article", "field": "cover", "template": COVER, "colour": "red"},
        {"model": "testapp.Missing", "field": "cover", "template": COVER},
        {"model": "testapp.Article", "field": "title", "template": COVER},
        {"model": "testapp.Article", "field": "picture", "template": COVER},
        {
            "model": "testapp.Article",
            "field": "cover",
            "template": COVER,
            "when": "changed",
            "fields": ["headline"],
        },
        {"model": "testapp.Article", "field": "cover", "preset": "no-such-preset"},
        {"model": "testapp.Article", "field": "cover", "template": "Cover for {{ object.headline }}"},
    )
    assert len(found["E030"]) == 2
    assert "'when' must be one of created, empty, changed" in found["E030"][0]
    assert "unknown keys ['colour']" in found["E030"][1]
    assert found["E031"] == [
        "Save hook 'testapp.Missing.cover': 'testapp.Missing' is not an installed model."
    ]
    assert any("testapp.Article.title is not a file or image field" in m for m in found["E032"])
    assert any("testapp.Article.picture does not exist" in m for m in found["E032"])
    assert any("has no field 'headline' (fields)" in m for m in found["E032"])
    assert "Unknown preset 'no-such-preset'" in found["E033"][0]
    assert len(found["E034"]) == 1 and "headline" in found["E034"][0]


def test_a_correct_configuration_passes_the_checks(settings: Any) -> None:
    found = check_ids(
        settings,
        {"model": "testapp.Article", "field": "cover", "preset": "cover", "when": "empty"},
        {"model": "testapp.Article", "field": "cover", "template": COVER, "when": "changed", "fields": ["title"],
         "apply": "direct", "alt_field": "cover_alt", "name": "retitled"},
        {"model": "testapp.Product", "field": "main_visual", "preset": "product", "when": "created"},
    )  # fmt: skip
    assert found == {}


def test_the_admin_lists_hook_events_read_only(
    queue_mode: Any, configure: Any, settings: Any, admin_client: Any
) -> None:
    configure(cover_hook(when="created"))
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_mode.name: DEAD_REDIS}
    Article.objects.create(title="Storm")
    page = admin_client.get("/admin/django_gptimage/hookevent/?outcome=unavailable")
    html = page.content.decode()
    assert page.status_code == 200 and "testapp.Article.cover" in html and "not reachable" in html
    event = HookEvent.objects.get()
    assert admin_client.get("/admin/django_gptimage/hookevent/add/").status_code == 403
    detail = admin_client.post(f"/admin/django_gptimage/hookevent/{event.pk}/change/", {"message": "edited"})
    assert detail.status_code == 403 and HookEvent.objects.get().message == event.message
