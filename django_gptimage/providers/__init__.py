"""Provider registry: ``GPTIMAGE["PROVIDER"]`` names a backend (a short name or a dotted path),
alone or like a ``STORAGES`` entry: ``{"BACKEND": "openai", "OPTIONS": {...}}``."""

from __future__ import annotations

import threading

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import (
    InputFile,
    Provider,
    ProviderError,
    ProviderOptionsError,
    ProviderRequest,
    ProviderResult,
    ResultFile,
)

__all__ = [
    "InputFile",
    "Provider",
    "ProviderError",
    "ProviderOptionsError",
    "ProviderRequest",
    "ProviderResult",
    "ResultFile",
    "build_provider",
    "get_provider",
    "get_provider_class",
    "reset_providers",
]

PROVIDERS = {
    "openai": "django_gptimage.providers.openai.OpenAIProvider",
    "offline": "django_gptimage.providers.offline.OfflineProvider",
}

_lock = threading.Lock()
_instances: dict[tuple[str, str], Provider] = {}


def get_provider_class(name: str) -> type[Provider]:
    path = PROVIDERS.get(name, name)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"GPTIMAGE['PROVIDER'] = {name!r} is neither one of {sorted(PROVIDERS)} nor an importable class."
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ImproperlyConfigured(f"GPTIMAGE['PROVIDER'] = {name!r} is not a Provider subclass.")
    return cls


def get_provider(name: str | None = None) -> Provider:
    """The configured provider, built once per process and settings so connections are reused."""
    from django_gptimage.conf import gptimage_settings

    name = name or gptimage_settings.PROVIDER
    cls = get_provider_class(name)
    key = (name, repr(cls.settings_fingerprint()))
    with _lock:
        provider = _instances.get(key)
        if provider is None:
            provider = build_provider(cls)
            _instances[key] = provider
    return provider


def build_provider(cls: type[Provider]) -> Provider:
    """``cls`` built from the settings, its options checked first: every way it can fail is an
    ``ImproperlyConfigured`` the runner records as ``configuration_error`` (nothing sent)."""
    from django_gptimage.conf import gptimage_settings

    cls.check_options(gptimage_settings.provider_options)
    try:
        return cls.from_settings()
    except ImproperlyConfigured:
        raise
    except (TypeError, ValueError) as exc:
        detail = str(exc)
        key = gptimage_settings.API_KEY
        if key:
            detail = detail.replace(key, "sk-***")
        raise ImproperlyConfigured(
            f"The {cls.name!r} provider could not be built from GPTIMAGE['PROVIDER'] OPTIONS: {detail}"
        ) from exc


def reset_providers() -> None:
    """Close and forget cached providers (tests, settings changes)."""
    with _lock:
        for provider in _instances.values():
            provider.close()
        _instances.clear()
