"""Presets from ``GPTIMAGE["PRESETS"]`` (over the shipped ones) and from the PromptPreset table.

A database row wins over a code preset of the same name, so editors change templates without a
deploy. :func:`preset_errors` is the one check used by the admin form, the system checks and
:func:`~django_gptimage.service.generate_for`.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.presets import (
    DEFAULT_PRESETS,
    Preset,
    PresetOutput,
    preset_from_mapping,
    preset_problems,
)
from django_gptimage.domain.validation import Problem
from django_gptimage.prompts import template_problems

__all__ = [
    "UnknownPreset",
    "code_presets",
    "get_preset",
    "list_presets",
    "preset_errors",
    "preset_from_row",
    "preset_models",
]


class UnknownPreset(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.message = f"Unknown preset {name!r}; choose one of {', '.join(known) or 'none (none defined)'}."
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def code_presets() -> dict[str, Preset]:
    """The shipped presets overlaid with ``GPTIMAGE["PRESETS"]`` (``None`` removes one).

    Raises ValueError for a malformed entry (system check E020 reports it at startup).
    """
    presets = dict(DEFAULT_PRESETS)
    configured = gptimage_settings.PRESETS or {}
    if not isinstance(configured, dict):
        raise ValueError(
            f"GPTIMAGE['PRESETS'] must be a dict of name -> preset, not {type(configured).__name__}"
        )
    for name, data in configured.items():
        if data is None:
            presets.pop(name, None)
        else:
            presets[name] = preset_from_mapping(name, data)
    return presets


def preset_from_row(row: Any) -> Preset:  # a PresetRecord (models import this module)
    """A PromptPreset row (with its outputs) as a Preset."""
    outputs = tuple(
        PresetOutput(
            key=o.key,
            prompt_template=o.prompt_template,
            model=o.model,
            mode=o.mode,
            ratio=o.ratio,
            tier=o.tier,
            quality=o.quality,
            output_format=o.output_format,
            background=o.background,
            n=o.n,
            source_field=o.source_field,
            field=o.field,
        )  # fmt: skip
        for o in row.outputs.all()
    )
    labels = tuple(label.strip() for label in row.for_models.split(",") if label.strip())
    return Preset(row.name, row.label or row.name, outputs, "database", row.description, labels)


def get_preset(name: str) -> Preset:
    """The preset called ``name``: the database row if there is one, else the code preset."""
    from django_gptimage.models import PromptPreset

    row = PromptPreset.objects.filter(name=name).prefetch_related("outputs").first()
    if row is not None:
        return preset_from_row(row)
    presets = code_presets()
    if name not in presets:
        known = sorted(set(presets) | set(PromptPreset.objects.values_list("name", flat=True)))
        raise UnknownPreset(name, known)
    return presets[name]


def list_presets() -> list[Preset]:
    """Every preset by name, database rows replacing code presets of the same name."""
    from django_gptimage.models import PromptPreset

    presets = code_presets()
    for row in PromptPreset.objects.prefetch_related("outputs"):
        presets[row.name] = preset_from_row(row)
    return [presets[name] for name in sorted(presets)]


def preset_models(preset: Preset) -> tuple[list[type[models.Model]], list[str]]:
    """The models a preset names, and the labels that name no installed model."""
    found, unknown = [], []
    for label in preset.models:
        try:
            found.append(apps.get_model(label))
        except (LookupError, ValueError):
            unknown.append(label)
    return found, unknown


def _field_problem(model: type[models.Model], name: str, what: str) -> str:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        field = None
    if isinstance(field, models.FileField):
        return ""
    names = [f.name for f in model._meta.get_fields() if isinstance(f, models.FileField)]
    return f"{model._meta.label} has no image field {name!r} ({what}); its image fields: {', '.join(names) or 'none'}."


def preset_errors(
    preset: Preset, model: type[models.Model] | None = None, *, user_tiers: tuple[str, ...] | None = None
) -> list[Problem]:
    """Everything that makes ``preset`` unusable: the size matrix and site policy (with the
    matrix's own reason), its prompt templates, and its fields on ``model`` or the models it
    names. Fields are ``"<output key>.<field>"`` (or ``"name"``, ``"outputs"``, ``"models"``)."""
    policy = gptimage_settings.policy.narrowed(tiers=user_tiers)
    problems = preset_problems(preset, policy, default_model=gptimage_settings.MODEL)
    targets, unknown = preset_models(preset)
    for label in unknown:
        problems.append(
            Problem("models", f"{label!r} is not an installed model (write app_label.ModelName).")
        )
    if model is not None:
        targets = [model]
    for output in preset.outputs:
        messages: list[str] = []
        candidates: list[type[models.Model] | None] = [*targets] or [None]
        for target in candidates:
            messages += [m for m in template_problems(output.prompt_template, target) if m not in messages]
        problems += [Problem(f"{output.key}.prompt_template", m) for m in messages]
        for target in targets:
            for name, what in ((output.source_field, "source_field"), (output.field, "field")):
                message = _field_problem(target, name, what) if name else ""
                if message:
                    problems.append(Problem(f"{output.key}.{what}", message))
    return problems
