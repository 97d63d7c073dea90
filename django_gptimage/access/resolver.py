"""The default ``ACCESS_RESOLVER`` (the plans) and the :class:`Access` any resolver may return.

A resolver is ``f(user) -> Access | iterable of tiers | None``. An iterable of tiers is the
older, tiers-only form; ``None`` means no limit beyond the site policy. Sites with their own
billing write their own resolver and return an :class:`Access`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django_gptimage.domain.policy import Policy


@dataclass(frozen=True)
class Access:
    """What one user has unlocked. ``None`` for a field means "whatever the site policy allows"."""

    tiers: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    qualities: tuple[str, ...] | None = None
    max_n: int | None = None
    monthly_quota: int | None = None  # images per calendar month
    plan: str = ""  # the plan's name, when the access comes from a plan
    plan_label: str = ""
    # (field, requested value, site policy) -> the sentence telling the editor how to unlock it.
    explain: Callable[[str, Any, Policy], str] | None = field(default=None, compare=False, repr=False)

    def narrow(self, policy: Policy) -> Policy:
        """The site policy narrowed to this access (never widened)."""
        narrowed = policy.narrowed(tiers=self.tiers, models=self.models, qualities=self.qualities)
        if self.max_n is not None:
            max_n = self.max_n if policy.max_n is None else min(policy.max_n, self.max_n)
            narrowed = replace(narrowed, max_n=max_n)
        return narrowed

    def denied_message(self, field_name: str, value: Any, policy: Policy) -> str:
        if self.explain is not None:
            return self.explain(field_name, value, policy)
        what = {"tier": f"{value}", "model": f"{value}", "quality": f"{value} quality"}.get(
            field_name, f"{value} images per request" if field_name == "n" else f"{value!r}"
        )
        return f"{what} is not unlocked for your account."


def as_access(value: Any) -> Access | None:
    """Normalise what a resolver returned."""
    if value is None or isinstance(value, Access):
        return value
    return Access(tiers=tuple(value))


def plan_access(user: Any) -> Access | None:
    """The default resolver: the access of ``user``'s plan (see :func:`.plans.plan_for`)."""
    from . import plans

    return plans.access_for(user)
