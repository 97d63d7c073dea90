"""Credits under real parallel processes: eight ``gptimage_generate --user`` at once, credits for three.

Each process is its own Python, its own database connection and transaction; the balance row lock
(PostgreSQL) or SQLite's serialised writes decide who gets a reservation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from django_gptimage.access import credits
from django_gptimage.access.models import CreditEntry
from django_gptimage.models import ImageGeneration
from django_gptimage.service import credit_quote
from tests.conftest import CHILD_BOOTSTRAP, ROOT, child_database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCESSES = 8


def test_parallel_processes_never_overdraw(settings: Any, queue_mode: Any, django_user_model: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "CREDITS": True}
    editor = django_user_model.objects.create_user("editor", is_staff=True)
    editor.user_permissions.add(
        Permission.objects.get(content_type__app_label="django_gptimage", codename="generate")
    )
    quote = credit_quote(user=editor, quality="low", prompt="A lighthouse at dusk")
    credits.grant(editor, quote.reserve * 3)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": child_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "GPTIMAGE_TEST_SETTINGS": json.dumps(
            {"GPTIMAGE": settings.GPTIMAGE, "RQ_QUEUES": settings.RQ_QUEUES}
        ),
    }
    argv = [sys.executable, "-c", CHILD_BOOTSTRAP, "gptimage_generate", "--prompt", "A lighthouse at dusk",
            "--quality", "low", "--user", "editor", "--json"]  # fmt: skip
    children = [
        subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(PROCESSES)
    ]
    outcomes = []
    for child in children:
        out, err = child.communicate(timeout=180)
        assert child.returncode in (0, 2), err.decode()[-2000:]
        outcomes.append(json.loads(out.decode().strip().splitlines()[-1])["error_code"] or "reserved")
    assert sorted(outcomes) == ["insufficient_credits"] * (PROCESSES - 3) + ["reserved"] * 3, outcomes
    assert ImageGeneration.objects.count() == 3 == CreditEntry.objects.filter(kind="reserve").count()
    assert queue_mode.count == 3  # every reservation has its job, and no job lacks one
    assert credits.balance(editor) == credits.ledger_balance(editor)
    assert credits.balance(editor).available == Decimal(0)
