"""The OpenAI provider over real HTTP to the loopback fake server: what is sent, parsed and mapped."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import math
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

from django_gptimage.domain.errors import ErrorCode
from django_gptimage.providers import get_provider, reset_providers
from django_gptimage.providers.base import InputFile, ProviderError, ProviderRequest
from django_gptimage.providers.openai import RATE_LIMIT_HEADERS, OpenAIProvider, retry_after
from tests.contract import validate_edit_request, validate_generation_request, validate_images_response

GENERATION_FIELDS = {"model", "prompt", "n", "size", "quality", "output_format", "background"}
NEVER_SENT = ("response_format", "input_fidelity", "style")


# -- helpers ---------------------------------------------------------------------------------------


def new_key() -> str:
    return "sk-test-" + secrets.token_hex(12)


def text_request(**overrides) -> ProviderRequest:
    fields = {
        "model": "gpt-image-2",
        "prompt": "A lighthouse at dusk",
        "mode": "text-to-image",
        "size": "1024x1024",
        "quality": "low",
    }
    return ProviderRequest(**{**fields, **overrides})


def png_file(path, width: int, height: int, *, mode: str = "RGB", colour=(200, 40, 40)) -> str:
    fill = colour if mode == "RGB" else (*colour, 0)
    Image.new(mode, (width, height), fill).save(path, "PNG")
    return str(path)


def sha256_of(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def expected_usage(prompt: str, quality_tokens: int, width: int, height: int, n: int) -> dict:
    """OpenAI's token arithmetic as the fake server applies it (no input images)."""
    text = max(1, math.ceil(len(prompt) / 4))
    output = n * round(quality_tokens * width * height / (1024 * 1024))
    return {
        "total_tokens": text + output,
        "input_tokens": text,
        "output_tokens": output,
        "input_tokens_details": {"text_tokens": text, "image_tokens": 0},
        "output_tokens_details": {"image_tokens": output, "text_tokens": 0},
    }


@pytest.fixture
def api_key() -> str:
    return new_key()


@pytest.fixture
def server(fake_openai, api_key):
    """The shared fake server, checking our (random) key."""
    fake_openai.api_key = api_key
    return fake_openai


@pytest.fixture
def provider(server, api_key):
    p = OpenAIProvider(api_key=api_key, base_url=server.base_url)
    yield p
    p.close()


@pytest.fixture
def spool(tmp_path):
    path = tmp_path / "spool"
    path.mkdir()
    return str(path)


class ScriptedServer:
    """A bare loopback HTTP server answering each request with the next scripted response."""

    def __init__(self, responses: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.responses = list(responses)
        self.bodies: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                status, headers, body = outer.responses.pop(0)
                self.send_response(status)
                for name, value in {**headers, "content-length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- request bodies --------------------------------------------------------------------------------


def test_generation_body_is_exactly_the_contract(provider, server, spool):
    provider.generate(text_request(), spool_dir=spool)
    (recorded,) = server.requests
    assert recorded.method == "POST"
    assert recorded.path == "/v1/images/generations"
    assert not recorded.multipart
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.headers["authorization"] == "Bearer ***"  # sent (redacted by the server)
    assert recorded.json == {
        "model": "gpt-image-2",
        "prompt": "A lighthouse at dusk",
        "n": 1,
        "size": "1024x1024",
        "quality": "low",
        "output_format": "png",
        "background": "auto",
    }
    validate_generation_request(recorded.json)


@pytest.mark.parametrize(
    ("fmt", "compression", "sent"),
    [("jpeg", 80, 80), ("webp", 0, 0), ("webp", 55, 55), ("png", 60, None), ("jpeg", None, None)],
)
def test_output_compression_only_for_jpeg_and_webp(provider, server, spool, fmt, compression, sent):
    result = provider.generate(
        text_request(output_format=fmt, output_compression=compression), spool_dir=spool
    )
    body = server.last_request.json
    assert body["output_format"] == fmt
    if sent is None:
        assert "output_compression" not in body
    else:
        assert body["output_compression"] == sent
    validate_generation_request(body)
    with Image.open(result.files[0].path) as im:
        assert im.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]


def test_optional_fields(provider, server, spool):
    provider.generate(
        text_request(user="django-user-7", n=2, background="transparent", quality="medium", size="1536x864"),
        spool_dir=spool,
    )
    body = server.last_request.json
    assert body == {
        "model": "gpt-image-2",
        "prompt": "A lighthouse at dusk",
        "n": 2,
        "size": "1536x864",
        "quality": "medium",
        "output_format": "png",
        "background": "transparent",
        "user": "django-user-7",
    }
    validate_generation_request(body)


def test_model_is_always_sent_and_dalle_knobs_never(provider, server, spool, tmp_path):
    image = png_file(tmp_path / "in.png", 256, 256)
    provider.generate(text_request(), spool_dir=spool)
    provider.generate(text_request(model="gpt-image-1", size="1536x1024"), spool_dir=spool)
    provider.generate(text_request(partial_images=1), spool_dir=spool)
    provider.generate(
        text_request(mode="image-to-image", images=(InputFile("in.png", image, "image/png"),)),
        spool_dir=spool,
    )
    assert len(server.requests) == 4
    for recorded in server.requests:
        body = recorded.body
        assert body["model"] in ("gpt-image-2", "gpt-image-1")
        for name in NEVER_SENT:
            assert name not in body
    assert server.requests[1].json["model"] == "gpt-image-1"


def test_streaming_request_fields(provider, server, spool):
    provider.generate(text_request(partial_images=2), spool_dir=spool)
    body = server.last_request.json
    assert body["stream"] is True
    assert body["partial_images"] == 2
    validate_generation_request(body)


def test_edit_with_one_image_is_multipart_image(provider, server, spool, tmp_path):
    image = png_file(tmp_path / "photo.png", 512, 512)
    request = text_request(
        mode="image-to-image", size="1024x1024", images=(InputFile("photo.png", image, "image/png"),)
    )
    result = provider.generate(request, spool_dir=spool)
    recorded = server.last_request
    assert recorded.path == "/v1/images/edits"
    assert recorded.multipart
    assert recorded.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert recorded.form == {
        "model": "gpt-image-2",
        "prompt": "A lighthouse at dusk",
        "n": "1",
        "size": "1024x1024",
        "quality": "low",
        "output_format": "png",
        "background": "auto",
    }
    (upload,) = recorded.files
    assert upload.field == "image"
    assert upload.filename == "photo.png"
    assert upload.content_type == "image/png"
    assert upload.sha256 == sha256_of(image)
    validate_edit_request(recorded)
    assert len(result.files) == 1


def test_edit_with_several_images_and_a_mask(provider, server, spool, tmp_path):
    images = [png_file(tmp_path / f"in-{i}.png", 320, 320, colour=(i * 60, 10, 10)) for i in range(3)]
    mask = png_file(tmp_path / "mask.png", 320, 320, mode="RGBA")
    jpeg = tmp_path / "in-3.jpg"
    Image.new("RGB", (320, 200), (1, 2, 3)).save(jpeg, "JPEG")
    inputs = tuple(InputFile(f"in-{i}.png", p, "image/png") for i, p in enumerate(images))
    inputs += (InputFile("in-3.jpg", str(jpeg), "image/jpeg"),)
    request = text_request(
        mode="image-to-image",
        images=inputs,
        mask=InputFile("mask.png", mask, "image/png"),
        n=2,
        output_format="webp",
        output_compression=70,
        partial_images=1,
    )
    result = provider.generate(request, spool_dir=spool)
    recorded = server.last_request
    assert recorded.path == "/v1/images/edits"
    assert [(f.field, f.filename, f.content_type) for f in recorded.files] == [
        ("image[]", "in-0.png", "image/png"),
        ("image[]", "in-1.png", "image/png"),
        ("image[]", "in-2.png", "image/png"),
        ("image[]", "in-3.jpg", "image/jpeg"),
        ("mask", "mask.png", "image/png"),
    ]
    assert [f.sha256 for f in recorded.files] == [sha256_of(p) for p in [*images, jpeg, mask]]
    assert recorded.form["output_compression"] == "70"
    assert recorded.form["stream"] == "true"
    assert recorded.form["partial_images"] == "1"
    assert "image" not in recorded.form and "mask" not in recorded.form
    for name in NEVER_SENT:
        assert name not in recorded.form
    validate_edit_request(recorded)
    assert len(result.files) == 2
    for f in result.files:
        with Image.open(f.path) as im:
            assert (im.format, im.size) == ("WEBP", (1024, 1024))


# -- responses -------------------------------------------------------------------------------------


def test_parses_images_usage_size_and_request_id(provider, server, spool):
    result = provider.generate(text_request(n=3, size="1536x864"), spool_dir=spool)
    assert [f.index for f in result.files] == [0, 1, 2]
    digests = set()
    for f in result.files:
        with open(f.path, "rb") as fh:
            data = fh.read()
        assert len(data) == f.size_bytes
        assert hashlib.sha256(data).hexdigest() == f.sha256
        digests.add(f.sha256)
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.size) == ("PNG", (1536, 864))
    assert len(digests) == 3  # three different images, not one three times
    assert result.usage == expected_usage("A lighthouse at dusk", 272, 1536, 864, 3)
    assert result.size == "1536x864"
    assert result.quality == "low"
    assert result.output_format == "png"
    assert result.background == "opaque"
    assert isinstance(result.created, int) and result.created > 1_600_000_000
    assert result.request_id and result.request_id.startswith("req_")
    # The answer, rebuilt from what was parsed, is a contract ImagesResponse.
    validate_images_response(
        {
            "created": result.created,
            "data": [
                {"b64_json": base64.b64encode(Path(f.path).read_bytes()).decode()} for f in result.files
            ],
            "size": result.size,
            "quality": result.quality,
            "output_format": result.output_format,
            "background": result.background,
            "usage": {k: v for k, v in result.usage.items() if k != "output_tokens_details"},
        }
    )


def test_rate_limit_headers_are_kept(provider, server, spool):
    result = provider.generate(text_request(), spool_dir=spool)
    limits = result.extra["rate_limit"]
    assert set(limits) == set(RATE_LIMIT_HEADERS)
    assert limits["x-ratelimit-limit-requests"] == str(server.rate_limit_requests)
    assert int(limits["x-ratelimit-remaining-requests"]) <= server.rate_limit_requests
    assert limits["x-ratelimit-reset-requests"].endswith("s")


def test_request_id_differs_per_call(provider, spool):
    first = provider.generate(text_request(), spool_dir=spool)
    second = provider.generate(text_request(), spool_dir=spool)
    assert first.request_id != second.request_id


def test_streaming_reports_partial_previews_as_real_pngs(provider, server, spool):
    events: list[tuple[str, dict]] = []
    previews: list[tuple[str, tuple[int, int]]] = []

    def progress(phase: str, data: dict) -> None:
        events.append((phase, dict(data)))
        if phase == "partial":
            with Image.open(data["path"]) as im:
                im.verify()
            with Image.open(data["path"]) as im:
                previews.append((im.format, im.size))

    result = provider.generate(
        text_request(partial_images=2, size="1024x1536"), spool_dir=spool, progress=progress
    )
    phases = [p for p, _ in events if p != "tick"]  # ticks: one per chunk, no state change
    assert phases == ["sending", "waiting", "receiving", "partial", "partial"]
    assert "tick" in {p for p, _ in events}
    assert [d["index"] for p, d in events if p == "partial"] == [0, 1]
    assert previews == [("PNG", (1024, 1536)), ("PNG", (1024, 1536))]
    partial_paths = [d["path"] for p, d in events if p == "partial"]
    assert len(set(partial_paths)) == 2
    (final,) = result.files
    assert final.path not in partial_paths
    with Image.open(final.path) as im:
        assert (im.format, im.size) == ("PNG", (1024, 1536))
    assert sha256_of(final.path) == final.sha256
    assert result.usage == {
        k: v
        for k, v in expected_usage("A lighthouse at dusk", 272, 1024, 1536, 1).items()
        if k != "output_tokens_details"
    }
    assert result.size == "1024x1536"
    assert result.request_id.startswith("req_")
    assert set(result.extra["rate_limit"]) == set(RATE_LIMIT_HEADERS)


def test_streaming_several_images(provider, spool):
    result = provider.generate(text_request(partial_images=1, n=2), spool_dir=spool)
    assert [f.index for f in result.files] == [0, 1]
    assert result.files[0].sha256 != result.files[1].sha256


# -- errors ------------------------------------------------------------------------------------------

FAULTS = [
    # kind, options, code, status, provider_code
    ("rate_limited", {"retry_after": 2.5}, ErrorCode.RATE_LIMITED, 429, "rate_limit_exceeded"),
    ("insufficient_quota", {}, ErrorCode.QUOTA_EXCEEDED, 429, "insufficient_quota"),
    ("unauthorized", {}, ErrorCode.AUTH_FAILED, 401, "invalid_api_key"),
    ("forbidden", {}, ErrorCode.AUTH_FAILED, 403, "invalid_request_error"),
    ("moderation_blocked", {}, ErrorCode.MODERATION_BLOCKED, 400, "moderation_blocked"),
    ("server_error", {}, ErrorCode.PROVIDER_ERROR, 500, "server_error"),
    ("overloaded", {}, ErrorCode.PROVIDER_ERROR, 503, "server_error"),
]


@pytest.mark.parametrize(("kind", "options", "code", "status", "provider_code"), FAULTS)
def test_http_errors_map_to_codes(provider, server, spool, kind, options, code, status, provider_code):
    server.add_fault(kind, **options)
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(), spool_dir=spool)
    error = info.value
    assert error.code is code
    assert error.status == status
    assert error.provider_code == provider_code
    assert error.request_id and error.request_id.startswith("req_")
    assert str(error).startswith(error.message)
    assert error.detail  # OpenAI's own message is kept as detail
    assert len(server.requests) == 1
    # The fault is used up: the next call succeeds on the same provider.
    assert provider.generate(text_request(), spool_dir=spool).files


def test_rate_limited_retry_after_comes_from_the_headers(provider, server, spool):
    server.add_fault("rate_limited", retry_after=2.5)
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(), spool_dir=spool)
    assert info.value.retry_after == 2.5  # retry-after-ms: 2500, preferred over retry-after: 3


def test_wrong_key_is_auth_failed(server, spool):
    p = OpenAIProvider(api_key=new_key(), base_url=server.base_url)
    try:
        with pytest.raises(ProviderError) as info:
            p.generate(text_request(), spool_dir=spool)
    finally:
        p.close()
    assert info.value.code is ErrorCode.AUTH_FAILED
    assert info.value.status == 401


def test_other_400_is_invalid_parameters(provider, server, spool):
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(size="1000x1000"), spool_dir=spool)  # not a multiple of 16
    assert info.value.code is ErrorCode.INVALID_PARAMETERS
    assert info.value.status == 400
    assert info.value.provider_code == "invalid_value"
    assert "1000x1000" in info.value.detail


def test_404_is_a_configuration_error(server, api_key, spool):
    p = OpenAIProvider(api_key=api_key, base_url=server.url)  # missing /v1
    try:
        with pytest.raises(ProviderError) as info:
            p.generate(text_request(), spool_dir=spool)
    finally:
        p.close()
    assert info.value.code is ErrorCode.CONFIGURATION_ERROR
    assert info.value.status == 404


def test_delay_longer_than_the_read_timeout_is_a_timeout(server, api_key, spool):
    server.add_fault("delay", seconds=3)
    p = OpenAIProvider(api_key=api_key, base_url=server.base_url, read_timeout=0.5)
    try:
        with pytest.raises(ProviderError) as info:
            p.generate(text_request(), spool_dir=spool)
    finally:
        p.close()
    assert info.value.code is ErrorCode.TIMEOUT
    assert "waiting for the response" in info.value.detail
    assert len(server.requests) == 1  # it was sent (and may be billed)


def test_short_delay_within_the_read_timeout_succeeds(server, api_key, spool):
    server.add_fault("delay", seconds=0.2)
    p = OpenAIProvider(api_key=api_key, base_url=server.base_url, read_timeout=5)
    try:
        assert len(p.generate(text_request(), spool_dir=spool).files) == 1
    finally:
        p.close()


def test_connection_refused_is_a_provider_error(api_key, spool):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    p = OpenAIProvider(api_key=api_key, base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=2)
    try:
        with pytest.raises(ProviderError) as info:
            p.generate(text_request(), spool_dir=spool)
    finally:
        p.close()
    assert info.value.code is ErrorCode.PROVIDER_ERROR
    assert info.value.status is None
    assert info.value.detail == "the connection was refused"
    assert str(info.value).startswith(f"Could not reach the image service at 127.0.0.1:{port}.")


@pytest.mark.parametrize(
    ("kind", "code", "detail"),
    [
        ("drop", ErrorCode.TIMEOUT, "connection was closed before an answer"),
        ("truncated", ErrorCode.BAD_RESPONSE, "cut off"),
        ("not_json", ErrorCode.BAD_RESPONSE, "not JSON"),
    ],
)
def test_broken_answers(provider, server, spool, kind, code, detail):
    server.add_fault(kind)
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(), spool_dir=spool)
    assert info.value.code is code
    assert detail in info.value.detail


@pytest.mark.parametrize(
    ("kind", "options", "code", "detail"),
    [
        ("stream_error", {}, ErrorCode.PROVIDER_ERROR, "error while processing"),
        ("stream_cut", {}, ErrorCode.BAD_RESPONSE, "ended before the image was complete"),
        ("stream_cut", {"after": 0}, ErrorCode.BAD_RESPONSE, "ended before the image was complete"),
        ("truncated", {}, ErrorCode.BAD_RESPONSE, "cut off"),
    ],
)
def test_stream_faults(provider, server, spool, kind, options, code, detail):
    server.add_fault(kind, **options)
    partials: list[str] = []
    with pytest.raises(ProviderError) as info:
        provider.generate(
            text_request(partial_images=2),
            spool_dir=spool,
            progress=lambda phase, data: partials.append(data["path"]) if phase == "partial" else None,
        )
    assert info.value.code is code
    assert detail in info.value.detail
    assert info.value.request_id.startswith("req_")
    expected_partials = 2 if options.get("after") is None else options["after"]
    assert len(partials) == expected_partials


def test_stream_with_fewer_completed_images_than_n(provider, server, spool):
    # n=2, one partial each: partial, completed, [cut] partial, completed
    server.add_fault("stream_cut", after=2)
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(partial_images=1, n=2), spool_dir=spool)
    assert info.value.code is ErrorCode.BAD_RESPONSE
    assert "asked for 2 image(s), received 1" in info.value.detail


def images_body(n: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1024, 1024), (9, 9, 9)).save(buf, "PNG")
    doc = {
        "created": 1_700_000_000,
        "data": [{"b64_json": base64.b64encode(buf.getvalue()).decode()} for _ in range(n)],
        "size": "1024x1024",
        "quality": "low",
        "output_format": "png",
        "background": "opaque",
        "usage": {
            "total_tokens": 277,
            "input_tokens": 5,
            "output_tokens": 272,
            "input_tokens_details": {"text_tokens": 5, "image_tokens": 0},
        },
    }
    validate_images_response(doc)
    return json.dumps(doc).encode()


def test_fewer_images_than_n_is_a_bad_response(api_key, spool):
    with ScriptedServer(
        [(200, {"content-type": "application/json", "x-request-id": "req_short"}, images_body(1))]
    ) as s:
        p = OpenAIProvider(api_key=api_key, base_url=s.base_url)
        try:
            with pytest.raises(ProviderError) as info:
                p.generate(text_request(n=2), spool_dir=spool)
        finally:
            p.close()
    assert info.value.code is ErrorCode.BAD_RESPONSE
    assert info.value.request_id == "req_short"
    assert "asked for 2 image(s), received 1" in info.value.detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"created": 1, "data": []}', "no images"),
        (b'{"created": 1}', "no images"),
        (b'{"created": 1, "data": [{"url": "https://example.com/x.png"}]}', "no b64_json"),
        (b'{"created": 1, "data": [{"b64_json": null}]}', "not a string"),
    ],
)
def test_answers_without_usable_images_are_bad_responses(api_key, spool, body, detail):
    with ScriptedServer([(200, {"content-type": "application/json"}, body)]) as s:
        p = OpenAIProvider(api_key=api_key, base_url=s.base_url)
        try:
            with pytest.raises(ProviderError) as info:
                p.generate(text_request(), spool_dir=spool)
        finally:
            p.close()
    assert info.value.code is ErrorCode.BAD_RESPONSE
    assert detail in info.value.detail


def test_non_json_error_page_is_a_provider_error(api_key, spool):
    page = b"<html><body>502 Bad Gateway</body></html>"
    with ScriptedServer([(502, {"content-type": "text/html"}, page)]) as s:
        p = OpenAIProvider(api_key=api_key, base_url=s.base_url)
        try:
            with pytest.raises(ProviderError) as info:
                p.generate(text_request(), spool_dir=spool)
        finally:
            p.close()
    assert info.value.code is ErrorCode.PROVIDER_ERROR
    assert info.value.status == 502


def test_rate_limit_reset_headers_over_http(api_key, spool):
    envelope = {
        "error": {
            "message": "Rate limit reached",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    headers = {
        "content-type": "application/json",
        "x-request-id": "req_slow",
        "x-ratelimit-reset-requests": "250ms",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    with ScriptedServer([(429, headers, json.dumps(envelope).encode())]) as s:
        p = OpenAIProvider(api_key=api_key, base_url=s.base_url)
        try:
            with pytest.raises(ProviderError) as info:
                p.generate(text_request(), spool_dir=spool)
        finally:
            p.close()
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.retry_after == 360.0
    assert info.value.request_id == "req_slow"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3", "retry-after-ms": "2500"}, 2.5),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "250ms"}, 0.25),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-requests": "1h2m3s"}, 3723.0),
        ({"x-ratelimit-reset-tokens": "1.5s"}, 1.5),
        ({"x-ratelimit-reset-requests": "2m"}, 120.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT", "x-ratelimit-reset-tokens": "20s"}, 20.0),
        ({"x-ratelimit-reset-tokens": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers, seconds):
    assert retry_after(httpx.Response(429, headers=headers)) == seconds


# -- connections and timeouts ---------------------------------------------------------------------


def test_one_connection_is_reused_for_sequential_calls(provider, server, spool):
    for _ in range(3):
        provider.generate(text_request(), spool_dir=spool)
    server.add_fault("rate_limited", retry_after=0)
    with pytest.raises(ProviderError):
        provider.generate(text_request(), spool_dir=spool)
    provider.generate(text_request(partial_images=1), spool_dir=spool)
    assert len(server.requests) == 5
    assert server.connections_opened == 1


def test_separate_connect_and_read_timeouts(api_key):
    p = OpenAIProvider(api_key=api_key, connect_timeout=3, read_timeout=450, write_timeout=60, pool_timeout=5)
    try:
        timeout = p._client.timeout
        assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (3, 450, 60, 5)
    finally:
        p.close()


@pytest.fixture
def clean_providers():
    reset_providers()
    yield
    reset_providers()


def test_timeouts_from_settings(settings, clean_providers, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER": "openai", "API_KEY": new_key()}
    p = get_provider()
    assert isinstance(p, OpenAIProvider)
    assert p.base_url == "https://api.openai.com/v1"
    timeout = p._client.timeout
    assert timeout.read >= 300  # high quality and 4K images take minutes
    assert timeout.connect < timeout.read
    assert (timeout.connect, timeout.read) == (10.0, 600.0)
    assert get_provider() is p  # one pooled client per process and settings

    settings.GPTIMAGE = {**settings.GPTIMAGE, "CONNECT_TIMEOUT": 2.0, "READ_TIMEOUT": 900.0}
    q = get_provider()
    assert q is not p
    assert (q._client.timeout.connect, q._client.timeout.read) == (2.0, 900.0)


@pytest.mark.django_db
def test_provider_from_settings_talks_to_the_fake_server(gptimage_openai, spool):
    p = get_provider()
    assert isinstance(p, OpenAIProvider)
    assert p.base_url == gptimage_openai.base_url
    for _ in range(2):
        result = p.generate(text_request(), spool_dir=spool)
        assert len(result.files) == 1
    assert get_provider() is p
    assert len(gptimage_openai.requests) == 2
    assert gptimage_openai.connections_opened == 1
    validate_generation_request(gptimage_openai.last_request.json)


def test_organization_and_project_headers(server, api_key, spool):
    p = OpenAIProvider(api_key=api_key, base_url=server.base_url, organization="org-abc", project="proj_xyz")
    try:
        p.generate(text_request(), spool_dir=spool)
    finally:
        p.close()
    headers = server.last_request.headers
    assert headers["openai-organization"] == "org-abc"
    assert headers["openai-project"] == "proj_xyz"
    assert headers["user-agent"] == "django-gptimage"


def test_request_is_frozen_dataclass():
    # Providers may be shared between threads: requests must not be mutated in place.
    request = text_request()
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.n = 2  # type: ignore[misc]


@pytest.mark.parametrize("code", ["billing_hard_limit_reached", "billing_not_active"])
def test_a_spending_limit_400_is_quota_exceeded_not_bad_input(spool, code):
    """OpenAI answers an account over its hard spending limit with HTTP 400: never retried,
    never blamed on the editor's parameters."""
    envelope = {"error": {"message": "Billing hard limit has been reached", "type": "invalid_request_error",
                          "param": None, "code": code}}  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=envelope, headers={"x-request-id": "req_limit"})

    p = OpenAIProvider(api_key="sk-unused", transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(ProviderError) as info:
            p.generate(text_request(), spool_dir=spool)
    finally:
        p.close()
    assert info.value.code is ErrorCode.QUOTA_EXCEEDED
    assert info.value.status == 400 and info.value.request_id == "req_limit"
