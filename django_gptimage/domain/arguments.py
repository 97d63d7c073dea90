"""Types and characters of a request's arguments, checked before any rule is applied.

Every public entry (the service API, the CLI, forms) can be handed anything: ``None``, bytes,
``True`` for ``n``, a prompt pasted with a NUL byte. These checks turn each into a field
problem before anything is compared, read, recorded or sent, so a wrong type is a refusal with
a message, never a traceback and never a paid request.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Any

from .validation import Problem

if TYPE_CHECKING:
    from .validation import GenerationRequest

TEXT_FIELDS = ("model", "mode", "ratio", "tier", "size", "quality", "output_format", "background")
MAX_TEXT_FIELD = 100  # longer than any model id, ratio or size; keeps messages short
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bad_characters(text: str) -> list[str]:
    """Descriptions of the control characters, NUL bytes and lone surrogates in ``text``."""
    found: list[str] = []
    for position, char in enumerate(text):
        if char in _ALLOWED_CONTROLS:
            continue
        category = unicodedata.category(char)
        if category == "Cc":
            label = "a NUL byte" if char == "\x00" else "a control character"
            found.append(f"{label} (U+{ord(char):04X}) at position {position + 1}")
        elif category == "Cs":
            found.append(f"a lone surrogate (U+{ord(char):04X}) at position {position + 1}")
        if len(found) == 3:
            break
    return found


def is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def argument_problems(
    *, prompt: Any, n: Any = 1, output_compression: Any = None, **text_fields: Any
) -> list[Problem]:
    """Every problem of type or character in the arguments (empty when all are usable)."""
    problems: list[Problem] = []
    if prompt is not None and not isinstance(prompt, str):
        problems.append(Problem("prompt", f"The prompt must be text, not {type(prompt).__name__}."))
    elif isinstance(prompt, str):
        bad = bad_characters(prompt)
        if bad:
            problems.append(
                Problem(
                    "prompt",
                    f"The prompt contains {', '.join(bad)}; remove it (only tabs and line breaks are allowed).",
                )
            )
    if not is_whole_number(n):
        problems.append(
            Problem(
                "n", f"The number of images must be a whole number, not {_shown(n)} ({type(n).__name__})."
            )
        )
    if output_compression is not None and not is_whole_number(output_compression):
        problems.append(
            Problem(
                "output_compression",
                f"Compression must be a whole number from 0 to 100, not {_shown(output_compression)} "
                f"({type(output_compression).__name__}).",
            )
        )
    for name, value in text_fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(
                Problem(name, f"{name} must be text, not {_shown(value)} ({type(value).__name__}).")
            )
        elif len(value) > MAX_TEXT_FIELD:
            problems.append(
                Problem(
                    name,
                    f"{name} is {len(value):,} characters long; no valid value is longer than {MAX_TEXT_FIELD}.",
                )
            )
        elif bad_characters(value):
            problems.append(Problem(name, f"{name} {_shown(value)} contains {bad_characters(value)[0]}."))
    return problems


def request_argument_problems(request: GenerationRequest) -> list[Problem]:
    """:func:`argument_problems` of a request built by hand (not through ``build_request``)."""
    return argument_problems(
        prompt=request.prompt,
        n=request.n,
        output_compression=request.output_compression,
        **{name: getattr(request, name) for name in TEXT_FIELDS},
    )
