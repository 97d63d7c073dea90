"""Presets: named sets of outputs (size, format, prompt template), and what makes one impossible.

Pure: presets come in as plain mappings (``GPTIMAGE["PRESETS"]`` or a database row turned into
one) and are checked against the same size matrix and policy as any request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from .policy import Policy
from .validation import GenerationRequest, InputImage, Problem, validate

ORIGINS = ("settings", "database")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


@dataclass(frozen=True)
class PresetOutput:
    key: str
    prompt_template: str
    model: str = ""  # empty: GPTIMAGE["MODEL"]
    mode: str = "text-to-image"
    ratio: str = "1:1"
    tier: str = "1K"
    quality: str = "auto"
    output_format: str = "png"
    background: str = "auto"
    n: int = 1
    source_field: str = ""  # image-to-image: the object's image field to start from
    field: str = ""  # the image field this output is for; empty: the field generate_for is given


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    outputs: tuple[PresetOutput, ...]
    origin: Literal["settings", "database"] = "settings"
    description: str = ""
    models: tuple[str, ...] = ()  # "app_label.Model" labels it is meant for; empty: any model

    def output(self, key: str) -> PresetOutput:
        for output in self.outputs:
            if output.key == key:
                return output
        raise KeyError(key)


_OUTPUT_KEYS = {f.name for f in fields(PresetOutput)}
_PRESET_KEYS = {"label", "description", "models", "outputs"}


def _output(key: str, prompt_template: str, **params: Any) -> PresetOutput:
    return PresetOutput(key=key, prompt_template=prompt_template, **params)


DEFAULT_PRESETS: dict[str, Preset] = {
    "cover": Preset(
        "cover",
        "Cover (16:9, 2K)",
        (
            _output(
                "cover",
                "Editorial cover image for {{ object }}. Photographic, strong composition, no text or lettering.",
                ratio="16:9",
                tier="2K",
            ),
        ),
    ),
    "poster": Preset(
        "poster",
        "Poster (2:3, 2K)",
        (
            _output(
                "poster",
                "Poster artwork for {{ object }}. Bold composition with room for a title, no lettering.",
                ratio="2:3",
                tier="2K",
            ),
        ),
    ),
    "square": Preset(
        "square",
        "Square (1:1, 1K)",
        (_output("square", "A square image for {{ object }}, clean composition, no text.", ratio="1:1"),),
    ),
    "product": Preset(
        "product",
        "Product set: main visual, ad creative, detail page",
        (
            _output(
                "main_visual",
                "Product photograph of {{ object }} on a clean white background, soft studio lighting.",
                ratio="1:1",
                tier="2K",
            ),
            _output(
                "ad_creative",
                "Advertising image featuring {{ object }} in a lifestyle setting, space for a headline.",
                ratio="16:9",
                tier="2K",
            ),
            _output(
                "detail_image",
                "Close-up detail shot of {{ object }} showing materials, texture and craftsmanship.",
                ratio="3:4",
                tier="2K",
            ),
        ),
    ),
}


def preset_from_mapping(
    name: str, data: Mapping[str, Any], *, origin: Literal["settings", "database"] = "settings"
) -> Preset:
    """Build a Preset from ``GPTIMAGE["PRESETS"][name]``; raise ValueError on a malformed entry.

    A mapping without ``"outputs"`` is a one-output preset whose output key is the preset name.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"preset {name!r} must be a dict, not {type(data).__name__}")
    if "outputs" not in data:
        data = {
            **{k: v for k, v in data.items() if k in _PRESET_KEYS},
            "outputs": [{"key": name, **{k: v for k, v in data.items() if k not in _PRESET_KEYS}}],
        }
    unknown = sorted(set(data) - _PRESET_KEYS)
    if unknown:
        raise ValueError(f"preset {name!r} has unknown keys {unknown}; use {sorted(_PRESET_KEYS)}")
    raw_outputs = data["outputs"]
    if isinstance(raw_outputs, str | bytes) or not isinstance(raw_outputs, list | tuple):
        raise ValueError(f"preset {name!r}: 'outputs' must be a list of dicts")
    outputs = []
    for index, raw in enumerate(raw_outputs):
        if not isinstance(raw, Mapping):
            raise ValueError(f"preset {name!r}: output {index} must be a dict, not {type(raw).__name__}")
        bad = sorted(set(raw) - _OUTPUT_KEYS)
        if bad:
            raise ValueError(
                f"preset {name!r}: output {index} has unknown keys {bad}; use {sorted(_OUTPUT_KEYS)}"
            )
        if not raw.get("key") or not raw.get("prompt_template"):
            raise ValueError(f"preset {name!r}: output {index} needs a 'key' and a 'prompt_template'")
        outputs.append(PresetOutput(**raw))
    models = data.get("models") or ()
    if isinstance(models, str):
        models = (models,)
    return Preset(
        name=name,
        label=str(data.get("label") or name),
        outputs=tuple(outputs),
        origin=origin,
        description=str(data.get("description") or ""),
        models=tuple(models),
    )


# A stand-in input so image-to-image outputs are checked against the image-to-image matrix.
_PLACEHOLDER_INPUT = InputImage("source.png", "png", 1024, 1024, 1024)


def output_problems(output: PresetOutput, policy: Policy, *, default_model: str) -> list[Problem]:
    """What the size matrix, the model and the policy refuse in one output (fields as on the output)."""
    problems: list[Problem] = []
    if not _SLUG.match(output.key or ""):
        problems.append(Problem("key", f"{output.key!r} is not a valid key: use letters, digits, - and _."))
    if output.mode == "image-to-image" and not output.source_field:
        problems.append(
            Problem(
                "source_field", "Image-to-image needs the object's image field to start from.", "required"
            )
        )
    if output.mode == "text-to-image" and output.source_field:
        problems.append(
            Problem(
                "source_field",
                "A source image field is only used for image-to-image; clear it or switch the mode.",
            )
        )
    if not isinstance(output.n, int) or isinstance(output.n, bool):
        problems.append(Problem("n", f"n must be a whole number (got {output.n!r})."))
        output = replace(output, n=1)
    request = GenerationRequest(
        prompt="preset check",
        model=output.model or default_model,
        mode=output.mode,
        ratio=output.ratio,
        tier=output.tier,
        quality=output.quality,
        output_format=output.output_format,
        background=output.background,
        n=output.n,
        images=(_PLACEHOLDER_INPUT,) if output.mode == "image-to-image" else (),
    )
    problems += [p for p in validate(request, policy).problems if p.field not in ("images", "prompt")]
    return problems


def preset_problems(preset: Preset, policy: Policy, *, default_model: str = "gpt-image-2") -> list[Problem]:
    """Every problem of every output, fields as ``"<output key>.<field>"``; empty when it can be used."""
    problems: list[Problem] = []
    if not _SLUG.match(preset.name or ""):
        problems.append(
            Problem("name", f"{preset.name!r} is not a valid preset name: use letters, digits, - and _.")
        )
    if not preset.outputs:
        problems.append(Problem("outputs", "A preset needs at least one output.", "required"))
    seen: set[str] = set()
    for output in preset.outputs:
        if output.key in seen:
            problems.append(
                Problem(f"{output.key}.key", f"Two outputs are called {output.key!r}; keys must differ.")
            )
        seen.add(output.key)
        for p in output_problems(output, policy, default_model=default_model):
            problems.append(Problem(f"{output.key}.{p.field}", p.message, p.code))
    return problems


__all__ = [
    "DEFAULT_PRESETS",
    "ORIGINS",
    "Preset",
    "PresetOutput",
    "output_problems",
    "preset_from_mapping",
    "preset_problems",
]
