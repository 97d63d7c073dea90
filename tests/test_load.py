"""The load benchmark in small (``benchmarks/bench_load.py``): 40 generations over a
``gptimage_worker`` and a stock ``rqworker --with-scheduler`` process, against the loopback
server's random fault mix, with the ``gptimage_worker`` SIGKILLed and Redis restarted empty in
the middle. Nothing paid for may be lost, nothing may be stuck or stored twice, and every
generation must end with a defined code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_load import LoadConfig, LoadRun

ROOT = Path(__file__).resolve().parent.parent
RULES = {"backoff": "backoff", "if configured": "if_configured", "never": "never", "store only": "store_only"}


def test_the_fault_table_in_the_docs_says_what_the_code_does() -> None:
    from django_gptimage.domain.errors import error_info

    text = (ROOT / "docs" / "reliability.md").read_text()
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| fault")
    ]
    assert len(rows) >= 10
    for fault, code, retried, billed in rows:
        info = error_info(code)
        assert (str(info.retry), info.maybe_billed) == (RULES[retried], billed == "yes"), fault


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_load_with_faults_a_killed_worker_and_a_redis_restart(tmp_path: Path) -> None:
    from django.db import connection

    # The test database pytest-django made; the workers get the same, whatever the engine.
    keys = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
    database: dict[str, Any] = {key: connection.settings_dict[key] for key in keys}
    config = LoadConfig(
        generations=40,
        gptimage_workers=1,
        rqworkers=1,
        concurrency=4,
        submit_rate=20,
        kill_at=0.2,
        redis_restart_at=0.5,
        stale_after=20,
        reap_interval=3,
        timeout=150,
    )
    run = LoadRun(config, str(tmp_path), database, log=lambda line: sys.stderr.write(line + "\n"))
    report = run.run()
    table = report.table()
    sys.stderr.write(table + "\n")

    assert report.ok, f"{table}\n{run.tails()}"
    assert report.killed and report.redis_restarted
    assert report.generations == 40
    assert report.succeeded + sum(report.failed_by_code.values()) + report.canceled == 40
    assert (report.lost_paid_images, len(report.stuck), report.double_stored) == (0, 0, 0)
    assert not report.undefined_codes and not report.billing_unrecorded
    # The fault mix reached the engine: some calls were refused, some billed and stored.
    assert report.provider_calls > 40 and report.retries > 0
    assert report.paid_images > 0
