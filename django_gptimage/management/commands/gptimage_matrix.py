"""``manage.py gptimage_matrix``: every ratio x tier x mode with its exact size or refusal reason.

    python manage.py gptimage_matrix                      # aligned table for GPTIMAGE["MODEL"]
    python manage.py gptimage_matrix --model gpt-image-1 --json
    python manage.py gptimage_matrix --policy             # what this site's policy leaves allowed
    python manage.py gptimage_matrix --write-docs docs/sizes.md

``--write-docs`` rewrites every ``<!-- BEGIN GENERATED: <model> -->`` ...
``<!-- END GENERATED: <model> -->`` block of a Markdown file with that model's own matrix (no
site policy), and a ``model-catalog`` block with the built-in model catalog (not the site's
``GPTIMAGE["MODELS"]``), so docs/sizes.md never drifts from the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.capabilities import BUILTIN_CATALOG, MODES, get_capabilities, known_models
from django_gptimage.domain.matrix import as_dicts, as_markdown, catalog_markdown, matrix
from django_gptimage.domain.policy import Policy
from django_gptimage.domain.sizes import SizeChoice

COLUMNS = ("ratio", "tier", "mode", "width", "height", "allowed", "reason")
GENERATED_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<model>[\w.\-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END GENERATED: (?P=model) -->)",
    re.DOTALL,
)
REGENERATE_COMMAND = "python example_project/manage.py gptimage_matrix --write-docs docs/sizes.md"
CATALOG_BLOCK = "model-catalog"


def generated_block(model: str) -> str:
    """The text between a model's markers: its own matrix (no policy) as Markdown."""
    return as_markdown(matrix(model), model).rstrip("\n") + "\n"


def render_docs(text: str) -> str:
    """``text`` with every generated block replaced by what the code produces now."""

    def replace(match: re.Match[str]) -> str:
        model = match["model"]
        if model == CATALOG_BLOCK:
            return f"{match['begin']}{catalog_markdown(BUILTIN_CATALOG)}{match['end']}"
        if get_capabilities(model) is None:
            raise CommandError(f"The docs have a generated block for unknown model {model!r}.")
        return f"{match['begin']}{generated_block(model)}{match['end']}"

    return GENERATED_BLOCK.sub(replace, text)


class Command(BaseCommand):
    help = "Print the ratio x tier x mode matrix of a GPT image model: exact sizes, or why a cell is refused."
    requires_system_checks: list[str] = []  # a read-only report (and the docs generator)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model",
            help="Model id (default: GPTIMAGE['MODEL']).",
        )
        parser.add_argument(
            "--mode",
            choices=MODES,
            help="Only this mode (default: both).",
        )
        parser.add_argument(
            "--policy",
            action="store_true",
            help="Apply the site policy (GPTIMAGE['ALLOWED_*']) instead of showing the model's own matrix.",
        )
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="Print a JSON list of rows.")
        output.add_argument("--markdown", action="store_true", help="Print Markdown tables.")
        output.add_argument(
            "--write-docs",
            metavar="PATH",
            help="Rewrite the <!-- BEGIN/END GENERATED: <model> --> blocks of PATH in place.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["write_docs"]:
            self._write_docs(Path(options["write_docs"]))
            return
        model = options["model"] or gptimage_settings.MODEL
        if not isinstance(model, str) or get_capabilities(model) is None:
            raise CommandError(f"Unknown model {model!r}; known models: {', '.join(known_models())}.")
        policy = gptimage_settings.policy if options["policy"] else Policy()
        rows = matrix(model, policy)
        if options["mode"]:
            rows = [r for r in rows if r.mode == options["mode"]]
        if options["json"]:
            self.stdout.write(json.dumps(as_dicts(rows), indent=2))
        elif options["markdown"]:
            self.stdout.write(as_markdown(rows, model))
        else:
            self._write_table(rows)

    def _write_table(self, rows: list[SizeChoice]) -> None:
        cells = [
            (
                r.ratio,
                r.tier,
                r.mode,
                "" if r.width is None else str(r.width),
                "" if r.height is None else str(r.height),
                "yes" if r.allowed else "no",
                r.reason,
            )
            for r in rows
        ]
        widths = [max(len(c[i]) for c in [COLUMNS, *cells]) for i in range(len(COLUMNS))]

        def line(values: tuple[str, ...]) -> list[str]:
            # Numbers are right-aligned; the reason, last, is not padded.
            out = []
            for i, (value, width) in enumerate(zip(values, widths, strict=True)):
                if i == len(values) - 1:
                    out.append(value)
                elif COLUMNS[i] in ("width", "height"):
                    out.append(value.rjust(width))
                else:
                    out.append(value.ljust(width))
            return out

        self.stdout.write(self.style.MIGRATE_HEADING("  ".join(line(COLUMNS)).rstrip()))
        for row, values in zip(rows, cells, strict=True):
            parts = line(values)
            style = self.style.SUCCESS if row.allowed else self.style.ERROR
            parts[5] = style(parts[5])
            self.stdout.write("  ".join(parts).rstrip())

    def _write_docs(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        blocks = GENERATED_BLOCK.findall(text)
        if not blocks:
            raise CommandError(
                f"{path} has no <!-- BEGIN GENERATED: <model> --> ... <!-- END GENERATED: <model> --> block."
            )
        new = render_docs(text)
        if new == text:
            self.stdout.write(f"{path}: {len(blocks)} generated block(s) already up to date.")
            return
        path.write_text(new, encoding="utf-8")
        self.stdout.write(self.style.SUCCESS(f"{path}: rewrote {len(blocks)} generated block(s)."))
