from __future__ import annotations

from fractions import Fraction
from itertools import product

import pytest

from django_gptimage.domain.capabilities import MODES, get_capabilities, model_family
from django_gptimage.domain.sizes import (
    RATIOS,
    TIER_LONG_EDGE,
    TIERS,
    parse_ratio,
    parse_size,
    ratio_label,
    resolve_size,
    size_problems,
    tier_for_size,
)

GPT2 = get_capabilities("gpt-image-2")
GPT1 = get_capabilities("gpt-image-1")
FOUR_K_RATIOS = {"16:9", "9:16", "2:1", "1:2", "21:9", "9:21"}
NUMERIC_RATIOS = [r for r in RATIOS if r != "auto"]


def _all_choices(caps):
    return [resolve_size(r, t, m, caps) for r, t, m in product(RATIOS, TIERS, MODES)]


# Hand-checked expectations for every ratio x tier of gpt-image-2 (None = refused).
EXPECTED_GPT2 = {
    ("1:1", "1K"): (1024, 1024),
    ("1:1", "2K"): (2048, 2048),
    ("1:1", "4K"): None,
    ("3:2", "1K"): (1024, 688),
    ("3:2", "2K"): (2048, 1360),
    ("3:2", "4K"): None,
    ("2:3", "1K"): (688, 1024),
    ("2:3", "2K"): (1360, 2048),
    ("2:3", "4K"): None,
    ("4:3", "1K"): (1024, 768),
    ("4:3", "2K"): (2048, 1536),
    ("4:3", "4K"): None,
    ("3:4", "1K"): (768, 1024),
    ("3:4", "2K"): (1536, 2048),
    ("3:4", "4K"): None,
    ("5:4", "1K"): (1024, 816),
    ("5:4", "2K"): (2048, 1632),
    ("5:4", "4K"): None,
    ("4:5", "1K"): (816, 1024),
    ("4:5", "2K"): (1632, 2048),
    ("4:5", "4K"): None,
    ("16:9", "1K"): (1088, 608),
    ("16:9", "2K"): (2048, 1152),
    ("16:9", "4K"): (3840, 2160),
    ("9:16", "1K"): (608, 1088),
    ("9:16", "2K"): (1152, 2048),
    ("9:16", "4K"): (2160, 3840),
    ("2:1", "1K"): (1152, 576),
    ("2:1", "2K"): (2048, 1024),
    ("2:1", "4K"): (3840, 1920),
    ("1:2", "1K"): (576, 1152),
    ("1:2", "2K"): (1024, 2048),
    ("1:2", "4K"): (1920, 3840),
    ("21:9", "1K"): (1248, 528),
    ("21:9", "2K"): (2048, 880),
    ("21:9", "4K"): (3840, 1648),
    ("9:21", "1K"): (528, 1248),
    ("9:21", "2K"): (880, 2048),
    ("9:21", "4K"): (1648, 3840),
}


def test_expectations_cover_every_numeric_ratio_and_tier():
    assert set(EXPECTED_GPT2) == set(product(NUMERIC_RATIOS, TIERS))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("ratio", "tier"), sorted(EXPECTED_GPT2))
def test_gpt_image_2_every_ratio_and_tier(ratio, tier, mode):
    choice = resolve_size(ratio, tier, mode, GPT2)
    expected = EXPECTED_GPT2[(ratio, tier)]
    if expected is None:
        assert not choice.allowed
        assert choice.size is None
        assert choice.reason
        assert choice.field == "tier"
    else:
        assert choice.allowed, choice.reason
        assert (choice.width, choice.height) == expected
        assert choice.size == f"{expected[0]}x{expected[1]}"
        assert choice.reason == ""


@pytest.mark.parametrize("tier", TIERS)
def test_auto_ratio_only_at_1k(tier):
    choice = resolve_size("auto", tier, "text-to-image", GPT2)
    if tier == "1K":
        assert choice.allowed
        assert choice.size == "auto"
        assert (choice.width, choice.height) == (None, None)
    else:
        assert not choice.allowed
        assert choice.field == "ratio"
        assert "1K" in choice.reason


def test_square_has_no_4k_and_says_why():
    choice = resolve_size("1:1", "4K", "text-to-image", GPT2)
    assert not choice.allowed
    assert (choice.width, choice.height) == (3840, 3840)
    assert "8,294,400" in choice.reason
    assert "2K" in choice.reason


def test_portrait_refusal_suggests_taller_ratio():
    assert "9:16 or taller" in resolve_size("2:3", "4K", "text-to-image", GPT2).reason
    assert "16:9 or wider" in resolve_size("3:2", "4K", "text-to-image", GPT2).reason


def test_4k_exists_exactly_for_wide_and_tall_ratios():
    allowed = {r for r in RATIOS if resolve_size(r, "4K", "text-to-image", GPT2).allowed}
    assert allowed == FOUR_K_RATIOS


def test_16_9_at_1k_is_grown_to_the_pixel_floor():
    choice = resolve_size("16:9", "1K", "text-to-image", GPT2)
    assert GPT2.min_pixels > 1024 * 576  # the naive size is under the floor
    assert choice.width > 1024
    assert choice.height > 576
    assert choice.width * choice.height >= 655_360


def test_every_allowed_size_obeys_the_published_limits():
    allowed = [c for c in _all_choices(GPT2) if c.allowed and c.width is not None]
    assert len(allowed) == 2 * (len(NUMERIC_RATIOS) * 2 + len(FOUR_K_RATIOS))
    for c in allowed:
        w, h = c.width, c.height
        assert w % 16 == 0 and h % 16 == 0, c
        assert max(w, h) / min(w, h) <= 3, c
        assert 655_360 <= w * h <= 8_294_400, c
        assert max(w, h) <= 3840, c
        assert size_problems(w, h, GPT2) == [], c


def test_every_refused_numeric_cell_breaks_a_limit():
    refused = [c for c in _all_choices(GPT2) if not c.allowed and c.ratio != "auto"]
    assert refused
    for c in refused:
        assert size_problems(c.width, c.height, GPT2), c


def test_each_size_is_the_closest_snapped_size_to_its_ratio():
    """The short edge is the multiple of 16 nearest long/ratio, and the long edge is the tier's
    edge or, below the pixel floor, the smallest multiple of 16 that reaches it."""
    for c in _all_choices(GPT2):
        if not c.allowed or c.width is None:
            continue
        ratio = parse_ratio(c.ratio)
        r = float(max(ratio, 1 / ratio))
        long_edge, short_edge = max(c.width, c.height), min(c.width, c.height)
        # Orientation follows the ratio.
        assert (c.width >= c.height) == (ratio >= 1), c
        # Nearest multiple of 16: no other multiple of 16 is closer to the ideal short edge.
        ideal = long_edge / r
        for candidate in (short_edge - 16, short_edge + 16):
            assert abs(short_edge - ideal) <= abs(candidate - ideal), c
        # Long edge: the tier's, unless grown to the floor; if grown, one step less is under it.
        tier_edge = TIER_LONG_EDGE[c.tier]
        assert long_edge >= tier_edge, c
        if long_edge > tier_edge:
            smaller = long_edge - 16
            assert smaller * (16 * round(smaller / r / 16)) < 655_360, c


def test_gpt_image_1_family_has_three_fixed_sizes():
    for model in ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"):
        caps = get_capabilities(model)
        assert caps is not None
        assert caps.family == "gpt-image-1"
        sizes = {c.size for c in _all_choices(caps) if c.allowed}
        assert sizes == {"1024x1024", "1536x1024", "1024x1536", "auto"}, model


def test_gpt_image_1_refusals_name_the_fixed_shapes():
    choice = resolve_size("16:9", "1K", "text-to-image", GPT1)
    assert not choice.allowed
    assert choice.field == "ratio"
    assert "1:1, 3:2, 2:3" in choice.reason
    assert "about 1K" in resolve_size("1:1", "2K", "text-to-image", GPT1).reason


def test_gpt_image_1_explicit_sizes():
    assert size_problems(1536, 1024, GPT1) == []
    assert size_problems(1536, 864, GPT1)


@pytest.mark.parametrize(
    "model",
    [
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "gpt-image-2.5",
        "gpt-image-2.5-flare",
        "gpt-image-2.6-sunburst",
    ],
)
def test_gpt_image_2_ids_resolve_to_gpt_image_2_caps(model):
    caps = get_capabilities(model)
    assert caps is not None
    assert caps.model == model
    assert caps.family == "gpt-image-2"
    assert caps.flexible_sizes
    assert resolve_size("16:9", "4K", "text-to-image", caps).size == "3840x2160"


@pytest.mark.parametrize(
    "model",
    [
        "dall-e-3",
        "gpt-image-3",
        "gpt-image",
        "GPT-IMAGE-2",
        "",
        "gpt-4o",
        "gpt-image-2-mini",
        "gpt-image-2.9",
    ],
)
def test_unknown_model_has_no_capabilities(model):
    assert get_capabilities(model) is None
    assert model_family(model) is None


@pytest.mark.parametrize(
    ("ratio", "tier", "mode", "field"),
    [
        ("7:1", "1K", "text-to-image", "ratio"),
        ("banana", "1K", "text-to-image", "ratio"),
        ("0:1", "1K", "text-to-image", "ratio"),
        ("1:1", "8K", "text-to-image", "tier"),
        ("1:1", "1K", "sketch", "mode"),
    ],
)
def test_resolve_size_refuses_bad_input(ratio, tier, mode, field):
    choice = resolve_size(ratio, tier, mode, GPT2)
    assert not choice.allowed
    assert choice.field == field
    assert choice.reason


def test_parse_helpers():
    assert parse_ratio("16:9") == Fraction(16, 9)
    assert parse_ratio("16/9") is None
    assert parse_ratio("-1:2") is None
    assert parse_size("1536x864") == (1536, 864)
    assert parse_size("1536X864") == (1536, 864)
    assert parse_size("auto") is None
    assert parse_size("15x") is None


def test_explicit_size_problems_are_all_reported():
    assert size_problems(1536, 864, GPT2) == []
    assert len(size_problems(1000, 1000, GPT2)) == 1  # not multiples of 16
    assert len(size_problems(4000, 1000, GPT2)) == 3  # 1000 % 16, edge over 3840, ratio over 3:1
    assert len(size_problems(3840, 3840, GPT2)) == 1  # over the pixel cap
    assert len(size_problems(512, 512, GPT2)) == 1  # under the pixel floor
    assert size_problems(0, 512, GPT2) == ["Width and height must be positive."]


def test_tier_and_ratio_of_explicit_sizes():
    assert tier_for_size(1536, 864) == "1K"
    assert tier_for_size(2048, 1152) == "2K"
    assert tier_for_size(3840, 2160) == "4K"
    assert ratio_label(1536, 864) == "16:9"
    assert ratio_label(1024, 1024) == "1:1"
    assert ratio_label(1024, 688) == "3:2"
    assert ratio_label(1408, 1024) == "11:8"
