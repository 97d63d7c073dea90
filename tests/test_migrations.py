"""The committed migrations match the models (a model change without its migration fails here)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations() -> None:
    out = io.StringIO()
    try:
        call_command("makemigrations", "django_gptimage", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits 1 when a migration is missing
        pytest.fail(f"django_gptimage has model changes without a migration:\n{out.getvalue()}")
        raise AssertionError from exc
