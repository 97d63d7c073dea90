"""The error codes: message, next step, retry rule, billing and refund rule of each.

    python manage.py gptimage_errors                          # the table, as Markdown
    python manage.py gptimage_errors --write-docs docs/errors.md

``--write-docs`` rewrites the ``<!-- BEGIN GENERATED: error-codes -->`` block of the file, so the
documentation is the code's own table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_gptimage.domain.error_docs import BEGIN, END, error_codes_markdown

REGENERATE_COMMAND = "python example_project/manage.py gptimage_errors --write-docs docs/errors.md"
BLOCK = re.compile(rf"(?P<begin>{re.escape(BEGIN)})(?P<body>.*?)(?P<end>{re.escape(END)})", re.S)


def render_docs(text: str) -> str:
    """``text`` with its error-codes block holding the current table."""
    return BLOCK.sub(lambda m: m["begin"] + error_codes_markdown() + m["end"], text)


class Command(BaseCommand):
    help = "Print the error codes table (message, next step, retry, billing, refund) or rewrite the docs'."
    requires_system_checks: list[str] = []  # a read-only report (and the docs generator)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--write-docs", metavar="PATH", help="Rewrite the generated block of PATH.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["write_docs"]:
            self.stdout.write(error_codes_markdown(), ending="")
            return
        path = Path(options["write_docs"])
        if not path.is_file():
            raise CommandError(f"{path} does not exist.")
        text = path.read_text(encoding="utf-8")
        if not BLOCK.search(text):
            raise CommandError(f"{path} has no {BEGIN.strip()} ... {END} block.")
        new = render_docs(text)
        if new == text:
            self.stdout.write(f"{path} is up to date.")
            return
        path.write_text(new, encoding="utf-8")
        self.stdout.write(f"Rewrote the error codes table in {path}.")
