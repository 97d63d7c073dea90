"""The service API every entry point uses: admin, widget, save hooks, CLI and your own code.

    generation = request_generation(prompt="…", ratio="16:9", tier="2K", user=request.user)

validates the whole request before anything is sent (raising :class:`GenerationRefused` with
every problem), records it, keeps its input images in storage, and dispatches it: as an RQ job
after the surrounding transaction commits (``RUN_MODE = "queue"``), or in the calling process
(``RUN_MODE = "sync"``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from django_gptimage.access import admission
from django_gptimage.access.resolver import Access, as_access
from django_gptimage.access.rules import access_problems
from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.errors import ErrorCode, RetryRule, error_info
from django_gptimage.domain.pricing import estimate_cost
from django_gptimage.domain.validation import GenerationRequest, Problem, ValidatedRequest, validate
from django_gptimage.inputs import InspectedUpload, spool_upload
from django_gptimage.jobs.queue import QueueUnavailable
from django_gptimage.jobs.reaper import ReapReport, reap
from django_gptimage.jobs.runner import RunOutcome, run_generation
from django_gptimage.models import GenerationInput, ImageGeneration, Phase, Status
from django_gptimage.storage import input_name, save_file

logger = logging.getLogger("django_gptimage")

__all__ = [
    "GenerationNotRetryable",
    "GenerationRefused",
    "NamedUpload",
    "QueueUnavailable",
    "ReapReport",
    "RunOutcome",
    "access_for",
    "allowed_tiers_for",
    "build_request",
    "cancel_generation",
    "check_request",
    "dispatch",
    "reap",
    "request_generation",
    "retry_generation",
    "run_sync",
    "workers_listening",
]

Upload = str | os.PathLike[str] | IO[bytes]


class GenerationRefused(Exception):
    """Refused before sending: nothing was sent and nothing billed. ``problems`` says why."""

    def __init__(self, problems: Sequence[Problem], code: ErrorCode = ErrorCode.INVALID_PARAMETERS) -> None:
        self.problems = list(problems)
        self.code = code
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))

    def as_dict(self) -> dict[str, list[str]]:
        """Field -> messages, the shape Django forms and JSON views use."""
        out: dict[str, list[str]] = {}
        for p in self.problems:
            out.setdefault(p.field, []).append(p.message)
        return out


class GenerationNotRetryable(Exception):
    pass


@dataclass(frozen=True)
class NamedUpload:
    """An input image with the name to show editors (``name``) and its bytes (``source``)."""

    name: str
    source: Upload


def _as_named(upload: Upload | NamedUpload, index: int, role: str) -> NamedUpload:
    if isinstance(upload, NamedUpload):
        return upload
    if isinstance(upload, str | os.PathLike):
        return NamedUpload(os.path.basename(os.fspath(upload)), upload)
    return NamedUpload(os.path.basename(getattr(upload, "name", "") or f"{role}-{index}"), upload)


def access_for(user: Any) -> Access | None:
    """What ``user`` has unlocked, from ``GPTIMAGE["ACCESS_RESOLVER"]`` (None = no limit)."""
    path = gptimage_settings.ACCESS_RESOLVER
    if not path:
        return None
    resolver = import_string(path) if isinstance(path, str) else path
    return as_access(resolver(user))


def allowed_tiers_for(user: Any) -> tuple[str, ...] | None:
    """Tiers ``user`` has unlocked (None = no limit beyond the site policy)."""
    access = access_for(user)
    return None if access is None else access.tiers


def build_request(
    *,
    prompt: str,
    model: str | None = None,
    mode: str | None = None,
    ratio: str | None = None,
    tier: str | None = None,
    size: str | None = None,
    quality: str | None = None,
    output_format: str | None = None,
    background: str | None = None,
    output_compression: int | None = None,
    n: int = 1,
    images: Sequence[InspectedUpload] = (),
    mask: InspectedUpload | None = None,
) -> GenerationRequest:
    s = gptimage_settings
    return GenerationRequest(
        prompt=prompt,
        model=model or s.MODEL,
        mode=mode or ("image-to-image" if images else "text-to-image"),
        ratio=None if size else (ratio or s.DEFAULT_RATIO),
        tier=None if size else (tier or s.DEFAULT_TIER),
        size=size,
        quality=quality or s.DEFAULT_QUALITY,
        output_format=output_format or s.DEFAULT_FORMAT,
        background=background or s.DEFAULT_BACKGROUND,
        output_compression=output_compression,
        n=n,
        images=tuple(i.info for i in images),
        mask=mask.info if mask else None,
    )


def check_request(request: GenerationRequest, *, user: Any = None) -> ValidatedRequest:
    """Validate against the model, the site's policy and the user's access; raise if refused.

    Also refuses (before anything is recorded) what the user's plan quota, the spend caps or
    the user's credits cannot cover; the reservation itself is made by request_generation().
    """
    site = gptimage_settings.policy
    access = access_for(user)
    result = validate(request, site if access is None else access.narrow(site))
    problems = result.problems if access is None else access_problems(request, result.problems, access, site)
    if problems or result.validated is None:
        code = ErrorCode.INVALID_PARAMETERS
        if all(p.code == "access_denied" for p in problems):
            code = ErrorCode.ACCESS_DENIED
        raise GenerationRefused(problems, code)
    admission.check(result.validated, user=user, access=access)
    return result.validated


def request_generation(
    *,
    prompt: str,
    user: Any = None,
    source: str = "api",
    model: str | None = None,
    mode: str | None = None,
    ratio: str | None = None,
    tier: str | None = None,
    size: str | None = None,
    quality: str | None = None,
    output_format: str | None = None,
    background: str | None = None,
    output_compression: int | None = None,
    n: int = 1,
    images: Iterable[Upload | NamedUpload] = (),
    mask: Upload | NamedUpload | None = None,
    metadata: dict[str, Any] | None = None,
    run_mode: str | None = None,
) -> ImageGeneration:
    """Validate, record and dispatch one generation. Raises GenerationRefused before sending."""
    scratch = tempfile.mkdtemp(prefix="gptimage-upload-")
    try:
        uploads = [_as_named(u, i, "image") for i, u in enumerate(images)]
        inspected = [spool_upload(u.name, u.source, scratch, f"image-{i}") for i, u in enumerate(uploads)]
        inspected_mask = None
        if mask is not None:
            named = _as_named(mask, 0, "mask")
            inspected_mask = spool_upload(named.name, named.source, scratch, "mask")
        request = build_request(
            prompt=prompt, model=model, mode=mode, ratio=ratio, tier=tier, size=size, quality=quality,
            output_format=output_format, background=background, output_compression=output_compression,
            n=n, images=inspected, mask=inspected_mask,
        )  # fmt: skip
        validated = check_request(request, user=user)
        _ensure_queue_reachable(run_mode)  # before anything is saved: a clear error, no stranded record
        with transaction.atomic():
            generation = _create_record(validated, user=user, source=source, metadata=metadata or {})
            for index, upload in enumerate(inspected):
                _save_input(generation, upload, GenerationInput.ROLE_IMAGE, index)
            if inspected_mask is not None:
                _save_input(generation, inspected_mask, GenerationInput.ROLE_MASK, 0)
            dispatch(generation, run_mode=run_mode)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if (run_mode or gptimage_settings.RUN_MODE) == "sync":
        generation.refresh_from_db()
    return generation


def _create_record(
    validated: ValidatedRequest, *, user: Any, source: str, metadata: dict[str, Any]
) -> ImageGeneration:
    r = validated.request
    return ImageGeneration.objects.create(
        requested_by=user if getattr(user, "is_authenticated", False) else None,
        source=source,
        provider=gptimage_settings.PROVIDER,
        model=r.model,
        mode=r.mode,
        ratio=validated.ratio,
        tier=validated.tier,
        size=validated.size,
        width=validated.width,
        height=validated.height,
        quality=r.quality,
        output_format=r.output_format,
        output_compression=r.output_compression,
        background=r.background,
        n=r.n,
        prompt=r.prompt,
        estimated_cost=estimate_cost(
            model=r.model,
            quality=r.quality,
            width=validated.width,
            height=validated.height,
            n=r.n,
            prompt_chars=len(r.prompt),
            input_image_pixels=tuple(i.width * i.height for i in r.images),
            overrides=gptimage_settings.PRICES,
        ),
        metadata=metadata,
    )


def _save_input(generation: ImageGeneration, upload: InspectedUpload, role: str, index: int) -> None:
    info = upload.info
    name = save_file(
        upload.path,
        input_name(generation, role=role, index=index, fmt=info.format or ""),
        info.format or "png",
    )
    GenerationInput.objects.create(
        generation=generation, role=role, index=index, file=name, original_name=info.name[:255],
        format=info.format or "", width=info.width, height=info.height, size_bytes=info.size_bytes,
        sha256=upload.sha256,
    )  # fmt: skip


def _ensure_queue_reachable(run_mode: str | None) -> None:
    """In queue mode, raise QueueUnavailable unless Redis answers (sync mode needs no queue)."""
    if (run_mode or gptimage_settings.RUN_MODE) != "sync":
        from django_gptimage import jobs

        jobs.ensure_reachable()


def workers_listening() -> bool | None:
    """Whether any RQ worker listens on the generation queue (None: Redis did not answer)."""
    from redis.exceptions import RedisError
    from rq import Worker

    from django_gptimage import jobs

    try:
        queue = jobs.get_queue()
        return any(queue.name in w.queue_names() for w in Worker.all(connection=queue.connection))
    except RedisError:
        return None


def dispatch(generation: ImageGeneration, *, run_mode: str | None = None) -> None:
    """Start the generation: as a job after commit, or right away in this process."""
    mode = run_mode or gptimage_settings.RUN_MODE
    if mode == "sync":
        transaction.on_commit(lambda: run_sync(generation.pk))
    else:
        from django_gptimage import jobs

        jobs.enqueue_on_commit(generation.pk)


def run_sync(generation_id: Any, *, max_wait: float | None = None) -> RunOutcome:
    """Run in this process, sleeping between retries (for sync mode, scripts and tests)."""
    outcome = run_generation(generation_id)
    while outcome.retry_in is not None:
        if max_wait is not None and outcome.retry_in > max_wait:
            break
        time.sleep(outcome.retry_in)
        outcome = run_generation(generation_id)
    return outcome


def cancel_generation(generation: ImageGeneration) -> ImageGeneration:
    """Cancel: a queued one never runs; a running one finishes its call and keeps or drops the result."""
    now = timezone.now()
    # Flag first, in one statement for both states: a record that moves from running back to
    # queued (a retry being scheduled) in between is still caught, by the claim if not here.
    ImageGeneration.objects.filter(pk=generation.pk, status__in=(Status.QUEUED, Status.RUNNING)).update(
        cancel_requested=True
    )
    ImageGeneration.objects.filter(pk=generation.pk, status=Status.QUEUED).update(
        status=Status.CANCELED, phase=Phase.DONE, error_code=ErrorCode.CANCELED,
        error_message=error_info(ErrorCode.CANCELED).message, finished_at=now, next_attempt_at=None,
    )  # fmt: skip
    generation.refresh_from_db()
    if generation.status == Status.CANCELED and gptimage_settings.RUN_MODE == "queue":
        from django_gptimage import jobs

        jobs.remove_queued(generation.pk)
    return generation


def retry_generation(generation: ImageGeneration, *, run_mode: str | None = None) -> ImageGeneration:
    """Try a failed generation again on the same record.

    A storage failure only stores the kept bytes again; other failures call the provider again
    when their retry rule allows it (never for moderation, quota, bad keys or bad input).
    """
    generation.refresh_from_db()
    if generation.status != Status.FAILED:
        raise GenerationNotRetryable(
            f"Only failed generations can be retried (this one is {generation.status})."
        )
    rule = error_info(generation.error_code).retry if generation.error_code else RetryRule.NEVER
    if rule is RetryRule.NEVER:
        raise GenerationNotRetryable(error_info(generation.error_code).message)
    _ensure_queue_reachable(run_mode)
    # The last attempt's error stays on its GenerationAttempt row; the record starts afresh.
    updated = ImageGeneration.objects.filter(pk=generation.pk, status=Status.FAILED).update(
        status=Status.QUEUED, phase=Phase.QUEUED, finished_at=None, next_attempt_at=None, cancel_requested=False,
        error_code="", error_message="", updated_at=timezone.now(),
    )  # fmt: skip
    if updated:
        with transaction.atomic():
            dispatch(generation, run_mode=run_mode)
    generation.refresh_from_db()
    return generation
