from __future__ import annotations

import pytest

from django_gptimage.domain.capabilities import FORMATS, MODES, get_capabilities
from django_gptimage.domain.matrix import matrix
from django_gptimage.domain.policy import Policy
from django_gptimage.domain.sizes import RATIOS, TIERS

CAPS = get_capabilities("gpt-image-2")


def test_empty_policy_allows_whatever_the_model_allows():
    policy = Policy()
    assert policy.allows_model("gpt-image-2")
    assert policy.allows_model("anything")
    assert policy.effective_modes(CAPS) == MODES
    assert policy.effective_ratios() == RATIOS
    assert policy.effective_tiers() == TIERS
    assert policy.effective_qualities(CAPS) == CAPS.qualities == ("low", "medium", "high", "auto")
    assert policy.effective_formats(CAPS) == FORMATS
    assert policy.effective_max_n(CAPS) == 10
    assert policy.unknown_values() == {}


def test_policy_narrows_in_the_model_order():
    policy = Policy(tiers=("2K", "1K"), qualities=("high", "low"), formats=("webp",), ratios=("16:9", "1:1"))
    assert policy.effective_tiers() == ("1K", "2K")
    assert policy.effective_qualities(CAPS) == ("low", "high")
    assert policy.effective_formats(CAPS) == ("webp",)
    assert policy.effective_ratios() == ("1:1", "16:9")


def test_policy_never_widens():
    policy = Policy(tiers=("4K", "8K"), qualities=("ultra",), formats=("gif", "png"), modes=("video",))
    assert policy.effective_tiers() == ("4K",)
    assert policy.effective_qualities(CAPS) == ()
    assert policy.effective_formats(CAPS) == ("png",)
    assert policy.effective_modes(CAPS) == ()
    assert Policy(max_n=50).effective_max_n(CAPS) == 10
    assert Policy(max_n=-3).effective_max_n(CAPS) == 0


def test_a_policy_listing_4k_still_refuses_square_4k():
    rows = {(r.ratio, r.tier, r.mode): r for r in matrix("gpt-image-2", Policy(tiers=("4K",)))}
    assert not rows[("1:1", "4K", "text-to-image")].allowed
    assert "pixel" in rows[("1:1", "4K", "text-to-image")].reason
    assert rows[("16:9", "4K", "text-to-image")].allowed
    assert not rows[("16:9", "2K", "text-to-image")].allowed
    assert rows[("16:9", "2K", "text-to-image")].reason == "Site policy does not allow 2K."


def test_matrix_never_allows_more_under_any_policy():
    own = {(r.ratio, r.tier, r.mode) for r in matrix("gpt-image-2") if r.allowed}
    for policy in (
        Policy(tiers=("4K",)),
        Policy(ratios=("1:1", "21:9")),
        Policy(modes=("image-to-image",)),
        Policy(models=("gpt-image-1",)),
    ):
        narrowed = {(r.ratio, r.tier, r.mode) for r in matrix("gpt-image-2", policy) if r.allowed}
        assert narrowed <= own
        assert narrowed != own


def test_matrix_reports_policy_refusals():
    rows = matrix("gpt-image-2", Policy(models=("gpt-image-1",)))
    assert not any(r.allowed for r in rows)
    assert {r.reason for r in rows if r.width} == {"Site policy does not allow gpt-image-2."} | {
        r.reason for r in matrix("gpt-image-2") if not r.allowed and r.width
    }
    rows = matrix("gpt-image-2", Policy(modes=("text-to-image",)))
    assert all(not r.allowed for r in rows if r.mode == "image-to-image")


def test_matrix_of_unknown_model():
    with pytest.raises(ValueError, match="dall-e-3"):
        matrix("dall-e-3")


def test_narrowed_intersects_and_never_widens():
    base = Policy(tiers=("1K", "2K"), qualities=None)
    narrowed = base.narrowed(tiers=("2K", "4K"), qualities=("low",), formats=None)
    assert narrowed.tiers == ("2K",)
    assert narrowed.qualities == ("low",)
    assert narrowed.formats is None
    assert base.tiers == ("1K", "2K")  # frozen: a copy
    assert Policy().narrowed(tiers=["1K"]).tiers == ("1K",)


def test_allows_model_is_exact():
    policy = Policy(models=("gpt-image-2",))
    assert policy.allows_model("gpt-image-2")
    assert not policy.allows_model("gpt-image-2-2026-04-21")
    assert not policy.allows_model("gpt-image-1")


def test_unknown_values_lists_typos_per_field():
    policy = Policy(
        tiers=("4k", "2K"), ratios=("16x9",), qualities=("hd",), formats=("jpg",), modes=("edit",)
    )
    assert policy.unknown_values() == {
        "tiers": ["4k"],
        "ratios": ["16x9"],
        "qualities": ["hd"],
        "formats": ["jpg"],
        "modes": ["edit"],
    }
