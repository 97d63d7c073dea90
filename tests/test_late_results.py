"""Late results: the reaper judged a slow worker dead, then its paid answer came back anyway.

A real worker pool (``thread_worker``) runs the generation against the loopback server, whose
``delay`` fault holds the answer back; the reaper runs in the middle, while the request is out.
The answer is kept when no newer attempt has started, and the credits end up charged exactly
once whatever the reaper had done with the reservation; a newer attempt's result is never
overwritten.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from django_gptimage.access import credits
from django_gptimage.conf import gptimage_settings
from django_gptimage.jobs.reaper import reap
from django_gptimage.jobs.runner import LATE_NOTE
from django_gptimage.models import GenerationAttempt, ImageGeneration, Phase, Status
from django_gptimage.service import request_generation
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(settings: Any, tmp_path: Path, gptimage_openai: Any, queue_mode: Any, django_user_model: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.GPTIMAGE = {**settings.GPTIMAGE, "SPOOL_DIR": str(tmp_path / "spool"), "CREDITS": True}
    editor = django_user_model.objects.create_user("editor", is_staff=True)
    editor.user_permissions.add(
        Permission.objects.get(content_type__app_label="django_gptimage", codename="generate")
    )
    editor = django_user_model.objects.get(pk=editor.pk)
    credits.grant(editor, 100)
    return editor


def image_requests(server: Any) -> int:
    return sum(1 for r in server.requests if r.path.startswith("/v1/images/"))


def state(generation: ImageGeneration) -> ImageGeneration:
    return ImageGeneration.objects.get(pk=generation.pk)


def waiting_on_the_api(generation: ImageGeneration) -> bool:
    g = state(generation)
    return g.status == Status.RUNNING and g.phase == Phase.WAITING


def kinds(user: Any) -> list[str]:
    return [e.kind for e in credits.ledger(user).order_by("pk")]


def spool_of(generation: ImageGeneration) -> str:
    return os.path.join(gptimage_settings.SPOOL_DIR, str(generation.pk))


def test_a_late_answer_after_the_reaper_ended_the_record_is_kept_and_charged_once(
    site: Any, gptimage_openai: Any, thread_worker: Any
) -> None:
    gptimage_openai.add_fault("delay", seconds=4)
    thread_worker(concurrency=1)
    generation = request_generation(prompt="A slow lighthouse", quality="low", n=2, user=site)
    wait_for(lambda: waiting_on_the_api(generation), 20, what="the request to be out")

    report = reap(stale_after=-1)  # the slow worker counts as dead: the record ends as abandoned
    assert report.abandoned == [str(generation.pk)]
    assert state(generation).status == Status.FAILED and kinds(site) == ["grant", "reserve", "refund"]

    wait_for(lambda: state(generation).status == Status.SUCCEEDED, 30, what="the late answer to be kept")
    generation = state(generation)
    assert generation.images.count() == 2 and generation.error_code == ""
    assert generation.metadata["late_result"]["reaped_as"] == "failed"
    assert image_requests(gptimage_openai) == 1
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "succeeded" and attempt.error_message == LATE_NOTE and attempt.maybe_billed
    # Refunded by the reaper, then charged the actual cost from the balance: once.
    assert kinds(site) == ["grant", "reserve", "refund", "capture"]
    cost = credits.credits_for_usd(generation.actual_cost)
    assert cost > 0
    assert credits.balance(site) == credits.Balance(Decimal(100) - cost, Decimal(0))
    assert credits.balance(site) == credits.ledger_balance(site)
    assert credits.settle(generation) == [] and not reap(stale_after=-1)
    assert kinds(site) == ["grant", "reserve", "refund", "capture"]
    assert not os.path.exists(spool_of(generation))


def test_a_late_answer_before_the_requeued_attempt_ran_saves_the_second_call(
    site: Any, settings: Any, gptimage_openai: Any, thread_worker: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REQUEUE_ABANDONED": True, "MAX_ATTEMPTS": 3}
    gptimage_openai.add_fault("delay", seconds=4)
    thread_worker(concurrency=1)  # busy with the slow attempt: the requeued one waits behind it
    generation = request_generation(prompt="A slow harbour", quality="low", user=site)
    wait_for(lambda: waiting_on_the_api(generation), 20, what="the request to be out")

    assert reap(stale_after=-1).requeued == [str(generation.pk)]
    assert state(generation).status == Status.QUEUED

    wait_for(lambda: state(generation).status == Status.SUCCEEDED, 30, what="the late answer to be kept")
    wait_for(lambda: not _queued_jobs(), 20, what="the requeued job to run")
    generation = state(generation)
    assert generation.attempts == 1 and generation.images.count() == 1
    assert generation.metadata["late_result"]["reaped_as"] == "queued"
    assert image_requests(gptimage_openai) == 1  # the requeued job found the record taken
    # The reservation was still held (a requeued record keeps it): captured as usual, once.
    assert kinds(site) == ["grant", "reserve", "capture"]
    assert credits.balance(site).reserved == 0
    assert credits.balance(site) == credits.ledger_balance(site)


def _queued_jobs() -> list[str]:
    """Generation jobs still queued, scheduled or running."""
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    from django_gptimage import jobs

    queue = jobs.get_queue()
    ids = queue.get_job_ids() + ScheduledJobRegistry(queue=queue).get_job_ids()
    ids += StartedJobRegistry(queue=queue).get_job_ids()
    return [i for i in ids if jobs.generation_id_of(i)]


def test_a_late_answer_never_overwrites_a_newer_attempt(
    site: Any, settings: Any, gptimage_openai: Any, thread_worker: Any
) -> None:
    settings.GPTIMAGE = {
        **settings.GPTIMAGE, "REQUEUE_ABANDONED": True, "MAX_ATTEMPTS": 3, "RETRY_BACKOFF_BASE": 0.5,
    }  # fmt: skip
    gptimage_openai.add_fault("delay", seconds=6)  # the first request only
    thread_worker(concurrency=2)  # a second thread is free to run the next attempt meanwhile
    generation = request_generation(prompt="A slow tram", quality="low", user=site)
    wait_for(lambda: waiting_on_the_api(generation), 20, what="the request to be out")
    first_spool = os.path.join(spool_of(generation), "attempt-1")

    assert reap(stale_after=-1).requeued == [str(generation.pk)]
    wait_for(lambda: state(generation).status == Status.SUCCEEDED, 30, what="the second attempt")
    second = state(generation)
    assert second.attempts == 2
    [image] = second.images.all()

    wait_for(lambda: image_requests(gptimage_openai) == 2 and not _queued_jobs(), 20, what="the late answer")
    wait_for(lambda: not os.path.exists(first_spool), 10, what="the late answer's spool to go")
    generation = state(generation)
    # The newer attempt's result stands: same images, same outcome, no late-result note.
    assert generation.status == Status.SUCCEEDED and generation.attempts == 2
    assert [i.pk for i in generation.images.all()] == [image.pk]
    assert "late_result" not in generation.metadata
    outcomes = list(
        GenerationAttempt.objects.filter(generation=generation)
        .order_by("number")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["abandoned", "succeeded"]
    assert kinds(site) == ["grant", "reserve", "capture"]
    assert credits.balance(site) == credits.ledger_balance(site)
