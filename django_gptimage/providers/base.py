"""The one interface every image provider implements.

A provider turns a validated :class:`ProviderRequest` into result files in a spool directory
(never whole images in memory) or raises :class:`ProviderError` carrying one of the closed
:class:`~django_gptimage.domain.errors.ErrorCode` values. It knows nothing about Django models.
"""

from __future__ import annotations

import hashlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.messages import TEMPLATES, Part, Place, as_parts, render

# progress(phase, data): "sending", "waiting", "receiving" (once each, in that order), "partial"
# ({"path", "index"}) per streamed preview, and "tick" ({}) per chunk of a response body (no
# state change: a point where the caller may check its own deadline).
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
    rate_limit: dict[str, str] = field(default_factory=dict)  # the answer's x-ratelimit-* headers


class ProviderError(Exception):
    """A failed provider call. ``str()`` is safe to show and store: it never carries secrets.

    ``detail`` is the facts, as parts (see :mod:`django_gptimage.domain.messages`), so the record
    keeps them and the words are chosen (and translated) when the message is shown; a plain
    string is the image service's own words. ``headline`` is a part that replaces the code's
    own first sentence when it says more (the host that could not be reached).
    """

    def __init__(
        self,
        code: ErrorCode,
        detail: str | Part | list[Part] = "",
        *,
        request_id: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        provider_code: str | None = None,
        rate_limit: dict[str, str] | None = None,
        headline: Part | None = None,
    ) -> None:
        self.code = ErrorCode(code)
        self.parts: list[Part] = ([headline] if headline else []) + as_parts(detail)
        self.request_id = request_id
        self.status = status
        self.retry_after = retry_after
        self.provider_code = provider_code
        self.rate_limit = rate_limit or {}  # the answer's x-ratelimit-* headers (for the shared limiter)
        super().__init__(self.message)

    @property
    def facts(self) -> list[Part]:
        """The parts without the headline: what a retry or a give-up adds to."""
        return [
            p for p in self.parts if TEMPLATES.get(p["key"], TEMPLATES["said"]).place is not Place.HEADLINE
        ]

    @property
    def detail(self) -> str:
        """The facts in English (logs, tests); editors see them rendered in their language."""
        return render(self.code, self.facts).detail

    @property
    def message(self) -> str:
        return render(self.code, self.parts).text

    def __repr__(self) -> str:
        return f"ProviderError({self.code.value!r}, status={self.status!r}, request_id={self.request_id!r})"


class Provider:
    """Base class. Subclasses set ``name`` and implement :meth:`generate`."""

    name = "base"

    def __init__(self, **options: Any) -> None:
        self.options = options

    @classmethod
    def from_settings(cls) -> Provider:
        """Build the provider from ``GPTIMAGE`` (its ``OPTIONS`` are passed as keywords)."""
        from django_gptimage.conf import gptimage_settings

        return cls(**gptimage_settings.provider_options)

    @classmethod
    def option_types(cls) -> dict[str, Any] | None:
        """The keyword options the constructor takes, with their annotated types.

        ``None`` when it takes any keyword (``**options``), so nothing can be checked by name.
        """
        params = inspect.signature(cls.__init__).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # an annotation that does not resolve: check names only
            hints = {}
        return {
            p.name: hints.get(p.name, Any)
            for p in params
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Raise :class:`ProviderOptionsError` for an option the provider does not take, or a
        value of the wrong type, before anything is built or sent. Values are never quoted:
        an option may hold a credential."""
        allowed = cls.option_types()
        if allowed is None:
            return
        unknown = sorted(str(name) for name in options if name not in allowed)
        if unknown:
            raise ProviderOptionsError(
                f"The {cls.name!r} provider has no option {', '.join(map(repr, unknown))}; "
                f"its options are {', '.join(sorted(allowed)) or 'none'}."
            )
        for name, value in options.items():
            if not _matches(value, allowed[name]):
                raise ProviderOptionsError(
                    f"The {cls.name!r} provider's option {name!r} must be {_type_name(allowed[name])}, "
                    f"not {type(value).__name__}."
                )

    @classmethod
    def settings_fingerprint(cls) -> tuple[Any, ...]:
        """What, in the settings, makes a cached instance stale (never a secret in clear)."""
        from django_gptimage.conf import gptimage_settings

        # Hashed: the options may hold a credential, and the fingerprint is a cache key.
        options = repr(sorted(gptimage_settings.provider_options.items()))
        return (hashlib.sha256(options.encode()).hexdigest()[:16],)

    def generate(
        self, request: ProviderRequest, *, spool_dir: str, progress: ProgressCallback | None = None
    ) -> ProviderResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections (called on shutdown; providers are reused between calls)."""


class ProviderOptionsError(ImproperlyConfigured):
    """The provider's ``OPTIONS`` do not fit its constructor (system check ``E011``)."""


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a simple annotation; anything not simple is not checked."""
    if hint is Any:
        return True
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))
