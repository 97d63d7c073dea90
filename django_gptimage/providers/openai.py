"""OpenAI's Images API over httpx, exactly as the published contract describes it.

- ``POST /images/generations`` (JSON) for text-to-image, ``POST /images/edits`` (multipart)
  for image-to-image. ``model`` is always sent; ``response_format`` and ``input_fidelity``
  never are (GPT image models reject or ignore them and always answer base64).
- Bodies are streamed: base64 images are decoded to spool files as they arrive.
- HTTP status plus ``error.type``/``error.code`` map onto the closed error codes.
- One pooled client per process and settings, so connections are reused between calls.
- The API key lives only in the client's default headers: not in reprs, errors or records.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.messages import Part, part, said

from ._b64stream import JSONImageReader, StreamFormatError, placeholder_index
from ._sse import SSEImageReader
from .base import ProgressCallback, Provider, ProviderError, ProviderRequest, ProviderResult, ResultFile

logger = logging.getLogger("django_gptimage")

CHUNK_SIZE = 256 * 1024
# Error codes OpenAI uses for an account that may not spend more (sent with HTTP 400 or 429).
BILLING_CODES = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active")
MAX_ERROR_BODY = 64 * 1024
MAX_DETAIL = 500  # characters of a provider's message kept on the record
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str = "https://api.openai.com/v1",
        organization: str | None = None,
        project: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        write_timeout: float = 120.0,
        pool_timeout: float = 30.0,
        max_connections: int = 256,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        # A gateway may echo the key (whole, cut, or masked like OpenAI's "sk-proj-****abcd") in
        # any field of an error: scrub it from anything we keep, before anything is shortened.
        self._scrub = lambda text: scrub_secrets(text, api_key)
        headers = {"User-Agent": "django-gptimage"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=write_timeout, pool=pool_timeout
            ),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"<OpenAIProvider base_url={self.base_url!r}>"

    @classmethod
    def from_settings(cls) -> OpenAIProvider:
        from django_gptimage.conf import gptimage_settings as s

        options = {
            "api_key": s.API_KEY,
            "base_url": s.BASE_URL,
            "organization": s.ORGANIZATION,
            "project": s.PROJECT,
            "connect_timeout": s.CONNECT_TIMEOUT,
            "read_timeout": s.READ_TIMEOUT,
            "write_timeout": s.WRITE_TIMEOUT,
            "pool_timeout": s.POOL_TIMEOUT,
            "max_connections": s.MAX_CONNECTIONS,
        }
        return cls(**{**options, **s.provider_options})  # the OPTIONS win

    @classmethod
    def settings_fingerprint(cls) -> tuple[Any, ...]:
        from django_gptimage.conf import gptimage_settings as s

        key_digest = hashlib.sha256((s.API_KEY or "").encode()).hexdigest()[:16]
        return (
            key_digest,
            s.BASE_URL,
            s.ORGANIZATION,
            s.PROJECT,
            s.CONNECT_TIMEOUT,
            s.READ_TIMEOUT,
            s.WRITE_TIMEOUT,
            s.POOL_TIMEOUT,
            s.MAX_CONNECTIONS,
        ) + super().settings_fingerprint()

    def close(self) -> None:
        self._client.close()

    # -- request -------------------------------------------------------------------------

    def _fields(self, request: ProviderRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "model": request.model,
            "prompt": request.prompt,
            "n": request.n,
            "size": request.size,
            "quality": request.quality,
            "output_format": request.output_format,
            "background": request.background,
        }
        if request.output_compression is not None and request.output_format != "png":
            fields["output_compression"] = request.output_compression
        if request.user:
            fields["user"] = request.user
        if request.partial_images:
            fields["stream"] = True
            fields["partial_images"] = request.partial_images
        return fields

    def generate(
        self, request: ProviderRequest, *, spool_dir: str, progress: ProgressCallback | None = None
    ) -> ProviderResult:
        report = progress or (lambda phase, data: None)
        os.makedirs(spool_dir, exist_ok=True)
        fields = self._fields(request)
        with contextlib.ExitStack() as stack:
            if request.mode == "image-to-image":
                files = []
                key = "image" if len(request.images) == 1 else "image[]"
                for image in request.images:
                    handle = stack.enter_context(open(image.path, "rb"))
                    files.append((key, (image.name, handle, image.content_type)))
                if request.mask is not None:
                    handle = stack.enter_context(open(request.mask.path, "rb"))
                    files.append(("mask", (request.mask.name, handle, request.mask.content_type)))
                data = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in fields.items()}
                http_request = self._client.build_request("POST", "/images/edits", data=data, files=files)
            else:
                http_request = self._client.build_request("POST", "/images/generations", json=fields)
            report("sending", {})
            try:
                return self._send(http_request, request, spool_dir, report)
            except ProviderError as error:
                # Every fact the record keeps is scrubbed first, then shortened (a cut key still leaks).
                error.parts = [_scrub_part(p, self._scrub) for p in error.parts]
                error.provider_code = (
                    _shorten(self._scrub(error.provider_code), 64) if error.provider_code else None
                )
                error.request_id = _shorten(self._scrub(error.request_id), 128) if error.request_id else None
                error.args = (error.message,)
                raise

    def _send(
        self, http_request: httpx.Request, request: ProviderRequest, spool_dir: str, report: ProgressCallback
    ) -> ProviderResult:
        report("waiting", {})
        try:
            response = self._client.send(http_request, stream=True)
        except httpx.ConnectTimeout:
            raise _unreachable(http_request, part("connect_timeout")) from None
        except httpx.TimeoutException as exc:
            # Nothing was sent when waiting for a pooled connection timed out.
            code = ErrorCode.PROVIDER_ERROR if isinstance(exc, httpx.PoolTimeout) else ErrorCode.TIMEOUT
            raise ProviderError(code, _timeout_detail(exc)) from None
        except (httpx.ConnectError, httpx.ProxyError, httpx.UnsupportedProtocol) as exc:
            # No connection was made: nothing sent, nothing billed, and nothing is "overloaded".
            raise _unreachable(http_request, _connect_reason(exc)) from None
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.CloseError) as exc:
            # The whole request went out and the connection died before an answer: OpenAI may
            # be generating (and billing) it anyway, so this is retried only like a timeout.
            raise ProviderError(
                ErrorCode.TIMEOUT, part("connection_closed", exception=exc.__class__.__name__)
            ) from None
        except httpx.TransportError as exc:
            # Not connected, the request never fully left, a proxy refused it: nothing billed.
            raise ProviderError(
                ErrorCode.PROVIDER_ERROR, part("connection_failed", exception=exc.__class__.__name__)
            ) from None
        try:
            request_id = response.headers.get("x-request-id")
            if response.status_code >= 400:
                raise _error_from_response(response, request_id)
            report("receiving", {"request_id": request_id})
            content_type = response.headers.get("content-type", "")
            if content_type.startswith("text/event-stream"):
                result = self._read_stream(response, spool_dir, report, request_id)
            else:
                result = self._read_json(response, spool_dir, request_id, report)
            result.request_id = request_id
            result.rate_limit = result.extra["rate_limit"] = _rate_limit_headers(response)
            if len(result.files) < request.n:
                raise ProviderError(
                    ErrorCode.BAD_RESPONSE,
                    part("too_few_images", asked=request.n, received=len(result.files)),
                    request_id=request_id,
                )
            if len(result.files) > request.n:
                # Billed per image: extra ones are paid for too, so they are kept, not dropped.
                result.extra["extra_images"] = len(result.files) - request.n
            return result
        except httpx.TimeoutException as exc:
            raise ProviderError(
                ErrorCode.TIMEOUT, _timeout_detail(exc), request_id=response.headers.get("x-request-id")
            ) from None
        except httpx.DecodingError:
            encoding = response.headers.get("content-encoding", "")
            raise ProviderError(
                ErrorCode.BAD_RESPONSE,
                part("undecodable", encoding=encoding),
                request_id=response.headers.get("x-request-id"),
            ) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise ProviderError(
                ErrorCode.BAD_RESPONSE,
                part("cut_off", exception=exc.__class__.__name__),
                request_id=response.headers.get("x-request-id"),
            ) from None
        finally:
            response.close()

    def _read_json(
        self,
        response: httpx.Response,
        spool_dir: str,
        request_id: str | None,
        report: ProgressCallback | None = None,
    ) -> ProviderResult:
        reader = JSONImageReader(lambda i: os.path.join(spool_dir, f"result-{i}.bin"))
        try:
            for chunk in response.iter_bytes(CHUNK_SIZE):
                reader.feed(chunk)
                if report is not None:
                    report("tick", {})  # per chunk: a safe point for the job's deadline, no state change
            document = reader.close()
            if reader.ignored_bytes:
                logger.warning(
                    "gptimage: %s bytes of a response (request %s) outside its images were not kept",
                    reader.ignored_bytes,
                    request_id,
                )
        except StreamFormatError as exc:
            reader.abort()
            raise ProviderError(ErrorCode.BAD_RESPONSE, str(exc), request_id=request_id) from None
        except BaseException:
            reader.abort()
            raise
        data = document.get("data")
        if not isinstance(data, list) or not data:
            raise ProviderError(ErrorCode.BAD_RESPONSE, part("no_images"), request_id=request_id)
        files = []
        for position, item in enumerate(data):
            index = placeholder_index(item.get("b64_json")) if isinstance(item, dict) else None
            if index is None or index >= len(reader.files):
                raise ProviderError(ErrorCode.BAD_RESPONSE, part("no_b64"), request_id=request_id)
            decoded = reader.files[index]
            files.append(ResultFile(position, decoded.path, decoded.size_bytes, decoded.sha256))
        return ProviderResult(
            files=files,
            extra={"ignored_bytes": reader.ignored_bytes} if reader.ignored_bytes else {},
            usage=document.get("usage"),
            size=document.get("size"),
            quality=document.get("quality"),
            background=document.get("background"),
            output_format=document.get("output_format"),
            created=document.get("created"),
        )

    def _read_stream(
        self, response: httpx.Response, spool_dir: str, report: ProgressCallback, request_id: str | None
    ) -> ProviderResult:
        result = ProviderResult(files=[])

        def on_event(event: dict[str, Any], decoded: list[Any]) -> None:
            kind = str(event.get("type", ""))
            if kind == "error" or "error" in event:
                inner = event.get("error")
                error: dict[str, Any] = inner if isinstance(inner, dict) else event
                raise _error_from_envelope(None, error, request_id)
            if not decoded:
                raise StreamFormatError(f"event {kind!r} has no image")
            if kind.endswith(".partial_image"):
                try:
                    report("partial", {"path": decoded[0].path, "index": event.get("partial_image_index", 0)})
                finally:
                    for d in decoded:  # stored as the preview by now: any number of them costs no disk
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(d.path)
            elif kind.endswith(".completed"):
                d = decoded[0]
                result.files.append(ResultFile(len(result.files), d.path, d.size_bytes, d.sha256))
                result.usage = event.get("usage") or result.usage
                for attr in ("size", "quality", "background", "output_format"):
                    setattr(result, attr, event.get(attr) or getattr(result, attr))
                result.created = event.get("created_at") or result.created

        reader = SSEImageReader(lambda i: os.path.join(spool_dir, f"stream-{i}.bin"), on_event)
        try:
            for chunk in response.iter_bytes():  # as it arrives: a preview must not wait for a full chunk
                reader.feed(chunk)
                report("tick", {})  # per chunk: a safe point for the job's deadline, no state change
            reader.close()
        except StreamFormatError as exc:
            reader.abort()
            raise ProviderError(ErrorCode.BAD_RESPONSE, str(exc), request_id=request_id) from None
        if reader.ignored_bytes:
            result.extra["ignored_bytes"] = reader.ignored_bytes
            logger.warning(
                "gptimage: %s bytes of a streamed response (request %s) outside its images were not kept",
                reader.ignored_bytes,
                request_id,
            )
        if not result.files:
            raise ProviderError(
                ErrorCode.BAD_RESPONSE,
                part("stream_ended"),
                request_id=request_id,
            )
        return result


def _timeout_detail(exc: httpx.TimeoutException) -> Part:
    return part(
        {
            httpx.ConnectTimeout: "connect_timeout",
            httpx.ReadTimeout: "timed_out_waiting",
            httpx.WriteTimeout: "timed_out_sending",
            httpx.PoolTimeout: "timed_out_pool",
        }.get(type(exc), "timed_out")
    )


def _rate_limit_headers(response: httpx.Response) -> dict[str, str]:
    """Every ``x-ratelimit-*`` header (requests, tokens, and images where the API sends them)."""
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit-")}


_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$"
)


def _parse_duration(value: str) -> float | None:
    """OpenAI's reset headers look like ``1s``, ``6m0s`` or ``250ms``."""
    match = _DURATION.match(value.strip())
    if not match or not any(match.groups()):
        return None
    h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``Retry-After`` or the rate-limit reset headers."""
    headers = response.headers
    with contextlib.suppress(ValueError):
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
    stated = parse_retry_after(headers["retry-after"]) if "retry-after" in headers else None
    if stated:  # a date already past (0) lets the reset headers below speak, if there are any
        return stated
    parsed = [
        _parse_duration(headers[h])
        for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if h in headers
    ]
    waits = [w for w in parsed if w is not None]
    return max(waits) if waits else stated


def parse_retry_after(value: str, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value in either form HTTP allows (RFC 9110 10.2.3):
    delay-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2026 07:28:00 GMT``). A date in
    the past means "now" (0); anything else is ignored (None)."""
    value = value.strip()
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 850 and asctime forms carry no zone: they are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _unreachable(http_request: httpx.Request, reason: Part) -> ProviderError:
    url = http_request.url
    host = url.host + (f":{url.port}" if url.port else "")
    return ProviderError(ErrorCode.PROVIDER_ERROR, reason, headline=part("unreachable", host=host))


def _connect_reason(exc: Exception) -> Part:
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return part("host_unknown")
    if "refused" in text:
        return part("connection_refused")
    if "certificate" in text or "ssl" in text:
        return part("tls_failed")
    if isinstance(exc, httpx.ProxyError):
        return part("proxy_refused")
    return part("connect_failed", exception=exc.__class__.__name__)


def _scrub_part(p: Part, scrub: Callable[[str], str]) -> Part:
    """``p`` with every text fact scrubbed of secrets, then shortened to what a record keeps."""
    return {
        k: _shorten(scrub(v), MAX_DETAIL) if isinstance(v, str) and k != "key" else v for k, v in p.items()
    }


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_*.\-]{4,}")


def scrub_secrets(text: str, api_key: str | None) -> str:
    """``text`` without the API key, any part of it of 8 characters or more, or anything that
    looks like an OpenAI key (``sk-...``, masked ones included)."""
    if not text:
        return text
    if api_key:
        text = text.replace(api_key, "sk-***")
        # Fragments: a gateway may echo the key cut short, or only its tail.
        for size in range(min(len(api_key), 64), 7, -1):
            for start in range(0, len(api_key) - size + 1):
                piece = api_key[start : start + size]
                if piece in text:
                    text = text.replace(piece, "***")
    return _KEY_LIKE.sub("sk-***", text)


def _error_from_response(response: httpx.Response, request_id: str | None) -> ProviderError:
    body = b""
    with contextlib.suppress(httpx.HTTPError):
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_ERROR_BODY:
                break
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    return _error_from_envelope(response, error if isinstance(error, dict) else {}, request_id)


def _error_from_envelope(
    response: httpx.Response | None, error: dict[str, Any], request_id: str | None
) -> ProviderError:
    status = response.status_code if response is not None else None
    code = str(error.get("code") or "")
    kind = str(error.get("type") or "")
    # Not shortened here: generate() scrubs secrets first, then shortens (a cut key is still a leak).
    said_text = str(error.get("message") or "")[:MAX_ERROR_BODY]
    detail = said_text  # matched below against the words that mean "refused for safety"
    # Reset headers come with every answer; they only mean "wait" on a 429 or 503.
    wait = retry_after(response) if response is not None and response.status_code in (429, 503) else None
    if (
        code == "moderation_blocked"
        or "moderation" in code
        or kind == "image_generation_user_error"
        and "safety" in detail
    ):
        mapped = ErrorCode.MODERATION_BLOCKED
    elif status == 429:
        mapped = ErrorCode.QUOTA_EXCEEDED if "insufficient_quota" in (code, kind) else ErrorCode.RATE_LIMITED
    elif code in BILLING_CODES or kind in BILLING_CODES:
        mapped = ErrorCode.QUOTA_EXCEEDED  # a 400 for the account's spending limit: not the request's fault
    elif status in (401, 403):
        mapped = ErrorCode.AUTH_FAILED
    elif status == 404:
        mapped = ErrorCode.CONFIGURATION_ERROR  # unknown model or wrong base URL
    elif status is not None and 400 <= status < 500 and status not in (408, 409):
        mapped = ErrorCode.INVALID_PARAMETERS
    else:
        mapped = ErrorCode.PROVIDER_ERROR
    # The service's own words are a fact (with its HTTP status); without any, the status is one.
    if said_text:
        fact = said(said_text, status=status) if status else said(said_text)
    else:
        fact = part("http_status", status=status) if status else part("error_event")
    return ProviderError(
        mapped,
        fact,
        request_id=request_id,
        status=status,
        retry_after=wait,
        provider_code=code or kind or None,
        rate_limit=_rate_limit_headers(response) if response is not None else None,
    )
