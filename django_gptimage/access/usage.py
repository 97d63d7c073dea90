"""Spend and usage per user, model, tier and day, from the generations' own costs.

``usage_report()`` is what the admin's usage page, its chart and its CSV export show. Cost is the
actual cost (from the usage tokens) of each generation; generations still in flight count with
cost 0 until their answer arrives. Days are those of the site's time zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

ZERO = Decimal(0)
MONEY = Decimal("0.000001")


@dataclass
class UsageRow:
    day: date
    user: str
    model: str
    tier: str
    generations: int = 0
    succeeded: int = 0
    failed: int = 0
    images: int = 0
    estimated: Decimal = ZERO
    cost: Decimal = ZERO


@dataclass
class UsageReport:
    since: date
    until: date  # inclusive
    rows: list[UsageRow] = field(default_factory=list)

    @property
    def totals(self) -> UsageRow:
        total = UsageRow(self.until, "", "", "")
        for row in self.rows:
            total.generations += row.generations
            total.succeeded += row.succeeded
            total.failed += row.failed
            total.images += row.images
            total.estimated += row.estimated
            total.cost += row.cost
        return total

    def days(self) -> Iterator[date]:
        day = self.since
        while day <= self.until:
            yield day
            day += timedelta(days=1)

    def spend_per_day(self) -> list[tuple[date, Decimal]]:
        """Every day of the period (days without spend included), with its actual cost."""
        by_day: dict[date, Decimal] = {}
        for row in self.rows:
            by_day[row.day] = by_day.get(row.day, ZERO) + row.cost
        return [(day, by_day.get(day, ZERO)) for day in self.days()]

    def totals_by(self, key: str) -> list[tuple[str, UsageRow]]:
        """Totals per ``user``, ``model`` or ``tier``, most expensive first."""
        groups: dict[str, UsageRow] = {}
        for row in self.rows:
            name = getattr(row, key)
            total = groups.setdefault(name, UsageRow(self.until, "", "", ""))
            total.generations += row.generations
            total.succeeded += row.succeeded
            total.failed += row.failed
            total.images += row.images
            total.estimated += row.estimated
            total.cost += row.cost
        return sorted(groups.items(), key=lambda item: (-item[1].cost, item[0]))


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(MONEY)


def usage_report(*, days: int = 30, until: date | None = None, user: Any = None) -> UsageReport:
    """Usage of the ``days`` days ending ``until`` (today by default), optionally of one user."""
    from django_gptimage.models import GeneratedImage, ImageGeneration, Status

    until = until or timezone.localdate()
    since = until - timedelta(days=max(1, days) - 1)
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(since, datetime.min.time()), tz)
    end = timezone.make_aware(datetime.combine(until + timedelta(days=1), datetime.min.time()), tz)
    username = f"requested_by__{get_user_model().USERNAME_FIELD}"
    generations = ImageGeneration.objects.filter(created_at__gte=start, created_at__lt=end)
    if user is not None:
        generations = generations.filter(requested_by=user)
    keys = ("day", username, "model", "tier")
    rows: dict[tuple[Any, ...], UsageRow] = {}
    grouped = (
        generations.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values(*keys)
        .annotate(
            generations=Count("pk"),
            succeeded=Count("pk", filter=Q(status=Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=Status.FAILED)),
            estimated=Sum("estimated_cost"),
            cost=Sum("actual_cost"),
        )
    )
    for g in grouped:
        key = tuple(g[k] for k in keys)
        rows[key] = UsageRow(
            day=g["day"], user=g[username] or "", model=g["model"], tier=g["tier"],
            generations=g["generations"], succeeded=g["succeeded"], failed=g["failed"],
            estimated=_money(g["estimated"]), cost=_money(g["cost"]),
        )  # fmt: skip
    images = (
        GeneratedImage.objects.filter(generation__in=generations)
        .annotate(day=TruncDate("generation__created_at", tzinfo=tz))
        .values("day", f"generation__{username}", "generation__model", "generation__tier")
        .annotate(images=Count("pk"))
    )
    for i in images:
        key = (i["day"], i[f"generation__{username}"], i["generation__model"], i["generation__tier"])
        if key in rows:
            rows[key].images = i["images"]
    ordered = sorted(rows.values(), key=lambda r: (r.day, r.user, r.model, r.tier))
    return UsageReport(since=since, until=until, rows=ordered)
