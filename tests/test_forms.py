"""GenerationForm: the service's validation, every problem on its own field, nothing recorded."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from django_gptimage.access.plans import assign
from django_gptimage.forms import GenerationForm
from django_gptimage.models import ImageGeneration
from django_gptimage.service import estimate, request_generation

pytestmark = pytest.mark.django_db


def png(width: int = 64, height: int = 64, mode: str = "RGB", name: str = "ref.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30, 0) if mode == "RGBA" else (200, 30, 30)).save(
        buffer, "PNG"
    )
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def data(**overrides: Any) -> dict[str, Any]:
    values = {
        "prompt": "A lighthouse at dusk",
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


def test_a_valid_form_gives_the_service_its_own_keyword_arguments(
    django_capture_on_commit_callbacks: Any,
) -> None:
    form = GenerationForm(data=data())
    assert form.is_valid(), form.errors
    kwargs = form.service_kwargs()
    assert kwargs == {
        "prompt": "A lighthouse at dusk", "model": "gpt-image-2", "mode": "text-to-image", "ratio": "16:9",
        "tier": "1K", "quality": "low", "output_format": "png", "background": "auto", "n": 1,
        "images": [], "mask": None,
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        generation = request_generation(**kwargs)
    generation.refresh_from_db()
    expected = estimate(ratio="16:9", tier="1K")
    assert (generation.width, generation.height) == (expected.width, expected.height)
    assert generation.status == "succeeded"


def test_empty_prompt_is_a_field_error_in_the_services_words() -> None:
    form = GenerationForm(data=data(prompt="   "))
    assert not form.is_valid()
    assert form.errors["prompt"] == ["Describe the image you want: the prompt is empty."]
    assert ImageGeneration.objects.count() == 0


def test_huge_prompt_and_1_1_at_4k_are_both_reported() -> None:
    form = GenerationForm(data=data(prompt="x" * 40_000, ratio="1:1", tier="4K"))
    assert not form.is_valid()
    assert form.errors["prompt"] == ["The prompt is 40,000 characters; the limit is 32,000."]
    assert "1:1 at 4K would be 3840x3840" in form.errors["tier"][0]
    assert "choose 2K, or a ratio of 16:9 or wider" in form.errors["tier"][0]


def test_a_text_file_as_reference_image_is_refused_on_the_images_field() -> None:
    text = SimpleUploadedFile("notes.txt", b"not an image at all", content_type="text/plain")
    form = GenerationForm(data=data(mode="image-to-image"), files={"images": [text]})
    assert not form.is_valid()
    assert form.errors["images"] == ["'notes.txt' is not an image file that can be read."]


def test_several_references_and_a_mask_of_the_wrong_size() -> None:
    files = {"images": [png(64, 64), png(32, 32, name="second.png")], "mask": png(48, 48, "RGBA", "mask.png")}
    form = GenerationForm(data=data(mode="image-to-image"), files=files)
    assert not form.is_valid()
    assert form.errors["mask"] == [
        "The mask is 48x48 but the first image is 64x64; they must be the same size."
    ]
    assert list(form.errors) == ["mask"]


def test_uploads_stay_readable_after_validation() -> None:
    files = {"images": [png(64, 64)], "mask": png(64, 64, "RGBA", "mask.png")}
    form = GenerationForm(data=data(mode="image-to-image"), files=files)
    assert form.is_valid(), form.errors
    kwargs = form.service_kwargs()
    assert len(kwargs["images"]) == 1 and kwargs["mask"] is not None
    generation = request_generation(**kwargs)
    assert generation.inputs.count() == 2
    assert {i.original_name for i in generation.inputs.all()} == {"ref.png", "mask.png"}


def test_references_in_text_to_image_mode_are_refused() -> None:
    form = GenerationForm(data=data(), files={"images": [png()]})
    assert not form.is_valid()
    assert form.errors["images"] == [
        "Input images are only used for image-to-image; switch the mode or remove them."
    ]


def test_locked_tier_uses_the_users_access(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("free")  # the default plan: free, 1K only
    form = GenerationForm(data=data(tier="2K"), user=user)
    assert not form.is_valid()
    assert len(form.errors["tier"]) == 1
    assert "2K" in form.errors["tier"][0] and "Paid" in form.errors["tier"][0]  # the unlock rule
    assert GenerationForm(data=data(tier="1K"), user=user).is_valid()
    assign(user, "paid")
    assert GenerationForm(data=data(tier="2K"), user=user).is_valid()


def test_an_unknown_choice_is_djangos_choice_error_and_the_service_is_not_asked() -> None:
    form = GenerationForm(data=data(tier="8K"))
    assert not form.is_valid()
    assert list(form.errors) == ["tier"]
    assert "8K is not one of the available choices" in form.errors["tier"][0]


def test_n_over_the_policy_limit(settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_N": 2}
    form = GenerationForm(data=data(n="3"))
    assert not form.is_valid()
    assert form.errors["n"] == ["The number of images must be between 1 and 2 (got 3)."]


def test_the_model_field_lists_what_the_policy_allows(settings: Any) -> None:
    assert [c[0] for c in GenerationForm().fields["model"].choices] == ["gpt-image-2"]
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_MODELS": ["gpt-image-2", "gpt-image-1-mini"]}
    form = GenerationForm()
    assert [c[0] for c in form.fields["model"].choices] == ["gpt-image-2", "gpt-image-1-mini"]
    refused = GenerationForm(data=data(model="gpt-image-1-mini", ratio="16:9"))
    assert not refused.is_valid()
    assert refused.errors["ratio"] == ["gpt-image-1-mini only makes 1:1, 3:2, 2:3 images (or auto)."]


def test_the_ratio_and_tier_pickers_draw_shapes_and_sizes() -> None:
    html = str(GenerationForm()["ratio"])
    assert 'data-gptimage-value="16:9"' in html
    assert "width:30px;height:17px" in html  # 16:9 drawn wide
    assert "width:17px;height:30px" in html  # 9:16 drawn tall
    tiers = str(GenerationForm()["tier"])
    assert "3840 px" in tiers and 'value="4K"' in tiers
