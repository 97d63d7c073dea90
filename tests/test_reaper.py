"""The reaper: abandoned workers, lost jobs, and its own periodic job (real Redis and RQ)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from django_gptimage import jobs
from django_gptimage.jobs.reaper import REAPER_JOB_ID, reap, schedule_reaper
from django_gptimage.jobs.runner import claim
from django_gptimage.models import GenerationAttempt, ImageGeneration, Status
from django_gptimage.service import request_generation
from tests.conftest import run_burst, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def running_record(*, heartbeat_age: float) -> ImageGeneration:
    """A record as a worker leaves it when it dies mid-call: claimed, attempt open, no job."""
    generation = request_generation(prompt="A lighthouse at dusk")
    jobs.get_queue().empty()  # the worker had taken the job
    generation = claim(generation.pk, "dead-host:1:1")
    assert generation is not None
    GenerationAttempt.objects.create(
        generation=generation, number=1, started_at=generation.started_at, worker="dead-host:1:1"
    )
    ImageGeneration.objects.filter(pk=generation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age)
    )
    generation.refresh_from_db()
    return generation


def test_a_stale_heartbeat_is_abandoned_and_the_attempt_closed(queue_mode: Any) -> None:
    generation = running_record(heartbeat_age=600)
    report = reap()
    assert report.abandoned == [str(generation.pk)] and report.requeued == []
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "abandoned"
    assert generation.finished_at is not None and generation.worker == ""
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.finished_at is not None and attempt.outcome == "abandoned"
    assert attempt.maybe_billed and not attempt.will_retry
    assert queue_mode.count == 0 and ScheduledJobRegistry(queue=queue_mode).count == 0
    assert not reap()  # nothing left to do


def test_requeue_abandoned_runs_it_again(queue_mode: Any, settings: Any, run_worker: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REQUEUE_ABANDONED": True}
    generation = running_record(heartbeat_age=600)
    report = reap()
    assert report.requeued == [str(generation.pk)] and report.abandoned == []
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.error_code == "abandoned"
    assert "billed twice" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "abandoned" and attempt.maybe_billed and attempt.will_retry

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED and generation.error_code == ""
    assert [
        a.outcome for a in GenerationAttempt.objects.filter(generation=generation).order_by("number")
    ] == [
        "abandoned",
        "succeeded",
    ]


def test_a_fresh_heartbeat_is_left_alone(queue_mode: Any) -> None:
    generation = running_record(heartbeat_age=5)
    assert not reap()  # STALE_AFTER is 120 s
    assert not reap(stale_after=60)
    generation.refresh_from_db()
    assert generation.status == Status.RUNNING
    assert GenerationAttempt.objects.get(generation=generation).finished_at is None
    assert reap(stale_after=1).abandoned == [str(generation.pk)]


@pytest.mark.parametrize("requeue", [False, True])
def test_dry_run_changes_nothing(queue_mode: Any, settings: Any, requeue: bool) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REQUEUE_ABANDONED": requeue}
    stale = running_record(heartbeat_age=600)
    orphan = request_generation(prompt="An orphan")
    jobs.get_queue().empty()
    ImageGeneration.objects.filter(pk=orphan.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    before = {g.pk: (g.status, g.updated_at, g.heartbeat_at) for g in ImageGeneration.objects.all()}

    report = reap(dry_run=True)
    assert (report.requeued if requeue else report.abandoned) == [str(stale.pk)]
    assert report.reenqueued == [str(orphan.pk)]
    after = {g.pk: (g.status, g.updated_at, g.heartbeat_at) for g in ImageGeneration.objects.all()}
    assert after == before
    assert GenerationAttempt.objects.get(generation=stale).finished_at is None
    assert queue_mode.count == 0 and ScheduledJobRegistry(queue=queue_mode).count == 0


def test_orphans_are_reenqueued_once_and_only_when_due(queue_mode: Any, run_worker: Any) -> None:
    old = timezone.now() - timedelta(minutes=5)
    orphan = request_generation(prompt="Lost its job")
    has_job = request_generation(prompt="Still queued")
    not_due = request_generation(prompt="Retry later")
    for lost in (orphan, not_due):  # as if Redis had lost them
        Job.fetch(jobs.job_id(lost.pk), connection=queue_mode.connection).delete()
    ImageGeneration.objects.filter(pk__in=[orphan.pk, has_job.pk, not_due.pk]).update(updated_at=old)
    ImageGeneration.objects.filter(pk=not_due.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))

    report = reap()
    assert report.reenqueued == [str(orphan.pk)]
    assert sorted(queue_mode.get_job_ids()) == sorted([jobs.job_id(has_job.pk), jobs.job_id(orphan.pk)])
    assert reap().reenqueued == []  # it has a job now (and was just touched)

    ImageGeneration.objects.filter(pk=not_due.pk).update(next_attempt_at=None)
    run_worker()
    for generation, status in (
        (orphan, Status.SUCCEEDED),
        (has_job, Status.SUCCEEDED),
        (not_due, Status.QUEUED),
    ):
        generation.refresh_from_db()
        assert generation.status == status


def test_the_periodic_reaper_job_reschedules_itself(queue_mode: Any, settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REAP_INTERVAL": 1}
    registry = ScheduledJobRegistry(queue=queue_mode)
    first = schedule_reaper()
    assert first is not None and first.startswith(REAPER_JOB_ID)
    assert schedule_reaper() is None  # one chain, however many workers start
    assert registry.get_job_ids() == [first]

    stale = running_record(heartbeat_age=600)
    seen = [first]
    for _ in range(2):  # each run schedules the next one
        time.sleep(1.1)  # until it is due
        worker = run_burst(queue_mode.name, with_scheduler=True)
        assert worker.successful_job_count == 1
        current = wait_for(registry.get_job_ids, what="the next reaper run")
        assert len(current) == 1 and current[0].startswith(REAPER_JOB_ID) and current[0] not in seen
        seen.append(current[0])
    stale.refresh_from_db()
    assert stale.status == Status.FAILED and stale.error_code == "abandoned"


def test_the_reaper_chain_survives_a_failing_run(queue_mode: Any, settings: Any, monkeypatch: Any) -> None:
    from django_gptimage.jobs import reaper

    settings.GPTIMAGE = {**settings.GPTIMAGE, "REAP_INTERVAL": 1}
    registry = ScheduledJobRegistry(queue=queue_mode)

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the database is away")

    monkeypatch.setattr(reaper, "reap", broken)
    with pytest.raises(RuntimeError):
        reaper.reap_job()
    [next_run] = registry.get_job_ids()
    assert next_run.startswith(REAPER_JOB_ID)


def test_a_due_reaper_run_jumps_the_generation_backlog(queue_mode: Any, settings: Any) -> None:
    from rq.scheduler import RQScheduler

    backlog = [request_generation(prompt=f"Backlog {i}") for i in range(3)]
    assert queue_mode.count == len(backlog)
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REAP_INTERVAL": 1}
    reaper_id = schedule_reaper()
    time.sleep(1.1)
    scheduler = RQScheduler([queue_mode], connection=queue_mode.connection)
    scheduler.acquire_locks()
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()
    assert queue_mode.get_job_ids()[0] == reaper_id
    assert queue_mode.count == len(backlog) + 1


def test_the_reap_command_reports_and_acts(queue_mode: Any) -> None:
    import io

    from django.core.management import call_command

    stale = running_record(heartbeat_age=600)
    fresh = running_record(heartbeat_age=5)

    out = io.StringIO()
    call_command("gptimage_reap", "--dry-run", stdout=out)
    assert out.getvalue().strip() == f"{stale.pk}: would be abandoned"
    assert ImageGeneration.objects.get(pk=stale.pk).status == Status.RUNNING

    out = io.StringIO()
    call_command("gptimage_reap", "--stale-after", "1", stdout=out)
    assert set(out.getvalue().split("\n")) >= {f"{stale.pk}: abandoned", f"{fresh.pk}: abandoned"}
    assert set(ImageGeneration.objects.values_list("status", flat=True)) == {Status.FAILED}

    out = io.StringIO()
    call_command("gptimage_reap", stdout=out)
    assert out.getvalue().strip() == "Nothing to reap."


def test_a_record_killed_while_storing_is_stored_again_not_abandoned(
    queue_mode: Any, run_worker: Any
) -> None:
    """The images had come back (and are in the spool) when the worker died: store them,
    REQUEUE_ABANDONED or not, and say that nothing is billed twice."""
    from django_gptimage.jobs.runner import _provider_request
    from django_gptimage.models import GeneratedImage
    from django_gptimage.providers import get_provider

    generation = running_record(heartbeat_age=600)
    spool = f"{generation.pk}-spool"
    import os

    from django_gptimage.conf import gptimage_settings

    spool_dir = os.path.join(gptimage_settings.SPOOL_DIR, spool)
    result = get_provider("offline").generate(_provider_request(generation), spool_dir=spool_dir)
    spooled = [
        {"index": f.index, "path": f.path, "sha256": f.sha256, "size_bytes": f.size_bytes}
        for f in result.files
    ]
    ImageGeneration.objects.filter(pk=generation.pk).update(
        metadata={"spooled": spooled}, spool_dir=spool_dir
    )

    report = reap()
    assert report.requeued == [str(generation.pk)] and report.abandoned == []
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and "saved again" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "abandoned" and attempt.maybe_billed  # billed once; stored, not bought again

    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    [image] = GeneratedImage.objects.filter(generation=generation)
    assert image.sha256 == spooled[0]["sha256"]
