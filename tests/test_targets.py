"""Targets and candidates: generate into an object's field, list, bind, apply (FileSystemStorage)."""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import threading

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone
from PIL import Image

from django_gptimage.models import AppliedImage, GeneratedImage, ImageGeneration, Status
from django_gptimage.service import (
    ApplyRefused,
    GenerationRefused,
    Target,
    apply_result,
    bind_target,
    check_permission,
    generate_for,
    generations_for,
    request_generation,
    retry_generation,
)
from tests.testapp.models import Article, Product

POSTER = "Poster for {{ object.title }} at {{ object.venue }}, {{ object.date|date:'F Y' }}"


def grant(user, *perms: str):
    """Give ``user`` permissions by "app_label.codename"; returns the user reloaded (perm cache)."""
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return type(user).objects.get(pk=user.pk)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png(width: int = 64, height: int = 64, colour=(200, 120, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT


@pytest.fixture
def article(db):
    return Article.objects.create(title="Jazz night", venue="Blue Hall", date=datetime.date(2026, 5, 1))


@pytest.fixture
def editor(django_user_model):
    user = django_user_model.objects.create_user("editor", password="x")
    return grant(
        user,
        "django_gptimage.generate",
        "django_gptimage.apply",
        "django_gptimage.retry",
        "testapp.change_article",
    )


def files_under(directory: str) -> list[str]:
    root = os.path.join(default_storage.location, directory)
    return sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)


pytestmark = pytest.mark.django_db(transaction=True)


# -- generate into a target -------------------------------------------------------------------------


def test_generate_for_renders_the_template_and_targets_the_field(gptimage_openai, article, editor):
    [generation] = generate_for(
        article, "cover", template=POSTER, user=editor, quality="low", source="widget"
    )

    assert generation.status == Status.SUCCEEDED
    assert generation.prompt == "Poster for Jazz night at Blue Hall, May 2026"
    assert gptimage_openai.requests[-1].json["prompt"] == generation.prompt
    assert generation.target == article
    assert (generation.target_field, generation.target_object_id) == ("cover", str(article.pk))
    assert generation.target_content_type == ContentType.objects.get_for_model(Article)
    assert len(generation.fingerprint) == 64 and int(generation.fingerprint, 16) >= 0
    assert generation.source == "widget" and generation.requested_by == editor
    [image] = generation.images.all()
    assert image.alt_text == generation.prompt  # one sentence: the whole prompt
    assert generation.metadata["target"] == {
        "app_label": "testapp", "model": "article", "field": "cover", "object_id": str(article.pk),
    }  # fmt: skip


def test_generate_for_refuses_a_field_that_is_not_a_file_field(gptimage_openai, article, editor):
    with pytest.raises(GenerationRefused) as refused:
        generate_for(article, "title", template=POSTER, user=editor)
    assert "no file or image field 'title'" in refused.value.as_dict()["target"][0]
    assert "cover" in refused.value.as_dict()["target"][0]
    assert gptimage_openai.requests == [] and ImageGeneration.objects.count() == 0


def test_generate_for_refuses_unknown_template_fields_before_sending(gptimage_openai, article, editor):
    with pytest.raises(GenerationRefused) as refused:
        generate_for(article, "cover", template="Cover for {{ object.headline }}", user=editor)
    assert "has no field 'headline'" in refused.value.as_dict()["prompt_template"][0]
    assert gptimage_openai.requests == [] and ImageGeneration.objects.count() == 0


# -- apply ----------------------------------------------------------------------------------------------


def test_apply_writes_through_the_fields_storage_and_upload_to_and_saves_only_that_field(
    gptimage_openai, article, editor
):
    [generation] = generate_for(article, "cover", template=POSTER, user=editor, quality="low")
    image = generation.images.get()
    # Someone else edits the title meanwhile: apply must not write the stale title back.
    Article.objects.filter(pk=article.pk).update(title="Jazz night (moved)")

    result = apply_result(image, user=editor, alt_field="cover_alt")

    assert result.written and result.previous_name == ""
    year = timezone.now().year
    assert result.name.startswith(f"covers/{year}/cover-{image.sha256[:12]}")
    fresh = Article.objects.get(pk=article.pk)
    assert fresh.title == "Jazz night (moved)"
    assert fresh.cover.name == result.name
    assert fresh.cover_alt == image.alt_text
    with fresh.cover.open("rb") as handle:
        assert sha(handle.read()) == image.sha256
    application = AppliedImage.objects.get()
    assert (application.image, application.applied_by, application.field) == (image, editor, "cover")
    assert (application.object_id, application.stored_name) == (str(article.pk), result.name)


def test_apply_is_idempotent(gptimage_openai, article, editor):
    [generation] = generate_for(article, "cover", template=POSTER, user=editor, quality="low")
    image = generation.images.get()
    first = apply_result(image, user=editor)
    files = files_under("covers")
    again = apply_result(image, user=editor)
    assert not again.written and again.name == first.name
    assert files_under("covers") == files
    assert AppliedImage.objects.count() == 1


def test_previous_file_is_kept_by_default_and_deleted_on_request(gptimage_openai, article, editor, settings):
    [generation] = generate_for(article, "cover", template=POSTER, user=editor, quality="low", n=2)
    first, second = generation.images.order_by("index")
    a = apply_result(first, user=editor)
    b = apply_result(second, user=editor)
    assert b.previous_name == a.name and not b.previous_deleted
    assert default_storage.exists(a.name)  # kept by default

    c = apply_result(first, user=editor, delete_previous=True)  # a new application of the first
    assert c.written and c.previous_name == b.name and c.previous_deleted
    assert not default_storage.exists(b.name)
    assert Article.objects.get(pk=article.pk).cover.name == c.name

    settings.GPTIMAGE = {**settings.GPTIMAGE, "APPLY_DELETE_PREVIOUS": True}
    d = apply_result(second, user=editor)
    assert d.previous_deleted and not default_storage.exists(c.name)
    assert AppliedImage.objects.filter(previous_deleted=True).count() == 2


def test_apply_refusals_have_codes_and_clear_messages(gptimage_openai, article, editor, django_user_model):
    [generation] = generate_for(article, "cover", template=POSTER, user=editor, quality="low")
    image = generation.images.get()

    # The image is not of that generation.
    [other] = generate_for(
        article, "cover", template="Another {{ object.title }}", user=editor, quality="low"
    )
    with pytest.raises(ApplyRefused) as refused:
        apply_result(image, generation=other)
    assert refused.value.code == "not_a_candidate"
    assert refused.value.as_dict() == {"image": ["This image is not one of this generation's results."]}

    # Not the object the caller is editing.
    elsewhere = Article.objects.create(title="Elsewhere")
    with pytest.raises(ApplyRefused) as refused:
        apply_result(image, obj=elsewhere)
    assert refused.value.code == "not_a_candidate" and "another object" in str(refused.value)

    # Untargeted generation.
    plain = request_generation(prompt="A lighthouse", quality="low")
    with pytest.raises(ApplyRefused) as refused:
        apply_result(plain.images.get())
    assert refused.value.code == "not_a_candidate"

    # No permission: generate+apply but not change on articles.
    clerk = grant(django_user_model.objects.create_user("clerk"), "django_gptimage.apply")
    with pytest.raises(ApplyRefused) as refused:
        apply_result(image, user=clerk)
    assert refused.value.code == "permission_denied"
    assert "You may not change this article (Jazz night)" in str(refused.value)
    nobody = django_user_model.objects.create_user("nobody")
    with pytest.raises(ApplyRefused) as refused:
        apply_result(image, user=nobody)
    assert "Can apply generated images" in str(refused.value)

    # The field no longer exists (the model changed since the generation was made).
    ImageGeneration.objects.filter(pk=generation.pk).update(target_field="hero")
    with pytest.raises(ApplyRefused) as refused:
        apply_result(GeneratedImage.objects.get(pk=image.pk))
    assert refused.value.code == "field_gone" and "'hero'" in str(refused.value)
    ImageGeneration.objects.filter(pk=generation.pk).update(target_field="cover")

    # Not finished yet.
    ImageGeneration.objects.filter(pk=generation.pk).update(status=Status.RUNNING)
    with pytest.raises(ApplyRefused) as refused:
        apply_result(GeneratedImage.objects.get(pk=image.pk))
    assert refused.value.code == "not_succeeded"
    ImageGeneration.objects.filter(pk=generation.pk).update(status=Status.SUCCEEDED)

    # The object was deleted after the generation was made.
    Article.objects.filter(pk=article.pk).delete()
    with pytest.raises(ApplyRefused) as refused:
        apply_result(GeneratedImage.objects.get(pk=image.pk), user=editor)
    assert refused.value.code == "object_gone"
    assert str(refused.value) == "The article this image was made for has been deleted."
    assert AppliedImage.objects.count() == 0
    assert files_under("covers") == []


def test_concurrent_apply_of_two_candidates_one_wins_no_torn_file(gptimage_openai, article, editor):
    [generation] = generate_for(article, "cover", template=POSTER, user=editor, quality="low", n=2)
    candidates = list(generation.images.order_by("index"))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    results = []

    def apply(image: GeneratedImage) -> None:
        try:
            barrier.wait(10)
            results.append(apply_result(image, user=editor))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=apply, args=(image,)) for image in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 2
    fresh = Article.objects.get(pk=article.pk)
    winner = next(r for r in results if r.name == fresh.cover.name)
    with fresh.cover.open("rb") as handle:
        assert sha(handle.read()) == winner.image.sha256  # the whole file of one candidate
    # Serialised: the later application saw the earlier one as the previous file.
    loser = next(r for r in results if r is not winner)
    assert winner.previous_name == loser.name
    assert AppliedImage.objects.latest("applied_at", "pk").stored_name == fresh.cover.name


# -- add forms: request for (model, field), bind when saved ------------------------------------------


def test_add_form_generation_is_bound_when_the_object_is_saved(gptimage_openai, editor):
    [generation] = generate_for(
        Article, "cover", template=POSTER, user=editor, quality="low",
        values={"title": "Opening", "venue": "Main Hall", "date": datetime.date(2026, 9, 3)},
    )  # fmt: skip
    assert generation.prompt == "Poster for Opening at Main Hall, September 2026"
    assert generation.target_object_id == "" and generation.target_field == "cover"
    with pytest.raises(ApplyRefused) as refused:
        apply_result(generation.images.get())
    assert refused.value.code == "unbound"

    article = Article.objects.create(title="Opening", venue="Main Hall")
    bound = bind_target(generation, article)
    assert bound.target_object_id == str(article.pk) and bound.metadata["target"]["object_id"] == str(
        article.pk
    )
    assert bind_target(bound, article).target_object_id == str(article.pk)  # idempotent
    assert list(generations_for(article)) == [bound]
    with pytest.raises(ApplyRefused) as refused:
        bind_target(bound, Article.objects.create(title="Other"))
    assert refused.value.code == "target_mismatch"
    with pytest.raises(ApplyRefused) as refused:
        bind_target(bound, Product.objects.create(name="Lamp"))
    assert refused.value.code == "target_mismatch"

    result = apply_result(bound.images.get(), user=editor)
    assert Article.objects.get(pk=article.pk).cover.name == result.name


def test_generations_for_lists_newest_first_in_two_queries(
    gptimage_openai, article, editor, django_assert_num_queries
):
    other = Article.objects.create(title="Other")
    for prompt in ("First {{ object.title }}", "Second {{ object.title }}"):
        generate_for(article, "cover", template=prompt, user=editor, quality="low")
    generate_for(other, "cover", template="Not this {{ object.title }}", user=editor, quality="low")
    request_generation(prompt="Untargeted", quality="low")
    ContentType.objects.get_for_model(Article)  # the content type cache is warm in a running site

    with django_assert_num_queries(2):
        listed = list(generations_for(article))
        images = [list(g.images.all()) for g in listed]
        who = [g.requested_by.username for g in listed]
    assert [g.prompt for g in listed] == ["Second Jazz night", "First Jazz night"]
    assert all(len(i) == 1 for i in images) and who == ["editor", "editor"]
    assert list(generations_for(article, "cover_alt")) == []
    assert list(generations_for(Target(Article, "cover", str(other.pk)))) == list(generations_for(other))
    assert list(generations_for(Article(title="unsaved"))) == []


# -- permissions --------------------------------------------------------------------------------------


def test_permissions_are_checked_when_a_user_is_given(gptimage_openai, article, django_user_model, editor):
    nobody = django_user_model.objects.create_user("nobody")
    for perm in ("generate", "retry", "apply"):
        with pytest.raises(PermissionDenied):
            check_permission(nobody, perm)
        check_permission(editor, perm, article)
    with pytest.raises(ValueError, match="Unknown permission 'delete'"):
        check_permission(editor, "delete")

    with pytest.raises(PermissionDenied, match="Can generate images"):
        request_generation(prompt="A lighthouse", user=nobody)
    with pytest.raises(PermissionDenied):
        generate_for(article, "cover", template=POSTER, user=nobody)
    assert ImageGeneration.objects.count() == 0 and gptimage_openai.requests == []
    with pytest.raises(CommandError, match="Can generate images") as refused:
        call_command("gptimage_generate", "--prompt", "A lighthouse", "--user", "nobody")
    assert refused.value.returncode == 2

    gptimage_openai.add_fault("server_error", times=10)
    failed = request_generation(prompt="A lighthouse", quality="low", run_mode="sync")
    assert failed.status == Status.FAILED
    with pytest.raises(PermissionDenied, match="retry"):
        retry_generation(failed, user=nobody)
    assert ImageGeneration.objects.get(pk=failed.pk).status == Status.FAILED


def test_source_field_file_in_values_on_an_add_form(gptimage_openai, editor, settings):
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "PRESETS": {
            "packshot": {
                "mode": "image-to-image", "source_field": "photo", "ratio": "1:1", "tier": "1K",
                "prompt_template": "Packshot of {{ object.name }}",
            }
        },
    }  # fmt: skip
    photo = png(96, 96)
    [generation] = generate_for(
        Product, "main_visual", preset="packshot", user=editor, quality="low",
        values={"name": "Desk lamp", "photo": ContentFile(photo, name="lamp.png")},
    )  # fmt: skip
    assert generation.mode == "image-to-image" and generation.prompt == "Packshot of Desk lamp"
    assert [i.sha256 for i in generation.inputs.all()] == [sha(photo)]
    assert (generation.preset, generation.preset_output) == ("packshot", "packshot")
