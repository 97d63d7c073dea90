from __future__ import annotations

from dataclasses import replace

import pytest

from django_gptimage.domain.policy import Policy
from django_gptimage.domain.validation import (
    MAX_INPUT_PIXELS,
    GenerationRequest,
    InputImage,
    validate,
)

MB = 1024 * 1024


def request(**kwargs) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "A lighthouse at dusk", "model": "gpt-image-2", **kwargs})


def png(
    name: str = "in.png", *, width: int = 1024, height: int = 1024, alpha: bool = False, **kw
) -> InputImage:
    return InputImage(
        name=name,
        format=kw.pop("format", "png"),
        size_bytes=kw.pop("size_bytes", 200_000),
        width=width,
        height=height,
        has_alpha=alpha,
    )


def edit(**kwargs) -> GenerationRequest:
    return request(**{"mode": "image-to-image", "images": (png(),), **kwargs})


def fields(result) -> list[str]:
    return sorted(p.field for p in result.problems)


def test_a_valid_request_is_resolved_to_its_size():
    result = validate(request(ratio="16:9", tier="4K", quality="high"))
    assert result.ok
    assert result.problems == []
    v = result.validated
    assert (v.ratio, v.tier, v.width, v.height, v.size) == ("16:9", "4K", 3840, 2160, "3840x2160")


def test_auto_ratio_validates_to_auto_size():
    result = validate(request(ratio="auto", tier="1K"))
    assert result.ok
    assert result.validated.size == "auto"


def test_every_problem_is_returned_at_once():
    result = validate(
        request(
            prompt=" ",
            ratio="17:3",
            tier="8K",
            quality="ultra",
            output_format="gif",
            background="glass",
            n=0,
            images=(png(),),
        )
    )
    assert not result.ok
    assert result.validated is None
    assert fields(result) == [
        "background",
        "images",
        "n",
        "output_format",
        "prompt",
        "quality",
        "ratio",
        "tier",
    ]
    assert all(p.message for p in result.problems)


@pytest.mark.parametrize(
    ("kwargs", "field", "snippet"),
    [
        ({"ratio": "banana"}, "ratio", "banana"),
        ({"ratio": "7:5"}, "ratio", "Unknown aspect ratio"),
        ({"tier": "8K"}, "tier", "8K"),
        ({"model": "dall-e-3"}, "model", "dall-e-3"),
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "   \n"}, "prompt", "empty"),
        ({"prompt": "x" * 32_001}, "prompt", "32,000"),
        ({"n": 0}, "n", "between 1 and 10"),
        ({"n": 11}, "n", "between 1 and 10"),
        ({"mode": "sketch"}, "mode", "sketch"),
        ({"quality": "ultra"}, "quality", "ultra"),
        ({"output_format": "gif"}, "output_format", "gif"),
        ({"background": "transparent", "output_format": "jpeg"}, "background", "png or webp"),
        ({"output_compression": 50}, "output_compression", "png"),
        ({"output_format": "jpeg", "output_compression": 101}, "output_compression", "0-100"),
        ({"output_format": "webp", "output_compression": -1}, "output_compression", "0-100"),
        ({"ratio": "16:9", "tier": "2K", "model": "gpt-image-1"}, "tier", "about 1K"),
        ({"ratio": "16:9", "model": "gpt-image-1"}, "ratio", "1:1, 3:2, 2:3"),
        ({"ratio": "1:1", "tier": "4K"}, "tier", "8,294,400"),
        ({"ratio": "auto", "tier": "2K"}, "ratio", "1K"),
    ],
)
def test_single_problem_names_its_field(kwargs, field, snippet):
    result = validate(request(**kwargs))
    assert [p.field for p in result.problems] == [field], result.problems
    assert snippet in result.problems[0].message
    assert result.validated is None


def test_empty_prompt_has_code_required():
    (problem,) = validate(request(prompt="")).problems
    assert problem.code == "required"


def test_prompt_at_the_limit_is_fine():
    assert validate(request(prompt="x" * 32_000)).ok


def test_unknown_model_still_reports_other_problems():
    result = validate(request(model="dall-e-3", prompt="", images=(png(),)))
    assert fields(result) == ["images", "model", "prompt"]


@pytest.mark.parametrize(("n", "ok"), [(1, True), (10, True), (0, False), (11, False), (-1, False)])
def test_n_bounds(n, ok):
    assert validate(request(n=n)).ok is ok


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background_with_png_or_webp(fmt):
    assert validate(request(background="transparent", output_format=fmt)).ok


@pytest.mark.parametrize(("fmt", "value"), [("jpeg", 0), ("jpeg", 100), ("webp", 80)])
def test_compression_for_jpeg_and_webp(fmt, value):
    assert validate(request(output_format=fmt, output_compression=value)).ok


# Explicit sizes ---------------------------------------------------------------------------------


def test_valid_explicit_size():
    result = validate(request(size="1536x864", ratio=None, tier=None))
    assert result.ok, result.problems
    v = result.validated
    assert (v.width, v.height, v.ratio, v.tier) == (1536, 864, "16:9", "1K")


@pytest.mark.parametrize(
    ("size", "count"),
    [("1000x1000", 1), ("4000x1000", 3), ("3840x3840", 1), ("512x512", 1)],
)
def test_invalid_explicit_sizes_report_every_reason(size, count):
    result = validate(request(size=size))
    size_problems = [p for p in result.problems if p.field == "size"]
    assert len(size_problems) == count, result.problems
    assert result.validated is None


def test_explicit_size_that_is_not_a_size():
    (problem,) = validate(request(size="big")).problems
    assert problem.field == "size"
    assert "WIDTHxHEIGHT" in problem.message


def test_explicit_auto_size():
    assert validate(request(size="auto")).validated.size == "auto"
    result = validate(request(size="auto"), Policy(ratios=("1:1",)))
    assert fields(result) == ["size"]


def test_explicit_auto_size_does_not_get_round_the_tiers():
    # auto makes about 1K: a site (or a user's access) without 1K must not get it this way.
    result = validate(request(size="auto"), Policy(tiers=("2K",)))
    assert fields(result) == ["tier"]
    assert result.problems[0].code == "access_denied"


def test_explicit_size_for_gpt_image_1():
    assert validate(request(model="gpt-image-1", size="1536x1024")).ok
    result = validate(request(model="gpt-image-1", size="1536x864"))
    assert fields(result) == ["size"]


# Input images -----------------------------------------------------------------------------------


def test_valid_edit_with_mask():
    result = validate(edit(mask=png("mask.png", alpha=True)))
    assert result.ok, result.problems


def test_edit_without_images():
    (problem,) = validate(request(mode="image-to-image")).problems
    assert (problem.field, problem.code) == ("images", "required")


def test_images_in_text_to_image_mode():
    result = validate(request(images=(png(),), mask=png("m.png", alpha=True)))
    assert fields(result) == ["images", "mask"]


def test_input_that_is_not_an_image():
    result = validate(edit(images=(png("notes.txt", format=None),)))
    (problem,) = result.problems
    assert problem.field == "images"
    assert "notes.txt" in problem.message


def test_input_in_unsupported_format():
    (problem,) = validate(edit(images=(png("a.gif", format="gif"),))).problems
    assert problem.field == "images"
    assert "gif" in problem.message


def test_input_too_large():
    (problem,) = validate(edit(images=(png(size_bytes=50 * MB + 1),))).problems
    assert problem.field == "images"
    assert "52,428,800" in problem.message
    assert validate(edit(images=(png(size_bytes=50 * MB),))).ok


def test_decompression_bomb_by_claimed_pixels():
    bomb = png("bomb.png", width=20_000, height=20_000, size_bytes=80_000)
    (problem,) = validate(edit(images=(bomb,))).problems
    assert problem.field == "images"
    assert "decompression bomb" in problem.message
    assert MAX_INPUT_PIXELS < 20_000 * 20_000


def test_more_than_16_images():
    result = validate(edit(images=tuple(png(f"{i}.png") for i in range(17))))
    assert [p.field for p in result.problems] == ["images"]
    assert "16" in result.problems[0].message
    assert validate(edit(images=tuple(png(f"{i}.png") for i in range(16)))).ok


def test_mask_of_the_wrong_size():
    result = validate(edit(mask=png("mask.png", width=512, height=512, alpha=True)))
    (problem,) = result.problems
    assert problem.field == "mask"
    assert "512x512" in problem.message and "1024x1024" in problem.message


def test_mask_without_alpha():
    (problem,) = validate(edit(mask=png("mask.png", alpha=False))).problems
    assert problem.field == "mask"
    assert "alpha" in problem.message


def test_mask_not_png():
    mask = replace(png("mask.jpg", alpha=True), format="jpeg")
    (problem,) = validate(edit(mask=mask)).problems
    assert problem.field == "mask"
    assert "png" in problem.message


def test_mask_too_large():
    (problem,) = validate(edit(mask=png("mask.png", alpha=True, size_bytes=4 * MB + 1))).problems
    assert problem.field == "mask"


def test_several_input_problems_at_once():
    images = (png("b.png", size_bytes=51 * MB), png("a.txt", format=None))
    result = validate(edit(images=images, mask=png("m.png", width=10, height=10)))
    assert fields(result) == ["images", "images", "mask", "mask"]


# Policy ----------------------------------------------------------------------------------------


def test_policy_forbids_4k():
    policy = Policy(tiers=("1K", "2K"))
    (problem,) = validate(request(ratio="16:9", tier="4K"), policy).problems
    assert (problem.field, problem.code) == ("tier", "access_denied")
    assert validate(request(ratio="16:9", tier="2K"), policy).ok


def test_policy_forbids_4k_for_explicit_sizes_too():
    result = validate(request(size="3840x2160"), Policy(tiers=("1K", "2K")))
    assert fields(result) == ["tier"]


def test_policy_ratios_apply_to_explicit_sizes():
    policy = Policy(ratios=("1:1",))
    result = validate(request(size="1536x864"), policy)
    assert fields(result) == ["size"]
    assert "16:9" in result.problems[0].message
    assert validate(request(size="1024x1024"), policy).ok


def test_policy_forbids_a_model():
    policy = Policy(models=("gpt-image-1",))
    (problem,) = validate(request(), policy).problems
    assert problem.field == "model"
    assert "gpt-image-1" in problem.message


def test_policy_forbids_a_quality():
    policy = Policy(qualities=("low", "medium"))
    (problem,) = validate(request(quality="high"), policy).problems
    assert problem.field == "quality"
    assert "low, medium" in problem.message


def test_policy_forbids_a_format_and_a_mode():
    policy = Policy(formats=("png",), modes=("text-to-image",))
    result = validate(edit(output_format="webp"), policy)
    assert fields(result) == ["mode", "output_format"]


def test_policy_max_n():
    assert fields(validate(request(n=3), Policy(max_n=2))) == ["n"]
    assert validate(request(n=2), Policy(max_n=2)).ok


def test_policy_can_never_widen():
    # Listing 4K does not make 1:1 at 4K possible.
    result = validate(request(ratio="1:1", tier="4K"), Policy(tiers=("4K",)))
    assert fields(result) == ["tier"]
    assert "8,294,400" in result.problems[0].message
    # Nor does a policy value the model does not know.
    assert fields(validate(request(quality="ultra"), Policy(qualities=("ultra",)))) == ["quality"]
    assert fields(validate(request(n=11), Policy(max_n=50))) == ["n"]
    # Nor does allowing a ratio the model refuses.
    result = validate(request(model="gpt-image-1", ratio="16:9"), Policy(ratios=("16:9",)))
    assert fields(result) == ["ratio"]


def test_policy_that_allows_nothing_says_so():
    (problem,) = validate(request(), Policy(ratios=())).problems
    assert problem.field == "ratio"
    assert "allows nothing" in problem.message
