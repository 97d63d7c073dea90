"""Which plan a user has, and what it unlocks.

A user's plan is the most generous (highest ``rank``) of their own plan and their groups'
plans; superusers also get ``SUPERUSER_PLAN`` when it is set; a user with none of these gets
``DEFAULT_PLAN`` (anonymous users too). A request made for no user at all (your own code, the
CLI without ``--user``) gets ``PLAN_WITHOUT_USER``, which by default means no plan limits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.policy import Policy
from django_gptimage.domain.sizes import TIERS

from .models import AccessPlan, UserPlan
from .resolver import Access

# The shipped plans (also created by a data migration). A configured plan missing from the
# database falls back to its shipped definition here: a site that lost its rows (or a test
# database flushed between tests) is limited to what the shipped plan allows, never opened up.
SHIPPED: dict[str, dict[str, Any]] = {
    "free": {"name": "free", "label": "Free", "rank": 0, "tiers": ["1K"]},
    "paid": {"name": "paid", "label": "Paid", "rank": 10, "tiers": ["1K", "2K", "4K"]},
}
NOBODY = object()  # plan_for(): "no plan applies" (a request for no user, PLAN_WITHOUT_USER = None)


def _has_groups() -> bool:
    try:
        get_user_model()._meta.get_field("groups")
    except FieldDoesNotExist:
        return False
    return True


def plan_for(user: Any) -> AccessPlan | str | object:
    """The user's effective plan, NOBODY, or the name of a configured plan that does not exist."""
    s = gptimage_settings
    if user is None:
        if not s.PLAN_WITHOUT_USER:
            return NOBODY
        return _named(s.PLAN_WITHOUT_USER)
    if getattr(user, "is_authenticated", False):
        q = Q(user_plans__user=user)
        if _has_groups():
            q |= Q(group_plans__group__user=user)
        if getattr(user, "is_superuser", False) and s.SUPERUSER_PLAN:
            q |= Q(name=s.SUPERUSER_PLAN)
        plan = AccessPlan.objects.filter(q).distinct().order_by("-rank", "name").first()
        if plan is not None:
            return plan
    return _named(s.DEFAULT_PLAN)


def _named(name: str) -> AccessPlan | str:
    plan = AccessPlan.objects.filter(name=name).first()
    if plan is None and name in SHIPPED:
        plan = AccessPlan(**SHIPPED[name])
    return plan or name


def all_plans() -> list[AccessPlan]:
    """Every plan, least generous first (shipped plans missing from the database included)."""
    plans = list(AccessPlan.objects.order_by("rank", "name"))
    names = {p.name for p in plans}
    plans += [AccessPlan(**d) for n, d in SHIPPED.items() if n not in names]
    return sorted(plans, key=lambda p: (p.rank, p.name))


def access_for(user: Any) -> Access | None:
    plan = plan_for(user)
    if plan is NOBODY:
        return None
    if isinstance(plan, str):  # a configured plan name without its record: fail closed, say why
        return Access(tiers=(), plan=plan, plan_label=plan, explain=_missing_plan(plan))
    assert isinstance(plan, AccessPlan)
    return access_of(plan)


def access_of(plan: AccessPlan) -> Access:
    return Access(
        tiers=tuple(plan.tiers or ()),
        models=tuple(plan.model_names) if plan.model_names else None,
        qualities=tuple(plan.qualities) if plan.qualities else None,
        max_n=plan.max_n,
        monthly_quota=plan.monthly_quota,
        plan=plan.name,
        plan_label=str(plan),
        explain=lambda field, value, policy: explain(plan, field, value, policy),
    )


def assign(user: Any, plan: AccessPlan | str | None, *, note: str = "") -> UserPlan | None:
    """Give ``user`` their own plan (None removes it, so groups' plans and the default apply)."""
    if plan is None:
        UserPlan.objects.filter(user=user).delete()
        return None
    if isinstance(plan, str):
        found = AccessPlan.objects.filter(name=plan).first()
        if found is None and plan in SHIPPED:
            found = AccessPlan.objects.create(**SHIPPED[plan])
        if found is None:
            raise AccessPlan.DoesNotExist(f"No access plan named {plan!r}.")
        plan = found
    user_plan, _ = UserPlan.objects.update_or_create(user=user, defaults={"plan": plan, "note": note})
    return user_plan


def _missing_plan(name: str) -> Any:
    def message(field: str, value: Any, policy: Policy) -> str:
        return (
            f"Your account's plan {name!r} does not exist on this site, so nothing is unlocked; "
            "an administrator has to create it (or change DEFAULT_PLAN)."
        )

    return message


def _join(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _has_tier(plan: AccessPlan, *, tier: str) -> bool:
    return tier in (plan.tiers or ())


def explain(current: AccessPlan, field: str, value: Any, policy: Policy) -> str:
    """ "2K and 4K need the Paid plan; ask …": what is locked, which plan unlocks it, whom to ask."""
    others = [p for p in all_plans() if p.name != current.name]
    # An upgrade first (least generous first), a plan ranked lower only when nothing above has it.
    plans = [p for p in others if p.rank > current.rank] + [p for p in others if p.rank <= current.rank][::-1]
    items: list[tuple[str, Callable[[AccessPlan], bool]]]
    if field == "tier":
        site_tiers = policy.effective_tiers() or TIERS
        locked = [t for t in site_tiers if t not in (current.tiers or ())] or [str(value)]
        items = [(t, functools.partial(_has_tier, tier=t)) for t in locked]
    elif field == "model":
        items = [(str(value), lambda p: not p.model_names or value in p.model_names)]
    elif field == "quality":
        items = [(f"{str(value).capitalize()} quality", lambda p: not p.qualities or value in p.qualities)]
    elif field == "n":
        items = [
            (f"More than {current.max_n} images per request", lambda p: p.max_n is None or p.max_n >= value)
        ]
    else:
        items = [(f"{value!r}", lambda p: False)]  # nothing unlocks an unknown field
    by_plan: dict[str, list[str]] = {}
    nowhere: list[str] = []
    for label, unlocks in items:
        plan = next((p for p in plans if unlocks(p)), None)
        if plan is None:
            nowhere.append(label)
        else:
            by_plan.setdefault(str(plan), []).append(label)
    parts = [
        f"{_join(labels)} need{'s' if len(labels) == 1 else ''} the {name} plan"
        for name, labels in by_plan.items()
    ]
    sentence = "; ".join(parts)
    if sentence:
        sentence = f"{sentence}; {gptimage_settings.UPGRADE_HINT} (your plan: {current})."
    if nowhere:
        extra = f"{_join(nowhere)} {'is' if len(nowhere) == 1 else 'are'} not part of any plan on this site."
        sentence = f"{sentence} {extra}".strip()
    return sentence
