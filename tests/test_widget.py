"""The Generate widget: its panel on the admin's forms, its JSON endpoints, picking and saving."""

from __future__ import annotations

import io
import re
from html import unescape
from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from django_gptimage.access.plans import assign
from django_gptimage.models import AppliedImage, GeneratedImage, ImageGeneration, Status
from django_gptimage.service import Target, generate_for, request_generation
from django_gptimage.widgets import GenerateImageField, GenerateImageFormMixin
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

GENERATE = "/gptimage/widget/generate/"
PROMPT = "/gptimage/widget/prompt/"
HISTORY = "/gptimage/widget/history/"
EDITOR_PERMS = (
    ("django_gptimage", "generate"),
    ("django_gptimage", "apply"),
    ("django_gptimage", "view_imagegeneration"),
    ("testapp", "add_article"),
    ("testapp", "change_article"),
    ("testapp", "view_article"),
)


def png(width: int = 64, height: int = 48, color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def make_user(django_user_model: Any, name: str, perms: tuple[tuple[str, str], ...] = EDITOR_PERMS) -> Any:
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw-" + name, is_staff=True)
    for app_label, codename in perms:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return django_user_model.objects.get(pk=user.pk)  # a fresh permission cache


@pytest.fixture
def editor(django_user_model: Any) -> Any:
    user = make_user(django_user_model, "editor")
    assign(user, "paid")
    return user


@pytest.fixture
def client_for() -> Any:
    def make(user: Any, **kwargs: Any) -> Client:
        client = Client(**kwargs)
        client.force_login(user)
        return client

    return make


def token_of(html: str, field: str = "cover") -> str:
    match = re.search(rf'data-gptimage-token="([^"]+)" data-gptimage-field="{field}"', html)
    assert match, "no Generate panel on the page"
    return match.group(1)


def change_page(client: Client, article: Article) -> str:
    response = client.get(reverse("admin:testapp_article_change", args=[article.pk]))
    assert response.status_code == 200
    return response.content.decode()


def add_page(client: Client) -> str:
    response = client.get(reverse("admin:testapp_article_add"))
    assert response.status_code == 200
    return response.content.decode()


def generate(client: Client, token: str, **data: Any) -> Any:
    values = {"prompt": "A lighthouse at dusk", "ratio": "16:9", "tier": "1K", "quality": "low",
              "output_format": "png", "background": "auto", "n": "1", "mode": "text-to-image",
              "model": "gpt-image-2", "token": token}  # fmt: skip
    values.update(data)
    return client.post(GENERATE, {k: v for k, v in values.items() if v is not None})


# -- the panel on the admin's forms ------------------------------------------------------------


def test_the_change_form_shows_the_panel_with_the_presets_prompt_and_shape(
    editor: Any, client_for: Any
) -> None:
    article = Article.objects.create(title="Harbour festival")
    html = change_page(client_for(editor), article)
    assert 'name="cover"' in html and 'type="file"' in html  # the normal upload input stays
    panel = html[html.index("data-gptimage-widget") :]
    assert "Generate cover" in panel
    prompt = re.search(r'<textarea name="cover-gptimage-prompt"[^>]*>(.*?)</textarea>', panel, re.S)
    assert prompt and "Editorial cover image for Harbour festival." in prompt.group(1)
    # The cover preset's 16:9 at 2K is chosen (this editor has the paid plan).
    assert re.search(r'name="cover-gptimage-ratio" value="16:9"[^>]*checked', panel)
    assert re.search(r'name="cover-gptimage-tier" value="2K"[^>]*checked', panel)
    # The panel's inputs belong to no form: saving the article never submits them.
    assert (
        'name="cover-gptimage-prompt" cols="40" rows="5" class="gptimage-prompt" form="gptimage-detached"'
        in panel
    )
    assert 'name="cover__gptimage_pick"' in panel and 'form="gptimage-detached"' not in re.search(
        r'<input type="hidden" name="cover__gptimage_pick"[^>]*>', panel
    ).group(0)
    assert "django_gptimage/js/widget.js" in html and "django_gptimage/css/widget.css" in html


def test_the_estimate_says_offline_placeholders_are_not_billed(
    editor: Any, client_for: Any, settings: Any
) -> None:
    article = Article.objects.create(title="Harbour festival")
    assert "offline provider: placeholders, not billed" in change_page(client_for(editor), article)
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER": "openai", "API_KEY": "sk-test"}
    assert "data-gptimage-not-billed" not in change_page(client_for(editor), article)


def test_a_free_editor_starts_at_the_tier_they_have_with_the_reason(
    django_user_model: Any, client_for: Any
) -> None:
    user = make_user(django_user_model, "free")  # the default plan: 1K only
    html = unescape(add_page(client_for(user)))
    assert re.search(r'name="cover-gptimage-tier" value="1K"[^>]*checked', html)
    assert (
        "This field's preset asks for 2K, which your access has not unlocked; 1K is chosen instead." in html
    )
    assert "2K and 4K need the Paid plan" in html  # the unlock rule, in the matrix the pickers read


def test_no_panel_without_the_generate_permission(django_user_model: Any, client_for: Any) -> None:
    user = make_user(
        django_user_model, "writer", perms=(("testapp", "change_article"), ("testapp", "view_article"))
    )
    html = change_page(client_for(user), Article.objects.create(title="Plain"))
    assert 'name="cover"' in html
    assert "data-gptimage-token" not in html and "Generate cover" not in html


# -- the generate endpoint: who may, and CSRF ------------------------------------------------


def test_signed_out_forbidden_and_csrf(editor: Any, django_user_model: Any, client_for: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    token = token_of(change_page(client_for(editor), article))
    assert generate(Client(), token).status_code == 401
    no_generate = make_user(
        django_user_model,
        "viewer",
        perms=(("testapp", "change_article"), ("django_gptimage", "view_imagegeneration")),
    )
    response = generate(client_for(no_generate), token)
    assert response.status_code == 403 and "Can generate images" in response.json()["message"]
    no_change = make_user(django_user_model, "outsider", perms=(("django_gptimage", "generate"),))
    response = generate(client_for(no_change), token)
    assert response.status_code == 403 and response.json()["message"] == "You may not change this article."
    # CSRF: the same request without the token is refused by Django's middleware.
    strict = client_for(editor, enforce_csrf_checks=True)
    assert generate(strict, token).status_code == 403
    page = strict.get(reverse("admin:testapp_article_change", args=[article.pk]))
    csrf = page.cookies["csrftoken"].value
    response = strict.post(
        GENERATE,
        {"token": token, "prompt": "A lighthouse", "ratio": "16:9", "tier": "1K", "quality": "low",
         "output_format": "png", "background": "auto", "n": "1", "mode": "text-to-image", "model": "gpt-image-2"},
        HTTP_X_CSRFTOKEN=csrf,
    )  # fmt: skip
    assert response.status_code == 202, response.content
    assert ImageGeneration.objects.count() == 1
    assert Client().get(GENERATE).status_code == 405


def test_a_forged_token_is_refused(editor: Any, client_for: Any) -> None:
    response = generate(client_for(editor), "not-a-token")
    assert response.status_code == 400
    assert response.json()["message"] == "This form's Generate panel is out of date: reload the page."
    assert not ImageGeneration.objects.exists()


# -- the generate endpoint: what it makes ----------------------------------------------------


def test_generate_records_a_candidate_for_the_object_and_answers_its_status(
    editor: Any, client_for: Any
) -> None:
    article = Article.objects.create(title="Harbour festival")
    client = client_for(editor)
    response = generate(client, token_of(change_page(client, article)), ratio="3:2", tier="2K")
    assert response.status_code == 202, response.content
    body = response.json()
    (made,) = body["generations"]
    generation = ImageGeneration.objects.get(pk=made["id"])
    assert (generation.source, generation.target_field, generation.target_object_id) == (
        "widget",
        "cover",
        str(article.pk),
    )
    assert (generation.ratio, generation.tier, generation.preset, generation.requested_by) == (
        "3:2",
        "2K",
        "cover",
        editor,
    )
    assert made["status_url"] == reverse("gptimage:generation-status", args=[generation.pk])
    assert made["status"]["status"] == "succeeded"  # RUN_MODE sync in the tests
    assert made["status"]["images"][0]["width"] == generation.width
    assert body["workers_listening"] is True and body["job_timeout"] == 900
    article.refresh_from_db()
    assert not article.cover  # nothing changes until a candidate is picked and the form saved
    status = client.get(made["status_url"]).json()
    assert status["status"] == "succeeded"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"prompt": ""}, "prompt", "the prompt is empty"),
        ({"prompt": "x" * 40_000}, "prompt", "32,000"),
        ({"ratio": "1:1", "tier": "4K"}, "tier", "1:1 at 4K would be 3840x3840"),
        ({"tier": "8K"}, "tier", "Select a valid choice"),
        ({"n": "abc"}, "n", "Enter a whole number"),
    ],
)
def test_bad_input_is_a_field_error_and_sends_nothing(
    editor: Any, client_for: Any, data: dict[str, str], field: str, fragment: str
) -> None:
    client = client_for(editor)
    response = generate(client, token_of(change_page(client, Article.objects.create(title="A"))), **data)
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Nothing was sent: correct the settings below."
    assert any(fragment in message for message in body["errors"][field]), body["errors"]
    assert not ImageGeneration.objects.exists()


def test_a_locked_tier_says_how_to_unlock_it(django_user_model: Any, client_for: Any) -> None:
    user = make_user(django_user_model, "free")
    client = client_for(user)
    response = generate(client, token_of(add_page(client)), tier="2K")
    assert response.status_code == 400
    (message,) = response.json()["errors"]["tier"]
    assert message.startswith("2K and 4K need the Paid plan")
    assert not ImageGeneration.objects.exists()


def test_a_reference_that_is_not_an_image_is_refused(editor: Any, client_for: Any) -> None:
    client = client_for(editor)
    token = token_of(change_page(client, Article.objects.create(title="A")))
    text = SimpleUploadedFile("notes.png", b"just some text, not a picture", content_type="image/png")
    response = generate(client, token, mode="image-to-image", images=text)
    assert response.status_code == 400
    assert "images" in response.json()["errors"], response.json()
    assert not ImageGeneration.objects.exists()


def test_image_to_image_from_the_fields_current_image(editor: Any, client_for: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    article.cover.save("harbour.png", SimpleUploadedFile("harbour.png", png(80, 60)))
    client = client_for(editor)
    token = token_of(change_page(client, article))
    response = generate(client, token, mode="image-to-image", use_current="1", prompt="Make it night")
    assert response.status_code == 202, response.content
    generation = ImageGeneration.objects.get()
    (source,) = generation.inputs.all()
    assert (generation.mode, source.width, source.height) == ("image-to-image", 80, 60)
    # On an add form there is no saved image to start from.
    response = generate(client, token_of(add_page(client)), mode="image-to-image", use_current="1")
    assert response.status_code == 400
    assert response.json()["errors"]["images"] == [
        "There is no current image to start from: upload one, or save the form first."
    ]


def test_the_per_user_rate_limit(editor: Any, django_user_model: Any, client_for: Any, settings: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.GPTIMAGE = {**settings.GPTIMAGE, "WIDGET_RATE_LIMIT": 2}
    client = client_for(editor)
    token = token_of(change_page(client, Article.objects.create(title="A")))
    assert [generate(client, token, prompt=f"Picture {i}").status_code for i in range(2)] == [202, 202]
    refused = generate(client, token, prompt="Picture 3")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["message"].startswith("Too many generate requests: wait ")
    assert ImageGeneration.objects.count() == 2  # nothing recorded for the refused one
    other = make_user(django_user_model, "colleague")
    assign(other, "paid")
    assert generate(client_for(other), token, prompt="Theirs").status_code == 202  # per user
    cache.clear()


# -- the prompt and history endpoints ----------------------------------------------------------


def test_the_add_forms_prompt_is_rendered_from_its_current_values(editor: Any, client_for: Any) -> None:
    client = client_for(editor)
    token = token_of(add_page(client))
    response = client.post(PROMPT, {"token": token, "values": '{"title": "Night market", "body": "x"}'})
    assert response.status_code == 200
    assert response.json()["prompt"] == (
        "Editorial cover image for Night market. Photographic, strong composition, no text or lettering."
    )
    assert client.post(PROMPT, {"token": token, "values": "[1, 2"}).status_code == 400
    assert Client().post(PROMPT, {"token": token}).status_code == 401


def test_the_history_lists_the_fields_generations(editor: Any, client_for: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    generate_for(
        article, "cover", template="Cover for {{ object.title }}", user=editor, ratio="16:9", tier="1K"
    )
    generate_for(article, "cover", template="Second cover", user=editor, ratio="1:1", tier="1K")
    client = client_for(editor)
    response = client.get(HISTORY, {"token": token_of(change_page(client, article))})
    assert response.status_code == 200
    rows = response.json()["generations"]
    assert [r["prompt"] for r in rows] == ["Second cover", "Cover for Harbour festival"]
    assert rows[0]["requested_by"] == "editor" and rows[0]["status"]["images"][0]["url"].startswith("/media/")


# -- picking a candidate and saving the form ---------------------------------------------------


def change_form_data(article: Article, **extra: Any) -> dict[str, Any]:
    return {"title": article.title, "venue": article.venue, "date": "", "body": article.body,
            "cover_alt": article.cover_alt, **extra}  # fmt: skip


def test_picking_a_candidate_and_saving_puts_it_in_the_field(editor: Any, client_for: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    client = client_for(editor)
    made = generate(client, token_of(change_page(client, article))).json()["generations"][0]
    image = GeneratedImage.objects.get(generation_id=made["id"])
    response = client.post(
        reverse("admin:testapp_article_change", args=[article.pk]),
        change_form_data(article, title="Harbour festival 2026", cover__gptimage_pick=str(image.pk),
                         cover__gptimage_made=made["id"], cover_alt="Boats at dusk"),
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    article.refresh_from_db()
    assert article.title == "Harbour festival 2026"  # the form's own changes are saved too
    assert article.cover.name.startswith(
        f"covers/{article.cover.name.split('/')[1]}/cover-{image.sha256[:12]}"
    )
    assert article.cover.read() == image.file.open("rb").read()
    assert article.cover_alt == "Boats at dusk"  # the form's alt field, as the editor left it
    (applied,) = AppliedImage.objects.all()
    assert (applied.image, applied.applied_by, applied.stored_name) == (image, editor, article.cover.name)


def test_an_add_forms_generations_are_bound_to_the_new_object(editor: Any, client_for: Any) -> None:
    client = client_for(editor)
    token = token_of(add_page(client))
    first = generate(client, token, prompt="One").json()["generations"][0]
    second = generate(client, token, prompt="Two").json()["generations"][0]
    image = GeneratedImage.objects.get(generation_id=second["id"])
    response = client.post(
        reverse("admin:testapp_article_add"),
        {"title": "Night market", "venue": "", "date": "", "body": "", "cover_alt": "",
         "cover__gptimage_pick": str(image.pk), "cover__gptimage_made": f"{first['id']},{second['id']}"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    article = Article.objects.get()
    assert article.cover.name.endswith(f"cover-{image.sha256[:12]}.png")
    bound = {g.pk: g.target_object_id for g in ImageGeneration.objects.all()}
    assert set(bound.values()) == {str(article.pk)}  # both, also the one not picked (its history)


def test_a_candidate_of_another_users_generation_is_refused(
    editor: Any, django_user_model: Any, client_for: Any
) -> None:
    other = make_user(django_user_model, "other")
    assign(other, "paid")
    theirs = request_generation(
        prompt="Their cover", ratio="16:9", tier="1K", user=other, target=Target(Article, "cover")
    )  # an add-form generation of someone else, not bound to an object
    image = theirs.images.get()
    client = client_for(editor)
    response = client.post(
        reverse("admin:testapp_article_add"),
        {
            "title": "Mine",
            "venue": "",
            "date": "",
            "body": "",
            "cover_alt": "",
            "cover__gptimage_pick": str(image.pk),
        },
    )
    assert response.status_code == 200  # the form again, with the error on the field
    errors = response.context["adminform"].form.errors
    assert errors["cover"] == ["This image was not generated on this form: pick one of your own candidates."]
    assert not Article.objects.exists() and not AppliedImage.objects.exists()
    # Nor can an image made for another article be picked on this one.
    one, two = Article.objects.create(title="One"), Article.objects.create(title="Two")
    (for_one,) = generate_for(one, "cover", template="For one", user=editor, tier="1K")
    response = client.post(
        reverse("admin:testapp_article_change", args=[two.pk]),
        change_form_data(two, cover__gptimage_pick=str(for_one.images.get().pk)),
    )
    assert response.context["adminform"].form.errors["cover"] == [
        "This image was generated for another object."
    ]
    two.refresh_from_db()
    assert not two.cover
    # Nor does an add form's history list another user's unbound generations.
    assert client.get(HISTORY, {"token": token_of(add_page(client))}).json()["generations"] == []


def test_an_upload_chosen_with_a_pick_wins(editor: Any, client_for: Any) -> None:
    article = Article.objects.create(title="A")
    (generation,) = generate_for(article, "cover", template="A cover", user=editor, tier="1K")
    client = client_for(editor)
    response = client.post(
        reverse("admin:testapp_article_change", args=[article.pk]),
        change_form_data(article, cover=SimpleUploadedFile("mine.png", png(), content_type="image/png"),
                         cover__gptimage_pick=str(generation.images.get().pk)),
    )  # fmt: skip
    assert response.status_code == 302
    article.refresh_from_db()
    assert article.cover.name.endswith("mine.png") and not AppliedImage.objects.exists()


# -- a plain front-end form --------------------------------------------------------------------


class ArticleForm(GenerateImageFormMixin, forms.ModelForm):
    cover = GenerateImageField(preset="cover", alt_field="cover_alt", required=False)

    class Meta:
        model = Article
        fields = ["title", "cover"]


def test_a_plain_model_form_with_the_field_class(editor: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    form = ArticleForm(instance=article, user=editor)
    html = str(form["cover"])
    assert "Editorial cover image for Harbour festival." in html and "data-gptimage-token" in html
    (generation,) = generate_for(
        article, "cover", template="Boats in the harbour. At dusk.", user=editor, tier="1K"
    )
    image = generation.images.get()
    form = ArticleForm(
        {"title": "Harbour festival", "cover__gptimage_pick": str(image.pk)},
        {},
        instance=article,
        user=editor,
    )
    assert form.is_valid(), form.errors
    saved = form.save()
    saved.refresh_from_db()
    assert saved.cover.name.endswith(f"cover-{image.sha256[:12]}.png")
    assert saved.cover_alt == "Boats in the harbour."  # not on this form: the suggested alt text is applied
    assert str(ArticleForm(instance=article)["cover"]).count("data-gptimage-token") == 0  # no user: no panel


def test_a_pick_needs_the_apply_permission(django_user_model: Any) -> None:
    perms = tuple(p for p in EDITOR_PERMS if p[1] != "apply")
    user = make_user(django_user_model, "noapply", perms=perms)
    article = Article.objects.create(title="A")
    (generation,) = generate_for(article, "cover", template="A cover", user=user, tier="1K")
    form = ArticleForm(
        {"title": "A", "cover__gptimage_pick": str(generation.images.get().pk)},
        {},
        instance=article,
        user=user,
    )
    assert not form.is_valid()
    assert "Can apply generated images" in form.errors["cover"][0]
    assert generation.status == Status.SUCCEEDED


# -- refine: edit a candidate ------------------------------------------------------------------


def test_edit_this_image_sends_the_candidate_back_as_the_input(editor: Any, client_for: Any) -> None:
    article = Article.objects.create(title="Harbour festival")
    client = client_for(editor)
    token = token_of(change_page(client, article))
    first = generate(client, token).json()["generations"][0]
    parent = GeneratedImage.objects.get(generation_id=first["id"])
    response = generate(
        client, token, mode="image-to-image", parent_image=str(parent.pk), prompt="Make it night"
    )
    assert response.status_code == 202, response.content
    edited = ImageGeneration.objects.get(pk=response.json()["generations"][0]["id"])
    assert (edited.mode, edited.parent_image, edited.prompt) == ("image-to-image", parent, "Make it night")
    (source,) = edited.inputs.all()
    assert source.sha256 == parent.sha256  # the candidate's own bytes
    assert ImageGeneration.objects.count() == 2  # the earlier candidate stays
    other = Article.objects.create(title="Other")
    (theirs,) = generate_for(other, "cover", template="Other cover", user=editor, tier="1K")
    response = generate(client, token, mode="image-to-image", parent_image=str(theirs.images.get().pk))
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "parent_image": ["That image is not one of this field's candidates."]
    }


# -- inlines: several independent widgets on one page -------------------------------------------


def test_every_inline_row_has_its_own_widget_and_pick(editor: Any, client_for: Any) -> None:
    from tests.testapp.models import Gallery, Slide

    for codename in ("add_gallery", "change_gallery", "add_slide", "change_slide", "view_slide"):
        editor.user_permissions.add(Permission.objects.get(codename=codename))
    client = client_for(editor)
    html = add_page_of(client, "admin:testapp_gallery_add")
    tokens = re.findall(
        r'data-gptimage-token="([^"]+)" data-gptimage-field="image" data-gptimage-name="(slides-\d-image)"',
        html,
    )
    assert [name for _, name in tokens] == ["slides-0-image", "slides-1-image"]
    assert 'name="slides-1-image-gptimage-prompt"' in html and 'name="slides-1-image__gptimage_pick"' in html
    made = generate(client, tokens[1][0], prompt="A quiet harbour").json()["generations"][0]
    generation = ImageGeneration.objects.get(pk=made["id"])
    assert (generation.target_content_type.model, generation.target_field) == ("slide", "image")
    image = generation.images.get()
    response = client.post(
        reverse("admin:testapp_gallery_add"),
        {"title": "Harbour", "slides-TOTAL_FORMS": "2", "slides-INITIAL_FORMS": "0", "slides-MIN_NUM_FORMS": "0",
         "slides-MAX_NUM_FORMS": "1000", "slides-0-caption": "", "slides-1-caption": "",
         "slides-1-image__gptimage_pick": str(image.pk), "slides-1-image__gptimage_made": made["id"]},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    (slide,) = Slide.objects.all()  # the untouched row is not saved; the one with a pick is
    assert slide.gallery == Gallery.objects.get() and slide.image.name.endswith(
        f"image-{image.sha256[:12]}.png"
    )
    generation.refresh_from_db()
    assert generation.target_object_id == str(slide.pk)


def add_page_of(client: Client, name: str) -> str:
    response = client.get(reverse(name))
    assert response.status_code == 200
    return response.content.decode()
