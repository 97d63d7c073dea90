"""The loopback server's rate limits: units (requests, images, tokens) used over a sliding minute.

Every dimension keeps the accepted units of the last ``WINDOW`` seconds (a minute; shorter for
fast tests). An enforced
dimension refuses a request whose units would take the window past its limit, and says how
long until enough of them have left it. Refused requests use up nothing, as on OpenAI.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .errors import APIError
from .transport import duration

WINDOW = 60.0
LABELS = {
    "requests": "requests per min (RPM)",
    "images": "images per min (IPM)",
    "tokens": "tokens per min (TPM)",
}


@dataclass
class Refusal:
    dimension: str
    limit: int
    used: int
    requested: int
    retry_after: float


class SlidingWindow:
    """Units accepted in the last ``window`` seconds (thread-safe)."""

    def __init__(
        self, limit: int, *, window: float = WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: deque[tuple[float, int]] = deque()
        self._used = 0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            self._used -= self._events.popleft()[1]

    def used(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return self._used

    def wait_for(self, units: int) -> float:
        """Seconds until ``units`` more fit in the window (0 when they fit now)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            return self._wait_for(units, now)

    def _wait_for(self, units: int, now: float) -> float:
        excess = self._used + units - self.limit
        if excess <= 0:
            return 0.0
        freed = 0
        for at, count in self._events:
            freed += count
            if freed >= excess:
                return max(0.0, at + self.window - now)
        return self.window  # more than the whole limit at once: never fits; say a window

    def take(self, units: int) -> float:
        """Accept ``units`` now and return 0, or refuse and return the seconds to wait."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            wait = self._wait_for(units, now)
            if wait == 0 and units:
                self._events.append((now, units))
                self._used += units
            return wait

    def add(self, units: int) -> None:
        """Count units without refusing (dimensions that are reported, not enforced)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._events.append((now, units))
            self._used += units

    def headers(self, name: str) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-{limit,remaining,reset}-<name>``; reset = until one more unit fits."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            remaining = max(0, self.limit - self._used)
            reset = self._events[0][0] + self.window - now if self._events else 0.0
            # The limit as OpenAI announces it, per minute (a shortened window is a time-lapse minute).
            per_minute = round(self.limit * WINDOW / self.window)
            return {
                f"x-ratelimit-limit-{name}": str(per_minute),
                f"x-ratelimit-remaining-{name}": str(remaining),
                f"x-ratelimit-reset-{name}": duration(max(0.0, reset)),
            }


class Limits:
    """The windows of one server: requests and tokens always reported, images when enforced."""

    def __init__(
        self,
        *,
        requests: int,
        tokens: int,
        requests_per_minute: int | None = None,
        images_per_minute: int | None = None,
        window: float = WINDOW,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be a positive number of seconds, not {window!r}.")
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("images_per_minute", images_per_minute),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}.")
        self.enforce_requests = requests_per_minute is not None
        self.requests = SlidingWindow(requests_per_minute or requests, window=window)
        self.tokens = SlidingWindow(tokens, window=window)
        self.images = SlidingWindow(images_per_minute, window=window) if images_per_minute else None
        self.accepted_images = 0
        self.refused = 0
        self._lock = threading.Lock()

    @property
    def enforced(self) -> bool:
        return self.enforce_requests or self.images is not None

    def admit(self, images: int) -> Refusal | None:
        """Take one request of ``images`` images, or say which limit refuses it."""
        with self._lock:  # both windows or neither
            if self.enforce_requests and (wait := self.requests.wait_for(1)):
                self.refused += 1
                return Refusal("requests", self.requests.limit, self.requests.used(), 1, wait)
            if self.images is not None and (wait := self.images.take(images)):
                self.refused += 1
                return Refusal("images", self.images.limit, self.images.used(), images, wait)
            self.requests.add(1)
            self.accepted_images += images
            return None

    def headers(self) -> dict[str, str]:
        headers = {**self.requests.headers("requests"), **self.tokens.headers("tokens")}
        if self.images is not None:
            headers.update(self.images.headers("images"))
        return headers


def rate_limit_error(refusal: Refusal, model: str) -> APIError:
    """OpenAI's 429 ``rate_limit_exceeded`` answer, with ``Retry-After`` for the refusing limit."""
    wait = max(refusal.retry_after, 0.001)
    message = (
        f"Rate limit reached for {model} in organization org-fake on {LABELS[refusal.dimension]}: "
        f"Limit {refusal.limit}, Used {refusal.used}, Requested {refusal.requested}. "
        f"Please try again in {duration(wait)}. Visit https://platform.openai.com/account/rate-limits "
        "to learn more."
    )
    headers = {
        "retry-after": str(math.ceil(wait)),
        "retry-after-ms": str(math.ceil(wait * 1000)),
        f"x-ratelimit-remaining-{refusal.dimension}": "0",
    }
    return APIError(429, message, type=refusal.dimension, code="rate_limit_exceeded", headers=headers)
