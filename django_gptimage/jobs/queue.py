"""RQ glue: the job payload is the record id only, enqueued after the transaction commits.

No prompt, image or key ever goes to Redis. Retries are scheduled by the runner's decision
(``RunOutcome.retry_in``) with ``enqueue_in``, which needs a worker with a scheduler
(``rqworker --with-scheduler`` or ``gptimage_worker``); the reaper also re-enqueues any due
record that lost its job, so nothing waits forever if Redis was down.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction

from django_gptimage.conf import gptimage_settings

logger = logging.getLogger("django_gptimage")


JOB_PREFIX = "gptimage-"


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
    """Put the job on the queue now (or in ``delay`` seconds). Raises QueueUnavailable."""
    from redis.exceptions import RedisError

    queue = get_queue()
    kwargs = {"job_id": job_id(generation_id, attempt), "job_timeout": gptimage_settings.JOB_TIMEOUT,
              "description": f"gptimage generation {generation_id}", "result_ttl": 3600, "failure_ttl": 7 * 86400}  # fmt: skip
    try:
        if delay:
            queue.enqueue_at(_due_at(delay), run_job, str(generation_id), **kwargs)
        else:
            queue.enqueue(run_job, str(generation_id), **kwargs)
    except RedisError as exc:
        logger.error("gptimage could not enqueue %s: %s", generation_id, exc.__class__.__name__)
        raise QueueUnavailable() from None


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

    Retries are enqueued under ``<id>-<attempt>`` ids, so every possible id is looked at.
    """
    from redis.exceptions import RedisError
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job

    queue = get_queue()
    keys = [job_id(generation_id)]
    keys += [job_id(generation_id, n) for n in range(2, gptimage_settings.MAX_ATTEMPTS + 2)]
    keys += [job_id(generation_id, suffix) for suffix in ("w0", "w1")]  # waits for the rate limit
    try:
        for key in keys:
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
    from django_gptimage.jobs.runner import run_generation

    outcome = run_generation(generation_id)
    if outcome.retry_in is not None:
        # If Redis is gone the record stays queued with next_attempt_at; the reaper re-enqueues it.
        with contextlib.suppress(QueueUnavailable):
            attempt = outcome.job_suffix or outcome.generation.attempts + 1
            enqueue(generation_id, delay=outcome.retry_in, attempt=attempt)
    return outcome.generation.status
