"""Liveness per job in gptimage_worker's pool: a deadline per job checked at safe points (no
asynchronous exception), a stuck job stops its heartbeats and makes the pool exit EXIT_STUCK,
signals only recorded by the handler, RQ's stop-job and shutdown per job and per worker thread.
Real Redis, real RQ workers (threads of this process), real storage and the loopback server."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from rq.command import send_shutdown_command, send_stop_job_command
from rq.job import Job, JobStatus

from django_gptimage import jobs
from django_gptimage.jobs import liveness
from django_gptimage.jobs.reaper import reap
from django_gptimage.jobs.runner import heartbeat
from django_gptimage.jobs.worker import ThreadWorker, ThreadWorkerPool
from django_gptimage.models import GenerationAttempt, ImageGeneration, Phase, Status
from django_gptimage.service import request_generation
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RELEASE = threading.Event()


class BlockedStorage(FileSystemStorage):
    """A storage whose writes hang until the test lets them go (a stalled mount)."""

    def _save(self, name: str, content: Any) -> str:
        RELEASE.wait(120)
        return super()._save(name, content)


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def status_of(generation: ImageGeneration) -> str:
    return ImageGeneration.objects.values_list("status", flat=True).get(pk=generation.pk)


def test_the_thread_worker_uses_no_asynchronous_exception() -> None:
    from rq.timeouts import TimerDeathPenalty

    assert ThreadWorker.death_penalty_class is liveness.CooperativeDeathPenalty
    assert not issubclass(ThreadWorker.death_penalty_class, TimerDeathPenalty)


def test_a_deadline_is_raised_only_at_a_safe_point() -> None:
    with liveness.CooperativeDeathPenalty(0.2, job_id="job-a"):
        liveness.check()  # in time
        time.sleep(0.3)  # nothing is raised into this sleep...
        with pytest.raises(liveness.JobTimeoutException):
            liveness.check()  # ...only here
        assert [d.job_id for d in liveness.overdue(grace=0)] == ["job-a"]
    assert liveness.current() is None and liveness.overdue(grace=0) == []


def test_a_job_past_its_timeout_ends_as_a_timeout_at_its_next_safe_point(
    queue_mode: Any, settings: Any, thread_worker: Any, media: Path
) -> None:
    settings.GPTIMAGE = {
        **settings.GPTIMAGE, "JOB_TIMEOUT": 1, "PROVIDER": "offline", "PROVIDER_OPTIONS": {"delay": 2},
    }  # fmt: skip
    thread_worker(concurrency=1)
    generation = request_generation(prompt="Slower than its job may be")
    wait_for(lambda: status_of(generation) == Status.FAILED, 20, what="the timeout")
    generation.refresh_from_db()
    assert generation.error_code == "timeout" and "JOB_TIMEOUT" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "timeout" and attempt.maybe_billed


def test_a_stuck_job_stops_its_heartbeats_and_the_pool_exits_for_its_supervisor(
    queue_mode: Any, settings: Any, media: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(liveness, "LIVENESS_GRACE", 1.0)
    RELEASE.clear()
    settings.STORAGES = {
        **settings.STORAGES,
        "blocked": {"BACKEND": "tests.test_liveness.BlockedStorage", "OPTIONS": {"location": str(media)}},
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "blocked", "JOB_TIMEOUT": 2, "PROVIDER": "offline"}
    pool = ThreadWorkerPool(
        [queue_mode.name], concurrency=2, poll_interval=1, job_monitoring_interval=1, logging_level="WARNING"
    )
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(pool.run(install_signal_handlers=False)))
    runner.start()
    try:
        stuck = request_generation(prompt="Its storage write hangs")
        wait_for(lambda: ImageGeneration.objects.get(pk=stuck.pk).phase == Phase.STORING, 20, what="storing")
        assert stuck.pk in heartbeat.alive_ids()  # within its time: beaten
        runner.join(20)
        assert not runner.is_alive(), "the pool did not exit"
        assert result == [liveness.EXIT_STUCK]
        assert stuck.pk not in heartbeat.alive_ids()  # past timeout + grace: no more beats
        assert status_of(stuck) == Status.RUNNING
        report = wait_for(lambda: reap(stale_after=1), 10, what="a stale heartbeat")
        assert report.requeued == [str(stuck.pk)] or report.abandoned == [str(stuck.pk)]
        assert status_of(stuck) != Status.RUNNING
    finally:
        RELEASE.set()
        for thread in list(pool._threads.values()):
            thread.join(20)  # the stuck write ends; its late outcome is dropped (claim lost)


def test_a_stop_is_raised_only_where_nothing_has_been_sent() -> None:
    liveness.begin("gptimage-x", 60).stop_requested = True
    try:
        with pytest.raises(liveness.JobStopped):
            liveness.check(stoppable=True)
        liveness.check(stoppable=False)  # after sending: only the timeout is raised
    finally:
        liveness.end("gptimage-x")


def test_stop_job_stops_that_job_only_and_it_is_not_retried(
    queue_mode: Any, gptimage_openai: Any, settings: Any, thread_worker: Any, media: Path
) -> None:
    gptimage_openai.add_fault("delay", seconds=3, times=2)
    thread_worker(concurrency=2)
    stopped = request_generation(prompt="Stopped by an operator", quality="low")
    other = request_generation(prompt="Left alone", quality="low")
    wait_for(
        lambda: (
            ImageGeneration.objects.filter(pk__in=[stopped.pk, other.pk], phase=Phase.WAITING).count() == 2
        ),
        20,
        what="both calls to be with the API",
    )
    send_stop_job_command(queue_mode.connection, jobs.job_id(stopped.pk))
    wait_for(lambda: status_of(stopped) == Status.CANCELED, 20, what="the stop")
    stopped.refresh_from_db()
    assert stopped.error_code == "canceled"
    assert stopped.images.count() == 1  # the request was out: its (paid) image is kept
    job = Job.fetch(jobs.job_id(stopped.pk), connection=queue_mode.connection)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STOPPED, 10, what="RQ's stopped status")
    wait_for(lambda: status_of(other) == Status.SUCCEEDED, 20, what="the other job")
    assert ImageGeneration.objects.get(pk=stopped.pk).attempts == 1  # never retried
    [attempt] = GenerationAttempt.objects.filter(generation=stopped)
    assert attempt.maybe_billed  # the request was with the API


def test_shutdown_stops_one_worker_thread_and_the_pool_ends_when_all_have(
    queue_mode: Any, settings: Any, media: Path
) -> None:
    pool = ThreadWorkerPool([queue_mode.name], concurrency=2, poll_interval=1, logging_level="WARNING")
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(pool.run(install_signal_handlers=False)))
    runner.start()
    try:
        wait_for(lambda: len(pool.workers) == 2 and pool.alive() == 2, 10, what="two threads")
        first, second = (w.name for w in pool.workers)
        wait_for(lambda: pool._pubsub_thread is not None and pool._pubsub.subscribed, 10, what="commands")
        send_shutdown_command(queue_mode.connection, first)
        wait_for(lambda: pool.alive() == 1, 15, what="the first thread to stop")
        time.sleep(1.5)
        assert pool.alive() == 1 and runner.is_alive()  # not restarted, the other one goes on
        generation = request_generation(prompt="Still served by the second thread")
        wait_for(lambda: status_of(generation) == Status.SUCCEEDED, 20, what="the second thread")
        send_shutdown_command(queue_mode.connection, second)
        runner.join(15)
        assert not runner.is_alive() and result == [0]
    finally:
        pool.request_stop()
        runner.join(15)


def test_the_signal_handler_takes_no_lock(queue_mode: Any) -> None:
    """A signal that arrives while the main thread holds the pool's lock must not deadlock."""
    pool = ThreadWorkerPool([queue_mode.name], concurrency=1)
    done = threading.Event()

    def interrupted() -> None:
        with pool._lock:  # the supervising code was here when the signal came
            pool._on_signal(signal.SIGTERM, None)
        done.set()

    thread = threading.Thread(target=interrupted, daemon=True)
    thread.start()
    assert done.wait(5), "the signal handler blocked on a lock"
    assert pool._pending_signal == signal.SIGTERM and not pool.stop_event.is_set()
    pool._handle_pending_signal()  # the supervising loop acts on it, outside the handler
    assert pool.stop_event.is_set()
    assert socket.gethostname() in pool.name
