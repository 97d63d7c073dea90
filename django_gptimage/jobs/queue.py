"""RQ glue: the job payload is the record id only, enqueued after the transaction commits.

No prompt, image or key ever goes to Redis. A retry (the runner's ``RunOutcome.retry_in``)
works with or without an RQ scheduler:

- while a scheduler runs for the queue (``gptimage_worker``, ``rqworker --with-scheduler``),
  the retry is a scheduled job (``enqueue_at``) that takes no worker until it is due;
- without one (django-rq's plain ``rqworker gptimage``), a scheduled job would wait forever,
  so the retry is queued at once with a job timeout longer by the wait, and the worker that
  takes it waits until it is due (handing it on to a new job if its worker is asked to stop);
- a scheduled retry overdue by ``OVERDUE_GRACE`` (its scheduler died) is queued by whatever
  runs next: any generation job, the reaper, ``gptimage_worker``'s monitor
  (:func:`enqueue_overdue`).

The reaper also re-enqueues any due record that lost its job, so nothing waits forever if
Redis was down.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction

from django_gptimage.conf import gptimage_settings

logger = logging.getLogger("django_gptimage")


JOB_PREFIX = "gptimage-"
# RQ's scheduler moves due jobs every second (its default interval): a job of ours overdue by
# this much in the scheduled registry has no live scheduler and is queued by anyone who notices.
OVERDUE_GRACE = 30.0
# RQ's scheduler lock (``rq:scheduler-lock:<queue>``) is set for interval + 60 s and refreshed
# every interval (1 s by default): a lock with less left than this was not refreshed lately.
LIVE_LOCK_TTL = 45.0


class QueueUnavailable(Exception):
    """Redis could not be reached when a generation was about to be queued: nothing started."""

    message = (
        "The background queue is not reachable right now, so the generation was not started "
        "(nothing was saved, sent or billed). Try again in a moment; if this goes on, an "
        "administrator should check the site's Redis."
    )

    def __init__(self) -> None:
        super().__init__(self.message)


def job_id(generation_id: Any, attempt: int | str | None = None) -> str:
    # RQ accepts only letters, digits, "_" and "-" in job ids.
    return f"{JOB_PREFIX}{generation_id}" + (f"-{attempt}" if attempt else "")


def generation_id_of(job_id: str) -> str | None:
    """The record id a job id of ours carries (a UUID is 36 characters), else None."""
    if not job_id.startswith(JOB_PREFIX):
        return None
    candidate = job_id[len(JOB_PREFIX) : len(JOB_PREFIX) + 36]
    return candidate if len(candidate) == 36 and candidate.count("-") == 4 else None


def get_queue() -> Any:
    import django_rq

    # commit_mode="auto": enqueue() already runs after the commit (enqueue_on_commit). With
    # django-rq's default "on_db_commit" a call inside any atomic block (a test case, an
    # on_commit callback run by captureOnCommitCallbacks) is deferred again and may never
    # happen, and a Redis failure would not reach the caller as QueueUnavailable.
    return django_rq.get_queue(
        gptimage_settings.QUEUE, default_timeout=gptimage_settings.JOB_TIMEOUT, commit_mode="auto"
    )


def enqueue(generation_id: Any, *, delay: float | None = None, attempt: int | str | None = None) -> None:
    """Put the job on the queue now (or in ``delay`` seconds). Raises QueueUnavailable.

    With a delay and no live RQ scheduler for the queue, the job is queued at once and waits
    in the worker that takes it (see the module's docstring).
    """
    from redis.exceptions import RedisError

    queue = get_queue()
    kwargs: dict[str, Any] = {"job_id": job_id(generation_id, attempt), "job_timeout": gptimage_settings.JOB_TIMEOUT,
              "description": f"gptimage generation {generation_id}", "result_ttl": 3600, "failure_ttl": 7 * 86400}  # fmt: skip
    try:
        if delay and scheduler_running(queue):
            queue.enqueue_at(_due_at(delay), run_job, str(generation_id), **kwargs)
        elif delay:
            logger.info(
                "gptimage: no RQ scheduler runs for queue %s; the retry of %s waits %.0f s in a worker",
                queue.name,
                generation_id,
                delay,
            )
            kwargs["job_timeout"] = gptimage_settings.JOB_TIMEOUT + math.ceil(delay) + 5
            kwargs["description"] += f" (waits {delay:.0f} s: no RQ scheduler)"
            queue.enqueue(run_job, str(generation_id), **kwargs)
        else:
            queue.enqueue(run_job, str(generation_id), **kwargs)
    except RedisError as exc:
        logger.error("gptimage could not enqueue %s: %s", generation_id, exc.__class__.__name__)
        raise QueueUnavailable() from None


def scheduler_running(queue: Any = None) -> bool:
    """Whether a live RQ scheduler holds the queue's lock (so a scheduled job will be moved).

    A scheduler refreshes its lock every second; the lock of one that was killed lingers for
    up to a minute, so a lock that has not been refreshed lately counts as no scheduler.
    Raises RedisError when Redis does not answer.
    """
    from rq.scheduler import RQScheduler

    queue = queue if queue is not None else get_queue()
    ttl = queue.connection.pttl(RQScheduler.get_locking_key(queue.name))
    return ttl is not None and ttl / 1000.0 >= LIVE_LOCK_TTL


def enqueue_overdue(queue: Any = None, *, grace: float = OVERDUE_GRACE) -> list[str]:
    """Queue our scheduled jobs (retries, the reaper) that are overdue by ``grace`` seconds.

    RQ moves a scheduled job only in a process that runs its scheduler; when that process
    died (or the site runs only plain ``rqworker``), nobody would. Taking a job out of the
    scheduled registry (ZREM) is the claim, so two processes never both queue it; should RQ's
    own scheduler queue it at the same moment, the record's claim still runs it once.
    Returns the job ids queued. Raises RedisError when Redis does not answer.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    from django_gptimage.jobs.reaper import REAPER_JOB_ID

    queue = queue if queue is not None else get_queue()
    registry = ScheduledJobRegistry(queue=queue)
    conn = queue.connection
    moved: list[str] = []
    for raw in conn.zrangebyscore(registry.key, 0, time.time() - grace):
        job_id_ = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not (generation_id_of(job_id_) or job_id_.startswith(REAPER_JOB_ID)):
            continue  # another application's job on a shared queue: not ours to move
        if not conn.zrem(registry.key, job_id_):
            continue  # someone else moved it
        try:
            job = Job.fetch(job_id_, connection=conn, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        queue.enqueue_job(job, at_front=job.should_enqueue_at_front())
        moved.append(job_id_)
    if moved:
        logger.warning(
            "gptimage: %d scheduled job(s) on %s were overdue (no RQ scheduler ran): queued them",
            len(moved),
            queue.name,
        )
    return moved


def _due_at(delay: float) -> datetime:
    """now + delay, rounded up to a whole second: RQ's scheduled registry keeps whole seconds
    (it truncates), which would run a retry up to a second before a Retry-After allows."""
    due = datetime.now(UTC) + timedelta(seconds=delay)
    return due.replace(microsecond=0) + timedelta(seconds=1) if due.microsecond else due


def ensure_reachable() -> None:
    """Raise QueueUnavailable unless the queue's Redis answers.

    Called before a record is created or re-queued, so the caller gets the error where it can
    show it, even inside its own transaction (an exception from an on_commit callback would
    only surface at the outermost commit, as a server error).
    """
    from redis.exceptions import RedisError

    try:
        get_queue().connection.ping()
    except RedisError as exc:
        logger.error("gptimage queue %s unreachable: %s", gptimage_settings.QUEUE, exc.__class__.__name__)
        raise QueueUnavailable() from None


def enqueue_on_commit(generation_id: Any) -> None:
    """Enqueue once the surrounding transaction commits (a rolled-back save never starts a job).

    Never raises: if Redis went away since :func:`ensure_reachable`, the record stays queued
    and the reaper's orphan scan enqueues it once Redis answers again.
    """

    def enqueue_now() -> None:
        try:
            enqueue(generation_id)
        except QueueUnavailable:
            logger.warning("gptimage %s stays queued until the reaper can enqueue it", generation_id)

    transaction.on_commit(enqueue_now)


def remove_queued(generation_id: Any) -> None:
    """Best effort: drop a canceled record's waiting jobs (claim() ignores them anyway).

    Retries and rate-limit waits are enqueued under ``<id>-<suffix>`` ids: every job of the
    record that is queued or scheduled is looked at.
    """
    from redis.exceptions import RedisError
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    pk = str(generation_id)
    try:
        queue = get_queue()
        candidates = set(queue.get_job_ids()) | set(ScheduledJobRegistry(queue=queue).get_job_ids())
        for key in sorted(k for k in candidates if generation_id_of(k) == pk):
            try:
                job = Job.fetch(key, connection=queue.connection)
            except NoSuchJobError:
                continue
            if job.get_status() in ("queued", "scheduled", "deferred"):
                with contextlib.suppress(InvalidJobOperation):
                    job.cancel()
    except RedisError:
        logger.warning("gptimage could not remove job of %s from the queue", generation_id)


def run_job(generation_id: str) -> str:
    """The RQ job: run one attempt, schedule the next one if the runner asks for it."""
    from redis.exceptions import RedisError

    from django_gptimage.jobs import liveness
    from django_gptimage.jobs.runner import run_generation

    try:
        if not _wait_until_due(generation_id):
            return "queued"  # its worker is stopping: handed on to a new job
    except liveness.JobStopped:
        _stopped_while_queued(generation_id)
        raise  # RQ marks the job stopped (and never retries it)
    outcome = run_generation(generation_id)
    deadline = liveness.current()
    if deadline is not None and deadline.stop_requested and outcome.generation.status == "canceled":
        raise liveness.JobStopped(f"job for {generation_id} was stopped (RQ stop-job command)")
    if outcome.retry_in is not None:
        # If Redis is gone the record stays queued with next_attempt_at; the reaper re-enqueues it.
        with contextlib.suppress(QueueUnavailable):
            attempt = outcome.job_suffix or outcome.generation.attempts + 1
            enqueue(generation_id, delay=outcome.retry_in, attempt=attempt)
    with contextlib.suppress(RedisError):
        enqueue_overdue()  # retries a dead scheduler left behind; one ZRANGEBYSCORE when none
    return outcome.generation.status


def _wait_until_due(generation_id: str) -> bool:
    """In an RQ job: wait until the record's next attempt is due (a retry queued without a
    scheduler). False when the job's worker was asked to stop meanwhile: the wait is handed on
    to a new job then, so a warm stop is not held up by a retry's backoff.

    Waits at most what the job's timeout grants beyond ``JOB_TIMEOUT``.
    """
    from django.db import close_old_connections, connection
    from django.utils import timezone
    from rq import get_current_job

    from django_gptimage.jobs import liveness
    from django_gptimage.models import ImageGeneration, Status

    job = get_current_job()
    if job is None:
        return True
    budget = max(0.0, float(job.timeout or 0) - gptimage_settings.JOB_TIMEOUT)
    deadline = time.monotonic() + budget
    while True:
        row = (
            ImageGeneration.objects.filter(pk=generation_id)
            .values("status", "next_attempt_at", "cancel_requested", "attempts")
            .first()
        )
        if row is None or row["status"] != Status.QUEUED or row["cancel_requested"]:
            return True
        due = row["next_attempt_at"]
        # To the due time itself (claim() allows a scheduled job to be up to 2 s early, for RQ's
        # whole-second schedule): a Retry-After is never cut short here.
        wait = (due - timezone.now()).total_seconds() if due else 0.0
        if wait <= 0:
            return True
        if time.monotonic() >= deadline or _worker_stopping(job):
            attempt = f"{row['attempts'] + 1}-{uuid.uuid4().hex[:6]}"
            with contextlib.suppress(QueueUnavailable):  # else the reaper's orphan scan does it
                enqueue(generation_id, delay=wait, attempt=attempt)
            return False
        liveness.check()  # a stop-job command ends the wait
        if not connection.in_atomic_block:
            close_old_connections()
            connection.close()  # hold no DB connection while waiting
        time.sleep(min(1.0, wait))


def _stopped_while_queued(generation_id: str) -> None:
    """RQ's stop-job reached a job that waited for its retry: the record ends as canceled."""
    from django.utils import timezone

    from django_gptimage.domain.errors import ErrorCode
    from django_gptimage.domain.messages import part
    from django_gptimage.models import ImageGeneration, Phase, Status

    ImageGeneration.objects.filter(pk=generation_id, status=Status.QUEUED).update(
        status=Status.CANCELED, phase=Phase.DONE, error_code=ErrorCode.CANCELED, next_attempt_at=None,
        error_detail=[part("stopped_by_rq")],
        finished_at=timezone.now(), updated_at=timezone.now(),
    )  # fmt: skip


def _worker_stopping(job: Any) -> bool:
    """Whether the job's worker was asked for a warm stop (RQ records it on the worker)."""
    from redis.exceptions import RedisError

    if not getattr(job, "worker_name", None):
        return False
    try:
        return bool(job.connection.hexists(f"rq:worker:{job.worker_name}", "shutdown_requested_date"))
    except RedisError:
        return False
