"""The ``UPLOAD_TO`` / ``INPUT_UPLOAD_TO`` path templates: their placeholders and their check.

A template is checked by formatting it with sample values (the same placeholders
:mod:`django_gptimage.storage` fills), so a typo, an absolute path or a ``..`` is found by a
system check and before a provider is called, never after an image was paid for.
"""

from __future__ import annotations

import posixpath
import uuid
from datetime import UTC, datetime
from typing import Any

# Placeholders every template may use, then those only results or only inputs have.
COMMON_PLACEHOLDERS = (
    "date",
    "id",
    "ratio",
    "ratio_slug",
    "tier",
    "model",
    "app_label",
    "model_name",
    "index",
    "ext",
)
RESULT_PLACEHOLDERS = (*COMMON_PLACEHOLDERS, "hash")
INPUT_PLACEHOLDERS = (*COMMON_PLACEHOLDERS, "role")

_SAMPLE: dict[str, Any] = {
    "date": datetime(2026, 1, 31, 23, 59, 58, tzinfo=UTC),
    "id": uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
    "ratio": "16:9",
    "ratio_slug": "16x9",
    "tier": "2K",
    "model": "gpt-image-2",
    "app_label": "gptimage",
    "model_name": "generation",
    "index": 0,
    "ext": "png",
    "hash": "0123456789ab",
    "role": "image",
}


def sample_context(kind: str) -> dict[str, Any]:
    """Sample values for a ``"result"`` or an ``"input"`` template."""
    names = RESULT_PLACEHOLDERS if kind == "result" else INPUT_PLACEHOLDERS
    return {name: _SAMPLE[name] for name in names}


def template_problem(template: Any, *, kind: str) -> str | None:
    """Why ``template`` cannot name a stored file, or ``None`` when it can."""
    if not isinstance(template, str):
        return f"must be a string, not {type(template).__name__}"
    allowed = RESULT_PLACEHOLDERS if kind == "result" else INPUT_PLACEHOLDERS
    try:
        name = template.format(**sample_context(kind))
    except KeyError as exc:
        return f"has an unknown placeholder {{{exc.args[0]}}}; the placeholders are {', '.join(allowed)}"
    except IndexError:
        return f"has a positional placeholder {{}}; name one of {', '.join(allowed)}"
    except (ValueError, AttributeError, TypeError) as exc:
        return f"cannot be formatted ({exc})"
    if not name.strip():
        return "gives an empty path"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"gives an absolute path ({name!r}); paths are relative to the storage"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return f"gives a path with '..' ({name!r}), which storages refuse or resolve outside their root"
    if name.endswith(("/", "\\")) or not posixpath.basename(name.replace("\\", "/")):
        return f"gives a directory, not a file name ({name!r})"
    return None


def templates_problem() -> str | None:
    """The first problem of the configured ``UPLOAD_TO`` / ``INPUT_UPLOAD_TO``, as a sentence."""
    from django_gptimage.conf import gptimage_settings

    for key, kind in (("UPLOAD_TO", "result"), ("INPUT_UPLOAD_TO", "input")):
        problem = template_problem(gptimage_settings.get(key), kind=kind)
        if problem:
            return f"GPTIMAGE[{key!r}] {problem}"
    return None


def ensure_templates() -> None:
    """Raise ``ImproperlyConfigured`` unless both path templates can name a stored file."""
    from django.core.exceptions import ImproperlyConfigured

    problem = templates_problem()
    if problem:
        raise ImproperlyConfigured(f"{problem} (system check django_gptimage.E013).")
