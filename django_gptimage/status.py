"""A generation's state as one small JSON-ready dict: what status pages and widgets poll.

``generation_status(generation)`` reads only the record and its prefetched images (no other
query), so the status endpoint stays cheap however large the history grows.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.errors import RetryRule, error_info
from django_gptimage.domain.next_steps import NextAction, NextStep, next_step
from django_gptimage.messages import error_rendered, translated
from django_gptimage.models import GeneratedImage, ImageGeneration, Status, get_storage
from django_gptimage.options import CURRENCY, format_cost

__all__ = ["cost_billing", "generation_status", "image_url", "status_line"]

# How long the browser should wait before asking again, by status (seconds).
POLL_AFTER = {Status.QUEUED: 2.0, Status.RUNNING: 1.0}


def image_url(name: str) -> str | None:
    """The storage URL of a stored file, or None when storage cannot produce one."""
    if not name:
        return None
    try:
        return get_storage().url(name)
    except Exception:  # a storage without URLs (or a misconfigured one) must not break polling
        return None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _images(generation: ImageGeneration) -> list[dict[str, Any]]:
    images: list[GeneratedImage] = list(generation.images.all())
    return [
        {
            "id": image.pk,
            "index": image.index,
            "url": image_url(image.file.name),
            "width": image.width,
            "height": image.height,
            "format": image.format,
            "size_bytes": image.size_bytes,
            "alt_text": getattr(image, "alt_text", ""),
        }
        for image in images
    ]


def status_line(generation: ImageGeneration) -> str:
    """The outcome in one line: "Succeeded: 2 images, 1536x864, in 14 s"."""
    g = generation
    if g.status == Status.SUCCEEDED:
        count = len(g.images.all())
        size = f"{g.width}x{g.height}" if g.width and g.height else g.size
        took = _elapsed(g)
        plural = _("image") if count == 1 else _("images")
        return _("Succeeded: %(count)d %(plural)s, %(size)s, in %(took)s") % {
            "count": count,
            "plural": plural,
            "size": size,
            "took": _duration(took),
        }
    if g.status == Status.FAILED:
        message = error_rendered(g.error_code, g.error_detail).message if g.error_code else g.editor_message
        return _("Failed: %(message)s") % {"message": message}
    if g.status == Status.CANCELED:
        return _("Canceled: %(message)s") % {"message": g.editor_message}
    if g.status == Status.QUEUED and g.next_attempt_at:
        wait = max(0, round((g.next_attempt_at - timezone.now()).total_seconds()))
        return _("Retrying in %(wait)d s (attempt %(next)d of %(max)d)") % {
            "wait": wait,
            "next": g.attempts + 1,
            "max": gptimage_settings.MAX_ATTEMPTS,
        }
    return f"{g.get_status_display()}: {g.get_phase_display()}"


def cost_billing(generation: ImageGeneration) -> tuple[str, str]:
    """Whether the generation was billed and how to say it: ``(billing, label)``.

    ``billing`` is ``billed`` (the actual cost from usage), ``not_billed`` (offline placeholders,
    or a failure the API does not charge for), ``maybe_billed`` (a failure that may have been
    charged: only the estimate is known), ``estimate`` (not finished yet) or ``unknown``. Every
    face shows cost through this, so none of them calls a refused request "0.08 USD".
    """
    g = generation
    if g.provider == "offline":
        return "not_billed", _("not billed (offline provider)")
    if g.actual_cost is not None:
        return "billed", format_cost(g.actual_cost)
    if g.estimated_cost is None:
        return "unknown", "-"
    estimate = format_cost(g.estimated_cost)
    maybe_billed = bool(g.error_code) and error_info(g.error_code).maybe_billed
    if g.error_code and g.is_finished and not maybe_billed:
        return "not_billed", _("not billed (%(cost)s estimated)") % {"cost": estimate}
    if maybe_billed:
        return "maybe_billed", _("%(cost)s (estimate; may have been billed)") % {"cost": estimate}
    return "estimate", _("%(cost)s (estimate)") % {"cost": estimate}


def _elapsed(generation: ImageGeneration) -> float:
    start = generation.started_at or generation.created_at
    end = generation.finished_at or timezone.now()
    return max(0.0, (end - start).total_seconds()) if start else 0.0


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def generation_status(generation: ImageGeneration) -> dict[str, Any]:
    """Status, phase, attempt, timings, preview, images, error with its next step, is_final.

    Prefetch ``images`` (``ImageGeneration.objects.prefetch_related("images")``) to keep it to
    the record's own queries.
    """
    g = generation
    final = g.is_finished
    error = None
    if g.error_code:
        info = error_info(g.error_code)
        step = next_step(g.error_code)
        retryable = g.status == Status.FAILED and info.retry is not RetryRule.NEVER
        if not final:  # the last attempt failed and the runner tries again by itself
            step = NextStep(NextAction.WAIT, _("It will be tried again automatically."))
        words = error_rendered(g.error_code, g.error_detail)  # in the active language
        error = {
            "code": str(g.error_code),
            "message": words.message,  # the code's own editor message (or a headline saying more)
            "detail": words.detail,  # the facts: what the service said, the host, the wait...
            "text": words.text,  # both as one message
            "next_action": str(step.action),
            "next_step": translated(step.text),
            "retryable": retryable,
            "maybe_billed": info.maybe_billed,
        }
    elapsed = _elapsed(g)
    billing, cost_label = cost_billing(g)
    return {
        "id": str(g.pk),
        "status": str(g.status),
        "status_label": str(g.get_status_display()),
        "phase": str(g.phase),
        "phase_label": str(g.get_phase_display()),
        "line": status_line(g),
        "message": g.editor_message,
        "attempt": g.attempts,
        "max_attempts": gptimage_settings.MAX_ATTEMPTS,
        "next_attempt_at": _iso(g.next_attempt_at),
        "created_at": _iso(g.created_at),
        "started_at": _iso(g.started_at),
        "finished_at": _iso(g.finished_at),
        "elapsed": round(elapsed, 1),
        "elapsed_display": _duration(elapsed),
        "preview_url": None if final else image_url(g.preview),
        "images": _images(g),
        "error": error,
        "cancel_requested": g.cancel_requested,
        "cost": {
            "estimated": None if g.estimated_cost is None else str(g.estimated_cost),
            "actual": None if g.actual_cost is None else str(g.actual_cost),
            "currency": CURRENCY,
            "display": format_cost(g.actual_cost if g.actual_cost is not None else g.estimated_cost),
            "billing": billing,
            "label": cost_label,
        },
        "params": {
            "model": g.model,
            "mode": g.mode,
            "ratio": g.ratio,
            "tier": g.tier,
            "size": g.size,
            "quality": g.quality,
            "output_format": g.output_format,
            "background": g.background,
            "n": g.n,
        },
        "is_final": final,
        "poll_after": None if final else POLL_AFTER.get(Status(g.status), 2.0),
    }
