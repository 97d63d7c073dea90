"""The one job runner: claim a queued record, call the provider, keep the bytes, store, record.

``run_generation`` is what an RQ job (or the synchronous mode) executes. It never raises for
a provider, storage or response failure: every outcome ends up on the record, and the caller
gets back whether (and when) another attempt should be scheduled.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from rq.timeouts import BaseTimeoutException as JobTimeout  # raised into a job past JOB_TIMEOUT

from django_gptimage.access import credits
from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.capabilities import get_capabilities
from django_gptimage.domain.errors import ErrorCode, RetryRule, error_info
from django_gptimage.domain.messages import TEMPLATES, Part, part, said
from django_gptimage.domain.pricing import actual_cost
from django_gptimage.domain.retry import RetryOptions, retry_delay
from django_gptimage.jobs import leftovers, liveness, ratelimit, staging
from django_gptimage.jobs.liveness import JobStopped
from django_gptimage.models import GeneratedImage, GenerationAttempt, ImageGeneration, Phase, Status
from django_gptimage.providers import InputFile, ProviderError, ProviderRequest, ProviderResult, get_provider
from django_gptimage.storage import ImageCheckError, check_image, holds_copy, result_name, save_file
from django_gptimage.upload_paths import templates_problem

logger = logging.getLogger("django_gptimage")

HEARTBEAT_INTERVAL = 15.0
SCHEDULE_SKEW = timedelta(seconds=2)
# What an attempt whose late answer was kept says (rendered from the "late_result" template).
LATE_NOTE = TEMPLATES["late_result"].text
PROGRESS_PHASES = {"sending": Phase.SENDING, "waiting": Phase.WAITING, "receiving": Phase.RECEIVING}


@dataclass
class RunOutcome:
    generation: ImageGeneration
    retry_in: float | None = None  # seconds until the next attempt; None when nothing is left to do
    job_suffix: str | None = None  # id suffix of the next job, when not the attempt number


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def retry_options() -> RetryOptions:
    s = gptimage_settings
    return RetryOptions(
        max_attempts=s.MAX_ATTEMPTS,
        backoff_base=s.RETRY_BACKOFF_BASE,
        backoff_max=s.RETRY_BACKOFF_MAX,
        retry_on_timeout=s.RETRY_ON_TIMEOUT,
        requeue_abandoned=s.REQUEUE_ABANDONED,
        retry_after_max=s.RETRY_AFTER_MAX,
    )


class _Heartbeat:
    """One thread per process marks the in-flight records as alive, in a single UPDATE.

    Each record is beaten only until its own job's deadline plus ``LIVENESS_GRACE``: a job
    stuck where no timeout reaches it (a hung storage write) stops looking alive, so the
    reaper settles its record instead of it staying ``running`` forever.
    """

    def __init__(self) -> None:
        self._until: dict[Any, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, pk: Any, *, until: float | None = None) -> None:
        """Beat ``pk`` until the monotonic time ``until`` (default: a whole JOB_TIMEOUT from now)."""
        if until is None:
            until = time.monotonic() + gptimage_settings.JOB_TIMEOUT + liveness.LIVENESS_GRACE
        with self._lock:
            self._until[pk] = until
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gptimage-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, pk: Any) -> None:
        with self._lock:
            self._until.pop(pk, None)

    def alive_ids(self) -> list[Any]:
        now = time.monotonic()
        with self._lock:
            stuck = [pk for pk, until in self._until.items() if until <= now]
            for pk in stuck:
                logger.error(
                    "gptimage %s: its job is past its timeout and still running (stuck); "
                    "no more heartbeats, the reaper will settle it",
                    pk,
                )
                del self._until[pk]
            return list(self._until)

    def _run(self) -> None:
        event = threading.Event()
        while not event.wait(HEARTBEAT_INTERVAL):
            ids = self.alive_ids()
            if not ids:
                continue
            try:
                ImageGeneration.objects.filter(pk__in=ids, status=Status.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
            except Exception:  # noqa: BLE001 - a missed beat is not fatal
                logger.warning("gptimage heartbeat failed", exc_info=True)
            finally:
                connection.close()


heartbeat = _Heartbeat()


class ClaimLost(Exception):
    """The record is no longer ours: the reaper judged this worker dead and took it back.

    Every write after :func:`claim` is conditional on the claim (running, this worker, this
    attempt), so a worker that was only stalled can never overwrite the outcome another one
    recorded, or run a record twice at once.
    """


def _update(generation: ImageGeneration, **fields: Any) -> None:
    """Write ``fields`` if the claim still holds; raise ClaimLost otherwise."""
    worker, attempts = generation.worker, generation.attempts  # the claim, before any change
    fields["updated_at"] = timezone.now()
    updated = ImageGeneration.objects.filter(
        pk=generation.pk, status=Status.RUNNING, worker=worker, attempts=attempts
    ).update(**fields)
    if not updated:
        raise ClaimLost(generation.pk)
    for name, value in fields.items():
        setattr(generation, name, value)


def claim(generation_id: Any, worker: str) -> ImageGeneration | None:
    """Atomically move a due, queued record to running; None if someone else has it (or it is done)."""
    now = timezone.now()
    canceled = ImageGeneration.objects.filter(pk=generation_id, status=Status.QUEUED, cancel_requested=True).update(
        status=Status.CANCELED, phase=Phase.DONE, error_code=ErrorCode.CANCELED, finished_at=now,
        error_detail=[],
    )  # fmt: skip
    if canceled:
        credits.settle(ImageGeneration.objects.get(pk=generation_id))
    claimed = (
        ImageGeneration.objects.filter(pk=generation_id, status=Status.QUEUED, cancel_requested=False)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + SCHEDULE_SKEW))
        .update(
            status=Status.RUNNING,
            phase=Phase.SENDING,
            started_at=Coalesce(F("started_at"), now),
            attempts=F("attempts") + 1,
            worker=worker,
            heartbeat_at=now,
            next_attempt_at=None,
        )
    )
    return ImageGeneration.objects.get(pk=generation_id) if claimed else None


def run_generation(generation_id: Any, *, worker: str | None = None) -> RunOutcome:
    if not connection.in_atomic_block:  # inside a transaction (tests, callers) it would drop it
        close_old_connections()
    worker = worker or worker_name()
    # The claim and its attempt row in one transaction: a worker killed between the two would
    # leave a running record whose history lacks the attempt the reaper then has to close.
    with transaction.atomic():
        generation = claim(generation_id, worker)
        if generation is not None:
            attempt = GenerationAttempt.objects.create(
                generation=generation, number=generation.attempts, started_at=timezone.now(), worker=worker
            )
    if generation is None:
        return RunOutcome(ImageGeneration.objects.get(pk=generation_id))
    deadline = liveness.current()
    heartbeat.add(generation.pk, until=deadline.at + liveness.LIVENESS_GRACE if deadline else None)
    try:
        if generation.metadata.get("spooled"):
            # The provider already delivered (and billed) these images: only store them.
            return _ended(_store(generation, attempt, generation.metadata["spooled"]))
        return _ended(_call_provider(generation, attempt))
    except ClaimLost:
        logger.warning(
            "gptimage %s was taken over while this worker ran it (judged dead); this attempt's outcome is dropped",
            generation.pk,
        )
        # This attempt's spool goes, unless the record points at it (images recorded before the
        # claim was lost: the store-only retry the reaper scheduled needs them).
        own = _spool_dir_of(generation.pk, attempt.number)
        if not ImageGeneration.objects.filter(pk=generation.pk, spool_dir=own).exists():
            shutil.rmtree(own, ignore_errors=True)
        # The reaper closed this attempt (and judged its billing) when it took the record: only
        # an attempt it has not seen yet is closed here.
        GenerationAttempt.objects.filter(pk=attempt.pk, finished_at__isnull=True).update(
            finished_at=timezone.now(), outcome=ErrorCode.ABANDONED, maybe_billed=True,
            error_detail=[part("taken_over")],
        )  # fmt: skip
        return RunOutcome(ImageGeneration.objects.filter(pk=generation.pk).first() or generation)
    finally:
        heartbeat.discard(generation.pk)


def _spool_dir_of(generation_id: Any, attempt_number: int) -> str:
    return os.path.join(gptimage_settings.SPOOL_DIR, str(generation_id), f"attempt-{attempt_number}")


def _ended(outcome: RunOutcome) -> RunOutcome:
    """A save hook's generation that ended: its follow-up (apply, look again) runs here."""
    generation = outcome.generation
    if outcome.retry_in is None and generation.is_finished and (generation.metadata or {}).get("hook"):
        from django_gptimage.hooks import generation_finished

        generation_finished(generation)
    return outcome


def _provider_request(generation: ImageGeneration) -> ProviderRequest:
    def to_file(inp: Any) -> InputFile:
        return InputFile(
            inp.original_name or os.path.basename(inp.file.name), _local_path(inp), _content_type(inp.format)
        )

    inputs = list(generation.inputs.all())
    images = tuple(to_file(i) for i in inputs if i.role == "image")
    masks = [to_file(i) for i in inputs if i.role == "mask"]
    return ProviderRequest(
        model=generation.model,
        prompt=generation.prompt,
        mode=generation.mode,
        size=generation.size,
        quality=generation.quality,
        output_format=generation.output_format,
        background=generation.background,
        output_compression=generation.output_compression,
        n=generation.n,
        images=images,
        mask=masks[0] if masks else None,
        user=f"django-user-{generation.requested_by_id}" if generation.requested_by_id else None,
        partial_images=_partial_images(generation.model),
    )


def _partial_images(model: str) -> int:
    """``PARTIAL_IMAGES``, at most what the model streams (a catalog entry may allow fewer)."""
    caps = get_capabilities(model)
    wanted = gptimage_settings.PARTIAL_IMAGES
    return min(wanted, caps.max_partial_images) if caps is not None else wanted


def _content_type(fmt: str) -> str:
    return {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}.get(
        fmt, "application/octet-stream"
    )


def _local_path(inp: Any) -> str:
    """A local path for an input file, copying it out of remote storage into the spool if needed."""
    try:
        path = inp.file.path
    except NotImplementedError:
        target = os.path.join(
            gptimage_settings.SPOOL_DIR, str(inp.generation_id), "inputs", f"{inp.role}-{inp.index}"
        )
        if not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with inp.file.open("rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
        return target
    if not os.path.isfile(path):  # checked here, before sending, not by the provider mid-request
        raise FileNotFoundError(2, "No such file", inp.file.name)
    return path


def _call_provider(generation: ImageGeneration, attempt: GenerationAttempt) -> RunOutcome:
    spool_dir = _spool_dir_of(generation.pk, attempt.number)
    progress = _Progress(generation)
    # Set-up problems come before anything is sent: they bill nothing and say what is wrong.
    try:
        provider = get_provider(generation.provider)
    except ImproperlyConfigured as exc:
        return _failed(generation, attempt, ProviderError(ErrorCode.CONFIGURATION_ERROR, str(exc)[:300]))
    template_problem = templates_problem()  # results could not be stored: do not pay for them
    if template_problem:
        return _failed(
            generation, attempt, ProviderError(ErrorCode.CONFIGURATION_ERROR, template_problem[:300])
        )
    try:
        request = _provider_request(generation)
    except OSError as exc:  # an input image could not be read back from storage
        detail = part("reading_inputs", text=_storage_detail(exc))
        return _failed(generation, attempt, ProviderError(ErrorCode.STORAGE_ERROR, detail))
    if (waiting := ratelimit.wait_turn(generation, attempt, provider)) is not None:
        return waiting  # a long wait for the shared rate limit: queued again, not an attempt
    try:
        result = ratelimit.call(generation, provider, request, spool_dir=spool_dir, progress=progress)
    except ProviderError as error:
        shutil.rmtree(spool_dir, ignore_errors=True)
        return _failed(generation, attempt, error)
    except JobTimeout:
        # RQ's JOB_TIMEOUT ran out mid-call: the request may have been billed, so this is a
        # timeout (retried only with RETRY_ON_TIMEOUT), never a silently retried provider error.
        shutil.rmtree(spool_dir, ignore_errors=True)
        detail = part("job_timeout", seconds=gptimage_settings.JOB_TIMEOUT)
        return _failed(generation, attempt, ProviderError(ErrorCode.TIMEOUT, detail))
    except JobStopped:
        # RQ's stop-job command before the request went out: nothing sent, nothing billed.
        shutil.rmtree(spool_dir, ignore_errors=True)
        return _finish(generation, attempt, Status.CANCELED, ErrorCode.CANCELED, [part("stopped_by_rq")])
    except ClaimLost:
        raise
    except Exception as exc:  # noqa: BLE001 - an unexpected bug must still end the record
        logger.exception("gptimage provider call crashed for %s", generation.pk)
        shutil.rmtree(spool_dir, ignore_errors=True)
        # The request may have gone out before the crash: record it as maybe billed and leave
        # the decision to retry to a person instead of retrying a bug automatically.
        crash = ProviderError(ErrorCode.PROVIDER_ERROR, part("unexpected", exception=exc.__class__.__name__))
        attempt.maybe_billed = getattr(provider, "billable", True)
        return _failed(generation, attempt, crash, retry=False)
    return _received(generation, attempt, result, spool_dir, billable=getattr(provider, "billable", True))


class _Progress:
    """Provider progress -> the record's phase and preview, written only when it changes."""

    def __init__(self, generation: ImageGeneration) -> None:
        self.generation = generation
        self.lost = False  # the claim was lost after the request went out

    def __call__(self, phase: str, data: dict[str, Any]) -> None:
        # A safe point: the job's timeout is raised here, never asynchronously; a stop-job only
        # before the request goes out (afterwards the record is canceled, its images kept).
        liveness.check(stoppable=phase == "sending")
        if self.lost:
            return
        try:
            if phase in PROGRESS_PHASES and self.generation.phase != PROGRESS_PHASES[phase]:
                _update(self.generation, phase=PROGRESS_PHASES[phase])
            elif phase == "partial" and data.get("path"):
                checked = check_image(data["path"])
                name = leftovers.preview_name(self.generation.pk, data.get("index", 0), _ext(checked.format))
                stored = save_file(data["path"], name, checked.format)
                _update(self.generation, preview=stored)
        except ClaimLost:
            if phase in ("sending", "waiting"):
                raise  # nothing is sent yet: the record is someone else's, this attempt stops
            # The answer is arriving and paid for: it is received all the same, and
            # _received decides whether the record can still take it (a late result).
            self.lost = True
        except (JobTimeout, JobStopped):
            raise  # not a progress problem: the job's time is up
        except Exception:  # noqa: BLE001 - progress is best effort, the result is what matters
            logger.warning("gptimage progress update failed for %s", self.generation.pk, exc_info=True)
        if phase in ("waiting", "partial") and not connection.in_atomic_block:
            # Minutes of network wait follow: holding this thread's DB connection meanwhile would
            # cap a threaded worker at the database's max_connections. Django reconnects on use.
            connection.close()


def _ext(fmt: str) -> str:
    return {"jpeg": "jpg"}.get(fmt, fmt)


def _received(
    generation: ImageGeneration,
    attempt: GenerationAttempt,
    result: ProviderResult,
    spool_dir: str,
    *,
    billable: bool,
) -> RunOutcome:
    """Record what was paid for and where its bytes are, before anything else can fail."""
    cost = actual_cost(generation.model, result.usage, gptimage_settings.PRICES) if billable else None
    spooled = [
        {"index": f.index, "path": f.path, "sha256": f.sha256, "size_bytes": f.size_bytes}
        for f in result.files
    ]
    metadata = {
        **generation.metadata, "spooled": spooled, "response": _response_meta(result),
        "spool_host": socket.gethostname(),  # whose SPOOL_DIR the paths are in
    }  # fmt: skip
    attempt.provider_request_id = result.request_id or ""
    attempt.maybe_billed = billable
    fields: dict[str, Any] = {
        "provider_request_id": result.request_id or "",
        "usage": result.usage,
        "actual_cost": cost if billable else 0,
        "spool_dir": spool_dir,
        "metadata": metadata,
    }
    try:
        # The billed call and where its bytes are, in one transaction: a worker killed between
        # two commits left an attempt saying "received" on a record that knew of no bytes, which
        # the reaper then ended as abandoned (a load test finding).
        with transaction.atomic():
            attempt.save(update_fields=["provider_request_id", "maybe_billed"])
            _update(generation, **fields)
    except ClaimLost:
        # That this call was billed is a fact even though the claim is gone.
        attempt.save(update_fields=["provider_request_id", "maybe_billed"])
        if not _adopt_late(generation, fields):
            logger.warning(
                "gptimage %s: a late answer (request %s) arrived after the record was taken over, "
                "and a newer attempt (or a cancel) owns it now; its images are not kept",
                generation.pk,
                result.request_id,
            )
            raise
    if staging.enabled():
        # A copy every host can read, before storing: a retry on another host (storage down, or
        # this host lost) then stores these bytes instead of paying for new ones.
        spooled = staging.stage(generation.pk, attempt.number, spooled)
        _update(generation, metadata={**generation.metadata, "spooled": spooled})
    return _store(generation, attempt, spooled)


def _adopt_late(generation: ImageGeneration, fields: dict[str, Any]) -> bool:
    """Take back a record the reaper ended or requeued while this attempt's answer was on its way.

    The reaper judged this worker dead (no heartbeat for ``STALE_AFTER``) and ended the record
    as ``abandoned``, or queued it for a next attempt. The answer came anyway, and was paid
    for: it is kept when no newer attempt has started (the record's ``attempts`` is still this
    one), nothing else is kept for it (``spool_dir`` empty) and nobody canceled it. The record
    is claimed again by this worker in one conditional UPDATE, so a next attempt claiming it at
    the same moment either wins (and this answer is dropped) or finds it taken (and calls
    nothing). From there on it is stored like any answer; the credits follow the outcome
    (:func:`django_gptimage.access.credits.settle` charges a reservation the reaper refunded).
    """
    current = ImageGeneration.objects.filter(pk=generation.pk).values_list("status", flat=True).first()
    late = {"attempt": generation.attempts, "reaped_as": str(current or ""), "at": timezone.now().isoformat()}
    now = timezone.now()
    fields = {**fields, "metadata": {**fields["metadata"], "late_result": late}}
    claim_again = {
        "status": Status.RUNNING, "phase": Phase.RECEIVING, "worker": generation.worker, "heartbeat_at": now,
        "finished_at": None, "next_attempt_at": None, "error_code": "", "error_detail": [],
    }  # fmt: skip
    adopted = (
        ImageGeneration.objects.filter(
            pk=generation.pk, attempts=generation.attempts, spool_dir="", cancel_requested=False
        )
        .filter(Q(status=Status.QUEUED) | Q(status=Status.FAILED, error_code=ErrorCode.ABANDONED))
        .update(**claim_again, **fields, updated_at=now)
    )
    if not adopted:
        return False
    for name, value in {**claim_again, **fields}.items():
        setattr(generation, name, value)
    logger.warning(
        "gptimage %s: a late answer arrived after the reaper had %s the record; its images are kept",
        generation.pk,
        "ended" if late["reaped_as"] == Status.FAILED else "requeued",
    )
    return True


def _response_meta(result: ProviderResult) -> dict[str, Any]:
    meta = {k: getattr(result, k) for k in ("size", "quality", "background", "output_format", "created")}
    meta.update(
        {k: v for k, v in result.extra.items() if k in ("rate_limit", "extra_images", "ignored_bytes")}
    )
    return meta


def _store(
    generation: ImageGeneration, attempt: GenerationAttempt, spooled: list[dict[str, Any]]
) -> RunOutcome:
    _update(generation, phase=Phase.STORING)
    generation.refresh_from_db(fields=["cancel_requested"])
    if generation.cancel_requested and not gptimage_settings.KEEP_RESULT_AFTER_CANCEL:
        return _finish(generation, attempt, Status.CANCELED, ErrorCode.CANCELED, discard_spool=True)

    problems: list[Part] = []
    checked = []
    stored = {i.index: i for i in GeneratedImage.objects.filter(generation=generation)}
    for item in spooled:
        if (row := stored.get(item["index"])) is not None:
            # Stored by an earlier attempt that died before finishing: its kept file is no longer
            # needed (and may be gone, or on another host); judge it by its row.
            problems += _image_problems(generation, item["index"], row.format, row.width, row.height)
            continue
        if not os.path.exists(item["path"]) and (fetched := staging.fetch(generation.pk, item)):
            item = {**item, "path": fetched}  # not on this host: the staged copy, checked by hash
        try:
            image = check_image(item["path"])
        except FileNotFoundError:
            _explain_gone(generation)
            return _finish(
                generation, attempt, Status.FAILED, ErrorCode.STORAGE_ERROR, [part("kept_image_gone")]
            )
        except ImageCheckError as exc:
            problems.append(part("image_unusable", index=item["index"] + 1, text=str(exc)))
            continue
        except OSError as exc:  # the spool itself is unreadable: keep it, a retry may work
            return _finish(
                generation, attempt, Status.FAILED, ErrorCode.STORAGE_ERROR, [said(exc.__class__.__name__)]
            )
        problems += _image_problems(generation, item["index"], image.format, image.width, image.height)
        checked.append((item, image))
    if not checked and not stored:  # nothing usable came back: there is nothing to keep
        return _finish(
            generation, attempt, Status.FAILED, ErrorCode.BAD_RESPONSE, problems, discard_spool=True
        )

    try:
        for item, image in checked:
            if GeneratedImage.objects.filter(generation=generation, index=item["index"]).exists():
                continue  # stored by an earlier attempt that failed later on
            liveness.check(stoppable=False)  # out of time: the bytes stay spooled for a store-only retry
            name = result_name(generation, index=item["index"], sha256=item["sha256"], fmt=image.format)
            # A retry may find the file an interrupted attempt wrote without recording it: kept, not written twice.
            if not (generation.attempts > 1 and holds_copy(name, item["sha256"])):
                name = save_file(item["path"], name, image.format)
            GeneratedImage.objects.get_or_create(
                generation=generation,
                index=item["index"],
                defaults={
                    "file": name, "width": image.width, "height": image.height,
                    "size_bytes": item["size_bytes"], "sha256": item["sha256"], "format": image.format,
                    "alt_text": str((generation.metadata or {}).get("alt_text") or "")[:500],
                },
            )  # fmt: skip
    except ClaimLost:
        raise
    except Exception as exc:  # noqa: BLE001 - any storage backend failure (or the job's timeout)
        logger.warning("gptimage storage failed for %s: %s", generation.pk, exc.__class__.__name__)
        # The bytes stay in the spool: a retry stores them without calling the provider.
        return _failed(generation, attempt, ProviderError(ErrorCode.STORAGE_ERROR, _storage_detail(exc)))

    if generation.cancel_requested:
        return _finish(
            generation,
            attempt,
            Status.CANCELED,
            ErrorCode.CANCELED,
            [part("images_kept")],
            discard_spool=True,
        )
    if problems:
        # Paid-for images are kept and shown, but the outcome is not what was asked for.
        return _finish(
            generation, attempt, Status.FAILED, ErrorCode.BAD_RESPONSE, problems, discard_spool=True
        )
    return _finish(generation, attempt, Status.SUCCEEDED, discard_spool=True)


def _image_problems(generation: ImageGeneration, index: int, fmt: str, width: int, height: int) -> list[Part]:
    problems = []
    if fmt != generation.output_format:
        problems.append(part("image_mismatch", index=index + 1, got=fmt, wanted=generation.output_format))
    if generation.width and (width, height) != (generation.width, generation.height):
        problems.append(
            part(
                "image_mismatch", index=index + 1, got=f"{width}x{height}",
                wanted=f"{generation.width}x{generation.height}",
            )
        )  # fmt: skip
    return problems


def _explain_gone(generation: ImageGeneration) -> None:
    """Say in the log why kept images are missing when the cause is another host's spool."""
    host, here = (generation.metadata or {}).get("spool_host"), socket.gethostname()
    if not host or host == here:
        return
    logger.error(
        "gptimage %s: its paid-for images were received on host %s and are kept in that host's "
        "SPOOL_DIR; this store-only retry runs on %s, which cannot read them%s",
        generation.pk,
        host,
        here,
        ""
        if staging.enabled()
        else ". Set GPTIMAGE['STAGING_STORAGE'] when workers run on several hosts "
        "(docs/storage.md, 'Paid bytes across hosts'), or retry it on that host",
    )


def _storage_detail(exc: Exception) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _forget_spool(generation: ImageGeneration) -> tuple[Any, str, list[dict[str, Any]]]:
    """The record stops pointing at its kept bytes; returns what :func:`_remove_spool` removes
    once that is committed. Files first would leave a record that a worker killed in between (or
    one that lost its claim) still has "spooled": its store-only retry would find the bytes gone."""
    kept = (generation.pk, generation.spool_dir, generation.metadata.get("spooled") or [])
    metadata = {k: v for k, v in generation.metadata.items() if k != "spooled"}
    _update(generation, spool_dir="", metadata=metadata)
    return kept


def _remove_spool(kept: tuple[Any, str, list[dict[str, Any]]]) -> None:
    """The kept bytes are stored (or not wanted): drop the spool here and the staged copies."""
    pk, spool_dir, spooled = kept
    if spool_dir:  # the receiving host's path, which may be this host's
        shutil.rmtree(os.path.dirname(spool_dir), ignore_errors=True)
    # This host's own directory too: input copies, staged copies fetched for a store-only retry.
    shutil.rmtree(os.path.join(gptimage_settings.SPOOL_DIR, str(pk)), ignore_errors=True)
    staging.discard(pk, spooled)  # after the record no longer points at them


def _failed(
    generation: ImageGeneration, attempt: GenerationAttempt, error: ProviderError, *, retry: bool = True
) -> RunOutcome:
    options = retry_options()
    delay = (
        retry_delay(error.code, generation.attempts, options, retry_after=error.retry_after)
        if retry
        else None
    )
    attempt.http_status = error.status
    attempt.retry_after = error.retry_after
    attempt.provider_request_id = error.request_id or ""
    attempt.maybe_billed = attempt.maybe_billed or error_info(error.code).maybe_billed
    if error.request_id:
        generation.provider_request_id = error.request_id
    generation.refresh_from_db(fields=["cancel_requested"])
    if delay is None or generation.cancel_requested:
        parts = list(error.parts)
        if retry and not generation.cancel_requested and error_info(error.code).retry is RetryRule.BACKOFF:
            parts.append(
                part("retry_after_too_long", seconds=round(error.retry_after))
                if error.retry_after is not None and error.retry_after > options.retry_after_max
                else part("gave_up", count=generation.attempts)
            )
        return _finish(generation, attempt, Status.FAILED, error.code, parts)
    attempt.will_retry = True
    # One transaction: a reader never sees the record queued for a retry while its attempt is
    # still open. The record first: if the claim is gone, this attempt's verdict is not ours.
    with transaction.atomic():
        _update(
            generation,
            status=Status.QUEUED,
            phase=Phase.QUEUED,
            error_code=error.code,
            error_detail=[*error.parts, part("next_attempt", seconds=round(delay))],
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            provider_request_id=generation.provider_request_id,
            worker="",
        )
        _end_attempt(attempt, error.code, generation.error_detail)
    return RunOutcome(generation, retry_in=delay)


def _end_attempt(
    attempt: GenerationAttempt, outcome: str, detail: list[Part] | None = None, at: Any = None
) -> None:
    attempt.finished_at = at or timezone.now()
    attempt.outcome = outcome
    attempt.error_detail = list(detail or [])
    attempt.save()


def _finish(
    generation: ImageGeneration,
    attempt: GenerationAttempt,
    status: str,
    code: ErrorCode | None = None,
    detail: list[Part] | None = None,
    *,
    discard_spool: bool = False,
) -> RunOutcome:
    """End the record and its attempt; ``discard_spool``: the kept bytes are stored (or not
    wanted), so the record forgets them in the same transaction and they are removed after."""
    # The facts only: the words are chosen (and translated) when the record is shown.
    detail = list(detail or []) if code is not None else []
    now = timezone.now()
    kept = None
    with transaction.atomic():  # record and attempt end together, record first, as in _failed
        if discard_spool:
            kept = _forget_spool(generation)
        _update(
            generation,
            status=status,
            phase=Phase.DONE,
            error_code=code or "",
            error_detail=detail,
            finished_at=now,
            provider_request_id=generation.provider_request_id,
        )
        late = (generation.metadata or {}).get("late_result") or {}
        note = [part("late_result")] if late.get("attempt") == attempt.number and not detail else detail
        _end_attempt(attempt, str(code or Status.SUCCEEDED), note, at=now)
        credits.settle(generation)  # capture or refund its reservation, once, with the outcome
    if kept is not None:
        transaction.on_commit(lambda: _remove_spool(kept))  # never before the record let go of it
    pk = generation.pk
    transaction.on_commit(lambda: _clean_up(pk))  # at once, unless a caller's transaction is open
    return RunOutcome(generation)


def _clean_up(generation_id: Any) -> None:
    """Its previews and spool go with the end (images kept for a retry stay)."""
    try:
        leftovers.generation_ended(generation_id)
    except Exception:  # noqa: BLE001 - leftovers are swept later; the outcome is recorded
        logger.warning("gptimage %s: cleaning up after it ended failed", generation_id, exc_info=True)
