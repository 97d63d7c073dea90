"""Settings, read from ``settings.GPTIMAGE`` on every access so ``override_settings`` works.

All keys are optional; docs/settings.md lists them with their defaults. The API key and the
base URL also come from the ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` environment variables,
OpenAI's own convention.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.conf import settings as django_settings

from .domain.policy import Policy

DEFAULT_BASE_URL = "https://api.openai.com/v1"

DEFAULTS: dict[str, Any] = {
    # "openai", "offline", or a dotted path to a Provider subclass; None = openai when a key is set.
    "PROVIDER": None,
    "PROVIDER_OPTIONS": {},
    "API_KEY": None,
    "BASE_URL": None,
    "ORGANIZATION": None,
    "PROJECT": None,
    "MODEL": "gpt-image-2",
    # Site policy (None = whatever the model allows).
    "ALLOWED_MODELS": None,
    "ALLOWED_MODES": None,
    "ALLOWED_RATIOS": None,
    "ALLOWED_TIERS": None,
    "ALLOWED_QUALITIES": None,
    "ALLOWED_FORMATS": None,
    "MAX_N": None,
    # Defaults for a request that does not say.
    "DEFAULT_RATIO": "1:1",
    "DEFAULT_TIER": "1K",
    "DEFAULT_QUALITY": "auto",
    "DEFAULT_FORMAT": "png",
    "DEFAULT_BACKGROUND": "auto",
    # HTTP (seconds). High-quality and 4K images take minutes: keep READ_TIMEOUT generous.
    "CONNECT_TIMEOUT": 10.0,
    "READ_TIMEOUT": 600.0,
    "WRITE_TIMEOUT": 120.0,
    "POOL_TIMEOUT": 30.0,
    "MAX_CONNECTIONS": 256,
    # Streaming partial previews (0 = off; 1-3 partial images).
    "PARTIAL_IMAGES": 0,
    # Prices in USD per million tokens, per model: {"gpt-image-2": {"image_output": "30.00"}}.
    "PRICES": {},
    # Storage of results: a STORAGES alias and a path template (see docs/storage.md).
    "STORAGE": "default",
    "UPLOAD_TO": "gptimage/{date:%Y/%m/%d}/{id}/{index}-{ratio_slug}-{tier}-{hash}.{ext}",
    "INPUT_UPLOAD_TO": "gptimage/inputs/{id}/{role}-{index}.{ext}",
    # Where paid-for bytes are kept until they are safely in storage.
    "SPOOL_DIR": None,
    # Hook deciding which tiers a user has unlocked: dotted path to f(user) -> iterable of tiers or None.
    "ACCESS_RESOLVER": None,
    # Background jobs.
    "QUEUE": "gptimage",
    "RUN_MODE": "queue",  # "queue" (RQ) or "sync" (in the calling process)
    "JOB_TIMEOUT": 900,
    "MAX_ATTEMPTS": 4,
    "RETRY_BACKOFF_BASE": 2.0,
    "RETRY_BACKOFF_MAX": 300.0,
    "RETRY_AFTER_MAX": 900.0,  # a longer Retry-After fails the generation instead of waiting
    "RETRY_ON_TIMEOUT": False,
    "REQUEUE_ABANDONED": False,
    "STALE_AFTER": 120,  # seconds without a heartbeat before a running record counts as abandoned
    "REAP_INTERVAL": 60,
    "KEEP_RESULT_AFTER_CANCEL": True,
}


class Settings:
    """Typed access to ``settings.GPTIMAGE``; one property per documented key."""

    @property
    def raw(self) -> dict[str, Any]:
        return getattr(django_settings, "GPTIMAGE", None) or {}

    def get(self, key: str) -> Any:
        if key not in DEFAULTS:
            raise AttributeError(f"Unknown GPTIMAGE setting {key!r}")
        return self.raw.get(key, DEFAULTS[key])

    def __getattr__(self, name: str) -> Any:
        if name in DEFAULTS:
            return self.get(name)
        raise AttributeError(name)

    @property
    def API_KEY(self) -> str | None:  # noqa: N802
        return self.raw.get("API_KEY") or os.environ.get("OPENAI_API_KEY") or None

    @property
    def BASE_URL(self) -> str:  # noqa: N802
        url = self.raw.get("BASE_URL") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        return url.rstrip("/")

    @property
    def PROVIDER(self) -> str:  # noqa: N802
        configured = self.raw.get("PROVIDER")
        if configured:
            return configured
        return "openai" if self.API_KEY else "offline"

    @property
    def SPOOL_DIR(self) -> str:  # noqa: N802
        return self.raw.get("SPOOL_DIR") or os.path.join(tempfile.gettempdir(), "django-gptimage-spool")

    @property
    def policy(self) -> Policy:
        def tup(key: str) -> tuple[str, ...] | None:
            value = self.get(key)
            return None if value is None else tuple(value)

        return Policy(
            models=tup("ALLOWED_MODELS"),
            modes=tup("ALLOWED_MODES"),
            ratios=tup("ALLOWED_RATIOS"),
            tiers=tup("ALLOWED_TIERS"),
            qualities=tup("ALLOWED_QUALITIES"),
            formats=tup("ALLOWED_FORMATS"),
            max_n=self.get("MAX_N"),
        )


gptimage_settings = Settings()
