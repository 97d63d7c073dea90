"""When a failure is tried again: the pure retry rule, per error code and site options."""

from __future__ import annotations

import random

import pytest

from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.retry import RetryOptions, retry_delay

OPTIONS = RetryOptions(max_attempts=4, backoff_base=2.0, backoff_max=300.0)


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_backoff_grows_with_equal_jitter(attempts: int) -> None:
    ceiling = 2.0 * 2 ** (attempts - 1)
    delays = [
        retry_delay(ErrorCode.PROVIDER_ERROR, attempts, OPTIONS, rng=random.Random(s)) for s in range(200)
    ]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100  # spread out, so jobs failing together do not return together


def test_backoff_is_capped() -> None:
    options = RetryOptions(max_attempts=50, backoff_base=2.0, backoff_max=10.0)
    assert all(retry_delay(ErrorCode.RATE_LIMITED, 30, options) <= 10.0 for _ in range(50))


def test_max_attempts_counts_the_first_one() -> None:
    assert retry_delay(ErrorCode.PROVIDER_ERROR, 3, OPTIONS) is not None
    assert retry_delay(ErrorCode.PROVIDER_ERROR, 4, OPTIONS) is None


def test_retry_after_is_a_floor_never_shortened() -> None:
    # Longer than RETRY_BACKOFF_MAX, still waited for in full.
    assert retry_delay(ErrorCode.RATE_LIMITED, 1, OPTIONS, retry_after=600.0) == 600.0
    assert retry_delay(ErrorCode.RATE_LIMITED, 1, OPTIONS, retry_after=0.0) >= 1.0  # backoff still applies


def test_a_retry_after_beyond_the_limit_is_final() -> None:
    options = RetryOptions(retry_after_max=120.0)
    assert retry_delay(ErrorCode.RATE_LIMITED, 1, options, retry_after=120.0) == 120.0
    assert retry_delay(ErrorCode.RATE_LIMITED, 1, options, retry_after=121.0) is None


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.QUOTA_EXCEEDED,
        ErrorCode.AUTH_FAILED,
        ErrorCode.MODERATION_BLOCKED,
        ErrorCode.INVALID_PARAMETERS,
        ErrorCode.BAD_RESPONSE,
        ErrorCode.CANCELED,
        ErrorCode.CONFIGURATION_ERROR,
    ],
)
def test_never_retried_whatever_the_options(code: ErrorCode) -> None:
    generous = RetryOptions(max_attempts=10, retry_on_timeout=True, requeue_abandoned=True)
    assert retry_delay(code, 1, generous, retry_after=1.0) is None


def test_timeouts_and_abandoned_only_when_opted_in() -> None:
    assert retry_delay(ErrorCode.TIMEOUT, 1, OPTIONS) is None
    assert retry_delay(ErrorCode.ABANDONED, 1, OPTIONS) is None
    assert retry_delay(ErrorCode.TIMEOUT, 1, RetryOptions(retry_on_timeout=True)) is not None
    assert retry_delay(ErrorCode.ABANDONED, 1, RetryOptions(requeue_abandoned=True)) is not None
    # Each switch covers its own code only.
    assert retry_delay(ErrorCode.ABANDONED, 1, RetryOptions(retry_on_timeout=True)) is None


def test_storage_errors_are_stored_again() -> None:
    assert retry_delay(ErrorCode.STORAGE_ERROR, 1, OPTIONS) is not None
