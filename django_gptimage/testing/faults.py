"""Scripted failures: what OpenAI (or the network in between) does on a bad day."""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import INVALID_REQUEST, APIError

# Kinds answered with an error envelope before the request is even validated.
ERROR_KINDS = (
    "rate_limited",
    "insufficient_quota",
    "unauthorized",
    "forbidden",
    "server_error",
    "overloaded",
    "moderation_blocked",
)
# Kinds that change how the connection or the (otherwise normal) answer behaves.
TRANSPORT_KINDS = (
    "delay", "drop", "reset", "truncated", "not_json", "not_image", "wrong_size",
    "gzip", "false_gzip", "extra_images", "bulky_field",
)  # fmt: skip
# Transport kinds whose answer is odd but usable: the generation still succeeds.
USABLE_KINDS = ("gzip", "extra_images", "bulky_field")
# Kinds that only apply to streaming requests (others skip past them).
STREAM_KINDS = ("stream_error", "stream_cut")
FAULT_KINDS = ERROR_KINDS + TRANSPORT_KINDS + STREAM_KINDS


@dataclass
class Fault:
    """One scripted failure, used for the next ``times`` matching requests.

    ``path`` limits it to one endpoint ("/v1/images/edits", "/images/edits" or "edits").
    ``retry_after``: seconds advertised by ``rate_limited``. ``seconds``: how long ``delay``
    sleeps (before answering; on a streaming request with ``after``, before event ``after``). ``fraction``: share of the body ``truncated`` sends. ``after``: events sent before
    ``stream_error``/``stream_cut``/stream ``truncated`` (default: all partial images).
    ``size``: "WxH" that ``wrong_size`` produces (default: half the requested size).
    ``message``: replaces the error message of an error kind.
    ``retry_after_form``: how ``rate_limited`` advertises its wait: ``"seconds"`` (Retry-After and
    retry-after-ms) or ``"date"`` (Retry-After as an HTTP-date, nothing else).
    ``gzip``: a gzip-compressed body with ``Content-Encoding: gzip``; ``false_gzip``: the header
    without the compression. ``extra_images``: ``count`` images more than asked for (streamed:
    ``count`` completed events more). ``bulky_field``: ``count`` bytes of text in a field that is
    not an image (``field``; streamed: first in the first completed event, before its ``type``).
    """

    kind: str
    times: int = 1
    path: str | None = None
    retry_after: float = 1.0
    seconds: float = 1.0
    fraction: float = 0.5
    after: int | None = None
    size: str | None = None
    message: str | None = None
    retry_after_form: str = "seconds"
    count: int = 1
    field: str = "revised_prompt"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {self.kind!r}; choose one of {', '.join(FAULT_KINDS)}.")
        if self.times < 1:
            raise ValueError("times must be at least 1.")
        if not 0 <= self.fraction < 1:
            raise ValueError("fraction must be in [0, 1).")
        if self.retry_after_form not in ("seconds", "date"):
            raise ValueError("retry_after_form must be 'seconds' or 'date'.")

    def matches(self, path: str, stream: bool) -> bool:
        if self.kind in STREAM_KINDS and not stream:
            return False
        if self.path is None:
            return True
        wanted = self.path if self.path.startswith("/") else f"/images/{self.path}"
        return path == wanted or path.endswith(wanted)

    def error(self, model: str, request_id: str) -> APIError:
        """The error answer of an error kind."""
        seconds = max(self.retry_after, 0.0)
        table: dict[str, tuple[int, str, str | None, str]] = {
            "rate_limited": (
                429, "requests", "rate_limit_exceeded",
                f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
                f"Limit 5, Used 5, Requested 1. Please try again in {seconds:g}s.",
            ),
            "insufficient_quota": (
                429, "insufficient_quota", "insufficient_quota",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            "unauthorized": (
                401, INVALID_REQUEST, "invalid_api_key",
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
            ),
            "forbidden": (
                403, INVALID_REQUEST, None,
                f"Your organization must be verified to use the model `{model}`. Please go to: "
                "https://platform.openai.com/settings/organization/general and click on Verify Organization.",
            ),
            "server_error": (
                500, "server_error", None,
                "The server had an error while processing your request. Sorry about that!",
            ),
            "overloaded": (
                503, "server_error", None,
                "The engine is currently overloaded, please try again later.",
            ),
            "moderation_blocked": (
                400, "image_generation_user_error", "moderation_blocked",
                "Your request was rejected by the safety system. If you believe this is an error, contact "
                f"us at help.openai.com and include the request ID {request_id}.",
            ),
        }  # fmt: skip
        status, type_, code, message = table[self.kind]
        headers = {}
        if self.kind == "rate_limited" and self.retry_after_form == "date":
            headers = {
                "retry-after": email.utils.formatdate(time.time() + seconds, usegmt=True),
                "x-ratelimit-remaining-requests": "0",
            }
        elif self.kind == "rate_limited":
            headers = {
                "retry-after": str(math.ceil(seconds)),
                "retry-after-ms": str(round(seconds * 1000)),
                "x-ratelimit-remaining-requests": "0",
            }
        return APIError(status, self.message or message, type=type_, code=code, headers=headers)


class RandomFaults:
    """Faults drawn at random for requests that no scripted fault takes: a seeded fault mix.

    ``spec``: one mapping per fault, ``{"kind": ..., "rate": probability, **Fault options}``
    (``times`` is ignored: a random fault never runs out). Each image request gets at most one
    of them, fault i with probability ``rate_i``; the rates add up to at most 1. ``seed`` makes
    the sequence of draws repeatable (which request gets which draw still depends on the order
    in which concurrent requests arrive).
    """

    def __init__(self, spec: Iterable[Mapping[str, Any]], seed: int | None = None) -> None:
        known = {f.name for f in fields(Fault)} - {"times"}
        self.entries: list[tuple[float, Fault]] = []
        for item in spec:
            options = dict(item)
            rate = float(options.pop("rate", 0.0))
            unknown = set(options) - known
            if unknown:
                raise ValueError(f"Unknown random fault option(s) {', '.join(sorted(unknown))}.")
            if not 0 <= rate <= 1:
                raise ValueError("A random fault's rate must be in [0, 1].")
            self.entries.append((rate, Fault(**options)))
        if sum(rate for rate, _ in self.entries) > 1 + 1e-9:
            raise ValueError("The rates of the random faults add up to more than 1.")
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def draw(self, path: str, stream: bool) -> Fault | None:
        with self._lock:
            u = self._rng.random()
        for rate, fault in self.entries:
            if u < rate:
                return fault if fault.matches(path, stream) else None
            u -= rate
        return None
