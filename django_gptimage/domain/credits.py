"""Credit arithmetic and spend caps, as pure rules (no Django, no I/O).

Credits are a site's own unit (``CREDITS_PER_USD`` credits per US dollar of the image service's
price). A generation *reserves* its estimate before it is queued, then is *captured* (charged its
actual cost, the rest of the reservation released) or *refunded* (all of it given back), by its
outcome and its error code's refund rule (:func:`.errors.settlement`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .errors import ERRORS, ErrorCode, RefundRule, RetryRule

CREDIT_PLACES = Decimal("0.0001")
ZERO = Decimal(0)


def to_credits(
    usd: Decimal | float | str, per_usd: Decimal | float | str, *, round_up: bool = False
) -> Decimal:
    """``usd`` in credits; reservations round up (never too small), charges to the nearest."""
    value = Decimal(str(usd)) * Decimal(str(per_usd))
    return value.quantize(CREDIT_PLACES, rounding=ROUND_CEILING if round_up else ROUND_HALF_UP)


def to_usd(credits: Decimal | float | str, per_usd: Decimal | float | str) -> Decimal:
    return (Decimal(str(credits)) / Decimal(str(per_usd))).quantize(
        Decimal("0.000001"), rounding=ROUND_HALF_UP
    )


def format_credits(amount: Decimal | float | str | None) -> str:
    """``5.30``: two decimals, four when the amount is below one credit and not round."""
    if amount is None:
        return "-"
    value = Decimal(str(amount))
    two = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return str(two if two == value or abs(value) >= 1 else value.quantize(CREDIT_PLACES))


@dataclass(frozen=True)
class Capture:
    """How a reservation of ``held`` credits ends when ``cost`` credits are charged."""

    charged: Decimal  # taken from the reservation (and, if it fell short, from the balance)
    released: Decimal  # given back to the balance (negative: taken from it)
    uncollected: Decimal  # what the actual cost exceeded the reservation plus the balance by


def capture(held: Decimal, cost: Decimal, available: Decimal) -> Capture:
    """Charge ``cost`` against a reservation of ``held`` with ``available`` credits besides.

    The balance never goes below zero: a cost above the reservation takes the excess from the
    balance as far as it goes, and what is left is ``uncollected`` (recorded, not charged).
    """
    cost = max(cost, ZERO)
    charged = min(cost, held + max(available, ZERO))
    return Capture(charged=charged, released=held - charged, uncollected=cost - charged)


# -- the documented policy (docs/access.md is generated from it) ---------------------------------

REFUND_TEXT: dict[RefundRule, str] = {
    RefundRule.NOT_RESERVED: "Refused before anything was reserved or sent: nothing is charged.",
    RefundRule.REFUND: "The whole reservation is refunded.",
    RefundRule.IF_CONFIGURED: "Refunded; charged instead when `CHARGE_MAYBE_BILLED` is `True` (the actual cost "
    "when usage came back, else the reservation).",
    RefundRule.IF_DELIVERED: "Charged the actual cost when paid-for images were stored (or are kept for a "
    "store-only retry, which then costs nothing more); refunded otherwise.",
}
RETRY_COST: dict[RetryRule, str] = {
    RetryRule.NEVER: "No automatic retry.",
    RetryRule.BACKOFF: "Automatic retries reuse the first reservation: nothing more is reserved.",
    RetryRule.IF_CONFIGURED: "Retried only when the site opts in; a retry reuses the reservation.",
    RetryRule.STORE_ONLY: "A retry only stores the kept images again: it costs nothing more.",
}


def refund_policy_markdown() -> str:
    """The per-error-code table of docs/access.md, from the code's own table."""
    lines = [
        "| outcome | refund rule | what happens to the reservation | retries |",
        "|---|---|---|---|",
        "| succeeded | `capture` | The actual cost (from the usage tokens) is charged; the rest of the "
        "reservation is released. | - |",
    ]
    for code, info in ERRORS.items():
        lines.append(
            f"| `{code.value}` | `{info.refund.value}` | {REFUND_TEXT[info.refund]} | {RETRY_COST[info.retry]} |"
        )
    return "\n".join(lines) + "\n"


# -- spend caps ----------------------------------------------------------------------------------

CAP_SCOPES = ("user", "site")
CAP_PERIODS = ("daily", "monthly")


@dataclass(frozen=True)
class SpendCaps:
    """USD caps; ``None`` for no cap."""

    user_daily: Decimal | None = None
    user_monthly: Decimal | None = None
    site_daily: Decimal | None = None
    site_monthly: Decimal | None = None

    def get(self, scope: str, period: str) -> Decimal | None:
        value: Decimal | None = getattr(self, f"{scope}_{period}")
        return value

    def __bool__(self) -> bool:
        return any(self.get(s, p) is not None for s in CAP_SCOPES for p in CAP_PERIODS)


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{value!r} is not an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{value!r} is not a positive amount")
    return amount


def cap_problems(config: Any) -> list[str]:
    """What is wrong with a ``SPEND_CAPS`` value (empty: nothing)."""
    if not isinstance(config, Mapping):
        return [f"SPEND_CAPS must be a dict, not {type(config).__name__}."]
    problems = []
    for scope, periods in config.items():
        if scope not in CAP_SCOPES:
            problems.append(f"SPEND_CAPS has an unknown key {scope!r}; use 'user' and/or 'site'.")
            continue
        if not isinstance(periods, Mapping):
            problems.append(f"SPEND_CAPS[{scope!r}] must be a dict like {{'daily': 5, 'monthly': 50}}.")
            continue
        for period, value in periods.items():
            if period not in CAP_PERIODS:
                problems.append(
                    f"SPEND_CAPS[{scope!r}] has an unknown key {period!r}; use 'daily' and/or 'monthly'."
                )
                continue
            try:
                _amount(value)
            except ValueError as exc:
                problems.append(
                    f"SPEND_CAPS[{scope!r}][{period!r}]: {exc} (use US dollars, e.g. 5 or '5.00')."
                )
    return problems


def parse_caps(config: Any) -> SpendCaps:
    """``SPEND_CAPS`` as :class:`SpendCaps`; raises ValueError when it is malformed."""
    problems = cap_problems(config)
    if problems:
        raise ValueError(" ".join(problems))
    values = {
        f"{scope}_{period}": _amount(periods.get(period))
        for scope, periods in config.items()
        for period in CAP_PERIODS
    }
    return SpendCaps(**values)


@dataclass(frozen=True)
class CapBreach:
    scope: str  # "user" or "site"
    period: str  # "daily" or "monthly"
    cap: Decimal
    spent: Decimal
    cost: Decimal


def cap_breaches(
    caps: SpendCaps, *, cost: Decimal, spent: Mapping[tuple[str, str], Decimal]
) -> list[CapBreach]:
    """The caps ``cost`` more would pass, given what was ``spent`` per (scope, period)."""
    out = []
    for scope in CAP_SCOPES:
        for period in CAP_PERIODS:
            cap = caps.get(scope, period)
            if cap is None or (scope, period) not in spent:
                continue
            if spent[(scope, period)] + cost > cap:
                out.append(CapBreach(scope, period, cap, spent[(scope, period)], cost))
    return out


__all__ = [
    "CAP_PERIODS",
    "CAP_SCOPES",
    "CapBreach",
    "Capture",
    "ErrorCode",
    "SpendCaps",
    "cap_breaches",
    "cap_problems",
    "capture",
    "format_credits",
    "parse_caps",
    "refund_policy_markdown",
    "to_credits",
    "to_usd",
]
