"""The error-code table of docs/errors.md, generated from the code's own tables (no Django)."""

from __future__ import annotations

from .errors import ERRORS
from .next_steps import next_step

BEGIN = "<!-- BEGIN GENERATED: error-codes -->\n"
END = "<!-- END GENERATED: error-codes -->"


def error_codes_markdown() -> str:
    """One row per code: the editor's message, the next step, retry rule, billing and refund."""
    lines = [
        "| code | message shown to editors | what to do | retry | may be billed | refund |",
        "|---|---|---|---|---|---|",
    ]
    for code, info in ERRORS.items():
        step = next_step(code).text or "-"
        billed = "yes" if info.maybe_billed else "no"
        lines.append(
            f"| `{code.value}` | {info.message} | {step} | `{info.retry.value}` | {billed} | `{info.refund.value}` |"
        )
    return "\n".join(lines) + "\n"
