"""The job runner's guarantees that do not depend on one provider: RQ's job timeout, crashes in
a provider, and a claim lost to the reaper (a stalled worker must never overwrite an outcome)."""

from __future__ import annotations

from typing import Any

import pytest

from django_gptimage import jobs
from django_gptimage.jobs.reaper import reap
from django_gptimage.jobs.runner import run_generation
from django_gptimage.models import GeneratedImage, GenerationAttempt, ImageGeneration, Status
from django_gptimage.providers.offline import OfflineProvider
from django_gptimage.service import request_generation, retry_generation
from tests.conftest import run_burst

pytestmark = pytest.mark.django_db(transaction=True)


class CrashingProvider(OfflineProvider):
    """A (paid) provider with a bug: it fails after the request could have gone out."""

    billable = True
    calls = 0

    def generate(self, request: Any, *, spool_dir: str, progress: Any = None) -> Any:
        type(self).calls += 1
        if progress is not None:
            progress("waiting", {})
        raise KeyError("b64_json")


class ReapedMidCallProvider(OfflineProvider):
    """On its first call, while this 'worker' waits on the API, the reaper judges it dead and
    takes the record; later calls behave."""

    calls = 0

    def generate(self, request: Any, *, spool_dir: str, progress: Any = None) -> Any:
        type(self).calls += 1
        if type(self).calls == 1:
            reap(stale_after=-1)  # every running record counts as stale: this one is abandoned
        return super().generate(request, spool_dir=spool_dir, progress=progress)


def use_provider(settings: Any, path: str, **options: Any) -> None:
    from django_gptimage.providers import reset_providers

    ReapedMidCallProvider.calls = 0
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER": path, "PROVIDER_OPTIONS": options}
    reset_providers()


def test_rq_job_timeout_is_a_timeout_and_not_retried_by_default(queue_mode: Any, settings: Any) -> None:
    """A real RQ job timeout (SIGALRM in the work horse) while the provider is still working."""
    settings.GPTIMAGE = {**settings.GPTIMAGE, "JOB_TIMEOUT": 1, "MAX_ATTEMPTS": 3}
    use_provider(settings, "offline", delay=5)
    generation = request_generation(prompt="Takes longer than the job may")
    run_burst(queue_mode.name)
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert generation.error_code == "timeout"
    assert "JOB_TIMEOUT" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "timeout" and attempt.maybe_billed and not attempt.will_retry
    assert queue_mode.count == 0 and queue_mode.scheduled_job_registry.count == 0


def test_rq_job_timeout_is_retried_when_timeouts_are(
    queue_mode: Any, rq_scheduler: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "JOB_TIMEOUT": 1, "RETRY_ON_TIMEOUT": True}
    use_provider(settings, "offline", delay=5)
    generation = request_generation(prompt="Takes longer than the job may")
    run_burst(queue_mode.name)
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.error_code == "timeout"
    assert "Next attempt in" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.will_retry and attempt.maybe_billed
    # A scheduled retry (the scheduler may have moved it to the queue already).
    waiting = set(queue_mode.scheduled_job_registry.get_job_ids()) | set(queue_mode.get_job_ids())
    assert waiting == {jobs.job_id(generation.pk, 2)}


def test_a_crashing_provider_fails_once_maybe_billed_and_is_left_to_a_person(
    queue_mode: Any, settings: Any
) -> None:
    CrashingProvider.calls = 0
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 4}
    use_provider(settings, "tests.test_runner.CrashingProvider")
    generation = request_generation(prompt="Hits a bug")
    run_burst(queue_mode.name, with_scheduler=True)
    generation.refresh_from_db()
    assert CrashingProvider.calls == 1  # a bug is not retried on its own
    assert generation.status == Status.FAILED and generation.error_code == "provider_error"
    assert "unexpected KeyError" in generation.error_message
    assert "b64_json" not in generation.error_message  # exception text may carry anything
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.maybe_billed and not attempt.will_retry
    # A person may still decide to try again.
    retry_generation(generation)
    run_burst(queue_mode.name)
    assert CrashingProvider.calls == 2


def test_a_worker_that_lost_its_claim_never_overwrites_the_outcome(settings: Any) -> None:
    use_provider(settings, "tests.test_runner.ReapedMidCallProvider")
    generation = request_generation(prompt="Judged dead while it was only slow")  # sync mode
    generation.refresh_from_db()
    # The reaper's verdict stands: the late worker's images and success were not written over it.
    assert generation.status == Status.FAILED and generation.error_code == "abandoned"
    assert not GeneratedImage.objects.filter(generation=generation).exists()
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "abandoned" and attempt.finished_at is not None
    assert attempt.maybe_billed  # the late call did reach the provider: not forgotten
    assert ImageGeneration.objects.get(pk=generation.pk).worker == ""


def test_a_lost_claim_under_requeue_is_run_by_the_next_worker_only(
    queue_mode: Any, settings: Any, run_worker: Any
) -> None:
    """With REQUEUE_ABANDONED the record goes back to the queue; the stalled worker's late
    result must not turn it into a success behind the next worker's back."""
    settings.GPTIMAGE = {**settings.GPTIMAGE, "REQUEUE_ABANDONED": True, "MAX_ATTEMPTS": 3}
    use_provider(settings, "tests.test_runner.ReapedMidCallProvider")
    generation = request_generation(prompt="Taken over")
    run_generation(generation.pk)  # the first attempt (not a job): reaped mid-call, requeued
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.attempts == 1
    assert not GeneratedImage.objects.filter(generation=generation).exists()

    run_worker()  # the requeued attempt, once its backoff is over
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert generation.attempts == 2
    outcomes = list(
        GenerationAttempt.objects.filter(generation=generation)
        .order_by("number")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["abandoned", "succeeded"]


class MisconfiguredProvider(OfflineProvider):
    billable = True

    @classmethod
    def from_settings(cls) -> Any:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("GPTIMAGE['PROVIDER_OPTIONS'] lacks 'region'.")


def test_a_provider_that_cannot_be_built_is_a_configuration_error_not_billed(settings: Any) -> None:
    use_provider(settings, "tests.test_runner.MisconfiguredProvider")
    generation = request_generation(prompt="Never sent")
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "configuration_error"
    assert "lacks 'region'" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert not attempt.maybe_billed


def test_an_input_gone_from_storage_is_a_storage_error_before_anything_is_sent(
    queue_mode: Any, gptimage_openai: Any, tmp_path: Any, settings: Any
) -> None:
    from PIL import Image

    from django_gptimage.models import GenerationInput

    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    source = tmp_path / "photo.png"
    Image.new("RGB", (1024, 1024), "teal").save(source)
    generation = request_generation(prompt="Edit it", images=[source], ratio="1:1", quality="low")
    stored = GenerationInput.objects.get(generation=generation)
    stored.file.storage.delete(stored.file.name)  # lost between the request and the run
    run_burst(queue_mode.name)
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "storage_error"
    assert "reading the input images" in generation.error_message
    assert [r for r in gptimage_openai.requests if r.path.startswith("/v1/images/")] == []
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert not attempt.maybe_billed
