"""Save hook events in the admin: every hook's refusals, outages, deferrals and applies, site-wide.

Read-only: events are written by the hooks (django_gptimage.hooks). Each object's own events are
also on its generations panel (``GenerationsPanelMixin``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_gptimage.models import HookEvent


@admin.register(HookEvent)
class HookEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "hook", "outcome", "target", "message", "generation_link"]
    list_filter = ["outcome", "hook", "content_type"]
    search_fields = ["hook", "message", "object_id"]
    date_hierarchy = "created_at"
    list_select_related = ["content_type"]
    fields = ("created_at", "hook", "outcome", "content_type", "object_id", "field", "message", "generation")
    readonly_fields = fields

    @admin.display(description=_("object"))
    def target(self, event: HookEvent) -> str:
        return f"{event.content_type.app_label}.{event.content_type.model}:{event.object_id}.{event.field}"

    @admin.display(description=_("generation"))
    def generation_link(self, event: HookEvent) -> str:
        if event.generation_id is None:
            return "–"
        url = reverse("admin:django_gptimage_imagegeneration_change", args=[event.generation_id])
        return format_html('<a href="{}">{}</a>', url, str(event.generation_id)[:8])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
