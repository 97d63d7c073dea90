"""Spend caps: the most money spent per day and per calendar month, per user and site-wide.

Spend is the actual cost (from the usage tokens) of the generations created in the period, plus
the estimate of those still queued or running (so requests in flight count before their answer
arrives). Days and months are those of the site's time zone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Case, DecimalField, F, Sum, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.credits import CapBreach, SpendCaps, cap_breaches, parse_caps
from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.validation import Problem
from django_gptimage.options import format_cost

from .admission import month_start, next_month

ZERO = Decimal(0)


def caps() -> SpendCaps:
    return parse_caps(gptimage_settings.SPEND_CAPS or {})


def day_start(now: datetime | None = None) -> datetime:
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def spent(*, user: Any = None, since: datetime, exclude: Any = None) -> Decimal:
    """USD spent since ``since`` (by ``user``, or site-wide when None)."""
    from django_gptimage.models import ImageGeneration, Status

    qs = ImageGeneration.objects.filter(created_at__gte=since)
    if user is not None:
        qs = qs.filter(requested_by=user)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    money: DecimalField[Any, Any] = DecimalField(max_digits=12, decimal_places=6)
    value = Case(
        When(
            status__in=(Status.QUEUED, Status.RUNNING), then=Coalesce(F("actual_cost"), F("estimated_cost"))
        ),
        default=F("actual_cost"),
        output_field=money,
    )
    total = qs.aggregate(total=Sum(value, output_field=money))["total"]
    return total or ZERO


def breaches(cost: Decimal, user: Any, *, exclude: Any = None) -> list[CapBreach]:
    configured = caps()
    if not configured:
        return []
    signed_in = getattr(user, "is_authenticated", False)
    spent_by: dict[tuple[str, str], Decimal] = {}
    for period, since in (("daily", day_start()), ("monthly", month_start())):
        if configured.get("site", period) is not None:
            spent_by[("site", period)] = spent(since=since, exclude=exclude)
        if signed_in and configured.get("user", period) is not None:
            spent_by[("user", period)] = spent(user=user, since=since, exclude=exclude)
    return cap_breaches(configured, cost=cost, spent=spent_by)


def message(breach: CapBreach) -> str:
    whose = "your" if breach.scope == "user" else "this site's"
    if breach.period == "daily":
        what, renews = "daily", "tomorrow"
    else:
        start = next_month(month_start())
        what, renews = "monthly", f"on {start.day} {start:%B}"
    left = max(breach.cap - breach.spent, ZERO)
    return (
        f"This generation (about {format_cost(breach.cost)}) would go over {whose} {what} spending limit of "
        f"{format_cost(breach.cap)}: {format_cost(breach.spent)} is spent or in progress, "
        f"{format_cost(left)} is left. The limit renews {renews}; choose a smaller or cheaper image, or "
        "ask a site administrator."
    )


def cap_problems(cost: Decimal, user: Any, *, exclude: Any = None) -> list[Problem]:
    return [
        Problem("spend_cap", message(b), ErrorCode.SPEND_CAP_REACHED.value)
        for b in breaches(cost, user, exclude=exclude)
    ]
