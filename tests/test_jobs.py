"""Generations as real RQ jobs: payload, commit semantics, retries per error code, cancel, Redis
down, progress. Real Redis (embedded or REDIS_URL), real RQ workers, the loopback OpenAI server."""

from __future__ import annotations

import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import connections, transaction
from PIL import Image
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from django_gptimage import jobs
from django_gptimage.jobs.reaper import reap
from django_gptimage.jobs.worker import ThreadWorker
from django_gptimage.models import (
    GeneratedImage,
    GenerationAttempt,
    ImageGeneration,
    Phase,
    Status,
    get_storage,
)
from django_gptimage.providers.offline import OfflineProvider
from django_gptimage.service import cancel_generation, request_generation
from tests.conftest import run_burst, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PACE = 0.3  # seconds each provider phase (and the storage write) takes in the progress test


@pytest.fixture
def openai(queue_mode: Any, gptimage_openai: Any, settings: Any, tmp_path: Any) -> Iterator[Any]:
    """Queue mode with the OpenAI provider pointed at the fake server; a fresh media root."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    yield gptimage_openai


def generate(**kwargs: Any) -> ImageGeneration:
    kwargs.setdefault("prompt", "A lighthouse at dusk, poster style")
    kwargs.setdefault("quality", "low")
    return request_generation(**kwargs)


def image_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/images/")]


def attempts_of(generation: ImageGeneration) -> list[GenerationAttempt]:
    return list(GenerationAttempt.objects.filter(generation=generation).order_by("number"))


def run_one_job(queue: Any) -> None:
    """Run exactly the jobs queued now, without moving scheduled ones."""
    run_burst(queue.name, with_scheduler=False)


# -- the payload ---------------------------------------------------------------------------------


def _redis_values(conn: Any) -> Iterator[tuple[str, bytes]]:
    """Every value in the Redis db, zlib-decompressed too (RQ compresses job data)."""
    for raw_key in conn.scan_iter(count=1000):
        key = raw_key.decode(errors="replace")
        kind = conn.type(raw_key).decode()
        if kind == "string":
            values = [conn.get(raw_key) or b""]
        elif kind == "hash":
            values = [v for pair in conn.hgetall(raw_key).items() for v in pair]
        elif kind == "list":
            values = conn.lrange(raw_key, 0, -1)
        elif kind == "set":
            values = list(conn.smembers(raw_key))
        elif kind == "zset":
            values = conn.zrange(raw_key, 0, -1)
        elif kind == "stream":
            values = [v for _, fields in conn.xrange(raw_key) for pair in fields.items() for v in pair]
        else:
            values = []
        yield key, raw_key
        for value in values:
            yield key, value
            try:
                inflated = zlib.decompress(value)
            except zlib.error:
                continue
            yield key, inflated


def test_the_job_payload_is_the_record_id_only(
    openai: Any, queue_mode: Any, settings: Any, run_worker: Any
) -> None:
    key = "sk-unique-" + secrets.token_hex(16)
    openai.api_key = key
    settings.GPTIMAGE = {**settings.GPTIMAGE, "API_KEY": key}
    prompt = f"Secret campaign {secrets.token_hex(8)}: a red fox on a glacier"
    generation = generate(prompt=prompt)

    job = Job.fetch(jobs.job_id(generation.pk), connection=queue_mode.connection)
    assert job.func_name == "django_gptimage.jobs.queue.run_job"
    assert job.args == (str(generation.pk),)
    assert job.kwargs == {}
    for text in (job.description, repr(job.args), repr(job.kwargs)):
        assert "fox" not in text and key not in text

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert len(image_requests(openai)) == 1

    # Queued, started, finished and result data: nothing anywhere in Redis carries the prompt,
    # the key or image bytes.
    needles = {"prompt": prompt.encode(), "api key": key.encode(), "png": b"\x89PNG\r\n\x1a\n"}
    seen_keys = 0
    for redis_key, value in _redis_values(queue_mode.connection):
        seen_keys += 1
        for label, needle in needles.items():
            assert needle not in value, f"{label} found in Redis key {redis_key}"
    assert seen_keys > 0


def test_a_rolled_back_transaction_never_enqueues(queue_mode: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        generate()
        raise RuntimeError("the view failed after requesting a generation")
    assert ImageGeneration.objects.count() == 0
    assert queue_mode.count == 0
    assert ScheduledJobRegistry(queue=queue_mode).count == 0


def test_the_job_is_enqueued_only_after_commit(queue_mode: Any) -> None:
    with transaction.atomic():
        generation = generate()
        assert queue_mode.count == 0  # still inside the transaction
    assert queue_mode.get_job_ids() == [jobs.job_id(generation.pk)]


# -- double runs -----------------------------------------------------------------------------------


def test_threads_racing_on_one_record_call_the_provider_once(openai: Any, queue_mode: Any) -> None:
    generation = generate()
    openai.add_fault("delay", seconds=0.5)  # keeps the winner busy while the others arrive
    barrier = threading.Barrier(4)
    results: list[str] = []

    def race() -> None:
        try:
            barrier.wait()
            results.append(jobs.run_job(str(generation.pk)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results).count(Status.SUCCEEDED) >= 1
    assert len(image_requests(openai)) == 1
    assert len(attempts_of(generation)) == 1
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED and generation.attempts == 1


def test_two_workers_with_duplicate_jobs_call_the_provider_once(openai: Any, queue_mode: Any) -> None:
    generation = generate()
    jobs.enqueue(generation.pk, attempt=7)  # a duplicate job for the same record
    assert queue_mode.count == 2
    openai.add_fault("delay", seconds=0.5)
    workers = [
        ThreadWorker([queue_mode], name=f"race-{i}-{secrets.token_hex(3)}", connection=queue_mode.connection)
        for i in range(2)
    ]

    def work(worker: ThreadWorker) -> None:
        try:
            worker.work(burst=True, logging_level="WARNING")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for w in workers:
        w.refresh()  # the counters live in Redis
    assert sum(w.successful_job_count for w in workers) == 2  # both jobs ran ...
    assert len(image_requests(openai)) == 1  # ... one of them called the provider
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert len(attempts_of(generation)) == 1


# -- retry policy per error code -------------------------------------------------------------------


def test_rate_limited_is_retried_no_earlier_than_retry_after(
    openai: Any, queue_mode: Any, rq_scheduler: Any, run_worker: Any
) -> None:
    openai.add_fault("rate_limited", retry_after=1.5)
    generation = generate()

    run_one_job(queue_mode)  # the first attempt only
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.error_code == "rate_limited"
    [first] = attempts_of(generation)
    assert first.outcome == "rate_limited" and first.will_retry and first.retry_after == 1.5
    assert first.http_status == 429 and first.provider_request_id.startswith("req_")
    retry_id = jobs.job_id(generation.pk, 2)
    scheduled_at = ScheduledJobRegistry(queue=queue_mode).get_scheduled_time(retry_id)
    assert scheduled_at >= first.finished_at + timedelta(seconds=1.5)

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    first, second = attempts_of(generation)
    assert second.outcome == Status.SUCCEEDED
    assert second.started_at - first.finished_at >= timedelta(seconds=1.5)
    assert len(image_requests(openai)) == 2


def test_a_retry_after_longer_than_allowed_fails_at_once_and_says_why(
    openai: Any, queue_mode: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RETRY_AFTER_MAX": 60.0}
    openai.add_fault("rate_limited", retry_after=3600)
    generation = generate()
    run_one_job(queue_mode)
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "rate_limited"
    assert "longer than RETRY_AFTER_MAX" in generation.error_message
    [attempt] = attempts_of(generation)
    assert attempt.retry_after == 3600 and not attempt.will_retry
    assert ScheduledJobRegistry(queue=queue_mode).count == 0


def test_provider_errors_retry_up_to_max_attempts_then_fail(
    openai: Any, queue_mode: Any, settings: Any, run_worker: Any
) -> None:
    assert settings.GPTIMAGE.get("MAX_ATTEMPTS", 4) == 4
    openai.add_fault("server_error", times=2)
    openai.add_fault("overloaded", times=2)
    openai.add_fault("server_error", times=5)  # would be served if a fifth attempt happened
    generation = generate()

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "provider_error"
    assert generation.attempts == 4
    assert len(image_requests(openai)) == 4
    attempts = attempts_of(generation)
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert [a.outcome for a in attempts] == ["provider_error"] * 4
    assert [a.http_status for a in attempts] == [500, 500, 503, 503]
    assert [a.will_retry for a in attempts] == [True, True, True, False]
    assert all(a.started_at and a.finished_at and a.finished_at >= a.started_at for a in attempts)
    request_ids = [a.provider_request_id for a in attempts]
    assert all(r.startswith("req_") for r in request_ids) and len(set(request_ids)) == 4
    assert generation.provider_request_id == request_ids[-1]


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("insufficient_quota", "quota_exceeded", 429),
        ("unauthorized", "auth_failed", 401),
        ("forbidden", "auth_failed", 403),
        ("moderation_blocked", "moderation_blocked", 400),
        (None, "invalid_parameters", 400),
    ],
)
def test_permanent_errors_are_never_retried(
    openai: Any, queue_mode: Any, run_worker: Any, fault: str | None, code: str, status: int
) -> None:
    generation = generate()
    if fault:
        openai.add_fault(fault, times=3)
    else:
        # Something only the API rejects (our validation would have refused it earlier).
        ImageGeneration.objects.filter(pk=generation.pk).update(quality="ultra")

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert generation.error_code == code
    assert len(image_requests(openai)) == 1
    [attempt] = attempts_of(generation)
    assert attempt.outcome == code and attempt.http_status == status and not attempt.will_retry
    assert ScheduledJobRegistry(queue=queue_mode).count == 0


@pytest.mark.parametrize("retry_on_timeout", [False, True])
def test_timeouts_retry_only_when_configured_and_are_maybe_billed(
    openai: Any, queue_mode: Any, settings: Any, run_worker: Any, retry_on_timeout: bool
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "READ_TIMEOUT": 0.5, "RETRY_ON_TIMEOUT": retry_on_timeout}
    openai.add_fault("delay", seconds=2.0)
    generation = generate()

    run_worker()
    generation.refresh_from_db()
    attempts = attempts_of(generation)
    assert attempts[0].outcome == "timeout" and attempts[0].maybe_billed
    if retry_on_timeout:
        assert generation.status == Status.SUCCEEDED
        assert attempts[0].will_retry and len(attempts) == 2
        assert len(image_requests(openai)) == 2
    else:
        assert generation.status == Status.FAILED and generation.error_code == "timeout"
        assert not attempts[0].will_retry and len(attempts) == 1
        assert len(image_requests(openai)) == 1


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_queued_removes_the_job_and_sends_nothing(
    openai: Any, queue_mode: Any, run_worker: Any
) -> None:
    generation = generate()
    assert queue_mode.count == 1
    cancel_generation(generation)
    assert generation.status == Status.CANCELED and generation.error_code == "canceled"
    assert queue_mode.count == 0
    job = Job.fetch(jobs.job_id(generation.pk), connection=queue_mode.connection)
    assert job.get_status() == JobStatus.CANCELED

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert image_requests(openai) == []
    assert attempts_of(generation) == []


def test_cancel_while_waiting_for_a_retry_removes_the_scheduled_job(
    openai: Any, queue_mode: Any, rq_scheduler: Any, run_worker: Any, settings: Any
) -> None:
    # A backoff the running scheduler cannot reach before the cancel, however busy the machine.
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RETRY_BACKOFF_BASE": 20.0, "RETRY_BACKOFF_MAX": 40.0}
    openai.add_fault("server_error")
    generation = generate()
    run_one_job(queue_mode)
    registry = ScheduledJobRegistry(queue=queue_mode)
    assert registry.get_job_ids() == [jobs.job_id(generation.pk, 2)]
    cancel_generation(generation)
    assert registry.count == 0
    run_worker()
    assert len(image_requests(openai)) == 1


@pytest.mark.parametrize("keep", [True, False])
def test_cancel_running_keeps_or_discards_the_result(
    openai: Any, queue_mode: Any, settings: Any, run_worker: Any, keep: bool
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "KEEP_RESULT_AFTER_CANCEL": keep}
    openai.add_fault("delay", seconds=1.0)
    generation = generate()
    states: list[str] = []

    def cancel_once_sent() -> None:
        try:
            wait_for(lambda: image_requests(openai), what="the request to reach the API")
            record = ImageGeneration.objects.get(pk=generation.pk)
            states.append(record.status)
            cancel_generation(record)
        finally:
            connections.close_all()

    canceller = threading.Thread(target=cancel_once_sent)
    canceller.start()
    run_worker()
    canceller.join(10)
    assert states == [Status.RUNNING]

    generation.refresh_from_db()
    assert generation.status == Status.CANCELED and generation.error_code == "canceled"
    assert len(image_requests(openai)) == 1
    images = list(GeneratedImage.objects.filter(generation=generation))
    if keep:
        assert len(images) == 1 and get_storage().exists(images[0].file.name)
        assert "kept" in generation.error_message
    else:
        assert images == []
    assert generation.spool_dir == "" and "spooled" not in generation.metadata


# -- Redis down ------------------------------------------------------------------------------------


DEAD_REDIS = {"URL": "redis://127.0.0.1:1/0"}  # nothing listens there


def test_redis_down_at_request_refuses_before_anything_is_saved(
    queue_mode: Any, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_mode.name: DEAD_REDIS}
    started = time.monotonic()
    with pytest.raises(jobs.QueueUnavailable) as caught:
        generate()
    assert time.monotonic() - started < 15
    assert "not reachable" in str(caught.value) and "nothing was saved, sent or billed" in str(caught.value)
    assert not ImageGeneration.objects.exists()

    # Inside the caller's own transaction (ATOMIC_REQUESTS, an admin view, a save hook) the error
    # still arrives at the call, where it can be shown, and not at the outer commit as a 500.
    source = tmp_path / "in.png"
    Image.new("RGB", (1024, 1024), "teal").save(source)
    with transaction.atomic():
        with pytest.raises(jobs.QueueUnavailable):
            generate(images=[source], ratio="1:1")
        marker = ImageGeneration.objects.count()
    assert marker == 0 and not ImageGeneration.objects.exists()
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.png"))


def test_redis_lost_between_check_and_commit_leaves_a_record_the_reaper_enqueues(
    queue_mode: Any, settings: Any, run_worker: Any
) -> None:
    working = settings.RQ_QUEUES
    with transaction.atomic():
        generation = generate()  # Redis answered the check...
        settings.RQ_QUEUES = {**working, queue_mode.name: DEAD_REDIS}  # ...and is gone at commit
    # The commit went through without an exception; the record waits for the reconcile step.
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.attempts == 0
    assert queue_mode.connection.llen(queue_mode.key) == 0

    settings.RQ_QUEUES = working
    assert reap().reenqueued == []  # too fresh: an enqueue may still be on its way
    ImageGeneration.objects.filter(pk=generation.pk).update(
        updated_at=generation.updated_at - timedelta(minutes=5)
    )
    report = reap()
    assert report.reenqueued == [str(generation.pk)]
    assert queue_mode.get_job_ids() == [jobs.job_id(generation.pk)]
    assert reap().reenqueued == []  # it has a job now

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED


# -- progress --------------------------------------------------------------------------------------


class PacedOfflineProvider(OfflineProvider):
    """The offline provider, lingering in every phase so another thread can see it."""

    def generate(self, request: Any, *, spool_dir: str, progress: Any = None) -> Any:
        def paced(phase: str, data: dict[str, Any]) -> None:
            if progress is not None:
                progress(phase, data)
            time.sleep(PACE)

        return super().generate(request, spool_dir=spool_dir, progress=paced)


class SlowStorage(FileSystemStorage):
    def _save(self, name: str, content: Any) -> str:
        time.sleep(PACE)
        return super()._save(name, content)


def test_progress_phases_are_visible_from_another_thread(
    queue_mode: Any, settings: Any, run_worker: Any, tmp_path: Any
) -> None:
    settings.STORAGES = {**settings.STORAGES, "slow": {"BACKEND": f"{__name__}.SlowStorage"}}
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "PROVIDER": f"{__name__}.PacedOfflineProvider",
        "STORAGE": "slow",
    }
    generation = generate()
    seen: list[str] = []
    done = threading.Event()

    def observe() -> None:
        try:
            while not done.is_set():
                phase = ImageGeneration.objects.filter(pk=generation.pk).values_list("phase", flat=True).get()
                if not seen or seen[-1] != phase:
                    seen.append(phase)
                time.sleep(0.01)
        finally:
            connections.close_all()

    observer = threading.Thread(target=observe)
    observer.start()
    try:
        run_worker()
        wait_for(lambda: seen and seen[-1] == Phase.DONE, what="the done phase")
    finally:
        done.set()
        observer.join(10)
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    expected = [Phase.QUEUED, Phase.SENDING, Phase.WAITING, Phase.RECEIVING, Phase.STORING, Phase.DONE]
    assert seen == expected


def test_partial_previews_are_stored_while_streaming(openai: Any, settings: Any, run_worker: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PARTIAL_IMAGES": 2}
    generation = generate()
    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    [sent] = image_requests(openai)
    assert sent.json["stream"] is True and sent.json["partial_images"] == 2
    # Shown only while it runs (next test): the previews went with the end.
    assert generation.preview == ""
    previews = Path(settings.MEDIA_ROOT) / "gptimage" / "previews" / str(generation.pk)
    assert not [p for p in previews.rglob("*") if p.is_file()]
    assert generation.images.count() == 1


def test_a_partial_preview_is_visible_while_the_generation_runs(
    openai: Any, settings: Any, thread_worker: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PARTIAL_IMAGES": 2}
    openai.add_fault("delay", seconds=3, after=2)  # both partials come, then the final takes 3 s
    thread_worker(concurrency=1)
    generation = generate()

    def preview_while_running() -> ImageGeneration | None:
        current = ImageGeneration.objects.get(pk=generation.pk)
        return current if current.preview and current.status == Status.RUNNING else None

    running = wait_for(preview_while_running, 20, what="a preview while running")
    assert running.phase == Phase.RECEIVING
    assert running.preview.startswith(f"gptimage/previews/{generation.pk}/partial-")
    with get_storage().open(running.preview) as fh, Image.open(fh) as preview:
        assert preview.size == (generation.width, generation.height)
    wait_for(lambda: ImageGeneration.objects.get(pk=generation.pk).status == Status.SUCCEEDED, 20)


# -- what the threaded worker relies on ------------------------------------------------------------


class ConnectionCheckingProvider(OfflineProvider):
    """Records whether the calling thread still holds a DB connection while it waits."""

    held: list[bool] = []

    def generate(self, request: Any, *, spool_dir: str, progress: Any = None) -> Any:
        from django.db import connection

        def check(phase: str, data: dict[str, Any]) -> None:
            if progress is not None:
                progress(phase, data)
            if phase == "waiting":
                ConnectionCheckingProvider.held.append(connection.connection is not None)

        return super().generate(request, spool_dir=spool_dir, progress=check)


def test_no_db_connection_is_held_while_waiting_for_the_api(
    queue_mode: Any, settings: Any, run_worker: Any
) -> None:
    # One connection per job in flight would cap a threaded worker at max_connections.
    ConnectionCheckingProvider.held = []
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER": f"{__name__}.ConnectionCheckingProvider"}
    generation = generate()
    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert ConnectionCheckingProvider.held == [False]


@pytest.mark.django_db(transaction=False)
def test_enqueued_when_on_commit_callbacks_run_inside_a_test_transaction(
    queue_mode: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # TestCase-style tests run on-commit callbacks inside the test's transaction: the enqueue
    # must not be deferred a second time by django-rq (it would never happen).
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        generation = generate()
    assert len(callbacks) == 1
    assert queue_mode.get_job_ids() == [jobs.job_id(generation.pk)]


def test_the_thread_worker_keeps_job_heartbeats_short_and_fresh(
    queue_mode: Any, settings: Any, thread_worker: Any
) -> None:
    # RQ's SimpleWorker registers a running job for its whole timeout (+60 s) and never beats,
    # so a killed process's job would look alive for 16 minutes; ThreadWorker beats like the
    # forking worker: the entry expires job_monitoring_interval + 60 s after the last beat.
    from rq.registry import StartedJobRegistry

    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER_OPTIONS": {"delay": 3.5}}
    pool = thread_worker(concurrency=1, job_monitoring_interval=1)
    generation = generate()
    registry = StartedJobRegistry(queue=queue_mode)

    def expiry() -> float | None:
        scores = queue_mode.connection.zrange(registry.key, 0, -1, withscores=True)
        return scores[0][1] if scores else None

    first = wait_for(expiry, 10, what="the job to start")
    assert first - time.time() <= 62
    wait_for(lambda: (expiry() or 0) > first, 5, what="a job heartbeat")
    assert pool.in_flight() == 1
    wait_for(lambda: ImageGeneration.objects.get(pk=generation.pk).status == Status.SUCCEEDED, 15)
    wait_for(lambda: expiry() is None, 5, what="the finished job to leave the started registry")


def test_a_crashed_worker_thread_is_restarted(queue_mode: Any, monkeypatch: Any, thread_worker: Any) -> None:
    crashes: list[str] = []
    original = ThreadWorker.bootstrap

    def bootstrap_once_broken(self: ThreadWorker, *args: Any, **kwargs: Any) -> None:
        if not crashes:
            crashes.append(self.name)
            raise RuntimeError("simulated crash while starting")
        original(self, *args, **kwargs)

    monkeypatch.setattr(ThreadWorker, "bootstrap", bootstrap_once_broken)
    pool = thread_worker(concurrency=1)
    generation = generate()
    wait_for(lambda: ImageGeneration.objects.get(pk=generation.pk).status == Status.SUCCEEDED, 15)
    assert len(crashes) == 1
    [worker] = pool.workers
    assert worker.name == f"{crashes[0]}-1"  # a new name: the dead one may still be registered
