"""Presets: shipped defaults, settings and database presets, the matrix check, generate_for(preset=...)."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.base import ContentFile
from django.test import override_settings
from PIL import Image

from django_gptimage.checks import check_settings
from django_gptimage.domain.capabilities import get_capabilities
from django_gptimage.domain.policy import Policy
from django_gptimage.domain.presets import (
    DEFAULT_PRESETS,
    Preset,
    PresetOutput,
    preset_from_mapping,
    preset_problems,
)
from django_gptimage.domain.sizes import resolve_size
from django_gptimage.models import ImageGeneration, PromptPreset
from django_gptimage.models import PresetOutput as PresetOutputRow
from django_gptimage.presets import UnknownPreset, get_preset, list_presets, preset_errors
from django_gptimage.service import GenerationRefused, generate_for
from tests.testapp.models import Product

CAPS = get_capabilities("gpt-image-2")


def one(key: str = "x", **params) -> Preset:
    return Preset("p", "P", (PresetOutput(key=key, prompt_template="An image of {{ object }}", **params),))


def png(colour=(10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 80), colour).save(out, "PNG")
    return out.getvalue()


# -- pure rules -----------------------------------------------------------------------------------


def test_shipped_defaults():
    sizes = {
        name: [(o.key, o.ratio, o.tier, o.mode) for o in p.outputs] for name, p in DEFAULT_PRESETS.items()
    }
    assert sizes == {
        "cover": [("cover", "16:9", "2K", "text-to-image")],
        "poster": [("poster", "2:3", "2K", "text-to-image")],
        "square": [("square", "1:1", "1K", "text-to-image")],
        "product": [
            ("main_visual", "1:1", "2K", "text-to-image"),
            ("ad_creative", "16:9", "2K", "text-to-image"),
            ("detail_image", "3:4", "2K", "text-to-image"),
        ],
    }
    for preset in DEFAULT_PRESETS.values():
        assert preset_problems(preset, Policy()) == []
        assert preset_errors(preset) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ratio": "1:1", "tier": "4K"}, "x.tier"),
        ({"ratio": "auto", "tier": "2K"}, "x.ratio"),
        ({"ratio": "21:9", "tier": "1K", "mode": "image-to-image", "source_field": "photo"}, None),
    ],
)
def test_impossible_sizes_carry_the_matrixs_own_reason(params, field):
    problems = preset_problems(one(**params), Policy())
    choice = resolve_size(params["ratio"], params["tier"], params.get("mode", "text-to-image"), CAPS)
    if field is None:
        assert choice.allowed and problems == []
    else:
        assert not choice.allowed
        assert [(p.field, p.message) for p in problems] == [(field, choice.reason)]


def test_policy_and_structure_problems():
    problems = preset_problems(one(tier="2K"), Policy(tiers=("1K",)))
    assert [(p.field, p.code) for p in problems] == [("x.tier", "access_denied")]
    assert "2K is not unlocked here; choose one of 1K" in problems[0].message

    problems = preset_problems(one(mode="image-to-image"), Policy())
    assert [p.field for p in problems] == ["x.source_field"]
    problems = preset_problems(one(source_field="photo"), Policy())
    assert [p.field for p in problems] == ["x.source_field"]
    twice = Preset("p", "P", one().outputs * 2)
    assert [p.field for p in preset_problems(twice, Policy())] == ["x.key"]
    assert [p.field for p in preset_problems(Preset("bad name", "B", ()), Policy())] == ["name", "outputs"]


def test_preset_from_mapping():
    short = preset_from_mapping(
        "poster", {"label": "Poster", "ratio": "2:3", "prompt_template": "P {{ object }}"}
    )
    assert short.outputs == (PresetOutput(key="poster", prompt_template="P {{ object }}", ratio="2:3"),)
    assert short.label == "Poster" and short.origin == "settings"
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        preset_from_mapping("x", {"outputs": [{"key": "a", "prompt_template": "t", "colour": "red"}]})
    with pytest.raises(ValueError, match="needs a 'key' and a 'prompt_template'"):
        preset_from_mapping("x", {"outputs": [{"key": "a"}]})
    with pytest.raises(ValueError, match="must be a dict"):
        preset_from_mapping("x", "16:9")


# -- settings, database, checks -------------------------------------------------------------------------


@pytest.mark.django_db
def test_settings_override_and_remove_and_the_database_row_wins(settings):
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "PRESETS": {
            "square": None,
            "cover": {"ratio": "21:9", "tier": "2K", "prompt_template": "Wide {{ object }}"},
        },
    }
    names = [p.name for p in list_presets()]
    assert names == ["cover", "poster", "product"]
    assert get_preset("cover").outputs[0].ratio == "21:9"
    with pytest.raises(UnknownPreset, match="Unknown preset 'square'; choose one of cover, poster, product"):
        get_preset("square")

    row = PromptPreset.objects.create(name="cover", label="Our cover")
    PresetOutputRow.objects.create(
        preset=row, key="cover", ratio="4:3", tier="1K", prompt_template="DB {{ object }}"
    )
    assert get_preset("cover").origin == "database"
    assert get_preset("cover").outputs[0].ratio == "4:3"
    assert {p.name: p.origin for p in list_presets()}["cover"] == "database"


def test_checks_e012_and_e013():
    base = {"PROVIDER": "offline", "SPOOL_DIR": "/var/lib/gptimage-test-spool-not-created"}
    with override_settings(
        GPTIMAGE={**base, "PRESETS": {"big": {"ratio": "1:1", "tier": "4K", "prompt_template": "x"}}}
    ):
        [message] = check_settings()
    assert message.id == "django_gptimage.E021" and "Preset 'big', big.tier" in message.msg
    assert resolve_size("1:1", "4K", "text-to-image", CAPS).reason in message.msg

    bad_template = {"t": {"prompt_template": "{% load static %}{{ object }}"}}
    with override_settings(GPTIMAGE={**base, "PRESETS": bad_template}):
        [message] = check_settings()
    assert message.id == "django_gptimage.E020" and "{% load %}" in message.msg

    field = {"t": {"models": ["testapp.Product"], "prompt_template": "{{ object.colour }}"}}
    with override_settings(GPTIMAGE={**base, "PRESETS": field}):
        [message] = check_settings()
    assert message.id == "django_gptimage.E020" and "testapp.Product has no field 'colour'" in message.msg

    with override_settings(GPTIMAGE={**base, "PRESETS": {"t": {"outputs": "16:9"}}}):
        [message] = check_settings()
    assert message.id == "django_gptimage.E020" and "malformed" in message.msg

    # Shipped presets a narrow policy refuses are not errors (refused when used, with the reason).
    with override_settings(GPTIMAGE={**base, "ALLOWED_TIERS": ["1K"]}):
        assert check_settings() == []


# -- generate_for(preset=...) --------------------------------------------------------------------------

PRODUCT_SET = {
    "product": {
        "models": ["testapp.Product"],
        "outputs": [
            {"key": "main", "field": "main_visual", "ratio": "1:1", "tier": "2K", "mode": "image-to-image",
             "source_field": "photo", "prompt_template": "{{ object.name }} on white, studio light"},
            {"key": "ad", "field": "ad_creative", "ratio": "16:9", "tier": "2K", "mode": "image-to-image",
             "source_field": "photo", "prompt_template": "Advert for {{ object.name }}"},
            {"key": "detail", "field": "detail_image", "ratio": "3:4", "tier": "2K",
             "prompt_template": "Detail of {{ object.name }}"},
        ],
    }
}  # fmt: skip


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.mark.django_db(transaction=True)
def test_product_preset_one_generation_per_output_image_to_image_from_the_photo(
    gptimage_openai, settings, media
):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PRESETS": PRODUCT_SET}
    photo = png()
    product = Product.objects.create(name="Desk lamp")
    product.photo.save("lamp.png", ContentFile(photo))

    generations = generate_for(product, preset="product", quality="low")

    assert [(g.preset_output, g.target_field, g.mode, g.ratio, g.tier) for g in generations] == [
        ("main", "main_visual", "image-to-image", "1:1", "2K"),
        ("ad", "ad_creative", "image-to-image", "16:9", "2K"),
        ("detail", "detail_image", "text-to-image", "3:4", "2K"),
    ]
    assert all(g.status == "succeeded" and g.preset == "product" for g in generations)
    digest = hashlib.sha256(photo).hexdigest()
    assert [[i.sha256 for i in g.inputs.all()] for g in generations] == [[digest], [digest], []]
    assert generations[0].prompt == "Desk lamp on white, studio light"
    assert len(gptimage_openai.requests) == 3
    assert {r.path for r in gptimage_openai.requests} == {"/v1/images/edits", "/v1/images/generations"}


@pytest.mark.django_db(transaction=True)
def test_preset_problems_anywhere_send_nothing(gptimage_openai, settings, media):
    broken = {
        "product": {
            "outputs": [
                {**PRODUCT_SET["product"]["outputs"][0]},
                {**PRODUCT_SET["product"]["outputs"][1], "ratio": "auto"},
            ]
        }
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PRESETS": broken}
    product = Product.objects.create(name="Desk lamp")  # no photo yet

    with pytest.raises(GenerationRefused) as refused:
        generate_for(product, preset="product", quality="low")

    problems = refused.value.as_dict()
    assert set(problems) == {"main.source_field", "ad.source_field", "ad.ratio"}  # every problem at once
    assert "There is no photo yet" in problems["main.source_field"][0]
    assert gptimage_openai.requests == [] and ImageGeneration.objects.count() == 0

    product.photo.save("lamp.png", ContentFile(png()))
    with pytest.raises(GenerationRefused) as refused:
        generate_for(product, preset="product", quality="low", tier="2K")
    assert set(refused.value.as_dict()) == {"ad.ratio"}
    assert "auto" in refused.value.as_dict()["ad.ratio"][0]
    assert gptimage_openai.requests == [] and ImageGeneration.objects.count() == 0


@pytest.mark.django_db
def test_preset_for_another_model_and_unknown_preset(settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PRESETS": PRODUCT_SET}
    from tests.testapp.models import Article

    article = Article.objects.create(title="T")
    with pytest.raises(GenerationRefused) as refused:
        generate_for(article, "cover", preset="product")
    assert refused.value.as_dict() == {
        "preset": ["The preset 'product' is for testapp.Product, not testapp.Article."]
    }
    with pytest.raises(GenerationRefused) as refused:
        generate_for(article, "cover", preset="nope")
    assert "Unknown preset 'nope'" in refused.value.as_dict()["preset"][0]
    with pytest.raises(TypeError, match="unknown arguments \\['colour'\\]"):
        generate_for(article, "cover", preset="cover", colour="red")
