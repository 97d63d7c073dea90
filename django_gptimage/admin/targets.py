"""Generating into the site's own models from their admin: a bulk action and a change-form panel.

    from django_gptimage.admin import GenerationsPanelMixin, generate_images_action

    @admin.register(Article)
    class ArticleAdmin(GenerationsPanelMixin, admin.ModelAdmin):
        actions = [generate_images_action(field="cover", preset="cover")]

The action plans and runs a batch over the selected objects (``plan_batch()``/``run_batch()``,
as ``manage.py gptimage_batch`` does: what is done or in flight with the same settings is not
sent again) and sends the editor to the review grid of the candidates; the panel lists an object's generations on its change form, each
candidate with an "apply" button. Both are thin callers of the service API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_gptimage.models import Status
from django_gptimage.service import (
    GenerationRefused,
    generation_status,
    generations_for,
    hook_events_for,
    plan_batch,
    run_batch,
)
from django_gptimage.status import image_url

__all__ = ["GenerationsPanelMixin", "admin_url_of", "generate_images_action", "refusal_summary"]

MAX_REASONS = 5  # refusals quoted in the summary message; the rest are counted


def admin_url_of(obj: Model) -> str | None:
    """The admin change page of ``obj`` on the default site, or None when it has none."""
    opts = obj._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


def refusal_summary(refused: GenerationRefused) -> str:
    return " ".join(p.message for p in refused.problems)


def generate_images_action(
    field: str,
    preset: str | None = None,
    *,
    template: str | None = None,
    description: str | None = None,
    review: bool = True,
    **overrides: Any,
) -> Callable[[Any, HttpRequest, QuerySet[Any]], HttpResponse | None]:
    """An admin action generating images into ``field`` of each selected object.

    ``preset`` / ``template`` / ``overrides`` (ratio, tier, quality, n, ...) are passed to
    ``generate_for``. Every object is validated before its request is sent; one that is refused
    costs nothing and is named in the summary ("3 queued, 1 refused: “Title”: reason").
    With ``review`` the editor lands on the review grid of the new candidates.
    """

    def action(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        # The same plan and run as ``manage.py gptimage_batch``: what is done or in flight with
        # the same settings is not sent again.
        try:
            plan = plan_batch(
                queryset, field=field, preset=preset, template=template, user=request.user, source="admin",
                **overrides,
            )  # fmt: skip
        except GenerationRefused as exc:  # an unknown preset, a preset for another model
            modeladmin.message_user(
                request, f"{_('Nothing was sent')}: {refusal_summary(exc)}", messages.ERROR
            )
            return None
        except PermissionDenied as exc:
            modeladmin.message_user(request, f"{_('Nothing was sent')}: {exc}", messages.ERROR)
            return None
        run = run_batch(plan)
        made = run.sent_ids
        shown = [*made, *plan.existing_ids, *run.reused_ids]
        if run.error:  # the queue went away: stop, and say what was done before it
            done = ngettext("%(n)d queued before that.", "%(n)d queued before that.", len(made)) % {
                "n": len(made)
            }
            modeladmin.message_user(
                request,
                f"{_('Nothing more was sent')}: {run.error} {done if made else ''}".strip(),
                messages.ERROR,
            )
            return _to_review(shown) if shown and review else None
        refused = [*plan.refused_named, *run.refused_named]
        refused_count = plan.refused_objects + sum(run.refused.values())
        skipped = len(plan.existing_ids) + len(run.reused_ids)
        parts = []
        if made:
            parts.append(ngettext("%(n)d queued", "%(n)d queued", len(made)) % {"n": len(made)})
        if skipped:
            parts.append(
                ngettext(
                    "%(n)d already generated with the same settings, not sent again",
                    "%(n)d already generated with the same settings, not sent again",
                    skipped,
                )
                % {"n": skipped}
            )
        if refused_count:
            reasons = "; ".join(f"“{obj}”: {why}" for obj, why in refused[:MAX_REASONS])
            more = refused_count - min(len(refused), MAX_REASONS)
            if more > 0:
                reasons += "; " + ngettext("and %(n)d more", "and %(n)d more", more) % {"n": more}
            parts.append(
                ngettext(
                    "%(n)d refused, nothing sent for it",
                    "%(n)d refused, nothing sent for them",
                    refused_count,
                )
                % {"n": refused_count}
                + f": {reasons}"
            )
        if not parts:
            parts.append(_("Nothing selected."))
        ok = made or skipped
        level = messages.SUCCESS if ok and not refused_count else messages.WARNING if ok else messages.ERROR
        text = ", ".join(parts)
        modeladmin.message_user(request, text if text.endswith((".", "!", "?")) else text + ".", level)
        return _to_review(shown) if shown and review else None

    label = description or _("Generate %(field)s images") % {"field": field}
    if preset:
        label = description or _("Generate %(field)s images (preset “%(preset)s”)") % {
            "field": field,
            "preset": preset,
        }
    action.__name__ = f"generate_{field}_images" + (f"_{preset}" if preset else "")
    return admin.action(description=label)(action)


def _file_url(value: Any) -> str | None:
    try:
        return value.url if value else None
    except ValueError:  # no file
        return None


def _to_review(generations: list[Any]) -> HttpResponse:
    url = reverse("admin:django_gptimage_imagegeneration_review")
    return HttpResponseRedirect(
        url + "?" + urlencode({"generations": ",".join(str(getattr(g, "pk", g)) for g in generations)})
    )


class GenerationsPanelMixin:
    """Shows an object's generations (thumbnails, status, "apply") on its change form.

    ``gptimage_fields``: the image fields to show (default: every file field that has
    generations). Also gives ``generate_images_action`` its permission check
    (``has_gptimage_generate_permission``).
    """

    gptimage_fields: tuple[str, ...] | None = None
    gptimage_panel_limit = 12
    change_form_template = "admin/django_gptimage/change_form_generations.html"

    def gptimage_panel(self, request: HttpRequest, obj: Model) -> dict[str, Any]:
        history = generations_for(obj)
        if self.gptimage_fields:
            history = history.filter(target_field__in=self.gptimage_fields)
        generations = list(history[: self.gptimage_panel_limit])
        can_apply = request.user.has_perm("django_gptimage.apply") and self.has_change_permission(  # type: ignore[attr-defined]
            request, obj
        )
        rows: list[dict[str, Any]] = []
        for generation in generations:
            status = generation_status(generation)
            rows.append(
                {
                    "generation": generation,
                    "status": status,
                    "images": [(image, image_url(image.file.name)) for image in generation.images.all()],
                    "page_url": reverse("admin:django_gptimage_imagegeneration_change", args=[generation.pk]),
                    "current": _file_url(getattr(obj, generation.target_field, None)),
                }
            )
        return {
            "rows": rows,
            "hook_events": hook_events_for(obj),
            "can_apply": can_apply and bool(rows),
            "pending": any(r["generation"].status in (Status.QUEUED, Status.RUNNING) for r in rows),
            "next": request.get_full_path(),
        }

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if obj is not None:
            extra_context["gptimage_panel"] = self.gptimage_panel(request, obj)
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
