"""The one interface every image provider implements.

A provider turns a validated :class:`ProviderRequest` into result files in a spool directory
(never whole images in memory) or raises :class:`ProviderError` carrying one of the closed
:class:`~django_gptimage.domain.errors.ErrorCode` values. It knows nothing about Django models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django_gptimage.domain.errors import ErrorCode, error_info

ProgressCallback = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class InputFile:
    """An input image or mask: a local file path the provider streams from."""

    name: str
    path: str
    content_type: str


@dataclass(frozen=True)
class ProviderRequest:
    model: str
    prompt: str
    mode: str  # "text-to-image" | "image-to-image"
    size: str  # "WxH" or "auto"
    quality: str = "auto"
    output_format: str = "png"
    background: str = "auto"
    output_compression: int | None = None
    n: int = 1
    images: tuple[InputFile, ...] = ()
    mask: InputFile | None = None
    user: str | None = None  # an opaque end-user id for abuse monitoring, never an email
    partial_images: int = 0


@dataclass
class ResultFile:
    """One result image as written to the spool directory."""

    index: int
    path: str
    size_bytes: int
    sha256: str


@dataclass
class ProviderResult:
    files: list[ResultFile]
    request_id: str | None = None
    usage: dict[str, Any] | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    created: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """A failed provider call. ``str()`` is safe to show and store: it never carries secrets."""

    def __init__(
        self,
        code: ErrorCode,
        detail: str = "",
        *,
        request_id: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        provider_code: str | None = None,
    ) -> None:
        self.code = ErrorCode(code)
        self.detail = detail
        self.request_id = request_id
        self.status = status
        self.retry_after = retry_after
        self.provider_code = provider_code
        super().__init__(self.message)

    @property
    def message(self) -> str:
        base = error_info(self.code).message
        return f"{base} ({self.detail})" if self.detail else base

    def __repr__(self) -> str:
        return f"ProviderError({self.code.value!r}, status={self.status!r}, request_id={self.request_id!r})"


class Provider:
    """Base class. Subclasses set ``name`` and implement :meth:`generate`."""

    name = "base"

    def __init__(self, **options: Any) -> None:
        self.options = options

    @classmethod
    def from_settings(cls) -> Provider:
        """Build the provider from ``GPTIMAGE`` (``PROVIDER_OPTIONS`` are passed as keywords)."""
        from django_gptimage.conf import gptimage_settings

        return cls(**gptimage_settings.PROVIDER_OPTIONS)

    @classmethod
    def settings_fingerprint(cls) -> tuple[Any, ...]:
        """What, in the settings, makes a cached instance stale (never a secret in clear)."""
        from django_gptimage.conf import gptimage_settings

        # Hashed: PROVIDER_OPTIONS may hold a credential, and the fingerprint is a cache key.
        options = repr(sorted(gptimage_settings.PROVIDER_OPTIONS.items()))
        return (hashlib.sha256(options.encode()).hexdigest()[:16],)

    def generate(
        self, request: ProviderRequest, *, spool_dir: str, progress: ProgressCallback | None = None
    ) -> ProviderResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections (called on shutdown; providers are reused between calls)."""
