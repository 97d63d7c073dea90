"""The generation history and the editor's workspace around it.

- the changelist: thumbnails, a coloured status badge with text, sizes, cost, who, when, target;
  filters (status incl. "active"), search by prompt, our id or the provider's request id;
- the add view is the generate page (``GenerationForm``), the change view is the generation's
  page (outcome, large images, live updates through the status endpoint, attempts timeline);
- actions: retry, cancel, duplicate, compare, download originals (a streamed zip), delete (the
  stored files go too, unless ``KEEP_FILES_ON_DELETE``).

Every page is a thin caller of the service API (``django_gptimage.service``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from django_gptimage.admin import workspace
from django_gptimage.admin.actions import HistoryActionsMixin
from django_gptimage.domain.errors import ErrorCode
from django_gptimage.models import GeneratedImage, ImageGeneration, Status
from django_gptimage.options import format_cost
from django_gptimage.status import cost_billing, image_url, status_line

ACTIVE = "active"


class CappedCountPaginator(Paginator):
    """Counts at most ``count_cap`` rows, so a page of a large filtered history costs no full scan.

    The admin counts the filtered rows for every page; a search that matches most of 100,000
    generations made that count the slowest part of the page. Past the cap the page says so
    (``capped``) and the pages stop at the cap: filters and search reach older generations.
    """

    count_cap = 10_000
    capped = False

    @cached_property
    def count(self) -> int:
        counted = self.object_list[: self.count_cap + 1].count()  # type: ignore[attr-defined]
        self.capped = counted > self.count_cap
        return min(counted, self.count_cap)


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(ACTIVE, _("Active (queued or running)")), *Status.choices]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> QuerySet[ImageGeneration]:
        value = self.value()
        if value == ACTIVE:
            return queryset.filter(status__in=(Status.QUEUED, Status.RUNNING))
        if value in Status.values:
            return queryset.filter(status=value)
        return queryset


class ErrorCodeFilter(admin.SimpleListFilter):
    title = _("error code")
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The closed list of codes: no DISTINCT over the whole history to build the filter.
        return [(c.value, c.value) for c in ErrorCode]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> QuerySet[ImageGeneration]:
        return queryset.filter(error_code=self.value()) if self.value() else queryset


class TierFilter(admin.SimpleListFilter):
    title = _("resolution tier")
    parameter_name = "tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t, t) for t in ("1K", "2K", "4K")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> QuerySet[ImageGeneration]:
        return queryset.filter(tier=self.value()) if self.value() else queryset


class ModelFilter(admin.SimpleListFilter):
    title = _("model")
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from django_gptimage.options import available_models

        return [(m, m) for m in available_models()]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> QuerySet[ImageGeneration]:
        return queryset.filter(model=self.value()) if self.value() else queryset


class RequestedByFilter(admin.SimpleListFilter):
    """ "Mine" or another user who has generated (people, not a list of every account)."""

    title = _("requested by")
    parameter_name = "requested_by"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        from django.contrib.auth import get_user_model

        users = get_user_model().objects.filter(is_staff=True).order_by(get_user_model().USERNAME_FIELD)[:50]
        return [("me", _("Me")), *((str(u.pk), str(u)) for u in users)]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> QuerySet[ImageGeneration]:
        value = self.value()
        if value == "me":
            return queryset.filter(requested_by_id=request.user.pk)
        if value and value.isdigit():
            return queryset.filter(requested_by_id=int(value))
        return queryset


class TargetTypeFilter(admin.SimpleListFilter):
    title = _("target")
    parameter_name = "target"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        from django.apps import apps
        from django.contrib.contenttypes.models import ContentType
        from django.db import models

        found = [
            m for m in apps.get_models()
            if m._meta.app_label != "django_gptimage" and any(isinstance(f, models.FileField) for f in m._meta.fields)
        ]  # fmt: skip
        types = ContentType.objects.get_for_models(*found) if found else {}
        return [("none", _("No target")), *((str(ct.pk), ct.name) for ct in sorted(types.values(), key=str))]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration]
    ) -> QuerySet[ImageGeneration]:
        value = self.value()
        if value == "none":
            return queryset.filter(target_content_type=None)
        if value and value.isdigit():
            return queryset.filter(target_content_type_id=int(value))
        return queryset


@admin.register(ImageGeneration)
class ImageGenerationAdmin(HistoryActionsMixin, workspace.GenerationWorkspaceMixin, admin.ModelAdmin):
    list_display = (
        "thumbnail", "summary", "status_badge", "size_label", "cost", "when",
    )  # fmt: skip
    list_display_links = ("thumbnail", "summary")
    list_filter = (
        StatusFilter, ErrorCodeFilter, ModelFilter, TierFilter, RequestedByFilter, TargetTypeFilter, "created_at",
    )  # fmt: skip
    search_fields = ("prompt",)
    search_help_text = _("Search the prompt, or paste our id or the image service's request id.")
    list_per_page = 50
    show_full_result_count = False  # "x of 100,000" costs a second COUNT over the whole history
    paginator = CappedCountPaginator
    list_select_related = ("requested_by", "target_content_type")
    ordering = ("-created_at",)
    actions = (
        "retry_selected", "cancel_selected", "duplicate_selected", "compare_selected",
        "download_originals", "delete_selected",
    )  # fmt: skip

    class Media:
        css = {"all": ["django_gptimage/css/options.css", "django_gptimage/css/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImageGeneration]:
        images = GeneratedImage.objects.only("id", "generation_id", "index", "file", "width", "height")
        return (
            super()
            .get_queryset(request)
            .defer("usage", "metadata", "spool_dir")  # error_detail is small and the status line reads it
            .prefetch_related(Prefetch("images", queryset=images))
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ImageGeneration], search_term: str
    ) -> tuple[QuerySet[ImageGeneration], bool]:
        import uuid

        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        if term.startswith("req_") or (" " not in term and len(term) > 20 and not term.isalpha()):
            by_request = queryset.filter(provider_request_id=term)
            if by_request.exists():
                return by_request, False
        return queryset.filter(Q(prompt__icontains=term) | Q(provider_request_id=term)), False

    # -- columns ---------------------------------------------------------------------------

    @admin.display(description=_("Image"))
    def thumbnail(self, obj: ImageGeneration) -> str:
        images = list(obj.images.all())
        if images:
            first = images[0]
            more = (
                format_html('<span class="gptimage-more">+{}</span>', len(images) - 1)
                if len(images) > 1
                else ""
            )
            return format_html(
                '<span class="gptimage-thumb-wrap"><img src="{}" alt="" class="gptimage-thumb" loading="lazy" '
                'width="{}" height="{}">{}</span>',
                image_url(first.file.name) or "",
                first.width,
                first.height,
                more,
            )
        return mark_safe('<span class="gptimage-thumb gptimage-thumb-empty" aria-hidden="true"></span>')

    @admin.display(description=_("Prompt"), ordering="prompt")
    def summary(self, obj: ImageGeneration) -> str:
        # Plain slicing: Truncator normalises every character, the slowest part of a page.
        return format_html(
            '<span class="gptimage-prompt-cell" title="{}">{}</span>{}',
            cut(obj.prompt, 300),
            cut(obj.prompt, 90),
            target_line(obj),
        )

    @admin.display(description=_("Status"), ordering="status")
    def status_badge(self, obj: ImageGeneration) -> str:
        return badge(obj)

    @admin.display(description=_("Size"), ordering="tier")
    def size_label(self, obj: ImageGeneration) -> str:
        size = f"{obj.width}×{obj.height}" if obj.width and obj.height else obj.size
        return format_html(
            '<span class="gptimage-nowrap">{} · {}</span><br><small class="gptimage-quiet gptimage-nowrap" title="{}">{}</small>',
            obj.ratio,
            obj.tier,
            obj.model,
            size,
        )

    @admin.display(description=_("Cost"), ordering="actual_cost")
    def cost(self, obj: ImageGeneration) -> str:
        billing, label = cost_billing(obj)
        if billing == "billed":
            return format_html('<span class="gptimage-nowrap">{}</span>', label)
        if billing == "not_billed":
            return format_html('<span class="gptimage-quiet" title="{}">{}</span>', label, _("not billed"))
        if billing in ("estimate", "maybe_billed"):
            return format_html(
                '<span class="gptimage-nowrap gptimage-quiet" title="{}">≈ {}</span>',
                label,
                format_cost(obj.estimated_cost),
            )
        return "-"

    @admin.display(description=_("When · who · took"), ordering="created_at")
    def when(self, obj: ImageGeneration) -> str:
        took = "-"
        if obj.started_at and obj.finished_at:
            seconds = (obj.finished_at - obj.started_at).total_seconds()
            took = f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
        created = timezone.localtime(obj.created_at)
        return format_html(
            '<span class="gptimage-nowrap" title="{}">{}</span><br><small class="gptimage-quiet">{} · {}</small>',
            created.isoformat(timespec="seconds"),
            date_format(created, "SHORT_DATETIME_FORMAT"),
            obj.requested_by or _("nobody"),
            took,
        )


def target_line(generation: ImageGeneration) -> str:
    """ "for article #12 · cover", linked to the object's admin page (no query: ids only)."""
    ct = generation.target_content_type
    if ct is None:
        return ""
    label = (
        f"{ct.name} #{generation.target_object_id}"
        if generation.target_object_id
        else _("a new %s") % ct.name
    )
    text = format_html("{} · {}", label, generation.target_field)
    if generation.target_object_id:
        try:
            url = reverse(f"admin:{ct.app_label}_{ct.model}_change", args=[generation.target_object_id])
            text = format_html('<a href="{}">{}</a>', url, text)
        except NoReverseMatch:
            pass
    return format_html('<br><small class="gptimage-quiet">{} {}</small>', _("for"), text)


def cut(text: str, length: int) -> str:
    """``text`` on one line, at most ``length`` characters, "…" when cut."""
    line = " ".join(text[: length * 2].split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"


def badge(generation: ImageGeneration) -> str:
    """A coloured badge that also carries the status (and error code) as text."""
    label = generation.get_status_display()
    code = generation.error_code if generation.status == Status.FAILED else ""
    return format_html(
        '<span class="gptimage-badge gptimage-badge-{}" title="{}">{}</span>{}',
        generation.status,
        status_line(generation) if generation.status != Status.SUCCEEDED else label,
        label,
        format_html('<br><code class="gptimage-code">{}</code>', code) if code else "",
    )
