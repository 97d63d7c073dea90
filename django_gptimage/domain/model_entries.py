"""``GPTIMAGE["MODELS"]``: a site's additions and corrections to the model catalog.

Each key is a model id; each value a dict. A new id needs ``like`` (a known id whose
capabilities it starts from); an id already in the catalog is corrected in place. Every other
key replaces one capability::

    {"gpt-image-2.7": {"like": "gpt-image-2.6", "qualities": ["low", "medium", "high", "auto"]},
     "gpt-image-1-mini-2025-10-06": {"like": "gpt-image-1-mini"},
     "gpt-image-2.5": {"backgrounds": ["auto", "opaque"]}}

:func:`build_catalog` returns the merged catalog and every problem found (all at once, so the
system check can list them); the catalog is only used when there are none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .capabilities import BACKGROUNDS, FORMATS, INPUT_FORMATS, MODES, QUALITIES, ModelCapabilities

_SIZE = re.compile(r"([1-9][0-9]{1,4})x([1-9][0-9]{1,4})")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


def _choices(allowed: tuple[str, ...]) -> Callable[[Any], tuple[str, ...] | str]:
    def parse(value: Any) -> tuple[str, ...] | str:
        if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
            return f"a non-empty list of strings from {', '.join(allowed)}"
        wrong = [v for v in value if v not in allowed]
        if wrong:
            return f"values from {', '.join(allowed)} (unknown: {', '.join(wrong)})"
        return tuple(dict.fromkeys(value))

    return parse


def _int(low: int, high: int | None = None) -> Callable[[Any], int | str]:
    def parse(value: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"an integer from {low}" + (f" to {high}" if high else " up")
        number: int = value
        if number < low or (high is not None and number > high):
            return f"an integer from {low}" + (f" to {high}" if high else " up")
        return number

    return parse


def _flag(value: Any) -> bool | str:
    return value if isinstance(value, bool) else "true or false"


def _ratio(value: Any) -> float | str:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and value >= 1 else "a number of at least 1 (long edge / short edge)"


def _sizes(value: Any) -> tuple[tuple[int, int], ...] | None | str:
    """``"flexible"`` (any WxH within the edge and pixel limits) or a list of ``"WxH"``."""
    if value == "flexible":
        return None
    wrong = 'either "flexible" or a non-empty list of "WIDTHxHEIGHT" strings such as "1024x1024"'
    if not isinstance(value, list | tuple) or not value:
        return wrong
    sizes = []
    for item in value:
        match = _SIZE.fullmatch(item) if isinstance(item, str) else None
        if match is None:
            return wrong + f" (not a size: {item!r})"
        sizes.append((int(match[1]), int(match[2])))
    return tuple(dict.fromkeys(sizes))


# Setting key -> (ModelCapabilities field, parser). A parser returns the value, or a string
# saying what was expected.
FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "sizes": ("fixed_sizes", _sizes),
    "auto_size": ("supports_auto_size", _flag),
    "edge_multiple": ("edge_multiple", _int(1, 1024)),
    "max_edge": ("max_edge", _int(16)),
    "min_pixels": ("min_pixels", _int(1)),
    "max_pixels": ("max_pixels", _int(256)),
    "max_ratio": ("max_ratio", _ratio),
    "qualities": ("qualities", _choices(QUALITIES)),
    "formats": ("formats", _choices(FORMATS)),
    "backgrounds": ("backgrounds", _choices(BACKGROUNDS)),
    "transparent_formats": ("transparent_formats", _choices(FORMATS)),
    "modes": ("modes", _choices(MODES)),
    "max_n": ("max_n", _int(1, 10)),
    "max_prompt_chars": ("max_prompt_chars", _int(1)),
    "max_input_images": ("max_input_images", _int(1, 16)),
    "max_input_bytes": ("max_input_bytes", _int(1)),
    "input_formats": ("input_formats", _choices(INPUT_FORMATS)),
    "mask": ("supports_mask", _flag),
    "max_mask_bytes": ("max_mask_bytes", _int(1)),
    "input_fidelity": ("input_fidelity", _flag),
    "partial_images": ("max_partial_images", _int(0, 3)),
}
KEYS = ("like", "prices_as", *FIELDS)


def _entry(model: str, value: Any, base: ModelCapabilities, problems: list[str]) -> ModelCapabilities | None:
    where = f"GPTIMAGE['MODELS'][{model!r}]"
    changes: dict[str, Any] = {}
    ok = True
    for key, raw in value.items():
        if key in ("like",):
            continue
        if key == "prices_as":
            if not isinstance(raw, str) or not raw:
                problems.append(f"{where}['prices_as'] must be a model id (a string), not {raw!r}.")
                ok = False
            else:
                changes["prices_as"] = raw
            continue
        if key not in FIELDS:
            problems.append(f"{where} has an unknown key {key!r}; the keys are: {', '.join(KEYS)}.")
            ok = False
            continue
        field_name, parse = FIELDS[key]
        parsed = parse(raw)
        if isinstance(parsed, str):
            problems.append(f"{where}[{key!r}] must be {parsed}, not {raw!r}.")
            ok = False
        else:
            changes[field_name] = parsed
    if not ok:
        return None
    caps = replace(base, **changes, model=model, source="settings")
    if caps.fixed_sizes is None and caps.min_pixels > caps.max_pixels:
        problems.append(
            f"{where}: min_pixels ({caps.min_pixels:,}) is above max_pixels ({caps.max_pixels:,})."
        )
        return None
    stray = [f for f in caps.transparent_formats if f not in caps.formats]
    if "transparent" in caps.backgrounds and (stray or not caps.transparent_formats):
        problems.append(
            f"{where}: transparent_formats ({', '.join(caps.transparent_formats) or 'none'}) must be "
            f"among its formats ({', '.join(caps.formats)})."
        )
        return None
    return caps


def build_catalog(
    raw: Any, builtin: Mapping[str, ModelCapabilities]
) -> tuple[dict[str, ModelCapabilities], list[str]]:
    """``builtin`` merged with the site's entries ``raw``, and the problems of ``raw``."""
    catalog = dict(builtin)
    problems: list[str] = []
    if raw is None:
        return catalog, problems
    if not isinstance(raw, dict):
        return catalog, [f"GPTIMAGE['MODELS'] must be a dict of model id -> dict, not {type(raw).__name__}."]
    pending: dict[str, dict[str, Any]] = {}
    for model, value in raw.items():
        if not isinstance(model, str) or not _ID.fullmatch(model):
            problems.append(f"GPTIMAGE['MODELS'] key {model!r} is not a model id.")
        elif not isinstance(value, dict):
            problems.append(f"GPTIMAGE['MODELS'][{model!r}] must be a dict, not {type(value).__name__}.")
        elif "like" not in value and model not in builtin:
            problems.append(
                f"GPTIMAGE['MODELS'][{model!r}] is not a built-in model, so it needs 'like': the known id "
                "it starts from, e.g. {'like': 'gpt-image-2'}."
            )
        elif "like" in value and not isinstance(value["like"], str):
            problems.append(
                f"GPTIMAGE['MODELS'][{model!r}]['like'] must be a model id, not {value['like']!r}."
            )
        else:
            pending[model] = value
    # An entry may be like another site entry: resolve in dependency order, refusing cycles.
    while pending:
        progressed = False
        for model, value in list(pending.items()):
            like = value.get("like", model)
            if like != model and like in pending:
                continue
            del pending[model]
            progressed = True
            base = catalog.get(like) if like != model else builtin.get(model)
            if base is None:
                problems.append(
                    f"GPTIMAGE['MODELS'][{model!r}]['like'] = {like!r} is not a known model id "
                    "(or its own entry has problems)."
                )
                continue
            caps = _entry(model, value, base, problems)
            if caps is not None:
                catalog[model] = caps
        if not progressed:
            problems.append(
                f"GPTIMAGE['MODELS'] entries are 'like' each other in a circle: {', '.join(sorted(pending))}."
            )
            break
    return catalog, problems
