"""Fixtures for tests that run generations as real RQ jobs.

- ``queue_mode``: ``RUN_MODE = "queue"`` on a queue name unique to this test session (several
  people may share one Redis db), emptied before and after each test.
- ``run_worker``: drains that queue in this process with RQ's ``SimpleWorker`` (burst mode),
  also moving scheduled jobs (retries) once they are due.
- ``rq_scheduler``: RQ's scheduler loop for that queue in a thread (holds its lock, moves
  scheduled jobs every second), as a worker started ``--with-scheduler`` would;
- ``worker_process``: starts ``manage.py gptimage_worker`` (or ``rqworker``) as a separate
  process on the same test database, Redis, media root and GPTIMAGE settings.

Nothing here is autouse: other test modules are unaffected.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSION_QUEUE = f"gptimage-test-{uuid.uuid4().hex[:10]}"

# A child process that imports tests.settings, overlays the parent's current settings (queue,
# GPTIMAGE, MEDIA_ROOT, RQ_QUEUES, STORAGES: whatever the test changed with the `settings` fixture), and
# runs a management command.
CHILD_BOOTSTRAP = """
import json, os, sys
import tests.settings as test_settings
for key, value in json.loads(os.environ["GPTIMAGE_TEST_SETTINGS"]).items():
    setattr(test_settings, key, value)
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", *sys.argv[1:]])
"""


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def queue_config(url: str) -> dict[str, Any]:
    return {"URL": url, "DEFAULT_TIMEOUT": 900}


def empty_queue(queue: Any) -> None:
    """Delete the queue, its registries, their jobs and the scheduler lock (this queue only)."""
    from rq.registry import (
        CanceledJobRegistry,
        DeferredJobRegistry,
        FailedJobRegistry,
        FinishedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )

    conn = queue.connection
    ids = set(queue.get_job_ids()) | {i.decode() for i in conn.lrange(f"{queue.key}:intermediate", 0, -1)}
    for registry in (
        StartedJobRegistry,
        FinishedJobRegistry,
        FailedJobRegistry,
        DeferredJobRegistry,
        ScheduledJobRegistry,
        CanceledJobRegistry,
    ):
        ids |= set(registry(queue=queue).get_job_ids(cleanup=False))
    keys = {key for job_id in ids for key in conn.scan_iter(match=f"rq:*{_glob_escape(job_id)}*")}
    keys |= set(conn.scan_iter(match=f"rq:*{_glob_escape(queue.name)}*"))
    if keys:
        conn.delete(*keys)
    conn.srem("rq:queues", queue.key)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


@pytest.fixture
def queue_name() -> str:
    return SESSION_QUEUE


@pytest.fixture
def queue_mode(settings: Any) -> Iterator[Any]:
    """Queue mode on the session's queue; yields the (emptied) RQ queue."""
    from django_gptimage import jobs
    from django_gptimage.providers import reset_providers

    settings.RQ_QUEUES = {**settings.RQ_QUEUES, SESSION_QUEUE: queue_config(settings.REDIS_URL)}
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RUN_MODE": "queue", "QUEUE": SESSION_QUEUE}
    reset_providers()
    queue = jobs.get_queue()
    empty_queue(queue)
    yield queue
    # The test may have pointed RQ_QUEUES elsewhere (a dead or private Redis): clean the real one.
    import django_rq

    empty_queue(django_rq.get_queue(SESSION_QUEUE, connection=_connection(settings.REDIS_URL)))
    reset_providers()


def _connection(url: str) -> Any:
    from redis import Redis

    return Redis.from_url(url)


def run_burst(queue_name: str, *, with_scheduler: bool = False) -> Any:
    """One burst of RQ's SimpleWorker in this thread; returns the worker (counters refreshed).

    ``with_scheduler`` first moves the scheduled jobs that are due (if no other scheduler
    holds the queue's lock)."""
    import django_rq
    from rq import SimpleWorker

    worker = django_rq.get_worker(queue_name, worker_class=SimpleWorker)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.work(burst=True, with_scheduler=with_scheduler, logging_level="WARNING")
    finally:
        for signum, handler in handlers.items():  # SimpleWorker installs its own
            signal.signal(signum, handler)
    worker.refresh()  # the job counters live in Redis
    return worker


@dataclass
class DrainReport:
    succeeded: int = 0
    failed: int = 0
    rounds: int = 0


@pytest.fixture
def run_worker(queue_mode: Any) -> Callable[..., DrainReport]:
    """``run_worker(timeout=30)``: run every queued job in this process, then every scheduled
    one once it is due, until the queue and its scheduled registry are empty."""
    from rq.registry import ScheduledJobRegistry

    from django_gptimage import jobs
    from django_gptimage.jobs.reaper import REAPER_JOB_ID

    def drain(timeout: float = 30.0, *, include_reaper: bool = False) -> DrainReport:
        queue = jobs.get_queue()
        report = DrainReport()
        deadline = time.monotonic() + timeout
        while True:
            worker = run_burst(queue.name, with_scheduler=True)
            report.succeeded += worker.successful_job_count
            report.failed += worker.failed_job_count
            report.rounds += 1
            scheduled = [
                j
                for j in ScheduledJobRegistry(queue=queue).get_job_ids()
                if include_reaper or not j.startswith(REAPER_JOB_ID)
            ]
            if not scheduled and queue.count == 0:
                return report
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"queue not drained after {timeout} s: {queue.count} queued, {scheduled}"
                )
            time.sleep(0.05)

    return drain


@pytest.fixture
def rq_scheduler(queue_mode: Any) -> Iterator[Any]:
    """RQ's scheduler for the session queue, running (in a thread) for the whole test."""
    from django_gptimage.jobs.worker import ThreadScheduler

    scheduler = ThreadScheduler([queue_mode], connection=queue_mode.connection, logging_level="WARNING")
    assert scheduler.acquire_locks(auto_start=True), "another scheduler holds the test queue's lock"
    wait_for(lambda: _lock_ttl(queue_mode) > 45, 10, what="the scheduler's lock")
    yield scheduler
    scheduler.request_stop()
    if scheduler._process is not None:
        scheduler._process.join(10)


def _lock_ttl(queue: Any) -> float:
    return queue.connection.pttl(f"rq:scheduler-lock:{queue.name}") / 1000.0


@pytest.fixture
def thread_worker(queue_mode: Any, transactional_db: None) -> Iterator[Callable[..., Any]]:
    """``thread_worker(concurrency=2, **options)``: gptimage_worker's pool, run in a thread of
    this process (it sees this test's settings and database); stopped at teardown."""
    import threading

    from django_gptimage.jobs.worker import ThreadWorkerPool

    started: list[tuple[Any, threading.Thread]] = []

    def start(concurrency: int = 2, **options: Any) -> Any:
        options = {"poll_interval": 1, "logging_level": "WARNING", **options}
        pool = ThreadWorkerPool([queue_mode.name], concurrency=concurrency, **options)
        thread = threading.Thread(target=pool.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        started.append((pool, thread))
        return pool

    yield start
    for pool, _ in started:
        pool.request_stop()
    for _, thread in started:
        thread.join(30)
        assert not thread.is_alive(), "the thread worker did not stop"


def child_database_url() -> str:
    """A DATABASE_URL for the test database pytest-django created (not the configured one)."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{os.path.abspath(s['NAME'])}"
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "localhost"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(s['NAME'], safe='')}"


@dataclass
class ChildProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.args} did not exit within {timeout} s:\n{self.output()[-4000:]}"
            ) from None

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and any work horses)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc.poll() is None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell at teardown that a test failed."""
    report = yield
    setattr(item, f"gptimage_report_{report.when}", report)
    return report


@pytest.fixture
def worker_process(
    transactional_db: None, queue_mode: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ChildProcess]]:
    """``worker_process("--burst", command="gptimage_worker")`` -> a started ChildProcess.

    The child sees this test's database, Redis (REDIS_URL and RQ_QUEUES), MEDIA_ROOT and
    GPTIMAGE and STORAGES settings as they are when it is started. Every child is SIGKILLed at teardown
    (before the database is flushed).
    """
    from django.conf import settings

    children: list[ChildProcess] = []

    def start(
        *args: str, command: str = "gptimage_worker", env: dict[str, str] | None = None
    ) -> ChildProcess:
        overlay = {
            "GPTIMAGE": settings.GPTIMAGE,
            "RQ_QUEUES": settings.RQ_QUEUES,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "STORAGES": settings.STORAGES,
        }
        child_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": child_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "GPTIMAGE_TEST_SETTINGS": json.dumps(overlay),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        log_path = tmp_path / f"{command}-{len(children)}.log"
        argv = [sys.executable, "-c", CHILD_BOOTSTRAP, command, *args]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        child = ChildProcess(proc, log_path, [command, *args])
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
    report = getattr(request.node, "gptimage_report_call", None)
    if report is not None and report.failed:
        for child in children:  # what the workers said is most of the diagnosis
            sys.stderr.write(
                f"\n--- {' '.join(child.args)} (pid {child.pid}) ---\n{child.output()[-15000:]}\n"
            )
