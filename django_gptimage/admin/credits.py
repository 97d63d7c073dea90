"""Credit balances and the credit ledger (read-only), and the usage report with its chart and CSV."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from django_gptimage.access.models import CreditAccount, CreditEntry
from django_gptimage.admin.charts import spend_chart_svg
from django_gptimage.domain.credits import format_credits
from django_gptimage.options import CURRENCY, format_cost
from django_gptimage.service import usage_report

REPORT_DAYS = (7, 30, 90, 365)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the ledger: viewable, never added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ("user", "available", "reserved_display", "updated_at", "ledger_link")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email")
    ordering = ("user__username",)
    fields = ("user", "available", "reserved_display", "updated_at", "ledger_link")
    readonly_fields = fields

    @admin.display(description=_("Available credits"), ordering="balance")
    def available(self, obj: CreditAccount) -> str:
        return format_credits(obj.balance)

    @admin.display(description=_("Reserved by generations in progress"), ordering="reserved")
    def reserved_display(self, obj: CreditAccount) -> str:
        return format_credits(obj.reserved)

    @admin.display(description=_("Ledger"))
    def ledger_link(self, obj: CreditAccount) -> str:
        url = reverse("admin:django_gptimage_creditentry_changelist") + f"?account__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Entries"))


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "kind", "amount_display", "held_display", "charged_display",
                    "balance_display", "generation_link", "created_by", "note")  # fmt: skip
    list_filter = ("kind", "created_at")
    list_select_related = ("account__user", "created_by", "generation")
    search_fields = ("account__user__username", "note", "generation_ref")
    date_hierarchy = "created_at"
    fields = ("created_at", "user", "kind", "amount", "held", "charged", "balance_after", "reserved_after",
              "generation_link", "generation_ref", "created_by", "note")  # fmt: skip
    readonly_fields = fields
    change_list_template = "admin/django_gptimage/creditentry/change_list.html"

    @admin.display(description=_("User"), ordering="account__user__username")
    def user(self, obj: CreditEntry) -> Any:
        return obj.account.user

    @admin.display(description=_("Amount"), ordering="amount")
    def amount_display(self, obj: CreditEntry) -> str:
        return f"{'+' if obj.amount > 0 else ''}{format_credits(obj.amount)}"

    @admin.display(description=_("Reserved"))
    def held_display(self, obj: CreditEntry) -> str:
        return f"{'+' if obj.held > 0 else ''}{format_credits(obj.held)}" if obj.held else ""

    @admin.display(description=_("Charged"))
    def charged_display(self, obj: CreditEntry) -> str:
        return format_credits(obj.charged) if obj.kind == CreditEntry.Kind.CAPTURE else ""

    @admin.display(description=_("Balance after"))
    def balance_display(self, obj: CreditEntry) -> str:
        return format_credits(obj.balance_after)

    @admin.display(description=_("Generation"))
    def generation_link(self, obj: CreditEntry) -> str:
        if obj.generation_id is None:
            return obj.generation_ref[:8] + (" " + str(_("(deleted)")) if obj.generation_ref else "")
        url = reverse("admin:django_gptimage_imagegeneration_change", args=[obj.generation_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.generation_id)[:8])

    # -- the usage report --------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("usage/", wrap(self.usage_view), name="django_gptimage_creditentry_usage"),
            *super().get_urls(),
        ]

    def usage_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = int(request.GET.get("days", 30))
        except ValueError:
            days = 30
        days = min(max(days, 1), 366)
        report = usage_report(days=days)
        if request.GET.get("format") == "csv":
            return self._csv(report)
        totals = report.totals
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Usage and spend"),
            "report": report,
            "rows": [self._row(r) for r in report.rows],
            "totals": self._row(totals),
            "by_user": [(name or _("(no user)"), self._row(r)) for name, r in report.totals_by("user")],
            "by_model": [(name, self._row(r)) for name, r in report.totals_by("model")],
            "by_tier": [(name, self._row(r)) for name, r in report.totals_by("tier")],
            "chart": mark_safe(spend_chart_svg(report.spend_per_day(), currency=CURRENCY)),  # noqa: S308 - built from dates and numbers
            "days": days,
            "day_choices": REPORT_DAYS,
            "csv_url": f"?days={days}&format=csv",
        }
        return TemplateResponse(request, "admin/django_gptimage/creditentry/usage.html", context)

    @staticmethod
    def _row(row: Any) -> dict[str, Any]:
        return {
            "day": row.day, "user": row.user, "model": row.model, "tier": row.tier,
            "generations": row.generations, "succeeded": row.succeeded, "failed": row.failed,
            "images": row.images, "estimated": format_cost(row.estimated), "cost": format_cost(row.cost),
        }  # fmt: skip

    @staticmethod
    def _csv(report: Any) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="gptimage-usage-{report.since.isoformat()}-{report.until.isoformat()}.csv"'
        )
        writer = csv.writer(response)
        writer.writerow(["day", "user", "model", "tier", "generations", "succeeded", "failed", "images",
                         f"estimated_{CURRENCY.lower()}", f"cost_{CURRENCY.lower()}"])  # fmt: skip
        for r in report.rows:
            writer.writerow([r.day.isoformat(), _csv_safe(r.user), r.model, r.tier, r.generations, r.succeeded,
                             r.failed, r.images, r.estimated, r.cost])  # fmt: skip
        t = report.totals
        writer.writerow(
            ["total", "", "", "", t.generations, t.succeeded, t.failed, t.images, t.estimated, t.cost]
        )
        return response


def _csv_safe(text: str) -> str:
    """No formula injection when a spreadsheet opens the export (a username starting with =)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
