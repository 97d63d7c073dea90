"""When to try a failed generation again, from its error code alone (plus site options)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ErrorCode, RetryRule, error_info


@dataclass(frozen=True)
class RetryOptions:
    max_attempts: int = 4
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    retry_on_timeout: bool = False
    requeue_abandoned: bool = False
    retry_after_max: float = 900.0  # a longer Retry-After fails the generation instead of waiting


def retry_delay(
    code: ErrorCode | str,
    attempts: int,
    options: RetryOptions,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None when this failure is final.

    Exponential backoff with "equal jitter" (a random delay between half the ceiling and the
    ceiling) spreads retries of many jobs hit by the same outage while the wait still grows.
    A provider's Retry-After is a floor, never shortened; one longer than ``retry_after_max``
    makes the failure final rather than leaving the editor waiting that long.
    """
    code = ErrorCode(code)
    rule = error_info(code).retry
    if attempts >= options.max_attempts:
        return None
    if rule in (RetryRule.BACKOFF, RetryRule.STORE_ONLY):
        pass
    elif rule is RetryRule.IF_CONFIGURED:
        allowed = options.requeue_abandoned if code is ErrorCode.ABANDONED else options.retry_on_timeout
        if not allowed:
            return None
    else:
        return None
    ceiling = min(options.backoff_max, options.backoff_base * (2 ** max(0, attempts - 1)))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        if retry_after > options.retry_after_max:
            return None
        delay = max(delay, retry_after)
    return round(delay, 3)
