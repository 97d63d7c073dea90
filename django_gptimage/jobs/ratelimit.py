"""One rate limit for every worker: a GCRA limiter in Redis, per account and model.

Every worker process and thread takes its turn from the same Redis keys, in one atomic Lua
script timed by Redis's own clock (so hosts with skewed clocks still agree):

- **pacing** (``GPTIMAGE["RATE_LIMITS"]``): requests and images per minute, spaced evenly
  (GCRA without burst) at the configured figure less a small ``headroom``. A turn is
  *reserved*: callers queue up first come, first served, and each knows exactly when it may
  send. A provider's ``x-ratelimit-limit-*`` header lower than the configured figure wins;
- **back-off** (``GPTIMAGE["RATE_LIMIT_BACKOFF"]``): a 429 ``rate_limited`` answer, or a
  response whose ``x-ratelimit-remaining-*`` is 0, pauses every worker until the provider's
  ``Retry-After`` / ``x-ratelimit-reset-*`` (at most ``RETRY_AFTER_MAX``). Turns reserved
  inside a pause are taken again after it.

The runner calls :func:`wait_turn` just before the provider call (a short wait is slept, a
long one gives the worker back: the record is queued again for its turn, not as a failed
attempt, nothing sent or billed) and sends through :func:`call`, which reports the answer's
rate-limit headers back. When Redis cannot be reached the limiter lets the request through
(and logs it): an outage of the limiter must not stop generations that may well succeed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils import timezone

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.messages import part

if TYPE_CHECKING:
    from django_gptimage.jobs.runner import RunOutcome
    from django_gptimage.models import GenerationAttempt, ImageGeneration
    from django_gptimage.providers import Provider, ProviderRequest, ProviderResult

logger = logging.getLogger("django_gptimage")

KEY_PREFIX = "gptimage:ratelimit:"
DEFAULT_HEADROOM = 0.03
SLEEP_MAX = 10.0  # seconds: a wait up to this is slept in the worker thread, a longer one rescheduled
LEAD = 5.0  # seconds: a requeued job is due this long before its turn (RQ rounds up to the second,
# polls every second, and a busy worker claims it late), then sleeps the rest
HELD_STALE = 30.0  # seconds: a reserved turn missed by more than this is taken again
CANCEL_POLL = 1.0  # seconds between two looks at cancel_requested while sleeping
LEARNED_TTL = 600  # seconds a limit announced by x-ratelimit-limit-* is remembered
LIMIT_KEYS = ("requests_per_minute", "images_per_minute", "headroom")
DIMENSIONS = ("requests", "images", "tokens")

# KEYS: back-off, next free requests time, next free images time, learned requests/min, learned images/min
# ARGV: requests/min (0 = none), images/min (0 = none), images asked, headroom, held turn (ms, 0 = none)
# A held turn more than STALE_MS in the past is not honoured: a new one is reserved.
# Returns {wait ms, turn ms (Redis time), back-off until ms}.
_ACQUIRE_TEMPLATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local backoff = tonumber(redis.call('GET', KEYS[1]) or '0')
local held = tonumber(ARGV[5])
-- A held turn stays valid unless a pause covers it, or it is long past (a stale record).
if held > 0 and held >= backoff and held >= now - STALE_MS then
  return {math.max(0, held - now), held, backoff}
end
local headroom = tonumber(ARGV[4])
local function interval(configured, learned_key, units)
  local rate = tonumber(configured)
  if rate <= 0 then return 0 end
  local learned = tonumber(redis.call('GET', learned_key) or '0')
  if learned > 0 and learned < rate then rate = learned end
  return 60000 / (rate * (1 - headroom)) * units
end
local ri = interval(ARGV[1], KEYS[4], 1)
local ii = interval(ARGV[2], KEYS[5], tonumber(ARGV[3]))
local turn = math.max(now, backoff)
if ri > 0 then turn = math.max(turn, tonumber(redis.call('GET', KEYS[2]) or '0')) end
if ii > 0 then turn = math.max(turn, tonumber(redis.call('GET', KEYS[3]) or '0')) end
turn = math.ceil(turn)
if ri > 0 then redis.call('SET', KEYS[2], tostring(turn + ri), 'PX', math.ceil(turn + ri - now) + 60000) end
if ii > 0 then redis.call('SET', KEYS[3], tostring(turn + ii), 'PX', math.ceil(turn + ii - now) + 60000) end
return {turn - now, turn, backoff}
"""

_ACQUIRE = _ACQUIRE_TEMPLATE.replace("STALE_MS", str(int(HELD_STALE * 1000)))

# KEYS: back-off. ARGV: pause ms. Extends the pause (never shortens it); returns its end (ms).
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilms > current then
  redis.call('SET', KEYS[1], tostring(untilms), 'PX', tonumber(ARGV[1]) + 1000)
  return untilms
end
return current
"""


# -- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLimits:
    requests_per_minute: int | None = None
    images_per_minute: int | None = None
    headroom: float = DEFAULT_HEADROOM


def limit_problems(value: Any) -> list[str]:
    """What is wrong with a ``RATE_LIMITS`` value (empty when it is usable)."""
    if not isinstance(value, dict):
        return [f"RATE_LIMITS must be a dict of model name -> limits, not {type(value).__name__}."]
    problems = []
    for model, entry in value.items():
        if not isinstance(model, str):
            problems.append(f"RATE_LIMITS keys are model names (or '*'), not {model!r}.")
            continue
        if not isinstance(entry, dict):
            problems.append(f"RATE_LIMITS[{model!r}] must be a dict, not {entry!r}.")
            continue
        unknown = sorted(set(entry) - set(LIMIT_KEYS))
        if unknown:
            problems.append(
                f"RATE_LIMITS[{model!r}] has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(LIMIT_KEYS)}."
            )
        for key in ("requests_per_minute", "images_per_minute"):
            rate = entry.get(key)
            if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
                problems.append(
                    f"RATE_LIMITS[{model!r}][{key!r}] must be a positive integer or None, not {rate!r}."
                )
        headroom = entry.get("headroom", DEFAULT_HEADROOM)
        if isinstance(headroom, bool) or not isinstance(headroom, int | float) or not 0 <= headroom <= 0.5:
            problems.append(
                f"RATE_LIMITS[{model!r}]['headroom'] must be a number from 0 to 0.5, not {headroom!r}."
            )
    return problems


def limits_for(model: str) -> ModelLimits | None:
    """The configured limits of ``model`` (or of ``"*"``), None when it has none."""
    configured = gptimage_settings.RATE_LIMITS or {}
    entry = configured.get(model, configured.get("*"))
    if not entry:
        return None
    return ModelLimits(
        requests_per_minute=entry.get("requests_per_minute"),
        images_per_minute=entry.get("images_per_minute"),
        headroom=float(entry.get("headroom", DEFAULT_HEADROOM)),
    )


# -- the limiter -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    wait: float  # seconds from now until this caller may send (0: now)
    at_ms: int  # the turn, in Redis time (ms): hand it back as ``held`` to keep it
    backoff_ms: int  # end of the shared pause (0: none)


class Limiter:
    """The shared limit of one account (provider, base URL, organization, project, key) and model."""

    def __init__(self, redis: Any, scope: str, model: str, limits: ModelLimits | None) -> None:
        self.redis = redis
        self.model = model
        self.limits = limits
        base = f"{KEY_PREFIX}{{{scope}:{model}}}:"  # one hash slot for all keys (Redis Cluster)
        self.keys = [base + k for k in ("backoff", "requests", "images", "limit-requests", "limit-images")]

    def acquire(self, *, images: int = 1, held: int | None = None) -> Turn:
        """Reserve the next turn (or confirm ``held``, a turn reserved earlier). Raises RedisError."""
        limits = self.limits or ModelLimits()
        args = [limits.requests_per_minute or 0, limits.images_per_minute or 0, max(1, images),
                limits.headroom, held or 0]  # fmt: skip
        wait_ms, at_ms, backoff_ms = _run(self.redis, _ACQUIRE, self.keys, args)
        return Turn(int(wait_ms) / 1000, int(at_ms), int(backoff_ms))

    def pause(self, seconds: float) -> None:
        """Every worker waits ``seconds`` before its next request to this model (never shortened)."""
        ms = math.ceil(min(seconds, gptimage_settings.RETRY_AFTER_MAX) * 1000)
        if ms > 0:
            _run(self.redis, _PAUSE, self.keys[:1], [ms])

    def learn(self, dimension: str, limit: int) -> None:
        """Remember a per-minute limit the provider announced (lowers a configured one)."""
        key = {"requests": self.keys[3], "images": self.keys[4]}.get(dimension)
        if key and limit > 0:
            self.redis.set(key, limit, ex=LEARNED_TTL)

    def observe(
        self, headers: dict[str, str], *, rate_limited: bool = False, retry_after: float | None = None
    ) -> None:
        """Slow down on what an answer says: a 429, or an exhausted ``x-ratelimit-remaining-*``."""
        exhausted = []
        for dimension in DIMENSIONS:
            remaining = _int(headers.get(f"x-ratelimit-remaining-{dimension}"))
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{dimension}", ""))
            if remaining is not None and remaining <= 0 and reset:
                exhausted.append(reset)
            limit = _int(headers.get(f"x-ratelimit-limit-{dimension}"))
            configured = getattr(self.limits, f"{dimension}_per_minute", None) if self.limits else None
            if limit and configured and limit < configured:
                self.learn(dimension, limit)
        if rate_limited:
            # Retry-After is the provider's own answer to "when": it wins over the reset headers.
            if retry_after is None:
                retry_after = max(exhausted, default=gptimage_settings.RETRY_BACKOFF_BASE)
            self.pause(retry_after)
        elif exhausted:
            self.pause(max(exhausted))  # the next request would be refused: everyone waits

    def reset(self) -> None:
        self.redis.delete(*self.keys)


_scripts: dict[str, Any] = {}
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def _run(redis: Any, source: str, keys: list[str], args: list[Any]) -> Any:
    with _lock:
        if source not in _scripts:
            _scripts[source] = redis.register_script(source)
    return _scripts[source](keys=keys, args=args, client=redis)  # EVALSHA; loaded again after a flush


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)


def parse_duration(value: str) -> float | None:
    """OpenAI's reset headers: ``1s``, ``6m0s``, ``250ms`` (a bare number is seconds)."""
    value = value.strip()
    with contextlib.suppress(ValueError):
        return float(value) if value else None
    match = _DURATION.match(value)
    if not match or not any(match.groups()):
        return None
    h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def scope(provider_name: str) -> str:
    """Which account a limit belongs to: the same settings share one limit, whatever process."""
    s = gptimage_settings
    parts = (provider_name, s.BASE_URL, s.ORGANIZATION, s.PROJECT, s.API_KEY)
    return hashlib.sha256("\0".join(str(x or "") for x in parts).encode()).hexdigest()[:12]  # not the key


def _redis() -> Any:
    """The queue's Redis (one client per process and configuration: django-rq makes a new one per call)."""
    from django.conf import settings

    from django_gptimage.jobs.queue import get_queue

    name = gptimage_settings.QUEUE
    key = f"{name}\0{getattr(settings, 'RQ_QUEUES', {}).get(name)!r}"
    with _lock:
        client = _clients.get(key)
    if client is None:
        client = get_queue().connection
        with _lock:
            client = _clients.setdefault(key, client)
    return client


def limiter_for(model: str, provider: Provider | None = None) -> Limiter | None:
    """The limiter a call to ``model`` goes through, None when nothing limits it.

    Nothing limits a provider that bills nothing (``offline``), nor a model without
    ``RATE_LIMITS`` when ``RATE_LIMIT_BACKOFF`` is off.
    """
    if provider is not None and not getattr(provider, "billable", True):
        return None
    limits = limits_for(model)
    if limits is None and not gptimage_settings.RATE_LIMIT_BACKOFF:
        return None
    try:
        redis = _redis()
    except Exception as exc:  # noqa: BLE001 - no queue configured (sync mode): nothing to share
        _warn_once(f"no Redis for the shared rate limit ({exc.__class__.__name__}); requests are not limited")
        return None
    return Limiter(redis, scope(getattr(provider, "name", "") or gptimage_settings.PROVIDER), model, limits)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("gptimage %s", message)


def reset(model: str | None = None) -> int:
    """Forget every shared limit state (of ``model`` only, if given); returns the keys deleted."""
    redis = _redis()
    pattern = f"{KEY_PREFIX}{{*:{model}}}:*" if model else f"{KEY_PREFIX}*"
    keys = list(redis.scan_iter(match=pattern, count=500))
    return redis.delete(*keys) if keys else 0


# -- the runner's two calls ------------------------------------------------------------------------


def wait_turn(
    generation: ImageGeneration, attempt: GenerationAttempt, provider: Provider
) -> RunOutcome | None:
    """Wait for this generation's turn: None when it may send now, or the outcome to return.

    A wait up to ``SLEEP_MAX`` is slept (the heartbeat goes on, a cancel is noticed within a
    second); a longer one queues the record again for its reserved turn, phase ``throttled``,
    without counting an attempt (the claim's attempt row is removed: nothing was sent).
    """
    from redis.exceptions import RedisError

    limiter = limiter_for(generation.model, provider)
    if limiter is None:
        return None
    held = (generation.metadata.get("rate_limit_wait") or {}).get("turn")
    waited = 0.0
    while True:
        try:
            turn = limiter.acquire(images=generation.n, held=held)
        except RedisError as exc:
            logger.warning("gptimage rate limiter unreachable (%s); sending anyway", exc.__class__.__name__)
            return None
        if turn.wait <= 0:
            break
        if turn.wait > SLEEP_MAX:
            return _requeue(generation, attempt, turn)
        outcome = _sleep(generation, attempt, turn.wait)
        if outcome is not None:
            return outcome
        waited += turn.wait
        held = turn.at_ms  # confirmed on the next round, unless a pause came meanwhile
    if "rate_limit_wait" in generation.metadata or waited:
        from django_gptimage.jobs.runner import _update

        info = dict(generation.metadata.get("rate_limit_wait") or {})
        info.pop("turn", None)
        info["waited"] = round(info.get("waited", 0.0) + waited, 3)
        fields: dict[str, Any] = {"metadata": {**generation.metadata, "rate_limit_wait": info}}
        if info.pop("message", False):  # "goes out in about 40 s" is over: it goes out now
            fields.update(error_code="", error_detail=[])
        _update(generation, **fields)
    return None


def call(
    generation: ImageGeneration, provider: Provider, request: ProviderRequest, **kwargs: Any
) -> ProviderResult:
    """``provider.generate(request, **kwargs)``, reporting the answer's rate-limit headers."""
    from django_gptimage.providers import ProviderError

    try:
        result = provider.generate(request, **kwargs)
    except ProviderError as error:
        _observe(
            generation, provider, error.rate_limit, error.code is ErrorCode.RATE_LIMITED, error.retry_after
        )
        raise
    _observe(generation, provider, result.rate_limit, False, None)
    return result


def _observe(
    generation: ImageGeneration,
    provider: Provider,
    headers: dict[str, str],
    rate_limited: bool,
    retry_after: float | None,
) -> None:
    if not gptimage_settings.RATE_LIMIT_BACKOFF and limits_for(generation.model) is None:
        return
    try:
        limiter = limiter_for(generation.model, provider)
        if limiter is not None:
            if not gptimage_settings.RATE_LIMIT_BACKOFF:
                rate_limited, headers = False, {k: v for k, v in headers.items() if "-limit-" in k}
            limiter.observe(headers or {}, rate_limited=rate_limited, retry_after=retry_after)
    except Exception:  # noqa: BLE001 - the answer matters more than the limiter's bookkeeping
        logger.warning("gptimage could not record rate-limit headers for %s", generation.pk, exc_info=True)


def _sleep(generation: ImageGeneration, attempt: GenerationAttempt, seconds: float) -> RunOutcome | None:
    from django_gptimage.jobs.runner import _finish, _update
    from django_gptimage.models import ImageGeneration, Phase, Status

    if generation.phase != Phase.THROTTLED:
        _update(generation, phase=Phase.THROTTLED)
    if not connection.in_atomic_block:
        connection.close()  # no database connection held while sleeping
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, CANCEL_POLL))
        if ImageGeneration.objects.filter(pk=generation.pk, cancel_requested=True).exists():
            generation.cancel_requested = True
            return _finish(generation, attempt, Status.CANCELED, ErrorCode.CANCELED, [part("before_sent")])
    return None


def _requeue(generation: ImageGeneration, attempt: GenerationAttempt, turn: Turn) -> RunOutcome:
    from django_gptimage.jobs.runner import RunOutcome, _update
    from django_gptimage.models import Phase, Status

    delay = max(1.0, turn.wait - LEAD)
    info = dict(generation.metadata.get("rate_limit_wait") or {})
    info["turn"] = turn.at_ms
    info["times"] = info.get("times", 0) + 1
    info["message"] = True  # the waiting message below is cleared when the request goes out
    info["waited"] = round(info.get("waited", 0.0) + delay, 3)
    paused = turn.backoff_ms > turn.at_ms - round(turn.wait * 1000)  # the provider asked for a pause
    _update(
        generation,
        status=Status.QUEUED,
        phase=Phase.THROTTLED,
        attempts=generation.attempts - 1,  # a wait is not an attempt
        worker="",
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        error_code=ErrorCode.RATE_LIMITED,
        error_detail=[part("rate_wait_provider" if paused else "rate_wait_site", wait=round(turn.wait, 1))],
        metadata={**generation.metadata, "rate_limit_wait": info},
    )
    attempt.delete()
    return RunOutcome(generation, retry_in=delay, job_suffix=f"w{info['times'] % 2}")
