"""The loopback server's rate-limit mode: a sliding minute of requests and images, OpenAI's 429."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from django_gptimage.testing import FakeOpenAIServer, serve_in_subprocess
from django_gptimage.testing.limits import WINDOW, Limits, SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gen(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.post("/images/generations", json={"model": "gpt-image-2", "prompt": "a red fox", **params})


@pytest.fixture
def limited() -> Any:
    with (
        FakeOpenAIServer(images_per_minute=3) as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer sk-test"}) as client,
    ):
        yield server, client


def test_window_refuses_beyond_the_limit_and_says_when_it_fits() -> None:
    clock = Clock()
    window = SlidingWindow(5, clock=clock)
    assert window.take(2) == 0
    clock.now += 10
    assert window.take(3) == 0
    assert window.take(1) == pytest.approx(WINDOW - 10)  # the first two leave at t+60
    assert window.take(3) == pytest.approx(WINDOW)  # needs the second batch gone too
    assert window.used() == 5  # refusals use up nothing
    clock.now += WINDOW - 10
    assert window.used() == 3
    assert window.take(2) == 0
    assert window.take(6) == WINDOW  # more than the limit never fits


def test_window_headers_count_the_last_minute_only() -> None:
    clock = Clock()
    window = SlidingWindow(10, clock=clock)
    window.add(4)
    clock.now += 30
    window.add(2)
    headers = window.headers("images")
    assert headers == {
        "x-ratelimit-limit-images": "10",
        "x-ratelimit-remaining-images": "4",
        "x-ratelimit-reset-images": "30s",
    }
    clock.now += 31
    assert window.headers("images")["x-ratelimit-remaining-images"] == "8"


def test_limits_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="images_per_minute must be a positive integer"):
        Limits(requests=10, tokens=10, images_per_minute=0)
    with pytest.raises(ValueError, match="requests_per_minute"):
        FakeOpenAIServer(requests_per_minute=2.5)  # type: ignore[arg-type]


def test_images_beyond_the_limit_get_openai_429(limited: Any) -> None:
    server, client = limited
    first = gen(client, n=2)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-images"] == "3"
    assert first.headers["x-ratelimit-remaining-images"] == "1"
    assert gen(client).status_code == 200
    refused = gen(client)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "images"
    assert "Rate limit reached for gpt-image-2" in error["message"]
    assert "images per min (IPM): Limit 3, Used 3, Requested 1" in error["message"]
    retry_after = int(refused.headers["retry-after"])
    assert 55 <= retry_after <= 60
    assert 55_000 <= int(refused.headers["retry-after-ms"]) <= 60_000
    assert refused.headers["x-ratelimit-remaining-images"] == "0"
    assert "x-ratelimit-remaining-requests" in refused.headers
    assert server.stats() == {
        "requests": 3,
        "answered": 2,
        "rate_limited": 1,
        "images": 3,
        "images_in_window": 3,
        "requests_in_window": 2,
    }


def test_invalid_requests_do_not_use_the_limit(limited: Any) -> None:
    server, client = limited
    assert gen(client, size="1000x1000").status_code == 400
    assert gen(client, n=3).status_code == 200
    assert server.limits.images.used() == 3


def test_requests_per_minute_is_enforced_too() -> None:
    with FakeOpenAIServer(requests_per_minute=2) as server, httpx.Client(base_url=server.base_url) as client:
        assert [gen(client).status_code for _ in range(3)] == [200, 200, 429]
        refused = gen(client)
        assert refused.json()["error"]["type"] == "requests"
        assert "requests per min (RPM): Limit 2" in refused.json()["error"]["message"]
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_reset_forgets_the_window(limited: Any) -> None:
    server, client = limited
    assert gen(client, n=3).status_code == 200
    assert gen(client).status_code == 429
    server.reset()
    assert gen(client).status_code == 200


def test_default_mode_reports_a_sliding_minute_and_never_refuses(fake_openai: FakeOpenAIServer) -> None:
    with httpx.Client(base_url=fake_openai.base_url) as client:
        answers = [gen(client) for _ in range(3)]
    assert all(r.status_code == 200 for r in answers)
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in answers]
    assert remaining == [fake_openai.rate_limit_requests - i for i in (1, 2, 3)]
    assert "x-ratelimit-limit-images" not in answers[0].headers


@pytest.mark.slow
def test_command_line_and_subprocess_serve_the_limit() -> None:
    with serve_in_subprocess(images_per_minute=1) as base_url, httpx.Client(base_url=base_url) as client:
        assert gen(client).status_code == 200
        assert gen(client).status_code == 429
        stats = httpx.get(base_url.removesuffix("/v1") + "/_fake/stats").json()
        assert (stats["requests"], stats["rate_limited"], stats["images"]) == (2, 1, 1)
    out = subprocess.run(
        [sys.executable, "-m", "django_gptimage.testing", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--images-per-minute" in out and "--requests-per-minute" in out
    assert json.dumps(stats)  # plain JSON


def test_a_shortened_window_admits_again_once_it_has_passed() -> None:
    with (
        FakeOpenAIServer(images_per_minute=2, rate_limit_window=0.5) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        first = gen(client, n=2)
        assert first.headers["x-ratelimit-limit-images"] == "240"  # announced per minute
        refused = gen(client)
        assert refused.status_code == 429 and int(refused.headers["retry-after-ms"]) <= 500
        time.sleep(0.6)
        assert gen(client).status_code == 200
    with pytest.raises(ValueError, match="window must be a positive number"):
        Limits(requests=1, tokens=1, window=0)
