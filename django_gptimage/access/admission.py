"""What the service checks before sending, beyond validation: the plan's monthly quota (and, with
the ledger, spend caps and credits). ``check()`` runs early and without locks, for a clear
refusal before anything is recorded; the reservation repeats the checks under row locks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.pricing import estimate_cost
from django_gptimage.domain.validation import Problem, ValidatedRequest

from .resolver import Access


def refuse(problems: list[Problem], code: ErrorCode) -> None:
    from django_gptimage.service import GenerationRefused  # the service imports this module

    raise GenerationRefused(problems, code)


def month_start(now: datetime | None = None) -> datetime:
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def images_this_month(user: Any, *, exclude: Any = None) -> int:
    """Images stored this calendar month for ``user``'s generations, plus those still in flight."""
    from django_gptimage.models import GeneratedImage, ImageGeneration, Status

    start = month_start()
    mine = ImageGeneration.objects.filter(requested_by=user, created_at__gte=start)
    if exclude is not None:
        mine = mine.exclude(pk=exclude)
    in_flight = mine.filter(status__in=(Status.QUEUED, Status.RUNNING)).aggregate(n=Sum("n"))["n"] or 0
    stored = GeneratedImage.objects.filter(
        generation__in=mine.exclude(status__in=(Status.QUEUED, Status.RUNNING))
    )
    return in_flight + stored.count()


def quota_problems(n: int, user: Any, access: Access | None, *, exclude: Any = None) -> list[Problem]:
    if access is None or access.monthly_quota is None or not getattr(user, "is_authenticated", False):
        return []
    used = images_this_month(user, exclude=exclude)
    if used + n <= access.monthly_quota:
        return []
    renews = next_month(month_start())
    return [
        Problem(
            "n",
            f"Your plan ({access.plan_label or access.plan}) includes {access.monthly_quota} images a month; "
            f"{used} are used this month and this request asks for {n}. The quota renews on "
            f"{renews.day} {renews:%B}; {gptimage_settings.UPGRADE_HINT} for more.",
            "access_denied",
        )
    ]


def estimate_for(validated: ValidatedRequest) -> Decimal:
    """The USD estimate recorded on the generation (and reserved, in credits)."""
    r = validated.request
    return estimate_cost(
        model=r.model,
        quality=r.quality,
        width=validated.width,
        height=validated.height,
        n=r.n,
        prompt_chars=len(r.prompt),
        input_image_pixels=tuple(i.width * i.height for i in r.images),
        overrides=gptimage_settings.PRICES,
    )


def check(validated: ValidatedRequest, *, user: Any, access: Access | None) -> None:
    """Raise GenerationRefused when the plan's quota, a spend cap or the credits cannot take it."""
    from . import caps, credits

    problems = quota_problems(validated.request.n, user, access)
    if problems:
        refuse(problems, ErrorCode.ACCESS_DENIED)
    cost = estimate_for(validated)
    problems = caps.cap_problems(cost, user)
    if problems:
        refuse(problems, ErrorCode.SPEND_CAP_REACHED)
    problems = credits.credit_problems(cost, user)
    if problems:
        refuse(problems, ErrorCode.INSUFFICIENT_CREDITS)


def check_recorded(generation: Any, user: Any) -> None:
    """Inside the recording transaction: the caps again (this record excluded), then the reservation.

    Raises GenerationRefused, which rolls the transaction back: no record, no job, nothing sent.
    """
    from . import caps, credits

    cost = generation.estimated_cost or Decimal(0)
    if credits.charged_user(user):
        try:
            credits.reserve(generation, user)  # takes the user's row lock: their requests queue up here
        except credits.InsufficientCredits as exc:
            refuse(
                [Problem("credits", str(exc), ErrorCode.INSUFFICIENT_CREDITS.value)],
                ErrorCode.INSUFFICIENT_CREDITS,
            )
    problems = caps.cap_problems(cost, user, exclude=generation.pk)
    if problems:
        refuse(problems, ErrorCode.SPEND_CAP_REACHED)
