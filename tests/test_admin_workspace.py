"""The admin workspace with the test client: generate, a generation's page, iterate, compare.

Paid paths are tried by a superuser on the paid plan (the permission codenames are granted
to staff users in tests/test_admin_permissions.py); bad input must leave no record and send nothing.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from django_gptimage.access.plans import assign
from django_gptimage.models import GeneratedImage, ImageGeneration, Status
from django_gptimage.service import request_generation

pytestmark = pytest.mark.django_db(transaction=True)

ADD = "admin:django_gptimage_imagegeneration_add"
CHANGE = "admin:django_gptimage_imagegeneration_change"


def png(width: int = 64, height: int = 64, mode: str = "RGB", name: str = "ref.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (10, 120, 200, 0) if mode == "RGBA" else (10, 120, 200)).save(
        buffer, "PNG"
    )
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def form_data(**overrides: Any) -> dict[str, Any]:
    values = {
        "prompt": "A red bicycle against a yellow wall",
        "model": "gpt-image-2",
        "mode": "text-to-image",
        "ratio": "16:9",
        "tier": "1K",
        "quality": "low",
        "output_format": "png",
        "background": "auto",
        "n": "1",
    }
    values.update(overrides)
    return values


@pytest.fixture
def editor(admin_user: Any, client: Any) -> Any:
    assign(admin_user, "paid")
    client.force_login(admin_user)
    return client


def page(client: Any, generation: ImageGeneration) -> str:
    response = client.get(reverse(CHANGE, args=[generation.pk]))
    assert response.status_code == 200
    return response.content.decode()


# -- the generate page ----------------------------------------------------------------------


def test_the_generate_page_offers_shapes_tiers_and_the_matrix(editor: Any) -> None:
    response = editor.get(reverse(ADD))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="gptimage-matrix"' in html and 'data-gptimage-options="gptimage-matrix"' in html
    assert 'class="gptimage-shape"' in html and 'data-gptimage-value="9:16"' in html
    assert 'value="4K"' in html and "3840 px" in html
    assert 'data-gptimage-out="cost"' in html and "django_gptimage/js/options.js" in html
    assert "1:1 at 4K would be 3840x3840" in html  # the matrix carries the reasons
    assert response.context["matrix"]["access"]["locked"] == {}


def test_the_estimate_says_whether_it_will_be_billed(editor: Any, settings: Any) -> None:
    assert "offline provider: placeholders, not billed" in editor.get(reverse(ADD)).content.decode()
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER": "openai", "API_KEY": "sk-test"}
    assert "data-gptimage-not-billed" not in editor.get(reverse(ADD)).content.decode()


def test_the_free_plan_sees_its_locked_tiers_and_why(admin_client: Any) -> None:
    response = admin_client.get(reverse(ADD))
    matrix = response.context["matrix"]
    assert set(matrix["access"]["locked"]) == {"2K", "4K"}
    assert "Your access" in response.content.decode()


def test_submitting_opens_the_generations_page(editor: Any, admin_user: Any) -> None:
    response = editor.post(reverse(ADD), form_data(n="2"))
    generation = ImageGeneration.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(CHANGE, args=[generation.pk])
    assert generation.requested_by == admin_user and generation.source == "admin"
    assert (generation.ratio, generation.tier, generation.n) == ("16:9", "1K", 2)
    html = page(editor, generation)
    assert "Succeeded: 2 images" in html
    assert html.count('class="gptimage-result"') == 2


def test_image_to_image_with_references_and_a_mask(editor: Any) -> None:
    files = {"images": [png(), png(name="second.png")], "mask": png(mode="RGBA", name="mask.png")}
    response = editor.post(reverse(ADD), {**form_data(mode="image-to-image"), **files})
    assert response.status_code == 302
    generation = ImageGeneration.objects.get()
    assert generation.mode == "image-to-image"
    assert sorted(i.original_name for i in generation.inputs.all()) == ["mask.png", "ref.png", "second.png"]


@pytest.mark.parametrize(
    ("overrides", "files", "field", "message"),
    [
        ({"prompt": ""}, {}, "prompt", "Describe the image you want: the prompt is empty."),
        ({"prompt": "x" * 40_000}, {}, "prompt", "The prompt is 40,000 characters; the limit is 32,000."),
        ({"ratio": "1:1", "tier": "4K"}, {}, "tier", "1:1 at 4K would be 3840x3840"),
        (
            {"mode": "image-to-image"},
            {"images": [SimpleUploadedFile("notes.txt", b"just words", content_type="text/plain")]},
            "images",
            "'notes.txt' is not an image file that can be read.",
        ),
        (
            {"mode": "image-to-image"},
            {"images": [png(64, 64)], "mask": png(32, 32, "RGBA", "mask.png")},
            "mask",
            "The mask is 32x32 but the first image is 64x64; they must be the same size.",
        ),
    ],
    ids=["empty-prompt", "huge-prompt", "1:1-at-4K", "text-file", "mask-size"],
)
def test_bad_input_is_a_field_error_no_record_nothing_sent(
    editor: Any,
    gptimage_openai: Any,
    overrides: dict[str, Any],
    files: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = editor.post(reverse(ADD), {**form_data(**overrides), **files})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and any(message in e for e in errors[field]), errors
    assert "Nothing was sent" in response.content.decode()
    assert ImageGeneration.objects.count() == 0
    assert gptimage_openai.requests == []


def test_a_locked_tier_is_refused_with_the_unlock_rule(admin_client: Any, gptimage_openai: Any) -> None:
    response = admin_client.post(reverse(ADD), form_data(tier="2K"))
    assert response.status_code == 200
    assert "Paid" in response.context["form"].errors["tier"][0]
    assert ImageGeneration.objects.count() == 0 and gptimage_openai.requests == []


def test_regenerate_with_changes_prefills_the_form(editor: Any) -> None:
    source = request_generation(prompt="A lighthouse at dusk", ratio="3:2", quality="medium", n=1)
    response = editor.get(reverse(ADD) + f"?from={source.pk}")
    form = response.context["form"]
    assert form.initial["prompt"] == "A lighthouse at dusk"
    assert (form.initial["ratio"], form.initial["quality"]) == ("3:2", "medium")
    assert "Regenerating with changes" in response.content.decode()
    response = editor.post(reverse(ADD) + f"?from={source.pk}", form_data(prompt="A lighthouse at dawn"))
    new = ImageGeneration.objects.exclude(pk=source.pk).get()
    assert new.metadata["regenerated_from"] == str(source.pk) and new.prompt == "A lighthouse at dawn"


def test_regenerate_an_edit_reuses_the_originals_inputs(editor: Any) -> None:
    source = request_generation(prompt="Make it blue", images=[png()], quality="low")
    response = editor.post(
        reverse(ADD) + f"?from={source.pk}",
        {**form_data(mode="image-to-image", prompt="Make it green"), "reuse_inputs": "1"},
    )
    assert response.status_code == 302
    new = ImageGeneration.objects.exclude(pk=source.pk).get()
    assert [i.sha256 for i in new.inputs.all()] == [i.sha256 for i in source.inputs.all()]


def test_queue_down_is_a_form_error_not_a_crash(editor: Any, queue_mode: Any, settings: Any) -> None:
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_mode.name: {"URL": "redis://127.0.0.1:1/0"}}
    response = editor.post(reverse(ADD), form_data())
    assert response.status_code == 200
    assert "background queue is not reachable" in response.content.decode()
    assert ImageGeneration.objects.count() == 0


# -- a generation's page --------------------------------------------------------------------


def test_a_succeeded_generation_shows_its_images_and_what_to_do_with_them(editor: Any) -> None:
    generation = request_generation(prompt="A harbour at night", ratio="16:9", quality="low")
    html = page(editor, generation)
    image = generation.images.get()
    assert f"Succeeded: 1 image, {generation.width}x{generation.height}, in" in html
    assert f'href="{image.file.url}" download' in html
    assert reverse("admin:django_gptimage_imagegeneration_continue", args=[image.pk]) in html
    assert reverse("admin:django_gptimage_imagegeneration_upscale", args=[image.pk]) in html
    assert reverse("admin:django_gptimage_imagegeneration_duplicate", args=[generation.pk]) in html
    assert reverse(ADD) + f"?from={generation.pk}" in html
    assert "Technical record" in html and "<details" in html
    assert "Attempt 1" in html
    assert 'data-gptimage-final="true"' in html


def test_a_failure_says_what_happened_and_what_to_do(
    editor: Any, gptimage_openai: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    gptimage_openai.add_fault("server_error", times=3)
    generation = request_generation(prompt="Fails", quality="low")
    html = page(editor, generation)
    assert "What happened" in html and "The image service had an internal error or is overloaded." in html
    assert "What to do" in html and "Retry in a few minutes." in html
    assert reverse("admin:django_gptimage_imagegeneration_retry", args=[generation.pk]) in html
    # A 500 is not billed: the estimate is not shown as if it were the cost.
    assert re.search(r"<dd>not billed \(0\.\d+ USD estimated\)</dd>", html)


def test_a_timeout_may_have_been_billed_and_says_so(editor: Any, gptimage_openai: Any, settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1, "READ_TIMEOUT": 0.5}
    gptimage_openai.add_fault("delay", seconds=3.0)
    generation = request_generation(prompt="Too slow", quality="low")
    assert generation.error_code == "timeout"
    assert "estimate; may have been billed" in page(editor, generation)


def test_quota_says_ask_an_administrator_and_offers_no_retry(
    editor: Any, gptimage_openai: Any, settings: Any
) -> None:
    gptimage_openai.add_fault("insufficient_quota")
    generation = request_generation(prompt="No money left", quality="low")
    html = page(editor, generation)
    assert "Ask an administrator to top up" in html
    assert reverse("admin:django_gptimage_imagegeneration_retry", args=[generation.pk]) not in html


def test_a_queued_generation_page_polls_the_status_endpoint(editor: Any, queue_mode: Any) -> None:
    generation = request_generation(prompt="Waiting")
    html = page(editor, generation)
    assert f'data-gptimage-status-url="{reverse("gptimage:generation-status", args=[generation.pk])}"' in html
    assert 'data-gptimage-final="false"' in html and "django_gptimage/js/generation.js" in html
    assert "Waiting for a worker" in html
    assert reverse("admin:django_gptimage_imagegeneration_cancel", args=[generation.pk]) in html


def test_retry_and_cancel_buttons(editor: Any, gptimage_openai: Any, settings: Any, queue_mode: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    gptimage_openai.add_fault("server_error", times=3)
    generation = request_generation(prompt="Fails first", quality="low", run_mode="sync")
    response = editor.post(
        reverse("admin:django_gptimage_imagegeneration_retry", args=[generation.pk]), follow=True
    )
    assert "Queued again." in response.content.decode()
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED
    response = editor.post(
        reverse("admin:django_gptimage_imagegeneration_cancel", args=[generation.pk]), follow=True
    )
    assert "Canceled; nothing was sent." in response.content.decode()
    response = editor.post(
        reverse("admin:django_gptimage_imagegeneration_cancel", args=[generation.pk]), follow=True
    )
    assert "Nothing to cancel: it has already finished." in response.content.decode()
    response = editor.post(
        reverse("admin:django_gptimage_imagegeneration_retry", args=[generation.pk]), follow=True
    )
    assert (
        "Not retried: Only failed generations can be retried (this one is canceled)."
        in response.content.decode()
    )


def test_buttons_are_post_only(editor: Any) -> None:
    generation = request_generation(prompt="GET is not enough", quality="low")
    for view in ("retry", "cancel", "duplicate"):
        url = reverse(f"admin:django_gptimage_imagegeneration_{view}", args=[generation.pk])
        assert editor.get(url).status_code == 403


def test_duplicate_makes_the_same_request_again(editor: Any) -> None:
    source = request_generation(prompt="Copy me", ratio="4:3", quality="low", images=[png()])
    response = editor.post(reverse("admin:django_gptimage_imagegeneration_duplicate", args=[source.pk]))
    new = ImageGeneration.objects.exclude(pk=source.pk).get()
    assert response["Location"] == reverse(CHANGE, args=[new.pk])
    assert (new.prompt, new.ratio, new.tier, new.mode) == (source.prompt, "4:3", "1K", "image-to-image")
    assert [i.sha256 for i in new.inputs.all()] == [i.sha256 for i in source.inputs.all()]


def test_download_all_is_a_zip_of_the_originals(editor: Any) -> None:
    import zipfile

    generation = request_generation(prompt="Two to take home", quality="low", n=2)
    response = editor.get(reverse("admin:django_gptimage_imagegeneration_download", args=[generation.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response.streaming
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    images = list(generation.images.order_by("index"))
    assert len(archive.namelist()) == 2
    for name, image in zip(sorted(archive.namelist()), images, strict=True):
        with image.file.open("rb") as handle:
            assert archive.read(name) == handle.read()


# -- compare and iterate --------------------------------------------------------------------


def test_upscale_a_draft_as_image_to_image_from_the_draft(editor: Any) -> None:
    draft = request_generation(prompt="A fox in snow", ratio="16:9", tier="1K", quality="low")
    image = draft.images.get()
    url = reverse("admin:django_gptimage_imagegeneration_upscale", args=[image.pk])
    response = editor.get(url)
    choices = [c[0] for c in response.context["form"].fields["tier"].choices]
    assert choices == ["2K", "4K"]
    response = editor.post(url, {"tier": "4K", "mode": "image-to-image", "prompt": ""})
    new = ImageGeneration.objects.exclude(pk=draft.pk).get()
    assert response["Location"] == reverse(CHANGE, args=[new.pk])
    assert (new.tier, new.width, new.height, new.mode) == ("4K", 3840, 2160, "image-to-image")
    assert new.prompt == draft.prompt
    assert new.inputs.get().sha256 == image.sha256
    assert new.metadata["upscaled_from"] == image.pk
    html = page(editor, new)
    assert "Upscaled from this draft" in html and image.file.url in html  # side by side


def test_upscale_as_text_to_image_keeps_prompt_and_parameters(editor: Any) -> None:
    draft = request_generation(prompt="A fox in snow", ratio="3:2", tier="1K", quality="low")
    url = reverse("admin:django_gptimage_imagegeneration_upscale", args=[draft.images.get().pk])
    editor.post(url, {"tier": "2K", "mode": "text-to-image"})
    new = ImageGeneration.objects.exclude(pk=draft.pk).get()
    assert (new.mode, new.ratio, new.tier, new.quality, new.inputs.count()) == (
        "text-to-image",
        "3:2",
        "2K",
        "low",
        0,
    )


def test_upscale_of_1_1_offers_2k_and_says_why_not_4k(editor: Any) -> None:
    draft = request_generation(prompt="Square", ratio="1:1", tier="1K", quality="low")
    response = editor.get(
        reverse("admin:django_gptimage_imagegeneration_upscale", args=[draft.images.get().pk])
    )
    assert [c[0] for c in response.context["form"].fields["tier"].choices] == ["2K"]
    assert "over the 8,294,400-pixel cap" in response.content.decode()


def test_continue_editing_sends_the_result_back_with_a_new_instruction(editor: Any) -> None:
    source = request_generation(prompt="A boat on a lake", ratio="1:1", quality="low")
    image = source.images.get()
    url = reverse("admin:django_gptimage_imagegeneration_continue", args=[image.pk])
    mask = png(image.width, image.height, "RGBA", "mask.png")
    response = editor.post(url, {"prompt": "Make the sky stormy", "mask": mask})
    new = ImageGeneration.objects.exclude(pk=source.pk).get()
    assert response["Location"] == reverse(CHANGE, args=[new.pk])
    assert (new.mode, new.prompt) == ("image-to-image", "Make the sky stormy")
    assert {i.role for i in new.inputs.all()} == {"image", "mask"}
    assert new.inputs.get(role="image").sha256 == image.sha256
    assert "Edited from this image" in page(editor, new)


def test_continue_editing_refuses_a_mask_of_the_wrong_size(editor: Any, gptimage_openai: Any) -> None:
    source = request_generation(prompt="A boat", ratio="1:1", quality="low")
    before = len(gptimage_openai.requests)
    url = reverse("admin:django_gptimage_imagegeneration_continue", args=[source.images.get().pk])
    response = editor.post(url, {"prompt": "Add a moon", "mask": png(32, 32, "RGBA", "mask.png")})
    assert response.status_code == 200
    assert "they must be the same size" in response.context["form"].errors["mask"][0]
    assert ImageGeneration.objects.count() == 1 and len(gptimage_openai.requests) == before
    response = editor.post(url, {"prompt": ""})
    assert response.context["form"].errors["prompt"] == ["Describe the image you want: the prompt is empty."]


def test_compare_two_to_four_side_by_side(editor: Any) -> None:
    generations = [request_generation(prompt=f"Variant {i}", quality="low") for i in range(3)]
    ids = ",".join(str(g.pk) for g in generations)
    response = editor.get(reverse("admin:django_gptimage_imagegeneration_compare") + f"?ids={ids}")
    html = response.content.decode()
    assert html.count('class="gptimage-compare-column"') == 3
    for g in generations:
        assert g.images.get().file.url in html
    one = editor.get(
        reverse("admin:django_gptimage_imagegeneration_compare") + f"?ids={generations[0].pk}", follow=True
    )
    assert "Select 2 to 4 generations to compare (got 1)." in one.content.decode()


def test_unknown_ids_are_404(editor: Any) -> None:
    assert editor.get(reverse(CHANGE, args=["not-a-uuid"])).status_code in (302, 404)
    assert (
        editor.get(reverse("admin:django_gptimage_imagegeneration_upscale", args=[999999])).status_code == 404
    )


def test_image_urls_use_the_storage(editor: Any) -> None:
    generation = request_generation(prompt="Stored", quality="low")
    assert GeneratedImage.objects.get(generation=generation).file.url in page(editor, generation)
