"""One rate limit for every worker: the Lua limiter in the (embedded) Redis, its back-off on
429s and x-ratelimit-* headers, and the runner's short sleeps and long waits, against the real
loopback server."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from redis import Redis
from redis.exceptions import RedisError
from rq.registry import ScheduledJobRegistry

from django_gptimage.checks import check_settings
from django_gptimage.jobs import ratelimit
from django_gptimage.jobs.ratelimit import Limiter, ModelLimits, limit_problems, parse_duration
from django_gptimage.jobs.runner import run_generation
from django_gptimage.models import GenerationAttempt, ImageGeneration, Phase, Status
from django_gptimage.providers import ProviderError, ProviderRequest, reset_providers
from django_gptimage.providers.openai import OpenAIProvider
from django_gptimage.service import cancel_generation, request_generation
from django_gptimage.testing import FakeOpenAIServer
from tests.conftest import run_burst, wait_for

KEY = "sk-rl-test"
MODEL = "gpt-image-2"


@pytest.fixture
def redis_url(settings: Any) -> str:
    return settings.REDIS_URL


def limiter(url: str, scope: str, **limits: Any) -> Limiter:
    """A limiter with a Redis client of its own, as in another worker process."""
    return Limiter(Redis.from_url(url), scope, MODEL, ModelLimits(**limits) if limits else None)


@pytest.fixture
def scope() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def limited_server(settings: Any) -> Iterator[Callable[..., FakeOpenAIServer]]:
    """``limited_server(images_per_minute=..., rate_limit_window=..., limits={...})``: a loopback
    server of this test's own, the openai provider pointed at it, RATE_LIMITS for gpt-image-2."""
    servers: list[FakeOpenAIServer] = []

    def start(*, limits: dict[str, Any] | None = None, **options: Any) -> FakeOpenAIServer:
        server = FakeOpenAIServer(api_key=KEY, **options).start()
        servers.append(server)
        settings.GPTIMAGE = {
            **settings.GPTIMAGE,
            "PROVIDER": "openai",
            "API_KEY": KEY,
            "BASE_URL": server.base_url,
            "RATE_LIMITS": {MODEL: limits} if limits else {},
        }
        reset_providers()
        ratelimit.reset()
        return server

    yield start
    for server in servers:
        server.stop()
    with contextlib.suppress(RedisError):  # a test may have pointed the queue at a dead Redis
        ratelimit.reset()
    reset_providers()


# -- the limiter ----------------------------------------------------------------------------------


def test_turns_from_many_threads_never_exceed_the_rate(redis_url: str, scope: str) -> None:
    """32 'workers' (threads, each with its own Redis client) reserve 256 turns at once."""
    rate, headroom = 600, 0.03
    interval_ms = 60000 / (rate * (1 - headroom))
    turns: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        mine = limiter(redis_url, scope, images_per_minute=rate, requests_per_minute=6000)
        for k in range(8):
            images = 1 + (index + k) % 3
            turn = mine.acquire(images=images)
            with lock:
                turns.append((turn.at_ms, images))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    turns.sort()
    assert len(turns) == 256
    # Every turn waits for the images of the one before it: never faster than the rate.
    for (at, images), (next_at, _) in zip(turns, turns[1:], strict=False):
        assert next_at - at >= images * interval_ms - 1
    total_images = sum(images for _, images in turns)
    span_minutes = (turns[-1][0] - turns[0][0]) / 60000
    assert (total_images - turns[-1][1]) / span_minutes <= rate * (1 - headroom) + 1


def test_requests_per_minute_alone_spaces_requests(redis_url: str, scope: str) -> None:
    mine = limiter(redis_url, scope, requests_per_minute=120, headroom=0)
    first, second, third = (mine.acquire(images=4) for _ in range(3))
    assert first.wait == 0
    assert second.at_ms - first.at_ms >= 500 and third.at_ms - second.at_ms >= 500
    assert second.wait <= 0.5


def test_a_held_turn_is_confirmed_not_taken_again(redis_url: str, scope: str) -> None:
    mine = limiter(redis_url, scope, images_per_minute=60, headroom=0)
    first = mine.acquire()
    later = mine.acquire()
    assert later.at_ms - first.at_ms >= 1000  # (more if this machine paused between the calls)
    again = mine.acquire(held=later.at_ms)
    assert again.at_ms == later.at_ms  # the same turn, nothing reserved
    assert mine.acquire().at_ms - later.at_ms >= 1000
    stale = mine.acquire(held=later.at_ms - 60_000)  # missed by well over HELD_STALE (30 s): a new turn
    assert stale.at_ms - later.at_ms >= 2000


def test_a_429_pauses_every_worker_and_is_never_shortened(redis_url: str, scope: str, settings: Any) -> None:
    one, other = limiter(redis_url, scope), limiter(redis_url, scope)
    assert other.acquire().wait == 0
    one.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "59s"},
                rate_limited=True, retry_after=3)  # fmt: skip
    assert 1.5 <= other.acquire().wait <= 3.0  # Retry-After wins over the reset header
    one.observe({}, rate_limited=True, retry_after=1)
    assert other.acquire().wait > 1.0  # not shortened to 1 s
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RETRY_AFTER_MAX": 10}
    one.observe({}, rate_limited=True, retry_after=5000)
    assert 7 <= other.acquire().wait <= 10  # a shared pause is at most RETRY_AFTER_MAX


def test_a_429_without_retry_after_pauses_for_the_exhausted_reset(redis_url: str, scope: str) -> None:
    one, other = limiter(redis_url, scope), limiter(redis_url, scope)
    one.observe({"x-ratelimit-remaining-images": "0", "x-ratelimit-reset-images": "4s"}, rate_limited=True)
    assert 2.5 <= other.acquire().wait <= 4.0


def test_exhausted_remaining_headers_pause_before_the_next_429(redis_url: str, scope: str) -> None:
    one, other = limiter(redis_url, scope), limiter(redis_url, scope)
    one.observe({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "9s"})
    assert other.acquire().wait == 0  # something left: no pause
    one.observe({"x-ratelimit-remaining-images": "0", "x-ratelimit-reset-images": "2s"})
    assert 0.5 <= other.acquire().wait <= 2.0


def test_a_pause_moves_turns_reserved_inside_it(redis_url: str, scope: str) -> None:
    mine = limiter(redis_url, scope, images_per_minute=600)
    held = mine.acquire()
    mine.pause(3)
    moved = mine.acquire(held=held.at_ms)
    assert moved.at_ms != held.at_ms and 1.5 <= moved.wait <= 3.0


def test_a_lower_announced_limit_wins(redis_url: str, scope: str) -> None:
    mine = limiter(redis_url, scope, images_per_minute=600, headroom=0)
    mine.observe({"x-ratelimit-limit-images": "60", "x-ratelimit-limit-requests": "9999"})
    first, second = mine.acquire(), mine.acquire()
    assert second.at_ms - first.at_ms >= 1000  # 60 per minute, not 600
    mine.observe({"x-ratelimit-limit-images": "6000"})  # a higher one never raises the configured
    assert mine.redis.get(mine.keys[4]) == b"60"


def test_parse_duration() -> None:
    assert parse_duration("6m0s") == 360
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1h2m3s") == 3723
    assert parse_duration("1.5") == 1.5
    assert parse_duration("soon") is None and parse_duration("") is None


@pytest.mark.slow
def test_twelve_workers_do_not_trip_the_servers_limit(redis_url: str, scope: str) -> None:
    """Twelve threads with a limiter (and a Redis client) each, against the loopback server's
    20 images per 4-second window; the same threads without the limiter trip it."""
    with FakeOpenAIServer(images_per_minute=20, rate_limit_window=4) as server:

        def send(with_limiter: bool) -> None:
            mine = limiter(redis_url, scope, images_per_minute=300, headroom=0.25)  # 20 per 4 s
            with httpx.Client(base_url=server.base_url) as client:
                for _ in range(2):
                    if with_limiter:
                        time.sleep(mine.acquire().wait)
                    client.post("/images/generations", json={"model": MODEL, "prompt": "a fox"})

        def run(with_limiter: bool) -> dict[str, int]:
            server.reset()
            threads = [threading.Thread(target=send, args=(with_limiter,)) for _ in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            return server.stats()

        without = run(False)
        assert without["rate_limited"] == 4  # 24 asked, 20 fit the window
        with_it = run(True)
        assert with_it["rate_limited"] == 0 and with_it["answered"] == 24


def test_limit_problems() -> None:
    assert limit_problems({}) == []
    assert limit_problems({MODEL: {"requests_per_minute": 50, "images_per_minute": 120}}) == []
    assert limit_problems({"*": {"images_per_minute": None, "headroom": 0.1}}) == []
    assert "must be a dict of model name" in limit_problems([MODEL])[0]
    assert "must be a dict, not 120" in limit_problems({MODEL: 120})[0]
    assert "unknown key(s) 'ipm'" in limit_problems({MODEL: {"ipm": 5}})[0]
    assert "positive integer or None, not 0" in limit_problems({MODEL: {"images_per_minute": 0}})[0]
    assert "not '50'" in limit_problems({MODEL: {"requests_per_minute": "50"}})[0]
    assert "not True" in limit_problems({MODEL: {"requests_per_minute": True}})[0]
    assert "headroom" in limit_problems({MODEL: {"headroom": 0.9}})[0]


@pytest.mark.parametrize(
    ("value", "backoff", "ids"),
    [
        ({MODEL: {"images_per_minute": 120}}, True, []),
        ({MODEL: {"images_per_minute": -1}}, True, ["django_gptimage.E012"]),
        ({"gpt-image2": {"ipm": 120}}, True, ["django_gptimage.E012"]),  # malformed first, names after
        ("120/min", True, ["django_gptimage.E010"]),  # the type check reports a non-dict
        ({}, "yes", ["django_gptimage.E010"]),
        ({"gpt-image2": {"images_per_minute": 120}}, True, ["django_gptimage.W005"]),
        ({"*": {"images_per_minute": 120}}, False, []),
    ],
)
def test_system_check(settings: Any, value: Any, backoff: Any, ids: list[str]) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RATE_LIMITS": value, "RATE_LIMIT_BACKOFF": backoff}
    ours = ("django_gptimage.E010", "django_gptimage.E012", "django_gptimage.W005")
    found = [m for m in check_settings() if m.id in ours]
    assert [m.id for m in found] == ids
    if ids == ["django_gptimage.W005"]:
        assert "Did you mean 'gpt-image-2'?" in found[0].hint
    if ids:
        call_command("check", "--tag", "django_gptimage", fail_level="CRITICAL")  # prints, no crash


# -- the provider shows the headers ---------------------------------------------------------------


def test_openai_provider_exposes_rate_limit_headers(tmp_path: Any) -> None:
    with FakeOpenAIServer(images_per_minute=1) as server:
        provider = OpenAIProvider(api_key=KEY, base_url=server.base_url)
        request = ProviderRequest(model=MODEL, prompt="a fox", mode="text-to-image", size="1024x1024")
        result = provider.generate(request, spool_dir=str(tmp_path / "a"))
        assert result.rate_limit["x-ratelimit-remaining-images"] == "0"
        assert result.rate_limit["x-ratelimit-limit-requests"] == "5000"
        with pytest.raises(ProviderError) as info:
            provider.generate(request, spool_dir=str(tmp_path / "b"))
        provider.close()
    assert info.value.code == "rate_limited"
    assert info.value.rate_limit["x-ratelimit-limit-images"] == "1"
    assert 55 <= info.value.retry_after <= 60


# -- the runner -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_short_wait_is_slept_in_the_worker(limited_server: Any, settings: Any) -> None:
    server = limited_server(limits={"images_per_minute": 30, "headroom": 0})  # one every 2 s
    started = time.monotonic()
    first = request_generation(prompt="A first poster")
    second = request_generation(prompt="A second poster")
    assert time.monotonic() - started >= 1.9  # the second turn is 2 s after the first
    assert (first.status, second.status) == (Status.SUCCEEDED, Status.SUCCEEDED)
    assert second.attempts == 1 and second.attempt_log.count() == 1
    assert 0 < second.metadata["rate_limit_wait"]["waited"] <= 2.1
    assert "turn" not in second.metadata["rate_limit_wait"]
    assert len(server.requests) == 2


@pytest.mark.django_db(transaction=True)
def test_a_long_wait_is_queued_again_not_slept_and_not_billed(
    limited_server: Any, queue_mode: Any, rq_scheduler: Any, settings: Any
) -> None:
    server = limited_server(limits={"images_per_minute": 2, "headroom": 0})  # one every 30 s
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PRICES": {MODEL: {"image_output": "30.00"}}}
    first = request_generation(prompt="A first poster")
    second = request_generation(prompt="A second poster")
    started = time.monotonic()
    run_burst(queue_mode.name)
    assert time.monotonic() - started < 20  # the worker was not held for 30 s
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.SUCCEEDED
    assert (second.status, second.phase, second.error_code) == (
        Status.QUEUED,
        Phase.THROTTLED,
        "rate_limited",
    )
    assert "Waiting for its turn (the site's rate limit)" in second.error_message
    assert "Nothing has been sent or billed" in second.error_message
    assert second.editor_message == second.error_message
    # Not an attempt, nothing billed, nothing sent: the server saw one request.
    assert second.attempts == 0 and not GenerationAttempt.objects.filter(generation=second).exists()
    assert second.actual_cost is None and second.usage is None
    assert len(server.requests) == 1
    assert 20 <= (second.next_attempt_at - first.finished_at).total_seconds() <= 31  # LEAD before it
    wait = second.metadata["rate_limit_wait"]
    assert wait["times"] == 1 and wait["turn"] > 0
    # Its job waits in RQ's scheduled registry under an id of its own.
    scheduled = ScheduledJobRegistry(queue=queue_mode).get_job_ids()
    assert scheduled == [f"gptimage-{second.pk}-w1"]
    # A job arriving early (a duplicate) cannot claim it before it is due.
    assert run_generation(second.pk).generation.status == Status.QUEUED
    # Cancel removes the waiting job; nothing is ever sent.
    cancel_generation(second)
    second.refresh_from_db()
    assert second.status == Status.CANCELED
    assert ScheduledJobRegistry(queue=queue_mode).get_job_ids() == []
    assert len(server.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_requeued_generation_goes_out_at_its_reserved_turn(
    limited_server: Any, settings: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(ratelimit, "SLEEP_MAX", 0.3)
    monkeypatch.setattr(ratelimit, "LEAD", 0.1)
    server = limited_server(limits={"images_per_minute": 60, "headroom": 0})
    seen: list[tuple[str, str]] = []
    real_call = ratelimit.call

    def spy(generation: Any, *args: Any, **kwargs: Any) -> Any:
        fresh = ImageGeneration.objects.get(pk=generation.pk)
        seen.append((fresh.phase, fresh.error_code))
        return real_call(generation, *args, **kwargs)

    monkeypatch.setattr(ratelimit, "call", spy)
    request_generation(prompt="A first poster")
    second = request_generation(prompt="A second poster")  # sync: requeued, slept by run_sync, sent
    assert second.status == Status.SUCCEEDED
    assert second.attempts == 1
    assert [a.outcome for a in second.attempt_log.all()] == ["succeeded"]
    assert second.metadata["rate_limit_wait"]["times"] == 1
    assert "turn" not in second.metadata["rate_limit_wait"]
    assert len(server.requests) == 2
    # While it was sent, the editor no longer saw "goes out in about 1 s".
    assert seen[-1][1] == ""


@pytest.mark.django_db(transaction=True)
def test_cancel_is_honoured_while_sleeping(limited_server: Any, queue_mode: Any) -> None:
    server = limited_server(limits={"images_per_minute": 6, "headroom": 0})  # one every 10 s: slept
    first = request_generation(prompt="A first poster")
    run_generation(first.pk)
    second = request_generation(prompt="A second poster")
    outcome: list[Any] = []

    def work() -> None:
        from django.db import connection

        try:
            outcome.append(run_generation(second.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    wait_for(lambda: ImageGeneration.objects.get(pk=second.pk).phase == Phase.THROTTLED, 10, what="throttled")
    cancel_generation(ImageGeneration.objects.get(pk=second.pk))
    thread.join(20)
    second.refresh_from_db()
    assert (second.status, second.error_code) == (Status.CANCELED, "canceled")
    assert "before it was sent" in second.error_message
    [attempt] = second.attempt_log.all()
    assert attempt.outcome == "canceled" and not attempt.maybe_billed
    assert len(server.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_429_makes_the_other_generations_wait_without_sending(
    limited_server: Any, queue_mode: Any, settings: Any
) -> None:
    server = limited_server()  # no pacing: only the shared back-off
    server.add_fault("rate_limited", retry_after=30)
    first = request_generation(prompt="A first poster")
    second = request_generation(prompt="A second poster")
    assert run_generation(first.pk).retry_in >= 30  # its own retry, as before
    outcome = run_generation(second.pk)
    assert 20 <= outcome.retry_in <= 30  # 30 s less LEAD
    second.refresh_from_db()
    assert (second.status, second.phase, second.attempts) == (Status.QUEUED, Phase.THROTTLED, 0)
    assert "asked this site to slow down" in second.error_message
    assert len(server.requests) == 1  # the second was never sent into the 429

    settings.GPTIMAGE = {**settings.GPTIMAGE, "RATE_LIMIT_BACKOFF": False}
    ratelimit.reset()
    server.add_fault("rate_limited", retry_after=30)
    third, fourth = request_generation(prompt="A third"), request_generation(prompt="A fourth")
    run_generation(third.pk)
    assert run_generation(fourth.pk).generation.status == Status.SUCCEEDED  # each on its own
    assert len(server.requests) == 3


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_limiter_lets_requests_through(
    limited_server: Any, settings: Any, caplog: Any
) -> None:
    server = limited_server(limits={"images_per_minute": 1})
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "gptimage": {"URL": "redis://127.0.0.1:1/0"}}
    generation = request_generation(prompt="A poster")
    assert generation.status == Status.SUCCEEDED
    assert "rate limiter unreachable" in caplog.text
    assert len(server.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_the_offline_provider_is_never_limited(settings: Any) -> None:
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "PROVIDER": "offline",
        "RATE_LIMITS": {"*": {"images_per_minute": 1}},
    }
    started = time.monotonic()
    generations = [request_generation(prompt=f"Poster {i}") for i in range(3)]
    assert all(g.status == Status.SUCCEEDED for g in generations)
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_two_worker_processes_share_one_limit(
    limited_server: Any, worker_process: Any, queue_mode: Any
) -> None:
    """Two gptimage_worker processes, four threads each, against 6 images per 3-second window."""
    server = limited_server(images_per_minute=6, rate_limit_window=3, limits={"images_per_minute": 120,
                                                                             "headroom": 0.25})  # fmt: skip
    ids = [request_generation(prompt=f"Poster {i}").pk for i in range(12)]
    started = time.monotonic()
    workers = [worker_process("--concurrency", "4", "--no-reaper") for _ in range(2)]
    done = lambda: ImageGeneration.objects.filter(pk__in=ids, status=Status.SUCCEEDED).count() == 12  # noqa: E731
    wait_for(done, 90, interval=0.2, what="12 generations")
    elapsed = time.monotonic() - started
    stats = server.stats()
    assert stats["rate_limited"] == 0 and stats["answered"] == 12
    assert sum(ImageGeneration.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == 12
    # 120 a minute less 25 %: a turn every 0.67 s for both processes together, not each.
    assert elapsed >= 11 * 0.667 * 0.9
    assert all(w.alive() for w in workers)


def test_the_pytest_plugin_forgets_pauses_between_tests(redis_url: str, scope: str) -> None:
    from django_gptimage.testing.pytest_plugin import _forget_rate_limits

    one = Limiter(ratelimit._redis(), scope, MODEL, None)
    one.pause(60)
    assert one.acquire().wait > 50
    _forget_rate_limits()  # what gptimage_openai does before and after every test
    assert one.acquire().wait == 0
