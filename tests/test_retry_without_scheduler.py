"""Retries when no RQ scheduler runs for the queue (django-rq's plain ``rqworker gptimage``).

A scheduled job is moved to the queue only by a process that runs RQ's scheduler; without one,
a retry must still run (queued at once, waiting in the worker until due), an overdue scheduled
retry left by a dead scheduler is queued by whoever notices, and ``gptimage_generate --wait``
says why when nothing can run it. Real Redis, real RQ workers, the loopback OpenAI server.
"""

from __future__ import annotations

import io
import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from django_gptimage import jobs
from django_gptimage.jobs.reaper import reap
from django_gptimage.models import GenerationAttempt, ImageGeneration, Status
from django_gptimage.service import cancel_generation, request_generation, why_waiting, workers_listening
from tests.conftest import run_burst, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def openai(queue_mode: Any, gptimage_openai: Any, settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return gptimage_openai


def generate(**kwargs: Any) -> ImageGeneration:
    kwargs.setdefault("prompt", "A lighthouse at dusk, poster style")
    kwargs.setdefault("quality", "low")
    return request_generation(**kwargs)


def attempts_of(generation: ImageGeneration) -> list[GenerationAttempt]:
    return list(GenerationAttempt.objects.filter(generation=generation).order_by("number"))


def image_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/images/")]


def waiting_job(queue: Any, generation: ImageGeneration) -> None:
    """Until the retry's job has been taken by a worker (and waits there)."""
    from rq.registry import StartedJobRegistry

    retry = jobs.job_id(generation.pk, 2)
    wait_for(lambda: retry in StartedJobRegistry(queue=queue).get_job_ids(), 15, what="the waiting retry")


def lock(queue: Any, ttl_ms: int) -> None:
    queue.connection.set(f"rq:scheduler-lock:{queue.name}", "some-scheduler", px=ttl_ms)


def test_a_live_scheduler_is_told_from_a_lingering_lock(queue_mode: Any) -> None:
    assert not jobs.scheduler_running(queue_mode)  # no lock at all
    lock(queue_mode, 61_000)  # just set or refreshed, as a live scheduler keeps it
    assert jobs.scheduler_running(queue_mode)
    lock(queue_mode, 20_000)  # not refreshed for 40 s: the scheduler's process died
    assert not jobs.scheduler_running(queue_mode)


def test_without_a_scheduler_a_retry_is_queued_at_once_and_waits_until_due(
    openai: Any, queue_mode: Any, settings: Any
) -> None:
    openai.add_fault("rate_limited", retry_after=1.5)
    generation = generate()

    started = time.monotonic()
    run_burst(queue_mode.name)  # no scheduler anywhere: this one burst runs both attempts
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_message
    first, second = attempts_of(generation)
    assert first.outcome == "rate_limited" and first.will_retry and first.retry_after == 1.5
    assert second.started_at - first.finished_at >= timedelta(seconds=1.5)  # never early
    assert time.monotonic() - started < 15
    assert len(image_requests(openai)) == 2
    assert ScheduledJobRegistry(queue=queue_mode).count == 0
    # The waiting job was given the wait on top of JOB_TIMEOUT, so the attempt keeps its time.
    retry = Job.fetch(jobs.job_id(generation.pk, 2), connection=queue_mode.connection)
    assert retry.timeout == settings.GPTIMAGE.get("JOB_TIMEOUT", 900) + 2 + 5


def test_with_a_live_scheduler_the_retry_takes_no_worker_until_due(
    openai: Any, queue_mode: Any, rq_scheduler: Any
) -> None:
    openai.add_fault("rate_limited", retry_after=3)
    generation = generate()
    run_burst(queue_mode.name)  # the first attempt; the retry is a scheduled job
    assert ScheduledJobRegistry(queue=queue_mode).get_job_ids() == [jobs.job_id(generation.pk, 2)]
    assert queue_mode.count == 0
    wait_for(lambda: queue_mode.count == 1, 10, what="the scheduler to move the due retry")
    run_burst(queue_mode.name)
    assert ImageGeneration.objects.get(pk=generation.pk).status == Status.SUCCEEDED


def test_a_waiting_retry_is_canceled_without_a_call(openai: Any, queue_mode: Any, thread_worker: Any) -> None:
    openai.add_fault("rate_limited", retry_after=30)
    pool = thread_worker(concurrency=1, with_scheduler=False)
    generation = generate()
    waiting_job(queue_mode, generation)
    cancel_generation(generation)
    wait_for(lambda: pool.in_flight() == 0, 5, what="the waiting job to notice the cancel")
    assert ImageGeneration.objects.get(pk=generation.pk).status == Status.CANCELED
    assert len(image_requests(openai)) == 1


def test_a_waiting_retry_is_handed_on_when_its_worker_stops(
    openai: Any, queue_mode: Any, thread_worker: Any
) -> None:
    openai.add_fault("rate_limited", retry_after=30)
    pool = thread_worker(concurrency=1, with_scheduler=False)
    generation = generate()
    waiting_job(queue_mode, generation)
    stopping = time.monotonic()
    pool.request_stop()
    wait_for(lambda: pool.alive() == 0, 10, what="the warm stop (not held up by the 30 s wait)")
    assert time.monotonic() - stopping < 10
    [handed_on] = [j for j in queue_mode.get_job_ids() if jobs.generation_id_of(j) == str(generation.pk)]
    assert handed_on.startswith(jobs.job_id(generation.pk, 2) + "-")
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.next_attempt_at > timezone.now()
    assert len(image_requests(openai)) == 1
    cancel_generation(generation)  # its job is found under the new id
    assert queue_mode.count == 0


def test_an_overdue_scheduled_retry_is_queued_by_the_reaper_and_by_any_job(
    openai: Any, queue_mode: Any, rq_scheduler: Any, settings: Any
) -> None:
    # Backoffs the scheduler cannot reach before it is stopped, however busy the machine.
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RETRY_BACKOFF_BASE": 20.0, "RETRY_BACKOFF_MAX": 40.0}
    openai.add_fault("server_error", times=2)
    first, second = generate(prompt="First"), generate(prompt="Second")
    run_burst(queue_mode.name)  # both fail once; their retries are scheduled
    rq_scheduler.request_stop()  # the scheduler's process is gone...
    rq_scheduler._process.join(10)
    registry = ScheduledJobRegistry(queue=queue_mode)
    assert set(registry.get_job_ids()) == {jobs.job_id(first.pk, 2), jobs.job_id(second.pk, 2)}
    lock(queue_mode, 20_000)  # ...and its lock lingers, as after a SIGKILL
    overdue = time.time() - jobs.OVERDUE_GRACE - 1  # as if the backoffs had ended half a minute ago
    ImageGeneration.objects.filter(pk__in=[first.pk, second.pk]).update(
        next_attempt_at=timezone.now() - timedelta(seconds=jobs.OVERDUE_GRACE + 1)
    )
    queue_mode.connection.zadd(registry.key, {jobs.job_id(first.pk, 2): overdue})

    report = reap()
    assert report.overdue == [str(first.pk)]
    assert queue_mode.get_job_ids() == [jobs.job_id(first.pk, 2)]
    assert registry.get_job_ids() == [jobs.job_id(second.pk, 2)]

    # The next job that runs (here first's retry) queues any other overdue retry.
    queue_mode.connection.zadd(registry.key, {jobs.job_id(second.pk, 2): overdue})
    started = time.monotonic()
    run_burst(queue_mode.name)
    assert registry.count == 0
    assert time.monotonic() - started < 10  # nothing waited for a backoff
    for generation in (first, second):
        assert ImageGeneration.objects.get(pk=generation.pk).status == Status.SUCCEEDED


def test_why_waiting_names_what_to_start(queue_mode: Any, settings: Any) -> None:
    generation = request_generation(prompt="Nobody works this queue")
    assert why_waiting(generation) is None  # just queued: nothing to say yet
    ImageGeneration.objects.filter(pk=generation.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    generation.refresh_from_db()
    problem = why_waiting(generation)
    assert problem is not None
    assert f"no worker is listening on queue {queue_mode.name!r}" in problem
    assert "manage.py gptimage_worker" in problem and "--with-scheduler" in problem


def test_why_waiting_names_a_missing_scheduler(queue_mode: Any, thread_worker: Any) -> None:
    generation = request_generation(prompt="Its retry waits for a scheduler")
    queue_mode.remove(jobs.job_id(generation.pk))
    ImageGeneration.objects.filter(pk=generation.pk).update(
        attempts=1, next_attempt_at=timezone.now() - timedelta(seconds=20)
    )
    queue_mode.enqueue_at(
        timezone.now() - timedelta(seconds=20), jobs.run_job, str(generation.pk),
        job_id=jobs.job_id(generation.pk, 2),
    )  # fmt: skip
    thread_worker(concurrency=1, with_scheduler=False)
    wait_for(workers_listening, 10, what="the worker to register")
    generation.refresh_from_db()
    problem = why_waiting(generation)
    assert problem is not None and "no RQ scheduler runs" in problem, problem
    assert re.search(r"Its retry was due 2\d s ago", problem), problem


def test_generate_wait_on_a_429_without_a_scheduler_finishes(
    openai: Any, queue_mode: Any, thread_worker: Any, settings: Any
) -> None:
    thread_worker(concurrency=1, with_scheduler=False)
    openai.add_fault("rate_limited", retry_after=1)
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    call_command(
        "gptimage_generate", "--prompt", "A harbour", "--quality", "low", "--wait", "--timeout", "60", "--json",
        stdout=out, stderr=err,
    )  # fmt: skip
    record = json.loads(out.getvalue())
    assert record["status"] == "succeeded" and record["attempts"] == 2, err.getvalue()
    assert time.monotonic() - started < 30


def test_generate_wait_says_why_nothing_runs(queue_mode: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command(
            "gptimage_generate", "--prompt", "Nobody listens", "--wait", "--timeout", "7", "--json",
            stdout=out, stderr=err,
        )  # fmt: skip
    assert exit_.value.code == 1
    assert json.loads(out.getvalue())["status"] == "queued"
    warning = err.getvalue()
    assert f"no worker is listening on queue {queue_mode.name!r}" in warning
    assert warning.count("no worker is listening") == 1  # said once, not every poll
    assert "--sync" in warning
