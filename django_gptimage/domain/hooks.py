"""Save hooks as data: which model field is generated on save, when, with what, and how applied.

Pure: an entry of ``GPTIMAGE["AUTOGENERATE"]`` (or the arguments of ``autogenerate()``) becomes
a :class:`HookSpec`, or a ValueError saying what is wrong with it. Whether the model, the field
and the preset exist is for the system checks (they need the app registry).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WHEN = ("created", "empty", "changed")
APPLY = ("candidates", "direct")
APPLY_ALIASES = {"first": "direct"}  # "apply the first result"
_KEYS = {"name", "model", "field", "preset", "template", "when", "fields", "apply", "alt_field"}


@dataclass(frozen=True)
class HookSpec:
    """One save hook. ``model`` is an ``"app_label.Model"`` label (as configured)."""

    model: str
    field: str
    preset: str = ""
    template: str = ""
    when: str = "empty"
    fields: tuple[str, ...] = ()  # "changed": the source fields whose change starts a generation
    apply: str = "candidates"
    alt_field: str = ""  # "direct": also set this field to the image's suggested alt text
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.model}.{self.field}"


def hook_from_mapping(data: Mapping[str, Any], *, index: int | None = None) -> HookSpec:
    """Build a HookSpec from a mapping; raise ValueError naming the problem."""
    where = f"entry {index}" if index is not None else "hook"
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a dict, not {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; use {sorted(_KEYS)}")
    return make_hook(
        model=data.get("model"),
        field=data.get("field"),
        preset=data.get("preset") or "",
        template=data.get("template") or "",
        when=data.get("when", "empty"),
        fields=data.get("fields") or (),
        apply=data.get("apply", "candidates"),
        alt_field=data.get("alt_field") or "",
        name=data.get("name") or "",
        where=where,
    )


def make_hook(
    *,
    model: Any,
    field: Any,
    preset: Any = "",
    template: Any = "",
    when: Any = "empty",
    fields: Any = (),
    apply: Any = "candidates",
    alt_field: Any = "",
    name: Any = "",
    where: str = "hook",
) -> HookSpec:
    """Check the shape of a hook's values (types, choices, what goes with what)."""
    if not isinstance(model, str) or model.count(".") != 1:
        raise ValueError(f"{where}: 'model' must be an 'app_label.Model' label, not {model!r}")
    if not isinstance(field, str) or not field:
        raise ValueError(f"{where}: 'field' must name the image field to generate into")
    for key, value in (("preset", preset), ("template", template), ("alt_field", alt_field), ("name", name)):
        if not isinstance(value, str):
            raise ValueError(f"{where}: {key!r} must be a string, not {type(value).__name__}")
    if not preset and not template:
        raise ValueError(
            f"{where}: give a 'preset' or a 'template' (or both: the template replaces the preset's)"
        )
    if when not in WHEN:
        raise ValueError(f"{where}: 'when' must be one of {', '.join(WHEN)}, not {when!r}")
    apply = APPLY_ALIASES.get(apply, apply)
    if apply not in APPLY:
        raise ValueError(f"{where}: 'apply' must be one of {', '.join(APPLY)}, not {apply!r}")
    if isinstance(fields, str) or not isinstance(fields, Sequence):
        raise ValueError(f"{where}: 'fields' must be a list of field names")
    if not all(isinstance(f, str) and f for f in fields):
        raise ValueError(f"{where}: 'fields' must be a list of field names")
    if when == "changed" and not fields:
        raise ValueError(f"{where}: when='changed' needs 'fields', the source fields to watch")
    if when != "changed" and fields:
        raise ValueError(f"{where}: 'fields' is only used with when='changed'")
    if alt_field and apply != "direct":
        raise ValueError(f"{where}: 'alt_field' is only used with apply='direct'")
    return HookSpec(model, field, preset, template, when, tuple(fields), apply, alt_field, name)


def sources_digest(values: Mapping[str, Any]) -> str:
    """A short digest of the watched fields' values ("changed since the last generation")."""
    text = json.dumps({k: values[k] for k in sorted(values)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


__all__ = ["APPLY", "WHEN", "HookSpec", "hook_from_mapping", "make_hook", "sources_digest"]
