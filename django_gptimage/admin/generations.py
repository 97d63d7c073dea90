"""A read-mostly history of generations with retry and cancel actions.

Thin on purpose: everything it does goes through the service API, so the richer admin
workspace can build on the same calls.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from django_gptimage.models import GeneratedImage, GenerationAttempt, GenerationInput, ImageGeneration, Status
from django_gptimage.service import (
    GenerationNotRetryable,
    QueueUnavailable,
    cancel_generation,
    retry_generation,
)


class GeneratedImageInline(admin.TabularInline):
    model = GeneratedImage
    extra = 0
    can_delete = False
    fields = ("preview", "file", "width", "height", "format", "size_bytes", "sha256")
    readonly_fields = fields

    @admin.display(description=_("Image"))
    def preview(self, obj: GeneratedImage) -> str:
        if not obj.file:
            return "-"
        return format_html(
            '<a href="{0}" target="_blank"><img src="{0}" alt="" class="gptimage-thumb" '
            'style="max-width:160px;max-height:120px"></a>',
            obj.file.url,
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GenerationInputInline(admin.TabularInline):
    model = GenerationInput
    extra = 0
    can_delete = False
    fields = ("role", "index", "original_name", "file", "format", "width", "height", "size_bytes")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GenerationAttemptInline(admin.TabularInline):
    model = GenerationAttempt
    extra = 0
    can_delete = False
    fields = (
        "number", "started_at", "finished_at", "outcome", "http_status", "provider_request_id",
        "retry_after", "will_retry", "maybe_billed", "worker", "error_message",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ImageGeneration)
class ImageGenerationAdmin(admin.ModelAdmin):
    list_display = ("short_prompt", "status", "phase", "ratio", "tier", "size", "quality", "model", "requested_by",
                    "created_at", "error_code", "actual_cost")  # fmt: skip
    list_filter = ("status", "error_code", "tier", "ratio", "model", "source")
    search_fields = ("prompt", "id", "provider_request_id")
    date_hierarchy = "created_at"
    inlines = (GeneratedImageInline, GenerationInputInline, GenerationAttemptInline)
    actions = ("retry_selected", "cancel_selected")
    readonly_fields = [f.name for f in ImageGeneration._meta.fields] + ["outcome"]
    fieldsets = (
        (None, {"fields": ("outcome", "prompt", "status", "phase", "error_code", "error_message")}),
        (
            _("Request"),
            {
                "fields": (
                    "requested_by",
                    "source",
                    "provider",
                    "model",
                    "mode",
                    "ratio",
                    "tier",
                    "size",
                    "width",
                    "height",
                    "quality",
                    "output_format",
                    "output_compression",
                    "background",
                    "n",
                )
            },
        ),  # fmt: skip
        (
            _("Record"),
            {
                "fields": (
                    "id",
                    "provider_request_id",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "attempts",
                    "next_attempt_at",
                    "estimated_cost",
                    "actual_cost",
                    "usage",
                    "worker",
                    "heartbeat_at",
                    "spool_dir",
                    "preview",
                    "cancel_requested",
                    "metadata",
                )
            },
        ),  # fmt: skip
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("Prompt"), ordering="prompt")
    def short_prompt(self, obj: ImageGeneration) -> str:
        return obj.prompt if len(obj.prompt) <= 70 else obj.prompt[:69] + "…"

    @admin.display(description=_("Outcome"))
    def outcome(self, obj: ImageGeneration) -> str:
        lines = [(obj.get_status_display(),), (obj.editor_message,)]
        return format_html_join("", "<p>{}</p>", lines)

    @admin.action(description=_("Retry selected failed generations"))
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[ImageGeneration]) -> None:
        done = 0
        for generation in queryset.filter(status=Status.FAILED):
            try:
                retry_generation(generation)
                done += 1
            except GenerationNotRetryable as exc:
                self.message_user(request, f"{generation.pk}: {exc}", messages.WARNING)
            except QueueUnavailable as exc:
                self.message_user(request, str(exc), messages.ERROR)
                break  # the others would fail the same way
        if done:
            self.message_user(request, _("%(n)d generation(s) queued again.") % {"n": done}, messages.SUCCESS)

    @admin.action(description=_("Cancel selected generations"))
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[ImageGeneration]) -> None:
        count = 0
        for generation in queryset.filter(status__in=(Status.QUEUED, Status.RUNNING)):
            cancel_generation(generation)
            count += 1
        self.message_user(request, _("%(n)d generation(s) canceled.") % {"n": count}, messages.SUCCESS)
