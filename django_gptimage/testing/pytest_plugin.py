"""pytest fixtures serving the fake OpenAI Images API (registered as a ``pytest11`` entry point).

- ``fake_openai_session``: one started ``FakeOpenAIServer`` for the whole session.
- ``fake_openai``: that server, reset before and after each test (requests, faults, settings).
- ``gptimage_openai``: ``fake_openai`` wired into ``settings.GPTIMAGE`` (needs pytest-django).

Imports of the server, Django and pytest-django are deferred so the plugin costs nothing, and
breaks nothing, in projects that never use these fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import FakeOpenAIServer

FAKE_API_KEY = "sk-fake-test-key"


@pytest.fixture(scope="session")
def fake_openai_session() -> Iterator[FakeOpenAIServer]:
    from .server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_session: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    fake_openai_session.reset()
    yield fake_openai_session
    fake_openai_session.reset()


@pytest.fixture
def gptimage_openai(
    fake_openai: FakeOpenAIServer, request: pytest.FixtureRequest
) -> Iterator[FakeOpenAIServer]:
    """Point django-gptimage's OpenAI provider at ``fake_openai`` (which then checks the key)."""
    try:
        settings: Any = request.getfixturevalue("settings")
    except pytest.FixtureLookupError:
        pytest.fail("gptimage_openai needs pytest-django (its `settings` fixture).")
    from django_gptimage.providers import reset_providers

    fake_openai.api_key = FAKE_API_KEY
    settings.GPTIMAGE = {
        **(getattr(settings, "GPTIMAGE", None) or {}),
        "PROVIDER": "openai",
        "API_KEY": FAKE_API_KEY,
        "BASE_URL": fake_openai.base_url,
    }
    reset_providers()
    _forget_rate_limits()
    yield fake_openai
    reset_providers()
    _forget_rate_limits()


def _forget_rate_limits() -> None:
    """The session's server is shared: a pause one test's 429 left in Redis must not slow the next."""
    try:
        from django_gptimage.jobs import ratelimit

        ratelimit.reset()
    except Exception:  # noqa: BLE001 - no Redis configured or reachable: nothing was shared either
        pass
