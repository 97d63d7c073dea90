"""Generating into the site's own models from the admin: the action factory, review, apply, panel."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_gptimage.access.plans import assign
from django_gptimage.models import AppliedImage, ImageGeneration, Status
from django_gptimage.service import generate_for
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

ARTICLES = "admin:testapp_article_changelist"


@pytest.fixture
def editor(admin_user: Any, client: Any) -> Any:
    assign(admin_user, "paid")
    client.force_login(admin_user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run_action(client: Any, action: str, objects: list[Any]) -> Any:
    data = {"action": action, "_selected_action": [o.pk for o in objects]}
    return client.post(reverse(ARTICLES), data, follow=True)


def test_the_action_generates_for_each_selected_object_and_opens_the_review(editor: Any) -> None:
    articles = [
        Article.objects.create(title="Harbour festival"),
        Article.objects.create(title="Night market"),
    ]
    response = run_action(editor, "generate_cover_images_cover", articles)
    assert messages_of(response) == ["2 queued."]
    assert response.redirect_chain[-1][0].startswith(reverse("admin:django_gptimage_imagegeneration_review"))
    generations = list(ImageGeneration.objects.order_by("created_at"))
    assert sorted(g.target_object_id for g in generations) == sorted(str(a.pk) for a in articles)
    assert {(g.target_field, g.preset, g.ratio, g.tier, g.source) for g in generations} == {
        ("cover", "cover", "16:9", "2K", "admin")
    }
    html = response.content.decode()
    assert html.count("data-gptimage-row") == 2
    assert "Harbour festival" in html and "Night market" in html
    for generation in generations:
        image = generation.images.get()
        assert reverse("admin:django_gptimage_imagegeneration_apply", args=[image.pk]) in html


def test_refused_objects_are_named_with_their_reason_and_cost_nothing(
    editor: Any, gptimage_openai: Any
) -> None:
    written = Article.objects.create(title="Written", body="A harbour at dawn, fishing boats")
    empty = Article.objects.create(title="Empty body", body="")
    before = len(gptimage_openai.requests)
    response = run_action(editor, "generate_cover_images", [written, empty])
    (message,) = messages_of(response)
    assert message == (
        "1 queued, 1 refused, nothing sent for it: “Empty body”: Describe the image you want: the prompt is empty."
    )
    assert [g.target_object_id for g in ImageGeneration.objects.all()] == [str(written.pk)]
    sent = gptimage_openai.requests[before:]
    assert [r.json["prompt"] for r in sent] == ["A harbour at dawn, fishing boats"]  # nothing for the refused


def test_a_free_editor_gets_the_unlock_rule_for_every_object(client: Any, admin_user: Any) -> None:
    client.force_login(admin_user)  # the default plan: free (1K); the cover preset is 2K
    articles = [Article.objects.create(title="One"), Article.objects.create(title="Two")]
    (message,) = messages_of(run_action(client, "generate_cover_images_cover", articles))
    assert message.startswith("2 refused, nothing sent for them: “")
    assert "“One”: 2K and 4K need the Paid plan" in message and "“Two”: " in message
    assert not ImageGeneration.objects.exists()


def test_apply_puts_the_candidate_into_the_field(editor: Any, admin_user: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    (generation,) = generate_for(article, "cover", preset="square", user=admin_user)
    image = generation.images.get()
    page = editor.get(
        reverse("admin:django_gptimage_imagegeneration_change", args=[generation.pk])
    ).content.decode()
    assert "Apply to article “Harbour festival”&#x27;s cover" in page
    response = editor.post(
        reverse("admin:django_gptimage_imagegeneration_apply", args=[image.pk]), follow=True
    )
    assert "Applied to article “Harbour festival”'s cover." in messages_of(response)
    article.refresh_from_db()
    assert article.cover.name and article.cover.read() == image.file.open("rb").read()
    applied = AppliedImage.objects.get()
    assert applied.applied_by == admin_user and applied.field == "cover"
    again = editor.post(
        reverse("admin:django_gptimage_imagegeneration_apply", args=[image.pk]),
        HTTP_ACCEPT="application/json",
    )
    assert again.json()["ok"] is True and again.json()["message"].startswith("Already applied")
    assert again.json()["url"] == Article.objects.get().cover.url


def test_apply_needs_the_apply_permission(client: Any, django_user_model: Any, admin_user: Any) -> None:
    article = Article.objects.create(title="Protected")
    assign(admin_user, "paid")
    (generation,) = generate_for(article, "cover", preset="square", user=admin_user)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_imagegeneration"),
        Permission.objects.get(codename="view_article"),
    )
    client.force_login(viewer)
    page = client.get(
        reverse("admin:django_gptimage_imagegeneration_change", args=[generation.pk])
    ).content.decode()
    assert "Apply to" not in page
    url = reverse("admin:django_gptimage_imagegeneration_apply", args=[generation.images.get().pk])
    response = client.post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and response.json()["code"] == "permission_denied"
    article.refresh_from_db()
    assert not article.cover


def test_the_change_form_shows_the_objects_generations(editor: Any, admin_user: Any) -> None:
    article = Article.objects.create(title="With a panel")
    (generation,) = generate_for(article, "cover", preset="square", user=admin_user)
    html = editor.get(reverse("admin:testapp_article_change", args=[article.pk])).content.decode()
    assert "Generated images" in html and 'class="gptimage-badge gptimage-badge-succeeded"' in html
    image = generation.images.get()
    assert image.file.url in html
    assert f'form="gptimage-apply-{image.pk}"' in html and f'id="gptimage-apply-{image.pk}"' in html
    # The apply forms are outside the change form (a nested form would not submit).
    assert html.index(f'id="gptimage-apply-{image.pk}"') > html.index("</form>")
    empty = Article.objects.create(title="Nothing yet")
    html = editor.get(reverse("admin:testapp_article_change", args=[empty.pk])).content.decode()
    assert "No images have been generated for this object yet." in html


def test_the_history_shows_and_filters_the_target(editor: Any, admin_user: Any) -> None:
    from django.contrib.contenttypes.models import ContentType

    article = Article.objects.create(title="Targeted")
    generate_for(article, "cover", preset="square", user=admin_user)
    from django_gptimage.service import request_generation

    untargeted = request_generation(prompt="Free-standing", quality="low")
    changelist = reverse("admin:django_gptimage_imagegeneration_changelist")
    html = editor.get(changelist).content.decode()
    assert f"article #{article.pk} · cover" in html
    assert reverse("admin:testapp_article_change", args=[article.pk]) in html
    ct = ContentType.objects.get_for_model(Article)
    targeted = editor.get(changelist + f"?target={ct.pk}").context["cl"].result_list
    assert [g.target_object_id for g in targeted] == [str(article.pk)]
    assert [g.pk for g in editor.get(changelist + "?target=none").context["cl"].result_list] == [
        untargeted.pk
    ]


def test_review_of_failed_and_pending_generations(editor: Any, admin_user: Any, queue_mode: Any) -> None:
    article = Article.objects.create(title="Waiting")
    (generation,) = generate_for(article, "cover", preset="square", user=admin_user)
    assert generation.status == Status.QUEUED
    url = reverse("admin:django_gptimage_imagegeneration_review") + f"?generations={generation.pk}"
    html = editor.get(url).content.decode()
    assert reverse("gptimage:generation-status", args=[generation.pk]) in html
    assert "django_gptimage/js/review.js" in html


def test_the_generate_page_can_aim_at_an_objects_field_with_a_preset(editor: Any) -> None:
    article = Article.objects.create(title="From the form")
    url = reverse("admin:django_gptimage_imagegeneration_add")
    query = f"?preset=cover&target_model=testapp.article&target_object_id={article.pk}&target_field=cover"
    form = editor.get(url + query).context["form"]
    assert (form.initial["ratio"], form.initial["tier"]) == ("16:9", "2K")  # the preset's settings
    data = {
        "prompt": "A harbour festival at night", "model": "gpt-image-2", "mode": "text-to-image", "ratio": "16:9",
        "tier": "2K", "quality": "low", "output_format": "png", "background": "auto", "n": "1", "preset": "cover",
        "target_model": "testapp.article", "target_object_id": str(article.pk), "target_field": "cover",
    }  # fmt: skip
    response = editor.post(url, data)
    generation = ImageGeneration.objects.get()
    assert response.status_code == 302
    assert (generation.target_object_id, generation.target_field, generation.preset) == (
        str(article.pk),
        "cover",
        "cover",
    )
    page = editor.get(
        reverse("admin:django_gptimage_imagegeneration_change", args=[generation.pk])
    ).content.decode()
    assert "Apply to article “From the form”&#x27;s cover" in page
    # Regenerate with changes keeps the target.
    again = editor.get(url + f"?from={generation.pk}").context["form"]
    assert again.initial["target_object_id"] == str(article.pk) and again.initial["target_field"] == "cover"


def test_a_bad_target_is_a_form_error_and_nothing_is_recorded(editor: Any) -> None:
    url = reverse("admin:django_gptimage_imagegeneration_add")
    data = {
        "prompt": "Anything", "model": "gpt-image-2", "mode": "text-to-image", "ratio": "1:1", "tier": "1K",
        "quality": "low", "output_format": "png", "background": "auto", "n": "1",
        "target_model": "testapp.article", "target_object_id": "999", "target_field": "title",
    }  # fmt: skip
    response = editor.post(url, data)
    errors = response.context["form"].non_field_errors()
    assert any("has no file or image field 'title'" in e for e in errors)
    assert any("does not exist" in e for e in errors)
    assert not ImageGeneration.objects.exists()


def test_upscale_keeps_the_lineage_and_the_target(editor: Any, admin_user: Any) -> None:
    article = Article.objects.create(title="Lineage")
    (draft,) = generate_for(article, "cover", preset="square", user=admin_user)
    image = draft.images.get()
    editor.post(
        reverse("admin:django_gptimage_imagegeneration_upscale", args=[image.pk]),
        {"tier": "2K", "mode": "text-to-image"},
    )
    new = ImageGeneration.objects.exclude(pk=draft.pk).get()
    assert new.parent_image == image and new.target_object_id == str(article.pk) and new.tier == "2K"
