"""``manage.py gptimage_settings``: every GPTIMAGE key with its effective value and where it comes from.

    python manage.py gptimage_settings                     # key, value, source (setting/env/default)
    python manage.py gptimage_settings --json
    python manage.py gptimage_settings --markdown          # the settings reference (docs/settings.md)
    python manage.py gptimage_settings --write-docs docs/settings.md

Secrets are never printed: the API key shows only whether it is set, provider options only their
names, URLs without any ``user:password@`` part.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_gptimage.conf import SETTINGS, gptimage_settings
from django_gptimage.settings_reference import render_markdown

_ENV = {"API_KEY": "OPENAI_API_KEY", "BASE_URL": "OPENAI_BASE_URL"}


def _safe_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:
        return "<not a URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def shown_value(name: str, value: Any) -> Any:
    """What may be printed of a value: nothing secret."""
    if name == "API_KEY":
        return "<set>" if value else None
    if name == "PROVIDER_OPTIONS" and isinstance(value, dict):
        return dict.fromkeys(value, "<hidden>")
    if name == "BASE_URL" and isinstance(value, str):
        return _safe_url(value)
    return value


def source_of(name: str) -> str:
    if name in gptimage_settings.raw and (gptimage_settings.raw[name] or name not in _ENV):
        return "settings"
    if name in _ENV and os.environ.get(_ENV[name]):
        return f"env {_ENV[name]}"
    return "default"


class Command(BaseCommand):
    help = "Print every GPTIMAGE setting with its effective value and source, or the settings reference."
    requires_system_checks: list[str] = []  # a read-only report (and the docs generator)

    def add_arguments(self, parser: CommandParser) -> None:
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="Print a JSON object of key -> value/source.")
        output.add_argument(
            "--markdown", action="store_true", help="Print the settings reference (Markdown)."
        )
        output.add_argument("--write-docs", metavar="PATH", help="Write the settings reference to PATH.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["markdown"]:
            self.stdout.write(render_markdown(), ending="")
            return
        if options["write_docs"]:
            self._write_docs(Path(options["write_docs"]))
            return
        rows = {
            name: {"value": shown_value(name, gptimage_settings.get(name)), "source": source_of(name)}
            for name in SETTINGS
        }
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2, default=repr))
            return
        width = max(map(len, rows))
        for name, row in rows.items():
            self.stdout.write(f"{name.ljust(width)}  {row['value']!r}  ({row['source']})")

    def _write_docs(self, path: Path) -> None:
        text = render_markdown()
        try:
            old = path.read_text(encoding="utf-8") if path.exists() else None
            if old == text:
                self.stdout.write(f"{path}: already up to date.")
                return
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"{path}: written."))
