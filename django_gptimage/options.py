"""What the browser needs to offer only valid choices: the option matrix and cost estimates.

``option_matrix(user)`` renders the same rules the server validates with (model capabilities,
site policy, the tiers the user has unlocked) into one JSON-ready dict, so a page can disable
invalid combinations with their reason and estimate the cost before anything is sent. Pages embed
it with ``{{ matrix|json_script:"gptimage-matrix" }}``; ``static/django_gptimage/js/options.js``
reads it. ``estimate()`` is the server-side twin of the browser's estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.capabilities import BACKGROUNDS, MODES, get_capabilities
from django_gptimage.domain.matrix import matrix
from django_gptimage.domain.policy import Policy
from django_gptimage.domain.pricing import (
    AUTO_SIZE_ESTIMATE,
    INPUT_IMAGE_TOKENS_1024,
    OUTPUT_TOKENS_1024,
    estimate_cost,
    prices_for,
)
from django_gptimage.domain.sizes import RATIOS, TIERS, resolve_size
from django_gptimage.domain.validation import Problem

CURRENCY = "USD"  # the published prices (and GPTIMAGE["PRICES"]) are in US dollars
CHARS_PER_TEXT_TOKEN = 4  # pricing.estimate_cost's approximation, repeated for the browser

__all__ = [
    "CURRENCY", "Estimate", "available_models", "credit_quote", "estimate", "format_cost", "option_matrix",
]  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    """A cost estimate made before sending (upper-leaning, see pricing.estimate_cost)."""

    amount: Decimal
    currency: str
    width: int | None
    height: int | None

    @property
    def display(self) -> str:
        return format_cost(self.amount, self.currency)

    def as_dict(self) -> dict[str, Any]:
        return {
            "amount": str(self.amount),
            "currency": self.currency,
            "display": self.display,
            "width": self.width,
            "height": self.height,
        }


def format_cost(amount: Decimal | float | None, currency: str = CURRENCY) -> str:
    """``0.0123 USD``: two decimals from 0.10 up, four below (single images cost cents)."""
    if amount is None:
        return "-"
    value = Decimal(str(amount))
    places = Decimal("0.01") if value >= Decimal("0.10") else Decimal("0.0001")
    return f"{value.quantize(places)} {currency}"


def available_models(policy: Policy | None = None) -> list[str]:
    """Model ids offered to editors: ``MODEL``, plus the others ``ALLOWED_MODELS`` names.

    Without ``ALLOWED_MODELS`` editors get the configured model only (no list of snapshots).
    """
    policy = policy or gptimage_settings.policy
    candidates = [gptimage_settings.MODEL, *(policy.models or ())]
    out: list[str] = []
    for model in candidates:
        if model not in out and get_capabilities(model) is not None and policy.allows_model(model):
            out.append(model)
    return out


def option_matrix(user: Any = None, model: str | None = None) -> dict[str, Any]:
    """Every choice an editor can make, with allowed/reason per ratio x tier x mode cell.

    ``model`` limits the result to that model (default: every model the site allows). Cells the
    site allows but ``user`` has not unlocked are ``locked`` with the ``unlock`` rule.
    """
    from django_gptimage.service import access_for

    site = gptimage_settings.policy
    access = access_for(user)
    mine = site if access is None else access.narrow(site)
    models = [model] if model else available_models(site)

    def locked(field: str, values: Sequence[Any], allowed: Sequence[Any]) -> dict[str, str]:
        # What the site offers but this user's access does not, with how to unlock it.
        if access is None:
            return {}
        return {str(v): access.denied_message(field, v, site) for v in values if v not in allowed}

    locked_rules = locked("tier", site.effective_tiers(), mine.effective_tiers())
    locked_models = locked("model", models, [m for m in models if mine.allows_model(m)])
    out_models: dict[str, Any] = {}
    for name in models:
        caps = get_capabilities(name)
        if caps is None:
            raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(available_models(site))}.")
        cells: dict[str, dict[str, dict[str, Any]]] = {}
        for row in matrix(name, site):
            cell: dict[str, Any] = {
                "allowed": row.allowed,
                "reason": row.reason,
                "width": row.width,
                "height": row.height,
                "locked": False,
            }
            if row.allowed and row.tier in locked_rules:
                cell.update(allowed=False, locked=True, reason=locked_rules[row.tier])
            cells.setdefault(row.mode, {}).setdefault(row.ratio, {})[row.tier] = cell
        prices = prices_for(name, gptimage_settings.PRICES)
        qualities = site.effective_qualities(caps)
        out_models[name] = {
            "locked": locked_models.get(name, ""),
            "modes": list(site.effective_modes(caps)),
            "qualities": list(qualities),
            "locked_qualities": locked("quality", qualities, mine.effective_qualities(caps)),
            "formats": list(site.effective_formats(caps)),
            "backgrounds": list(caps.backgrounds),
            "transparent_formats": list(caps.transparent_formats),
            "max_n": mine.effective_max_n(caps),
            "max_prompt_chars": caps.max_prompt_chars,
            "max_input_images": caps.max_input_images,
            "cells": cells,
            "prices": {
                "text_input": str(prices.text_input),
                "image_input": str(prices.image_input),
                "image_output": str(prices.image_output),
            },
        }
    return {
        "models": out_models,
        "ratios": list(RATIOS),
        "tiers": list(TIERS),
        "modes": list(MODES),
        "backgrounds": list(BACKGROUNDS),
        "defaults": {
            "model": models[0] if models else gptimage_settings.MODEL,
            "mode": "text-to-image",
            "ratio": gptimage_settings.DEFAULT_RATIO,
            "tier": gptimage_settings.DEFAULT_TIER,
            "quality": gptimage_settings.DEFAULT_QUALITY,
            "output_format": gptimage_settings.DEFAULT_FORMAT,
            "background": gptimage_settings.DEFAULT_BACKGROUND,
            "n": 1,
        },
        "access": {
            "plan": access.plan_label or access.plan if access else "",
            "tiers": list(mine.effective_tiers()),
            "locked": locked_rules,
        },
        "estimate": {
            "currency": CURRENCY,
            "per_million_tokens": True,
            "output_tokens_1024": dict(OUTPUT_TOKENS_1024),
            "fallback_quality": "high",  # 'auto' is estimated as 'high'
            "input_image_tokens_1024": INPUT_IMAGE_TOKENS_1024,
            "auto_size": list(AUTO_SIZE_ESTIMATE),
            "chars_per_text_token": CHARS_PER_TEXT_TOKEN,
        },
    }


def estimate(
    *,
    model: str | None = None,
    mode: str | None = None,
    ratio: str | None = None,
    tier: str | None = None,
    quality: str | None = None,
    n: int = 1,
    prompt: str = "",
    input_image_pixels: Sequence[int] = (),
) -> Estimate:
    """The cost estimate of a request before it is sent, in ``CURRENCY``.

    Raises ``GenerationRefused`` (nothing to estimate) when the model is unknown or the
    ratio x tier x mode cell is not a size the model makes.
    """
    from django_gptimage.service import GenerationRefused

    s = gptimage_settings
    model = model or s.MODEL
    caps = get_capabilities(model)
    if caps is None:
        raise GenerationRefused([Problem("model", f"Unknown model {model!r}; use a GPT image model.")])
    choice = resolve_size(ratio or s.DEFAULT_RATIO, tier or s.DEFAULT_TIER, mode or "text-to-image", caps)
    if not choice.allowed:
        raise GenerationRefused([Problem(choice.field or "tier", choice.reason)])
    amount = estimate_cost(
        model=model,
        quality=quality or s.DEFAULT_QUALITY,
        width=choice.width,
        height=choice.height,
        n=n,
        prompt_chars=len(prompt),
        input_image_pixels=tuple(input_image_pixels),
        overrides=s.PRICES,
    )
    return Estimate(amount, CURRENCY, choice.width, choice.height)


def credit_quote(*, user: Any, **params: Any) -> Any:
    """What a request would reserve in credits, the user's balance, and whether it is enough.

    ``params`` are those of :func:`estimate` (model, mode, ratio, tier, quality, n, prompt,
    input_image_pixels). Returns an ``access.credits.CreditQuote`` (``.as_dict()`` for JSON);
    ``enabled`` is False when credits are off or the request is for no user. Raises
    ``GenerationRefused`` like ``estimate`` when there is nothing to estimate.
    """
    from django_gptimage.access import credits

    return credits.quote(estimate(**params).amount, user)
