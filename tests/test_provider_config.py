"""Providers configured like STORAGES: {"BACKEND": ..., "OPTIONS": {...}}, options checked when built."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_gptimage import checks
from django_gptimage.checks import check_settings
from django_gptimage.models import GenerationAttempt, Status
from django_gptimage.providers import Provider, ProviderOptionsError, get_provider, reset_providers
from django_gptimage.providers.offline import OfflineProvider
from django_gptimage.providers.openai import OpenAIProvider
from django_gptimage.service import request_generation


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: Any) -> Any:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(checks, "_pillow_supports", lambda fmt: True)
    reset_providers()
    yield
    reset_providers()


def configure(settings: Any, **gptimage: Any) -> None:
    base = {k: v for k, v in settings.GPTIMAGE.items() if k not in ("PROVIDER", "PROVIDER_OPTIONS")}
    settings.GPTIMAGE = {**base, "SPOOL_DIR": "/var/lib/gptimage-test-spool-not-created", **gptimage}


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


class AnythingGoesProvider(OfflineProvider):
    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.seen = options


# Building ---------------------------------------------------------------------------------------


def test_dict_form_builds_the_backend_with_its_options(settings: Any) -> None:
    configure(settings, PROVIDER={"BACKEND": "offline", "OPTIONS": {"delay": 0.5}})
    from django_gptimage.conf import gptimage_settings

    assert gptimage_settings.PROVIDER == "offline"
    provider = get_provider()
    assert isinstance(provider, OfflineProvider) and provider.delay == 0.5
    assert ids(check_settings()) == []


def test_short_form_keeps_working(settings: Any) -> None:
    configure(settings, PROVIDER="offline", PROVIDER_OPTIONS={"delay": 0.25})
    assert get_provider().delay == 0.25  # type: ignore[attr-defined]


def test_dict_form_without_options(settings: Any) -> None:
    configure(settings, PROVIDER={"BACKEND": "offline"})
    assert isinstance(get_provider(), OfflineProvider)


def test_openai_options_win_over_the_settings(settings: Any) -> None:
    configure(
        settings,
        API_KEY="sk-test",
        MAX_CONNECTIONS=256,
        PROVIDER={"BACKEND": "openai", "OPTIONS": {"max_connections": 7, "read_timeout": 42}},
    )
    provider = get_provider()
    assert isinstance(provider, OpenAIProvider)
    assert provider._client.timeout.read == 42
    assert provider._client._transport._pool._max_connections == 7  # type: ignore[attr-defined]


def test_changed_options_build_a_new_instance(settings: Any) -> None:
    configure(settings, PROVIDER={"BACKEND": "offline", "OPTIONS": {"delay": 0.1}})
    first = get_provider()
    assert get_provider() is first
    configure(settings, PROVIDER={"BACKEND": "offline", "OPTIONS": {"delay": 0.2}})
    assert get_provider() is not first and get_provider().delay == 0.2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("provider", "snippet"),
    [
        ({"BACKEND": "offline", "OPTIONS": {"dealy": 1}}, "no option 'dealy'; its options are delay"),
        ({"BACKEND": "openai", "OPTIONS": {"max_conections": 3}}, "no option 'max_conections'"),
        ({"BACKEND": "offline", "OPTIONS": {"delay": "2"}}, "option 'delay' must be float, not str"),
        ({"BACKEND": "offline", "OPTIONS": {"delay": True}}, "option 'delay' must be float, not bool"),
        ({"BACKEND": "openai", "OPTIONS": {"max_connections": 3.5}}, "'max_connections' must be int"),
        ({"BACKEND": "openai", "OPTIONS": {"organization": 5}}, "must be str or None, not int"),
    ],
)
def test_bad_options_are_improperly_configured_and_a_check_error(
    settings: Any, provider: dict[str, Any], snippet: str
) -> None:
    configure(settings, API_KEY="sk-test", PROVIDER=provider)
    with pytest.raises(ProviderOptionsError, match=snippet.replace("(", r"\(")):
        get_provider()
    assert issubclass(ProviderOptionsError, ImproperlyConfigured)
    [message] = [m for m in check_settings() if m.id == "django_gptimage.E011"]
    assert snippet in message.msg
    assert message.hint


def test_option_values_never_reach_messages(settings: Any) -> None:
    configure(
        settings,
        API_KEY="sk-test",
        PROVIDER={"BACKEND": "openai", "OPTIONS": {"project": ["sk-hidden-value"]}},
    )
    with pytest.raises(ProviderOptionsError) as excinfo:
        get_provider()
    assert "sk-hidden" not in str(excinfo.value)
    assert all("sk-hidden" not in m.msg + (m.hint or "") for m in check_settings())


def test_both_forms_at_once_is_an_error(settings: Any) -> None:
    configure(
        settings, PROVIDER={"BACKEND": "offline", "OPTIONS": {"delay": 1}}, PROVIDER_OPTIONS={"delay": 2}
    )
    with pytest.raises(ImproperlyConfigured, match="keep one of them"):
        get_provider()
    assert "django_gptimage.E011" in ids(check_settings())


def test_options_that_are_not_a_dict(settings: Any) -> None:
    configure(settings, PROVIDER="offline", PROVIDER_OPTIONS=["delay", 1])
    with pytest.raises(ImproperlyConfigured, match="must be a dict of keyword options"):
        get_provider()
    assert "django_gptimage.E011" in ids(check_settings())


@pytest.mark.parametrize(
    "provider",
    [
        {"OPTIONS": {"delay": 1}},
        {"BACKEND": ""},
        {"BACKEND": "offline", "OPTION": {"delay": 1}},
        {"BACKEND": "offline", "OPTIONS": [("delay", 1)]},
        {"BACKEND": 3},
    ],
)
def test_malformed_dict_is_e001(settings: Any, provider: dict[str, Any]) -> None:
    configure(settings, PROVIDER=provider)
    message = next(m for m in check_settings() if m.id == "django_gptimage.E001")
    assert "'BACKEND'" in message.msg and "STORAGES" in message.hint


def test_dict_backend_that_does_not_import_is_e001(settings: Any) -> None:
    configure(settings, PROVIDER={"BACKEND": "myproject.nowhere.Provider", "OPTIONS": {}})
    assert ids(check_settings()) == ["django_gptimage.E001"]


def test_a_constructor_that_refuses_a_value_is_improperly_configured(settings: Any) -> None:
    configure(settings, PROVIDER={"BACKEND": "offline", "OPTIONS": {"delay": -1}})
    with pytest.raises(ImproperlyConfigured, match="could not be built.*delay must be 0 or more"):
        get_provider()


def test_a_provider_taking_any_keyword_gets_any_option(settings: Any) -> None:
    configure(settings, PROVIDER={"BACKEND": f"{__name__}.AnythingGoesProvider", "OPTIONS": {"region": "eu"}})
    assert get_provider().seen == {"region": "eu"}  # type: ignore[attr-defined]
    assert "django_gptimage.E011" not in ids(check_settings())
    assert AnythingGoesProvider.option_types() is None


def test_option_types_of_the_built_in_providers() -> None:
    assert OfflineProvider.option_types() == {"delay": float}
    options = OpenAIProvider.option_types()
    assert options is not None and {"api_key", "base_url", "max_connections", "transport"} <= set(options)
    assert Provider.option_types() is None


# A generation meeting bad options -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_unknown_option_fails_the_generation_before_sending(settings: Any, gptimage_openai: Any) -> None:
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "PROVIDER": {"BACKEND": "openai", "OPTIONS": {"read_timeot": 5}},
        "MAX_ATTEMPTS": 3,
    }
    reset_providers()
    generation = request_generation(prompt="Never sent")
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert generation.error_code == "configuration_error"
    assert "read_timeot" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert not attempt.maybe_billed and not attempt.will_retry
    assert gptimage_openai.requests == []
