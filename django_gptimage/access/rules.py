"""Turn validation problems caused by a user's access (not by the site policy) into unlock rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django_gptimage.domain.policy import Policy
from django_gptimage.domain.sizes import AUTO, parse_size, tier_for_size
from django_gptimage.domain.validation import GenerationRequest, Problem, validate

from .resolver import Access

ACCESS_FIELDS = ("tier", "model", "quality", "n")


def requested_value(request: GenerationRequest, field: str) -> Any:
    if field == "tier":
        if request.size == AUTO:
            return "1K"
        parsed = parse_size(request.size) if request.size else None
        return tier_for_size(*parsed) if parsed else request.tier
    return {"model": request.model, "quality": request.quality, "n": request.n}[field]


def access_problems(
    request: GenerationRequest, problems: Sequence[Problem], access: Access, site: Policy
) -> list[Problem]:
    """``problems`` (from validating against ``access.narrow(site)``), with every problem the site
    policy alone would not have raised replaced by one ``access_denied`` problem per field that
    says what is locked and how to unlock it."""
    if not problems:
        return []
    site_problems = validate(request, site).problems
    site_fields = {p.field for p in site_problems}
    # Where the site policy or the model already objects, its own words say it best.
    out: list[Problem] = list(site_problems)
    done: set[str] = set()
    for problem in problems:
        if problem.field in site_fields:
            continue
        if problem.field not in ACCESS_FIELDS:
            out.append(problem)
        elif problem.field not in done:
            done.add(problem.field)
            value = requested_value(request, problem.field)
            out.append(
                Problem(problem.field, access.denied_message(problem.field, value, site), "access_denied")
            )
    return out
