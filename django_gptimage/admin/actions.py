"""Bulk actions of the history. Each ends with one message that says what happened and why not.

"2 queued again. 3 were not failed, so not retried." rather than silence or "0 done".
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_gptimage.admin.downloads import zip_response
from django_gptimage.admin.workspace import MAX_COMPARE, may
from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import (
    GenerationNotRetryable,
    QueueUnavailable,
    cancel_generation,
    retry_generation,
)


def _count(n: int, singular: str, plural: str) -> str:
    return ngettext(singular, plural, n) % {"n": n}


def _say(modeladmin: Any, request: HttpRequest, parts: list[str], level: int) -> None:
    modeladmin.message_user(request, " ".join(p for p in parts if p), level)


class HistoryActionsMixin:
    """retry, cancel, duplicate, compare and download for ``ImageGenerationAdmin``."""

    message_user: Any

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        # Paid actions are not even offered to someone who may not spend money.
        if not may(request, "retry"):
            actions.pop("retry_selected", None)
        if not may(request, "generate"):
            actions.pop("duplicate_selected", None)
            actions.pop("cancel_selected", None)
        return actions

    @admin.action(description=gettext_lazy("Retry selected failed generations"))
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[ImageGeneration]) -> None:
        if not may(request, "retry"):
            self.message_user(
                request, _("You may not retry generations: ask for the “retry” permission."), messages.ERROR
            )
            return
        selected = list(queryset.select_related(None).only("id", "status", "error_code"))
        failed = [g for g in selected if g.status == Status.FAILED]
        done, refused = 0, 0
        reasons: dict[str, int] = {}
        for generation in failed:
            try:
                retry_generation(generation)
                done += 1
            except GenerationNotRetryable as exc:
                refused += 1
                reasons.setdefault(str(exc), 0)
                reasons[str(exc)] += 1
            except QueueUnavailable as exc:
                self.message_user(request, _("Nothing retried: %(why)s") % {"why": exc}, messages.ERROR)
                return
        parts = []
        if done:
            parts.append(_count(done, "%(n)d queued again.", "%(n)d queued again."))
        skipped = len(selected) - len(failed)
        if skipped:
            parts.append(
                _count(
                    skipped, "%(n)d was not failed, so not retried.", "%(n)d were not failed, so not retried."
                )
            )
        for why, n in reasons.items():
            parts.append(_count(n, "%(n)d cannot be retried: ", "%(n)d cannot be retried: ") + why)
        _say(
            self,
            request,
            parts,
            messages.SUCCESS if done and not refused and not skipped else messages.WARNING,
        )

    @admin.action(description=gettext_lazy("Cancel selected queued or running generations"))
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[ImageGeneration]) -> None:
        if not may(request, "generate"):
            self.message_user(
                request,
                _("You may not cancel generations: ask for the “generate” permission."),
                messages.ERROR,
            )
            return
        selected = list(queryset.select_related(None).only("id", "status"))
        canceled = requested = 0
        for generation in selected:
            if generation.status not in (Status.QUEUED, Status.RUNNING):
                continue
            if cancel_generation(generation).status == Status.CANCELED:
                canceled += 1
            else:
                requested += 1
        parts = []
        if canceled:
            parts.append(
                _count(
                    canceled, "%(n)d canceled before it was sent.", "%(n)d canceled before they were sent."
                )
            )
        if requested:
            parts.append(
                _count(requested, "%(n)d was running: it stops after the call in progress.",
                       "%(n)d were running: they stop after the call in progress.")
            )  # fmt: skip
        finished = len(selected) - canceled - requested
        if finished:
            parts.append(_count(finished, "%(n)d had already finished, so nothing to cancel.",
                                "%(n)d had already finished, so nothing to cancel."))  # fmt: skip
        _say(self, request, parts, messages.SUCCESS if not finished else messages.WARNING)

    @admin.action(description=gettext_lazy("Duplicate selected (the same request again)"))
    def duplicate_selected(self, request: HttpRequest, queryset: QuerySet[ImageGeneration]) -> None:
        made = 0
        failures: dict[str, int] = {}
        for generation in queryset.prefetch_related("inputs"):
            new, why = self.duplicate(request, generation)  # type: ignore[attr-defined]
            if new is None:
                failures[why] = failures.get(why, 0) + 1
            else:
                made += 1
        parts = [_count(made, "%(n)d duplicate queued.", "%(n)d duplicates queued.")] if made else []
        for why, n in failures.items():
            parts.append(_count(n, "%(n)d not duplicated: ", "%(n)d not duplicated: ") + why)
        _say(self, request, parts, messages.SUCCESS if not failures else messages.WARNING)

    @admin.action(description=gettext_lazy("Compare selected side by side (2 to 4)"))
    def compare_selected(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> HttpResponse | None:
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)[: MAX_COMPARE + 1]]
        if not 2 <= len(ids) <= MAX_COMPARE:
            self.message_user(
                request,
                _("Select 2 to %(max)d generations to compare; %(n)s selected.")
                % {
                    "max": MAX_COMPARE,
                    "n": len(ids) if len(ids) <= MAX_COMPARE else _("more than %d") % MAX_COMPARE,
                },
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(self.url("compare") + "?ids=" + ",".join(ids))  # type: ignore[attr-defined]

    @admin.action(description=gettext_lazy("Download originals (zip)"))
    def download_originals(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> HttpResponseBase | None:
        generations = list(queryset.prefetch_related("images"))
        with_images = [g for g in generations if g.images.all()]
        if not with_images:
            self.message_user(
                request,
                _count(len(generations), "Nothing to download: the selected generation has no images.",
                       "Nothing to download: none of the %(n)d selected generations has images."),
                messages.WARNING,
            )  # fmt: skip
            return None
        return zip_response(with_images, filename=f"gptimage-{len(with_images)}-generations.zip")


def changelist_url(modeladmin: Any) -> str:
    opts = modeladmin.opts
    return reverse(f"{modeladmin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")
