"""gptimage_worker's pool under faults, in this process: Redis gone while a thread (re)starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from django_gptimage.jobs.worker import ThreadWorkerPool


@pytest.fixture
def dead_redis(tmp_path: Path) -> Redis:
    return Redis(unix_socket_path=str(tmp_path / "nobody-listens.sock"))


def test_a_thread_that_cannot_start_during_a_redis_outage_is_retried_not_fatal(
    queue_mode: Any, dead_redis: Redis
) -> None:
    # RQ's Worker() sends CLIENT SETNAME: during an outage a restart used to raise out of the
    # supervising loop and end the whole process.
    pool = ThreadWorkerPool([queue_mode.name], concurrency=2, connection=dead_redis)
    pool._start_slot(1)
    assert not pool._threads[1].is_alive()
    assert pool._restarts[1] == 1
    assert pool._next_restart[1] > 0
    assert pool._supervise()  # still supervising: the slot is due again later, nothing raised
    assert 1 not in pool._workers


@pytest.mark.django_db(transaction=True)
def test_a_record_and_its_attempts_are_never_seen_out_of_step(
    queue_mode: Any, gptimage_openai: Any, settings: Any, tmp_path: Path, thread_worker: Any
) -> None:
    """Another process watching the history (the admin, the status endpoint) never sees a running
    record without its attempt, nor a finished one with an attempt still open: the runner and the
    reaper write a record and its attempt in one transaction."""
    import threading

    from django.db import connection

    from django_gptimage.models import GenerationAttempt, ImageGeneration, Status
    from django_gptimage.service import request_generation
    from tests.conftest import wait_for

    settings.MEDIA_ROOT = str(tmp_path / "media")
    for _ in range(4):
        gptimage_openai.add_fault("server_error")  # some attempts end in a retry
    thread_worker(concurrency=3)
    generations = [request_generation(prompt=f"Watched {i}", quality="low") for i in range(10)]
    pks = [g.pk for g in generations]
    problems: list[str] = []
    done = threading.Event()

    def watch() -> None:
        try:
            while not done.is_set():
                # Record first, attempts second: both invariants only get truer over time, so
                # two separate reads can not report a false problem.
                records = ImageGeneration.objects.filter(pk__in=pks).values_list("pk", "status", "attempts")
                records = {pk: (status, n) for pk, status, n in records}
                rows = list(
                    GenerationAttempt.objects.filter(generation__in=pks).values_list(
                        "generation", "number", "finished_at"
                    )
                )
                for pk, (status, number) in records.items():
                    mine = [(n, f) for g, n, f in rows if g == pk]
                    if status == Status.RUNNING and number > max((n for n, _ in mine), default=0):
                        problems.append(f"{pk} running without attempt {number}")
                    if status in (Status.SUCCEEDED, Status.FAILED) and any(f is None for _, f in mine):
                        problems.append(f"{pk} {status} with an open attempt")
        finally:
            connection.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        wait_for(
            lambda: ImageGeneration.objects.filter(pk__in=pks, status=Status.SUCCEEDED).count() == len(pks),
            90,
            what="every generation to succeed",
        )
    finally:
        done.set()
        watcher.join(10)
    assert problems == []
