"""The preset admin: outputs inline, refused with the matrix's own reason, overrides shown."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from django_gptimage.domain.capabilities import get_capabilities
from django_gptimage.domain.sizes import resolve_size
from django_gptimage.models import PromptPreset
from django_gptimage.presets import get_preset

pytestmark = pytest.mark.django_db

ADD = "admin:django_gptimage_promptpreset_add"
CHANGELIST = "admin:django_gptimage_promptpreset_changelist"


def output(**overrides: Any) -> dict[str, Any]:
    return {
        "key": "main", "position": "0", "field": "", "prompt_template": "Cover for {{ object.title }}",
        "mode": "text-to-image", "source_field": "", "model": "", "ratio": "16:9", "tier": "2K",
        "quality": "auto", "output_format": "png", "background": "auto", "n": "1", **overrides,
    }  # fmt: skip


def post(client: Any, *outputs: dict[str, Any], **preset: Any) -> Any:
    data = {
        "name": "event-cover", "label": "Event cover", "description": "", "for_models": "testapp.Article",
        "outputs-TOTAL_FORMS": str(len(outputs)), "outputs-INITIAL_FORMS": "0",
        "outputs-MIN_NUM_FORMS": "1", "outputs-MAX_NUM_FORMS": "1000", **preset,
    }  # fmt: skip
    for i, values in enumerate(outputs):
        data.update({f"outputs-{i}-{k}": v for k, v in values.items()})
    return client.post(reverse(ADD), data)


def errors(response: Any) -> list[str]:
    found = []
    for formset in response.context["inline_admin_formsets"]:
        for form in formset.formset.forms:
            found += [m for messages in form.errors.values() for m in messages]
        found += list(formset.formset.non_form_errors())
    found += [m for messages in response.context["adminform"].form.errors.values() for m in messages]
    return found


def test_a_valid_preset_is_saved_and_used(admin_client):
    response = post(admin_client, output(), output(key="square", ratio="1:1", tier="1K"))
    assert response.status_code == 302, errors(response)
    preset = get_preset("event-cover")
    assert preset.origin == "database" and preset.models == ("testapp.Article",)
    assert [(o.key, o.ratio, o.tier) for o in preset.outputs] == [
        ("main", "16:9", "2K"),
        ("square", "1:1", "1K"),
    ]


@pytest.mark.parametrize(
    ("ratio", "tier"),
    [("1:1", "4K"), ("auto", "2K")],
)
def test_an_impossible_combination_cannot_be_saved_with_the_matrixs_reason(admin_client, ratio, tier):
    response = post(admin_client, output(ratio=ratio, tier=tier))
    assert response.status_code == 200
    reason = resolve_size(ratio, tier, "text-to-image", get_capabilities("gpt-image-2")).reason
    assert reason in errors(response)
    assert not PromptPreset.objects.exists()


def test_policy_templates_fields_and_models_are_checked(admin_client, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_TIERS": ["1K"]}
    response = post(
        admin_client,
        output(tier="2K", prompt_template="{% load static %}{{ object.title }}"),
        output(
            key="img", ratio="1:1", tier="1K", mode="image-to-image", prompt_template="{{ object.headline }}"
        ),
        output(key="img", ratio="1:1", tier="1K", source_field="venue", mode="image-to-image"),
    )
    found = errors(response)
    assert any("2K is not unlocked here" in m for m in found)
    assert any("{% load %} (line 1) is not available" in m for m in found)
    assert any("testapp.Article has no field 'headline'" in m for m in found)
    assert any("Image-to-image needs the object's image field" in m for m in found)
    assert any("testapp.Article has no image field 'venue'" in m for m in found)
    assert not PromptPreset.objects.exists()

    square = output(ratio="1:1", tier="1K")
    response = post(admin_client, square, square)
    assert any("Please correct the duplicate data for key" in m for m in errors(response))
    response = post(admin_client, {**square, "DELETE": "on"})
    assert "A preset needs at least one output." in errors(response)

    response = post(admin_client, output(), for_models="testapp.Nope")
    assert any("Not installed models: 'testapp.Nope'" in m for m in errors(response))


def test_the_admin_shows_when_a_row_overrides_a_code_preset(admin_client, settings):
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "PRESETS": {"event-cover": {"prompt_template": "P {{ object }}"}},
    }
    assert post(admin_client, output(), name="cover").status_code == 302
    assert post(admin_client, output(), name="event-cover").status_code == 302
    assert post(admin_client, output(), name="only-here").status_code == 302
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    overrides = {
        name: column.strip()
        for name, column in re.findall(
            r'<th class="field-name"><a [^>]*>([\w-]+)</a></th>.*?<td class="field-overrides">(.*?)</td>',
            html,
            re.S,
        )
    }
    assert overrides == {"cover": "shipped", "event-cover": "settings", "only-here": "-"}

    row = PromptPreset.objects.get(name="cover")
    page = admin_client.get(
        reverse("admin:django_gptimage_promptpreset_change", args=[row.pk])
    ).content.decode()
    assert "This row replaces the shipped preset &#x27;cover&#x27;" in page
    assert "Editorial cover image for" in page
