"""option_matrix() and estimate(): the server's own rules, rendered for the browser."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from django_gptimage.access.resolver import Access
from django_gptimage.domain.pricing import estimate_cost
from django_gptimage.domain.sizes import RATIOS, TIERS
from django_gptimage.options import format_cost
from django_gptimage.service import GenerationRefused, estimate, option_matrix


def editor_in_chief(user: Any) -> Access:
    return Access(
        tiers=("1K",),
        qualities=("low", "medium"),
        explain=lambda field, value, policy: f"{value} needs a paid plan; ask the editor-in-chief.",
    )


def test_every_cell_is_there_and_json_ready() -> None:
    matrix = option_matrix()
    json.dumps(matrix)  # json_script must be able to embed it
    cells = matrix["models"]["gpt-image-2"]["cells"]
    assert set(cells) == {"text-to-image", "image-to-image"}
    for mode in cells.values():
        assert set(mode) == set(RATIOS)
        for ratio in mode.values():
            assert set(ratio) == set(TIERS)
    one_to_one_4k = cells["text-to-image"]["1:1"]["4K"]
    assert not one_to_one_4k["allowed"] and "over the 8,294,400-pixel cap" in one_to_one_4k["reason"]
    assert cells["text-to-image"]["16:9"]["4K"] == {
        "allowed": True, "reason": "", "width": 3840, "height": 2160, "locked": False,
    }  # fmt: skip
    assert cells["text-to-image"]["auto"]["1K"]["allowed"]
    assert "choose a ratio for 2K or 4K" in cells["text-to-image"]["auto"]["2K"]["reason"]


def test_site_policy_refusals_say_so(settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_TIERS": ["1K", "2K"], "ALLOWED_QUALITIES": ["low"]}
    matrix = option_matrix()
    cell = matrix["models"]["gpt-image-2"]["cells"]["text-to-image"]["16:9"]["4K"]
    assert cell == {**cell, "allowed": False, "locked": False, "reason": "Site policy does not allow 4K."}
    assert matrix["models"]["gpt-image-2"]["qualities"] == ["low"]
    assert matrix["access"]["locked"] == {}


@pytest.mark.django_db
def test_locked_tiers_carry_the_plans_unlock_rule(django_user_model: Any) -> None:
    from django_gptimage.access.plans import assign

    user = django_user_model.objects.create_user("free")  # the default plan: free, 1K only
    matrix = option_matrix(user)
    cell = matrix["models"]["gpt-image-2"]["cells"]["text-to-image"]["16:9"]["2K"]
    assert cell["locked"] and not cell["allowed"]
    assert "Paid" in cell["reason"] and cell["reason"] == matrix["access"]["locked"]["2K"]
    assert set(matrix["access"]["locked"]) == {"2K", "4K"}
    assert matrix["access"]["tiers"] == ["1K"]
    # A cell the model refuses anyway is not "locked": unlocking would not help.
    assert not matrix["models"]["gpt-image-2"]["cells"]["text-to-image"]["1:1"]["4K"]["locked"]
    assign(user, "paid")
    paid = option_matrix(user)
    assert paid["access"]["locked"] == {}
    assert paid["models"]["gpt-image-2"]["cells"]["text-to-image"]["16:9"]["4K"]["allowed"]


def test_a_resolvers_own_rule_and_locked_qualities(settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ACCESS_RESOLVER": "tests.test_options.editor_in_chief"}
    matrix = option_matrix()
    assert matrix["access"]["locked"]["4K"] == "4K needs a paid plan; ask the editor-in-chief."
    model = matrix["models"]["gpt-image-2"]
    assert model["locked_qualities"] == {
        "high": "high needs a paid plan; ask the editor-in-chief.",
        "auto": "auto needs a paid plan; ask the editor-in-chief.",
    }


def test_one_model_or_the_allowed_ones(settings: Any) -> None:
    assert list(option_matrix()["models"]) == ["gpt-image-2"]
    assert list(option_matrix(model="gpt-image-1")["models"]) == ["gpt-image-1"]
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_MODELS": ["gpt-image-2", "gpt-image-1-mini"]}
    matrix = option_matrix()
    assert list(matrix["models"]) == ["gpt-image-2", "gpt-image-1-mini"]
    mini = matrix["models"]["gpt-image-1-mini"]["cells"]["text-to-image"]
    assert mini["3:2"]["1K"]["width"] == 1536 and not mini["16:9"]["1K"]["allowed"]
    with pytest.raises(ValueError, match="Unknown model 'dall-e-2'"):
        option_matrix(model="dall-e-2")


def test_estimate_matches_the_records_estimate_and_names_the_currency() -> None:
    result = estimate(ratio="16:9", tier="4K", quality="high", n=2, prompt="a" * 400)
    expected = estimate_cost(
        model="gpt-image-2", quality="high", width=3840, height=2160, n=2, prompt_chars=400
    )
    assert result.amount == expected
    assert (result.width, result.height, result.currency) == (3840, 2160, "USD")
    assert result.as_dict()["display"] == f"{expected.quantize(Decimal('0.01'))} USD"


def test_estimate_uses_price_overrides(settings: Any) -> None:
    base = estimate(ratio="1:1", tier="1K", quality="low").amount
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PRICES": {"gpt-image-2": {"image_output": "60.00"}}}
    assert estimate(ratio="1:1", tier="1K", quality="low").amount > base
    assert option_matrix()["models"]["gpt-image-2"]["prices"]["image_output"] == "60.00"


def test_estimate_of_an_impossible_size_is_refused() -> None:
    with pytest.raises(GenerationRefused) as refused:
        estimate(ratio="1:1", tier="4K")
    assert "over the 8,294,400-pixel cap" in refused.value.as_dict()["tier"][0]


@pytest.mark.parametrize(
    ("amount", "text"),
    [(Decimal("0.008192"), "0.0082 USD"), (Decimal("0.25"), "0.25 USD"), (Decimal("1.23456"), "1.23 USD")],
)
def test_format_cost(amount: Decimal, text: str) -> None:
    assert format_cost(amount) == text
