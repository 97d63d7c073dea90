"""The model catalog: exact ids, the assumed newer families, prices, and site entries parsed."""

from __future__ import annotations

import pytest

from django_gptimage.domain.capabilities import (
    BUILTIN_CATALOG,
    CONTRACT_QUALITIES,
    KNOWN_MODELS,
    QUALITIES,
    catalog,
    get_capabilities,
    known_models,
    model_family,
)
from django_gptimage.domain.model_entries import build_catalog
from django_gptimage.domain.pricing import DEFAULT_PRICES, OUTPUT_TOKENS_1024, price_source, prices_for
from django_gptimage.domain.sizes import resolve_size, size_problems
from django_gptimage.domain.validation import GenerationRequest, validate

# The ids OpenAI's contract lists for the Images API (minus dall-e and the chatgpt-image-latest alias).
CONTRACT_IDS = ["gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "gpt-image-2-2026-04-21"]
NEWER_IDS = [f"gpt-image-{v}{s}" for v in ("2.5", "2.6") for s in ("", "-flare", "-sunburst")]
INVENTED_IDS = [
    "gpt-image-3",
    "gpt-image-2.9",
    "gpt-image-2.9-mini-2031-01-01",
    "gpt-image-2-flare-mini",
    "gpt-image-2-mini",
    "gpt-image-2.5-mini",
    "gpt-image-2.6-flare-2030-01-01",
    "gpt-image-1.5-mini",
    "gpt-image-2-2026-04-22",
    "gpt-image-2.5-FLARE",
    " gpt-image-2",
    "gpt-image-2 ",
    "chatgpt-image-latest",
    "dall-e-3",
    "",
]


@pytest.mark.parametrize("model", CONTRACT_IDS + NEWER_IDS)
def test_real_ids_are_known(model):
    caps = get_capabilities(model)
    assert caps is not None and caps.model == model
    assert model in KNOWN_MODELS and model in known_models()


@pytest.mark.parametrize("model", INVENTED_IDS)
def test_invented_ids_are_refused(model):
    assert get_capabilities(model) is None
    assert model_family(model) is None
    result = validate(GenerationRequest(prompt="a fox", model=model))
    assert [p.field for p in result.problems] == ["model"]


def test_the_catalog_is_exactly_the_listed_ids():
    assert set(BUILTIN_CATALOG) == set(CONTRACT_IDS + NEWER_IDS)
    assert tuple(BUILTIN_CATALOG) == KNOWN_MODELS
    assert dict(catalog()) == dict(BUILTIN_CATALOG)  # the test settings add no MODELS


@pytest.mark.parametrize("model", CONTRACT_IDS)
def test_contract_models_keep_the_contract_qualities(model):
    caps = get_capabilities(model)
    assert caps.qualities == CONTRACT_QUALITIES == ("low", "medium", "high", "auto")
    assert not caps.assumed


@pytest.mark.parametrize("model", NEWER_IDS)
def test_newer_families_are_assumed_gpt_image_2_with_xhigh_and_max(model):
    caps = get_capabilities(model)
    gpt2 = get_capabilities("gpt-image-2")
    assert caps.assumed and caps.family == "gpt-image-2"
    assert set(caps.qualities) == {"low", "medium", "high", "xhigh", "max", "auto"}
    for name in ("fixed_sizes", "edge_multiple", "max_edge", "min_pixels", "max_pixels", "max_ratio",
                 "formats", "backgrounds", "transparent_formats", "max_n", "max_input_images",
                 "max_input_bytes", "supports_mask", "input_fidelity", "max_partial_images"):  # fmt: skip
        assert getattr(caps, name) == getattr(gpt2, name), name
    assert resolve_size("16:9", "4K", "text-to-image", caps).size == "3840x2160"
    assert validate(GenerationRequest(prompt="a fox", model=model, quality="max")).ok
    assert validate(GenerationRequest(prompt="a fox", model=model, quality="xhigh")).ok


def test_xhigh_and_max_are_refused_for_the_contract_models():
    for model in CONTRACT_IDS:
        for quality in ("xhigh", "max"):
            result = validate(GenerationRequest(prompt="a fox", model=model, quality=quality))
            assert [p.field for p in result.problems] == ["quality"], (model, quality)


def test_only_gpt_image_1_and_1_5_take_input_fidelity():
    assert [m for m, c in BUILTIN_CATALOG.items() if c.input_fidelity] == ["gpt-image-1.5", "gpt-image-1"]


def test_snapshot_and_fixed_sizes():
    snapshot = get_capabilities("gpt-image-2-2026-04-21")
    assert snapshot.snapshot_of == "gpt-image-2" and snapshot.flexible_sizes
    for model in ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"):
        caps = get_capabilities(model)
        assert caps.fixed_sizes == ((1024, 1024), (1536, 1024), (1024, 1536))
        assert size_problems(1536, 864, caps)


@pytest.mark.parametrize("model", list(BUILTIN_CATALOG))
def test_every_catalog_model_has_a_published_price(model):
    source = price_source(model)
    assert source in DEFAULT_PRICES, model
    assert prices_for(model) == DEFAULT_PRICES[source]
    assert source == BUILTIN_CATALOG[model].prices_as


def test_newer_families_and_snapshots_are_priced_like_gpt_image_2():
    for model in [*NEWER_IDS, "gpt-image-2-2026-04-21"]:
        assert price_source(model) == "gpt-image-2"
    # An exact entry in GPTIMAGE["PRICES"] wins over prices_as.
    assert (
        price_source("gpt-image-2.5-flare", {"gpt-image-2.5-flare": {"image_output": 50}})
        == "gpt-image-2.5-flare"
    )
    # Outside the catalog: the longest priced prefix, else nothing (the gpt-image-2 fallback).
    assert price_source("gpt-image-1-mini-2025-10-06") == "gpt-image-1-mini"
    assert price_source("my-finetune") is None
    assert prices_for("my-finetune") == DEFAULT_PRICES["gpt-image-2"]


def test_every_quality_has_an_output_token_estimate():
    assert set(QUALITIES) - {"auto"} == set(OUTPUT_TOKENS_1024)
    assert OUTPUT_TOKENS_1024["high"] < OUTPUT_TOKENS_1024["xhigh"] < OUTPUT_TOKENS_1024["max"]


# GPTIMAGE["MODELS"], parsed ------------------------------------------------------------------------


def test_site_entries_add_and_correct_models():
    merged, problems = build_catalog(
        {
            "gpt-image-2.7": {"like": "gpt-image-2.6", "qualities": ["low", "high", "auto"]},
            "gpt-image-2.7-mini": {"like": "gpt-image-2.7", "max_n": 4},  # like another entry
            "gpt-image-1-mini-2025-10-06": {"like": "gpt-image-1-mini"},
            "gpt-image-2.5": {"backgrounds": ["auto", "opaque"], "sizes": ["1024x1024", "2048x2048"]},
            "custom": {
                "like": "gpt-image-2",
                "max_pixels": 4_194_304,
                "mask": False,
                "prices_as": "gpt-image-1",
            },
        },
        BUILTIN_CATALOG,
    )
    assert problems == []
    new = merged["gpt-image-2.7"]
    assert (new.model, new.source, new.qualities, new.prices_as) == (
        "gpt-image-2.7", "settings", ("low", "high", "auto"), "gpt-image-2"
    )  # fmt: skip
    assert merged["gpt-image-2.7-mini"].qualities == ("low", "high", "auto")
    assert merged["gpt-image-2.7-mini"].max_n == 4
    assert (
        merged["gpt-image-1-mini-2025-10-06"].fixed_sizes == BUILTIN_CATALOG["gpt-image-1-mini"].fixed_sizes
    )
    corrected = merged["gpt-image-2.5"]
    assert corrected.backgrounds == ("auto", "opaque") and corrected.fixed_sizes == (
        (1024, 1024),
        (2048, 2048),
    )
    assert corrected.qualities == BUILTIN_CATALOG["gpt-image-2.5"].qualities  # untouched keys stay
    assert merged["custom"].max_pixels == 4_194_304 and not merged["custom"].supports_mask
    assert BUILTIN_CATALOG["gpt-image-2.5"].backgrounds == ("auto", "opaque", "transparent")  # not mutated


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["gpt-image-2.7"], "must be a dict of model id"),
        ({"gpt-image-2.7": {}}, "needs 'like'"),
        ({"gpt-image-2.7": "gpt-image-2"}, "must be a dict, not str"),
        ({"gpt-image-2.7": {"like": "gpt-image-9"}}, "'gpt-image-9' is not a known model id"),
        ({"gpt-image-2.7": {"like": 2}}, "'like'] must be a model id"),
        ({"a b": {"like": "gpt-image-2"}}, "is not a model id"),
        ({"x": {"like": "y"}, "y": {"like": "x"}}, "in a circle: x, y"),
        ({"gpt-image-2": {"qualities": "high"}}, "'qualities'] must be a non-empty list"),
        ({"gpt-image-2": {"qualities": ["ultra"]}}, "unknown: ultra"),
        ({"gpt-image-2": {"formats": []}}, "'formats'] must be a non-empty list"),
        ({"gpt-image-2": {"max_n": 20}}, "'max_n'] must be an integer from 1 to 10"),
        ({"gpt-image-2": {"max_n": True}}, "'max_n'] must be an integer"),
        ({"gpt-image-2": {"partial_images": 4}}, "from 0 to 3"),
        ({"gpt-image-2": {"sizes": ["big"]}}, "not a size: 'big'"),
        ({"gpt-image-2": {"sizes": "any"}}, '"flexible" or a non-empty list'),
        ({"gpt-image-2": {"max_ratio": 0.5}}, "at least 1"),
        ({"gpt-image-2": {"mask": "yes"}}, "'mask'] must be true or false"),
        ({"gpt-image-2": {"colour": True}}, "unknown key 'colour'"),
        ({"gpt-image-2": {"min_pixels": 9_000_000}}, "min_pixels (9,000,000) is above max_pixels"),
        ({"gpt-image-2": {"formats": ["jpeg"]}}, "transparent_formats (png, webp) must be among its formats"),
        ({"gpt-image-2": {"prices_as": ""}}, "'prices_as'] must be a model id"),
    ],
)
def test_malformed_site_entries_are_problems(raw, expected):
    merged, problems = build_catalog(raw, BUILTIN_CATALOG)
    assert any(expected in p for p in problems), problems
    assert "gpt-image-2.7" not in merged


def test_all_problems_are_reported_at_once():
    _, problems = build_catalog(
        {"a": {}, "gpt-image-2": {"max_n": 0, "qualities": ["ultra"]}, "b": {"like": "nope"}}, BUILTIN_CATALOG
    )
    assert len(problems) == 4, problems
