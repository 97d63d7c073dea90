"""Nothing stays ``running`` or ``queued`` forever.

- A ``running`` record whose worker stopped sending heartbeats (SIGKILL, OOM, a deploy) ends
  as ``abandoned``, or goes back to the queue when ``REQUEUE_ABANDONED`` is set (the provider
  may have billed the lost call: the attempt is marked ``maybe_billed``).
- A due ``queued`` record without a job in Redis (Redis was down at enqueue time, or a
  scheduled retry was lost) is enqueued again.
- A scheduled retry overdue because no RQ scheduler moved it (the scheduling process died)
  is queued (:func:`django_gptimage.jobs.enqueue_overdue`).

Run it periodically: ``gptimage_worker`` schedules :func:`reap_job` itself; otherwise use
``manage.py gptimage_reap --loop 60`` or cron ``manage.py gptimage_reap``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from django_gptimage.access import credits
from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.messages import part
from django_gptimage.domain.retry import retry_delay
from django_gptimage.jobs import leftovers
from django_gptimage.jobs.runner import retry_options
from django_gptimage.models import GenerationAttempt, ImageGeneration, Phase, Status

logger = logging.getLogger("django_gptimage")
REAPER_JOB_ID = "gptimage_reaper"
ORPHAN_GRACE = timedelta(seconds=30)  # on_commit enqueue happens right after the insert


@dataclass
class ReapReport:
    abandoned: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    reenqueued: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # scheduled retries no scheduler moved
    settled: list[str] = field(default_factory=list)  # finished generations whose credits were still held
    cleaned: list[str] = field(
        default_factory=list
    )  # leftovers removed: "spool <id>", "staged <id>", "previews <id>"

    def __bool__(self) -> bool:
        return bool(
            self.abandoned or self.requeued or self.reenqueued or self.overdue or self.settled or self.cleaned
        )


SWEEP_EVERY = 600.0  # seconds between two sweeps for leftovers in one process (listing storage costs)
_last_sweep = 0.0


def reap(*, stale_after: float | None = None, dry_run: bool = False, sweep: bool | None = None) -> ReapReport:
    """One pass; ``sweep``: look for leftovers too (None: when the last sweep here is
    ``SWEEP_EVERY`` seconds old, and on the first pass of a process)."""
    report = ReapReport()
    now = timezone.now()
    stale = now - timedelta(seconds=stale_after if stale_after is not None else gptimage_settings.STALE_AFTER)
    running = ImageGeneration.objects.filter(status=Status.RUNNING).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )
    for generation in running:
        _abandon(generation, report, dry_run=dry_run)
    if gptimage_settings.RUN_MODE == "queue":
        _reenqueue_orphans(now, report, dry_run=dry_run)
    if not dry_run:
        # Reservations of generations that ended without settling (a worker killed at the wrong
        # moment, a record deleted in flight): captured or refunded now, by the same rules.
        report.settled = credits.settle_finished()
    report.cleaned = _sweep(sweep, dry_run=dry_run)
    if report:
        logger.warning("gptimage reaper: %s", report)
    return report


def _sweep(wanted: bool | None, *, dry_run: bool) -> list[str]:
    global _last_sweep
    now = time.monotonic()
    if wanted is False or (wanted is None and _last_sweep and now - _last_sweep < SWEEP_EVERY):
        return []
    _last_sweep = now
    try:
        return leftovers.sweep(dry_run=dry_run)
    except Exception:  # noqa: BLE001 - a storage that cannot be listed must not stop the reaping
        logger.warning("gptimage reaper: the sweep for leftovers failed", exc_info=True)
        return []


def _abandon(generation: ImageGeneration, report: ReapReport, *, dry_run: bool) -> None:
    # Images that came back before the worker died are kept in the spool: storing them again is
    # free and bills nothing twice, so that is retried whatever REQUEUE_ABANDONED says.
    store_only = bool(generation.metadata.get("spooled"))
    preview = generation.preview
    code = ErrorCode.STORAGE_ERROR if store_only else ErrorCode.ABANDONED
    delay = retry_delay(code, generation.attempts, retry_options())
    if store_only and delay is not None:
        delay = 0.0  # nothing to back off from: the worker died, not the storage (as far as we know)
    if dry_run:
        (report.requeued if delay is not None else report.abandoned).append(str(generation.pk))
        return
    now = timezone.now()
    # The facts; the words (the abandoned message and what happens next) are chosen when shown.
    if store_only:
        # Its code is storage_error (what a retry does): the fact says what really happened.
        detail = [
            part("worker_stopped"),
            part("abandoned_kept_requeued" if delay is not None else "abandoned_kept"),
        ]
    elif delay is not None:
        detail = [part("abandoned_requeued")]
    else:
        detail = []
    fields: dict[str, Any] = {"worker": "", "phase": Phase.DONE, "error_detail": detail}
    if delay is None:  # its previews go with the end (no longer shown); not its spool, see below
        fields.update(status=Status.FAILED, error_code=code, finished_at=now, preview="")
    else:
        fields.update(
            status=Status.QUEUED, phase=Phase.QUEUED, error_code=ErrorCode.ABANDONED,
            next_attempt_at=now + timedelta(seconds=delay),
        )  # fmt: skip
    # Conditional on the heartbeat we judged, so a worker that just came back keeps its record
    # (and its attempt, which is only closed once the record is really taken away).
    with transaction.atomic():  # the record and its open attempt change together
        updated = ImageGeneration.objects.filter(
            pk=generation.pk, status=Status.RUNNING, heartbeat_at=generation.heartbeat_at
        ).update(**fields, updated_at=now)
        if not updated:
            return
        # The lost call may have been charged; with images in the spool it certainly was (once).
        GenerationAttempt.objects.filter(generation=generation, finished_at__isnull=True).update(
            finished_at=now, outcome=ErrorCode.ABANDONED, error_detail=[], maybe_billed=True,
            will_retry=delay is not None,
        )  # fmt: skip
        if delay is None:  # finished: its reservation is settled with it (a requeued one keeps it)
            generation.refresh_from_db()
            credits.settle(generation)
    if delay is None:
        # The spool stays: the worker may only be slow, and its late answer is still kept
        # (runner._adopt_late). The sweep removes it once CLEANUP_AFTER has passed.
        with contextlib.suppress(Exception):
            leftovers.remove_previews(generation.pk, extra=preview)
        report.abandoned.append(str(generation.pk))
        return
    report.requeued.append(str(generation.pk))
    if gptimage_settings.RUN_MODE == "queue":
        # Enqueue the next attempt now, under a new job id: the dead worker's job may sit in
        # RQ's started registry for a while, which would hide this record from the orphan scan.
        from django_gptimage import jobs

        with contextlib.suppress(jobs.QueueUnavailable):  # the orphan scan retries later
            jobs.enqueue(generation.pk, delay=delay, attempt=generation.attempts + 1)


def _reenqueue_orphans(now: Any, report: ReapReport, *, dry_run: bool) -> None:
    from redis.exceptions import RedisError

    from django_gptimage import jobs

    due = ImageGeneration.objects.filter(
        status=Status.QUEUED, cancel_requested=False, updated_at__lt=now - ORPHAN_GRACE
    )
    due = due.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    try:
        queue = jobs.get_queue()
        if not dry_run:
            for job_id in jobs.enqueue_overdue(queue):
                if pk := jobs.generation_id_of(job_id):
                    report.overdue.append(pk)
        active = _active_generation_ids(queue)
    except RedisError:
        logger.warning("gptimage reaper: Redis is unreachable; orphaned queued records are left for later")
        return
    for generation in due.only("pk", "attempts"):
        if str(generation.pk) in active:
            continue
        if not dry_run:
            try:
                jobs.enqueue(generation.pk, attempt=generation.attempts + 1 if generation.attempts else None)
            except jobs.QueueUnavailable:
                return
            ImageGeneration.objects.filter(pk=generation.pk).update(updated_at=timezone.now())
        report.reenqueued.append(str(generation.pk))


def _active_generation_ids(queue: Any) -> set[str]:
    """Record ids that have a job queued, scheduled or started in RQ."""
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    job_ids = set(queue.get_job_ids())
    job_ids |= set(ScheduledJobRegistry(queue=queue).get_job_ids())
    job_ids |= set(StartedJobRegistry(queue=queue).get_job_ids())
    from django_gptimage.jobs import generation_id_of

    return {pk for pk in map(generation_id_of, job_ids) if pk}


def reap_job() -> str:
    """The periodic RQ job: reap, then schedule the next run (even if this one failed)."""
    try:
        return repr(reap())
    finally:
        schedule_reaper()


def schedule_reaper(interval: float | None = None) -> str | None:
    """Schedule :func:`reap_job` on the gptimage queue unless a run is already scheduled.

    Every run gets its own job id: re-using one fixed id from inside the running job let RQ
    delete the freshly scheduled job when the running one finished (``result_ttl=0`` deletes
    the job hash under that id), so the periodic reaper stopped after its first run. Checking
    for a scheduled run first keeps one chain even when many workers start.
    Returns the new job id, or None when a run was already scheduled.

    The job goes to the front of the queue when it is due, so a backlog of generations does
    not delay the reaping of records whose worker died. ``gptimage_worker`` calls this every
    half minute too, so the chain restarts after a failure or a Redis that lost its data.
    """
    from rq.registry import ScheduledJobRegistry

    from django_gptimage import jobs

    queue = jobs.get_queue()
    registry = ScheduledJobRegistry(queue=queue)
    if any(True for _ in queue.connection.zscan_iter(registry.key, match=f"{REAPER_JOB_ID}*")):
        return None
    interval = interval or gptimage_settings.REAP_INTERVAL
    job = queue.enqueue_in(
        timedelta(seconds=interval),
        reap_job,
        job_id=f"{REAPER_JOB_ID}-{uuid.uuid4().hex}",
        description="gptimage reaper",
        at_front=True,
        result_ttl=0,
        failure_ttl=3600,
    )
    return job.id
