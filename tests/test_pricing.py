from __future__ import annotations

from decimal import Decimal

import pytest

from django_gptimage.domain.pricing import (
    DEFAULT_PRICES,
    Prices,
    actual_cost,
    estimate_cost,
    estimate_output_tokens,
    prices_for,
)

USAGE = {
    "total_tokens": 4210,
    "input_tokens": 50,
    "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
    "output_tokens": 4160,
}


def estimate(**kwargs) -> Decimal:
    defaults = {"model": "gpt-image-2", "quality": "medium", "width": 1024, "height": 1024, "n": 1}
    return estimate_cost(**{**defaults, "prompt_chars": 400, **kwargs})


def test_estimate_by_hand():
    # 400 chars ~ 100 text tokens at $5/M, 272 low-quality output tokens at $30/M.
    assert estimate(quality="low") == Decimal("0.008660")
    # 1056 medium tokens: 100 * 5 + 1056 * 30 = 32,180 micro-dollars.
    assert estimate(quality="medium") == Decimal("0.032180")


def test_estimate_grows_with_quality():
    low, medium, high = (estimate(quality=q) for q in ("low", "medium", "high"))
    assert low < medium < high


def test_auto_quality_is_estimated_like_high():
    assert estimate(quality="auto") == estimate(quality="high")
    assert estimate_output_tokens("auto", 1024, 1024) == estimate_output_tokens("high", 1024, 1024) == 4160


def test_estimate_grows_with_size():
    one_k = estimate(width=1088, height=608)
    two_k = estimate(width=2048, height=1152)
    four_k = estimate(width=3840, height=2160)
    assert one_k < two_k < four_k


def test_output_tokens_scale_with_pixels():
    assert estimate_output_tokens("high", 2048, 2048) == 4 * 4160
    assert estimate_output_tokens("low", 1024, 512) == 136


def test_auto_size_is_estimated_as_the_largest_auto_size():
    assert estimate(width=None, height=None) == estimate(width=1536, height=1024)


def test_estimate_grows_with_n():
    one, four = estimate(n=1), estimate(n=4)
    assert one < four
    # Only the output part is multiplied: 4 * 1056 * 30 + 100 * 5.
    assert four == Decimal("0.127220")


def test_estimate_counts_input_images():
    with_inputs = estimate(input_image_pixels=(1024 * 1024, 1024 * 1024))
    # Two inputs of ~765 tokens at $8/M.
    assert with_inputs - estimate() == Decimal("0.012240")


def test_actual_cost_from_usage_by_hand():
    # 10 text tokens * $5 + 40 image tokens * $8 + 4160 output tokens * $30, per million.
    assert actual_cost("gpt-image-2", USAGE) == Decimal("0.125170")
    # gpt-image-1: $5 / $10 / $40.
    assert actual_cost("gpt-image-1", USAGE) == Decimal("0.166850")


def test_actual_cost_without_usage():
    assert actual_cost("gpt-image-2", None) is None
    assert actual_cost("gpt-image-2", {}) is None


def test_actual_cost_without_details_counts_input_as_text():
    usage = {"input_tokens": 100, "output_tokens": 1000, "total_tokens": 1100}
    assert actual_cost("gpt-image-2", usage) == Decimal("0.030500")


def test_actual_cost_is_rounded_half_up_to_micro_dollars():
    usage = {
        "input_tokens": 1,
        "input_tokens_details": {"text_tokens": 1, "image_tokens": 0},
        "output_tokens": 0,
    }
    # One text token of gpt-image-2: $5 / 1e6 = 0.000005 exactly.
    assert actual_cost("gpt-image-2", usage) == Decimal("0.000005")
    # One image token of gpt-image-1-mini: $2.50 / 1e6 = 0.0000025, rounded half up.
    usage = {
        "input_tokens": 1,
        "input_tokens_details": {"text_tokens": 0, "image_tokens": 1},
        "output_tokens": 0,
    }
    assert actual_cost("gpt-image-1-mini", usage) == Decimal("0.000003")


def test_overrides_replace_only_the_given_prices():
    overrides = {"gpt-image-2": {"image_output": "60"}}
    prices = prices_for("gpt-image-2", overrides)
    assert prices == Prices(Decimal("5.00"), Decimal("8.00"), Decimal("60"))
    assert actual_cost("gpt-image-2", USAGE, overrides) == Decimal("0.249970")
    assert estimate(quality="low", overrides=overrides) == Decimal("0.016820")
    # Defaults are untouched.
    assert DEFAULT_PRICES["gpt-image-2"].image_output == Decimal("30.00")


def test_overrides_accept_numbers_and_new_models():
    overrides = {"acme-image": {"text_input": 1, "image_input": 2.5, "image_output": "3"}}
    assert prices_for("acme-image", overrides) == Prices(Decimal("1"), Decimal("2.5"), Decimal("3"))
    # An override for a model with no published price starts from zero.
    assert prices_for("acme-image", {"acme-image": {"image_output": 3}}).text_input == Decimal(0)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-image-2", "gpt-image-2"),
        ("gpt-image-2-2026-04-21", "gpt-image-2"),
        ("gpt-image-2.5", "gpt-image-2"),
        ("gpt-image-1", "gpt-image-1"),
        ("gpt-image-1-mini", "gpt-image-1-mini"),
        ("gpt-image-1-mini-2025-10-06", "gpt-image-1-mini"),
        ("gpt-image-1.5", "gpt-image-1.5"),
        ("something-else", "gpt-image-2"),
    ],
)
def test_prices_follow_the_closest_published_model(model, expected):
    assert prices_for(model) == DEFAULT_PRICES[expected]
