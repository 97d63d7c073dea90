"""The loopback OpenAI server: validation, images, headers, faults and concurrency, via plain httpx."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from django_gptimage.testing import FAULT_KINDS, FakeOpenAIServer, Fault

RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


@pytest.fixture
def client(fake_openai: FakeOpenAIServer) -> httpx.Client:
    # A generous timeout: parsing a 50 MB multipart body takes seconds on a busy CI machine.
    headers = {"Authorization": "Bearer sk-test"}
    with httpx.Client(base_url=fake_openai.base_url, headers=headers, timeout=60) as c:
        yield c


def gen(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.post("/images/generations", json={"model": "gpt-image-2", "prompt": "a red fox", **params})


def picture(width: int = 64, height: int = 48, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (10, 20, 30, 0)[: len(mode)] if mode != "L" else 0).save(out, fmt)
    return out.getvalue()


def edit(client: httpx.Client, files: list[tuple[str, Any]] | None = None, **fields: Any) -> httpx.Response:
    data = {"model": "gpt-image-2", "prompt": "make it blue", **{k: str(v) for k, v in fields.items()}}
    if files is None:
        files = [("image", ("in.png", picture(), "image/png"))]
    return client.post("/images/edits", data=data, files=files)


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


# -- success --------------------------------------------------------------------------------------


def test_generation_answers_real_images_of_the_requested_size(client: httpx.Client) -> None:
    r = gen(client, size="2048x1152", n=2)
    assert r.status_code == 200
    body = r.json()
    assert body["size"] == "2048x1152" and body["output_format"] == "png"
    assert body["quality"] == "medium" and body["background"] == "opaque"
    assert abs(body["created"] - time.time()) < 60
    assert len(body["data"]) == 2
    images = [decode(item["b64_json"]) for item in body["data"]]
    assert all(im.format == "PNG" and im.size == (2048, 1152) for im in images)
    usage = body["usage"]
    details = usage["input_tokens_details"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens"] == details["text_tokens"] + details["image_tokens"]


def test_every_response_carries_openai_headers(client: httpx.Client) -> None:
    for r in (gen(client), gen(client, n=0), client.get("/models")):
        assert re.fullmatch(r"req_[0-9a-f]{32}", r.headers["x-request-id"])
        assert int(r.headers["openai-processing-ms"]) >= 0
        assert all(name in r.headers for name in RATE_HEADERS)
        assert int(r.headers["content-length"]) == len(r.content)
    first, second = gen(client), gen(client)
    assert int(second.headers["x-ratelimit-remaining-requests"]) < int(
        first.headers["x-ratelimit-remaining-requests"]
    )
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_auto_values_resolve_to_what_was_made(client: httpx.Client) -> None:
    body = gen(client, size="auto", quality="auto", background="auto").json()
    assert (body["size"], body["quality"], body["background"]) == ("1024x1024", "medium", "opaque")
    assert decode(body["data"][0]["b64_json"]).size == (1024, 1024)


@pytest.mark.parametrize(
    ("fmt", "background", "mode"),
    [("png", "transparent", "RGBA"), ("webp", "transparent", "RGBA"), ("jpeg", "opaque", "RGB")],
)
def test_formats_and_transparency(client: httpx.Client, fmt: str, background: str, mode: str) -> None:
    body = gen(client, model="gpt-image-1", size="1536x1024", output_format=fmt, background=background).json()
    im = decode(body["data"][0]["b64_json"])
    assert (im.format, im.size, im.mode) == (fmt.upper(), (1536, 1024), mode)
    assert body["output_format"] == fmt and body["background"] == background
    if mode == "RGBA":
        assert im.getpixel((0, 0))[3] == 0 and im.getpixel((768, 512))[3] == 255


def test_output_compression_changes_jpeg_quality(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.image_mode = "noise"  # solid colours compress to nearly nothing at any quality
    sizes = [
        len(
            gen(client, size="1024x1024", output_format="jpeg", output_compression=c).json()["data"][0][
                "b64_json"
            ]
        )
        for c in (10, 95)
    ]
    assert sizes[0] < sizes[1] / 2


def test_usage_scales_with_pixels_and_quality(client: httpx.Client) -> None:
    def out(**params: Any) -> int:
        return gen(client, **params).json()["usage"]["output_tokens"]

    assert out(quality="low") < out(quality="medium") < out(quality="high")
    assert out(size="1024x1024") < out(size="2048x1152") < out(size="3840x2160")
    assert out(n=3) == 3 * out(n=1)


def test_edit_with_images_and_mask(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    source = picture(256, 192)
    files = [
        ("image[]", ("a.png", source, "image/png")),
        ("image[]", ("b.jpg", picture(100, 100, fmt="JPEG"), "image/jpeg")),
        ("mask", ("mask.png", picture(256, 192, "RGBA"), "image/png")),
    ]
    r = edit(client, files, model="gpt-image-1", size="1024x1536", n=2, input_fidelity="high")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [decode(d["b64_json"]).size for d in body["data"]] == [(1024, 1536)] * 2
    assert body["usage"]["input_tokens_details"]["image_tokens"] > 0
    seen = fake_openai.last_request
    assert seen is not None and seen.multipart
    assert seen.form["n"] == "2" and seen.form["input_fidelity"] == "high"
    assert [(f.field, f.filename, f.content_type) for f in seen.files] == [
        ("image[]", "a.png", "image/png"),
        ("image[]", "b.jpg", "image/jpeg"),
        ("mask", "mask.png", "image/png"),
    ]
    assert seen.files[0].size == len(source) and seen.files[0].sha256 == hashlib.sha256(source).hexdigest()


def test_requests_are_recorded_with_the_key_redacted(
    fake_openai: FakeOpenAIServer, client: httpx.Client
) -> None:
    gen(client, size="1024x1536")
    seen = fake_openai.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/images/generations")
    assert seen.json == {"model": "gpt-image-2", "prompt": "a red fox", "size": "1024x1536"}
    assert seen.headers["authorization"] == "Bearer ***"
    assert "sk-test" not in repr(fake_openai.requests)


def test_chunked_request_bodies_are_read(client: httpx.Client) -> None:
    payload = json.dumps({"model": "gpt-image-2", "prompt": "chunked"}).encode()
    r = client.post("/images/generations", content=iter([payload[:10], payload[10:]]))
    assert r.status_code == 200


# -- validation -----------------------------------------------------------------------------------

GENERATION_ERRORS = [
    ({"foo": 1}, "foo", "unknown_parameter"),
    ({"prompt": None}, "prompt", "missing_required_parameter"),
    ({"prompt": 5}, "prompt", "invalid_type"),
    ({"prompt": "x" * 32_001}, "prompt", "string_above_max_length"),
    ({"model": "dall-e-3"}, "model", "invalid_value"),
    ({"model": "gpt-4o"}, "model", "invalid_value"),
    ({"model": None}, "model", "invalid_value"),
    ({"response_format": "b64_json"}, "response_format", "unknown_parameter"),
    ({"style": "vivid"}, "style", "unsupported_parameter"),
    ({"size": "1000x1000"}, "size", "invalid_value"),
    ({"size": "4096x4096"}, "size", "invalid_value"),
    ({"size": "3840x1024"}, "size", "invalid_value"),
    ({"size": "large"}, "size", "invalid_value"),
    ({"model": "gpt-image-1", "size": "2048x1152"}, "size", "invalid_value"),
    ({"quality": "ultra"}, "quality", "invalid_value"),
    ({"quality": "hd"}, "quality", "invalid_value"),
    ({"output_format": "gif"}, "output_format", "invalid_value"),
    ({"background": "green"}, "background", "invalid_value"),
    ({"moderation": "none"}, "moderation", "invalid_value"),
    ({"output_compression": 80}, "output_compression", "invalid_value"),
    ({"output_format": "jpeg", "output_compression": 101}, "output_compression", "integer_above_max_value"),
    ({"output_format": "webp", "output_compression": -1}, "output_compression", "integer_below_min_value"),
    ({"output_format": "jpeg", "background": "transparent"}, "background", "invalid_value"),
    ({"n": 0}, "n", "integer_below_min_value"),
    ({"n": 11}, "n", "integer_above_max_value"),
    ({"n": "2"}, "n", "invalid_type"),
    ({"n": True}, "n", "invalid_type"),
    ({"stream": "yes"}, "stream", "invalid_type"),
    ({"stream": True, "partial_images": 4}, "partial_images", "integer_above_max_value"),
    ({"stream": True, "partial_images": -1}, "partial_images", "integer_below_min_value"),
]


@pytest.mark.parametrize(("params", "param", "code"), GENERATION_ERRORS)
def test_generation_validation(client: httpx.Client, params: dict[str, Any], param: str, code: str) -> None:
    r = gen(client, **params)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, code)
    assert err["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "x" * 32_000},
        {"size": "auto"},
        {"size": "3840x2160", "quality": "low"},
        {"size": "1024x3072"},
        {"model": "gpt-image-1-mini", "size": "1024x1536"},
        {"model": "gpt-image-2-2026-04-21", "moderation": "low", "user": "u-1"},
        {"output_format": "webp", "output_compression": 0, "background": "transparent"},
        {"n": None, "quality": None, "size": None, "partial_images": None},
    ],
)
def test_generation_accepts_valid_edges(client: httpx.Client, params: dict[str, Any]) -> None:
    r = gen(client, **params)
    assert r.status_code == 200, r.text


def test_unparseable_json_body(client: httpx.Client) -> None:
    r = client.post("/images/generations", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert error_of(r)["type"] == "invalid_request_error" and error_of(r)["code"] is None


def test_unknown_path_is_a_404_envelope(client: httpx.Client) -> None:
    r = client.get("/images/generations")
    assert r.status_code == 404 and error_of(r)["message"] == "Invalid URL (GET /v1/images/generations)"


def _png(size: tuple[int, int] = (64, 48)) -> tuple[str, bytes, str]:
    return ("in.png", picture(*size), "image/png")


EDIT_ERRORS = [
    ([], {}, "image", "missing_required_parameter"),
    ([("image[]", _png())] * 17, {}, "image", "array_above_max_length"),
    ([("image", ("in.gif", picture(fmt="GIF"), "image/png"))], {}, "image", "invalid_image_format"),
    ([("image", ("in.png", b"not an image", "image/png"))], {}, "image", "invalid_image_format"),
    (
        [("image", ("in.png", picture(), "application/octet-stream"))],
        {},
        "image",
        "unsupported_file_mimetype",
    ),
    ([("images", _png())], {}, "images", "unknown_parameter"),
    (
        [("image", _png()), ("mask", ("m.jpg", picture(fmt="JPEG"), "image/jpeg"))],
        {},
        "mask",
        "invalid_value",
    ),
    (
        [("image", _png()), ("mask", ("m.png", picture(64, 48, "RGB"), "image/png"))],
        {},
        "mask",
        "invalid_value",
    ),
    (
        [("image", _png()), ("mask", ("m.png", picture(32, 32, "RGBA"), "image/png"))],
        {},
        "mask",
        "invalid_value",
    ),
    (None, {"input_fidelity": "high"}, "input_fidelity", "unsupported_parameter"),
    (None, {"model": "gpt-image-1", "input_fidelity": "max"}, "input_fidelity", "invalid_value"),
    (None, {"response_format": "b64_json"}, "response_format", "unknown_parameter"),
    (None, {"moderation": "low"}, "moderation", "unknown_parameter"),
    (None, {"n": "two"}, "n", "invalid_type"),
    (None, {"n": "11"}, "n", "integer_above_max_value"),
    (None, {"stream": "maybe"}, "stream", "invalid_type"),
    (None, {"model": "gpt-image-1", "size": "2048x1152"}, "size", "invalid_value"),
    (None, {"output_format": "jpeg", "background": "transparent"}, "background", "invalid_value"),
    (None, {"image": "not-a-file"}, "image", "invalid_type"),
]


@pytest.mark.parametrize(("files", "fields", "param", "code"), EDIT_ERRORS)
def test_edit_validation(
    client: httpx.Client, files: list[tuple[str, Any]] | None, fields: dict[str, Any], param: str, code: str
) -> None:
    if files == []:
        r = client.post(
            "/images/edits",
            content=b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--b--\r\n',
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    else:
        r = edit(client, files, **fields)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, code)


def test_edit_image_over_50_mb_is_refused(client: httpx.Client) -> None:
    big = picture() + b"\0" * (50 * 1024 * 1024)
    r = edit(client, [("image", ("big.png", big, "image/png"))])
    assert r.status_code == 400 and error_of(r)["code"] == "file_too_large"


def test_edit_defaults_to_gpt_image_1_5_and_needs_multipart(client: httpx.Client) -> None:
    r = client.post("/images/edits", data={"prompt": "x"}, files=[("image", _png())])
    assert r.status_code == 200, r.text
    r = client.post("/images/edits", json={"prompt": "x", "images": [{"image_url": "https://x/y.png"}]})
    assert r.status_code == 400


# -- streaming ------------------------------------------------------------------------------------


def test_generation_stream(client: httpx.Client) -> None:
    r = gen(client, stream=True, partial_images=2, size="1536x1024", quality="high")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert [name for name, _ in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"
    ]
    assert [data["partial_image_index"] for _, data in events[:2]] == [0, 1]
    done = events[-1][1]
    assert done["type"] == "image_generation.completed" and done["usage"]["output_tokens"] > 0
    assert decode(done["b64_json"]).size == (1536, 1024)
    assert (done["size"], done["quality"]) == ("1536x1024", "high")


def test_edit_stream(client: httpx.Client) -> None:
    r = edit(client, stream="true", partial_images=1)
    assert [name for name, _ in sse_events(r.text)] == ["image_edit.partial_image", "image_edit.completed"]


def test_stream_without_partials_sends_only_completed(client: httpx.Client) -> None:
    assert [name for name, _ in sse_events(gen(client, stream=True).text)] == ["image_generation.completed"]


# -- auth -----------------------------------------------------------------------------------------


def test_api_key_is_enforced_when_set(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.api_key = "sk-right"
    url = f"{fake_openai.base_url}/images/generations"
    body = {"model": "gpt-image-2", "prompt": "x"}
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "sk-right"}):
        r = httpx.post(url, json=body, headers=headers)
        assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
        assert "sk-wrong" not in r.text
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer sk-right"}).status_code == 200
    assert "sk-right" not in repr(fake_openai.requests) and "sk-wrong" not in repr(fake_openai.requests)


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "type_", "code"),
    [
        ("rate_limited", 429, "requests", "rate_limit_exceeded"),
        ("insufficient_quota", 429, "insufficient_quota", "insufficient_quota"),
        ("unauthorized", 401, "invalid_request_error", "invalid_api_key"),
        ("forbidden", 403, "invalid_request_error", None),
        ("server_error", 500, "server_error", None),
        ("overloaded", 503, "server_error", None),
        ("moderation_blocked", 400, "image_generation_user_error", "moderation_blocked"),
    ],
)
def test_error_faults(
    fake_openai: FakeOpenAIServer, client: httpx.Client, kind: str, status: int, type_: str, code: str | None
) -> None:
    fake_openai.add_fault(kind)
    r = gen(client)
    assert r.status_code == status
    err = error_of(r)
    assert (err["type"], err["code"], err["param"]) == (type_, code, None)
    assert r.headers["x-request-id"].startswith("req_")
    if kind == "moderation_blocked":
        assert r.headers["x-request-id"] in err["message"]
    assert gen(client).status_code == 200  # used up


def test_rate_limited_advertises_retry_after(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("rate_limited", retry_after=2.5)
    r = gen(client)
    assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("3", "2500")
    assert r.headers["x-ratelimit-remaining-requests"] == "0"


def test_faults_are_fifo_with_times_and_paths(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("server_error", times=2)
    fake_openai.add_fault("overloaded", path="edits")
    fake_openai.add_fault(Fault("rate_limited", path="/v1/images/generations"))
    assert client.get("/models").status_code == 404  # not an image endpoint: no fault used
    assert [gen(client).status_code for _ in range(2)] == [500, 500]
    assert gen(client).status_code == 429  # the edits fault is skipped, not consumed
    assert [f.kind for f in fake_openai.faults] == ["overloaded"]
    assert edit(client).status_code == 503
    assert gen(client).status_code == 200 and not fake_openai.faults
    fake_openai.add_fault("drop")
    fake_openai.clear_faults()
    assert gen(client).status_code == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault("meteor")
    with pytest.raises(ValueError):
        Fault("delay", times=0)
    assert "stream_cut" in FAULT_KINDS


def test_stream_faults_wait_for_a_stream_request(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("stream_cut")
    assert gen(client).status_code == 200
    events = sse_events(gen(client, stream=True, partial_images=2).text)
    assert [e["type"] for _, e in events] == ["image_generation.partial_image"] * 2  # no completed


def test_stream_error_event(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("stream_error", after=1)
    events = sse_events(gen(client, stream=True, partial_images=3).text)
    assert [name for name, _ in events] == ["image_generation.partial_image", "error"]
    assert events[-1][1]["error"]["type"] == "server_error"


def test_delay_fault_does_not_block_other_connections(fake_openai: FakeOpenAIServer) -> None:
    # Wide margins: the fast request must not wait for the slow one's 3 s, on however busy a machine.
    fake_openai.add_fault("delay", seconds=3.0)
    url = f"{fake_openai.base_url}/images/generations"
    body = {"model": "gpt-image-2", "prompt": "x"}
    slow: dict[str, float] = {}

    def slow_call() -> None:
        started = time.monotonic()
        assert httpx.post(url, json=body, timeout=30).status_code == 200
        slow["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.1)  # let the slow request take the fault first
    started = time.monotonic()
    assert httpx.post(url, json=body, timeout=30).status_code == 200
    assert time.monotonic() - started < 2.0
    thread.join()
    assert slow["elapsed"] >= 3.0


def test_drop_closes_without_an_answer(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        gen(client)
    assert gen(client).status_code == 200


def test_truncated_body(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("truncated", fraction=0.3)
    with client.stream("POST", "/images/generations", json={"model": "gpt-image-2", "prompt": "x"}) as r:
        assert r.status_code == 200 and int(r.headers["content-length"]) > 0
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()


def test_truncated_stream(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("truncated")
    with pytest.raises(httpx.RemoteProtocolError):
        gen(client, stream=True, partial_images=1)


def test_not_json(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("not_json")
    r = gen(client)
    assert r.status_code == 200 and r.headers["content-type"] == "text/html"
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_not_image(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("not_image")
    data = base64.b64decode(gen(client).json()["data"][0]["b64_json"])
    with pytest.raises(OSError):
        Image.open(io.BytesIO(data))


def test_wrong_size(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("wrong_size")
    fake_openai.add_fault("wrong_size", size="512x512")
    first, second = gen(client, size="1536x1024").json(), gen(client).json()
    assert first["size"] == "1536x1024" and decode(first["data"][0]["b64_json"]).size == (768, 512)
    assert decode(second["data"][0]["b64_json"]).size == (512, 512)


# -- connections, concurrency, noise ------------------------------------------------------------


def test_connection_reuse_is_observable(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    for _ in range(5):
        assert gen(client).status_code == 200
    assert gen(client, n=99).status_code == 400  # errors keep the connection too
    assert fake_openai.connections_opened == 1
    httpx.post(f"{fake_openai.base_url}/images/generations", json={"prompt": "x", "model": "gpt-image-2"})
    assert fake_openai.connections_opened == 2


def test_concurrent_delayed_requests_run_in_parallel(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.delay = 0.5
    limits = httpx.Limits(max_connections=50)
    with httpx.Client(base_url=fake_openai.base_url, limits=limits, timeout=30) as c:

        def call(i: int) -> int:
            return gen(c, prompt=f"prompt {i}").status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(call, range(50)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 50
    assert elapsed < 10, elapsed  # about one delay of 0.5 s, not 50 of them (25 s)
    assert fake_openai.connections_opened == 50


def test_noise_mode_makes_realistically_large_pngs() -> None:
    with FakeOpenAIServer(image_mode="noise") as server:
        r = httpx.post(
            f"{server.base_url}/images/generations",
            json={"model": "gpt-image-2", "prompt": "x", "size": "1024x1024"},
            timeout=30,
        )
    data = base64.b64decode(r.json()["data"][0]["b64_json"])
    assert len(data) > 2_500_000  # ~3 MB of incompressible RGB
    assert Image.open(io.BytesIO(data)).size == (1024, 1024)


def test_reset_restores_a_shared_server(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.api_key, fake_openai.delay, fake_openai.image_mode = "sk-x", 1.0, "noise"
    fake_openai.add_fault("drop")
    fake_openai.reset()
    assert (fake_openai.api_key, fake_openai.delay, fake_openai.image_mode) == (None, 0.0, "solid")
    assert fake_openai.requests == [] and fake_openai.faults == [] and fake_openai.connections_opened == 0
    assert gen(client).status_code == 200


def test_stop_releases_idle_connections() -> None:
    server = FakeOpenAIServer().start()
    with httpx.Client(base_url=server.base_url) as c:
        assert gen(c).status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            gen(c)
    server.stop()  # idempotent


# -- fixtures -------------------------------------------------------------------------------------


def test_fake_openai_fixture_starts_clean(
    fake_openai: FakeOpenAIServer, fake_openai_session: FakeOpenAIServer
) -> None:
    assert fake_openai is fake_openai_session
    assert fake_openai.requests == [] and fake_openai.base_url.startswith("http://127.0.0.1:")


def test_gptimage_openai_fixture_configures_django(gptimage_openai: FakeOpenAIServer, settings: Any) -> None:
    from django_gptimage.testing.pytest_plugin import FAKE_API_KEY

    assert settings.GPTIMAGE["PROVIDER"] == "openai"
    assert settings.GPTIMAGE["BASE_URL"] == gptimage_openai.base_url
    assert settings.GPTIMAGE["API_KEY"] == FAKE_API_KEY == gptimage_openai.api_key
    assert "SPOOL_DIR" in settings.GPTIMAGE  # existing settings are kept


def test_the_server_runs_as_its_own_process_from_the_command_line() -> None:
    """``python -m django_gptimage.testing``: what a user points OPENAI_BASE_URL at by hand."""
    from django_gptimage.testing import serve_in_subprocess

    with serve_in_subprocess(api_key="sk-cli-test", delay=0.0) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with httpx.Client(base_url=base_url, timeout=30) as client:
            denied = client.post("/images/generations", json={"model": "gpt-image-2", "prompt": "x"})
            assert denied.status_code == 401
            answer = client.post(
                "/images/generations",
                headers={"Authorization": "Bearer sk-cli-test"},
                json={"model": "gpt-image-2", "prompt": "A harbour", "size": "2048x1152", "quality": "low"},
            )
    assert answer.status_code == 200
    png = base64.b64decode(answer.json()["data"][0]["b64_json"])
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (2048, 1152)


def test_reset_sends_a_tcp_reset(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("reset")
    with pytest.raises(httpx.ReadError) as caught:  # ECONNRESET, not a clean close
        gen(client)
    assert isinstance(caught.value.__context__, ConnectionResetError) or "reset" in str(caught.value).lower()
    assert gen(client).status_code == 200


MIX = [
    {"kind": "server_error", "rate": 0.2},
    {"kind": "rate_limited", "rate": 0.1, "retry_after": 3, "retry_after_form": "date"},
    {"kind": "truncated", "rate": 0.1},
]


def statuses_with(seed: int, count: int) -> list[Any]:
    with FakeOpenAIServer(random_faults=MIX, fault_seed=seed) as server:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for _ in range(count):
                with contextlib.suppress(httpx.TransportError):
                    gen(client, quality="low")
        return [(a["status"], a["fault"]) for a in server.answers]


def test_random_faults_follow_their_rates_and_their_seed() -> None:
    first = statuses_with(7, 200)
    assert first == statuses_with(7, 200)  # one client, one order: the same draws
    assert first != statuses_with(8, 200)
    faults = [f for _, f in first]
    # Rates 0.2 / 0.1 / 0.1 over 200 requests: well inside these bounds for any seed.
    assert 20 <= faults.count("server_error") <= 60
    assert 6 <= faults.count("rate_limited") <= 35
    assert 6 <= faults.count("truncated") <= 35
    assert (
        faults.count(None)
        + faults.count("server_error")
        + faults.count("rate_limited")
        + faults.count("truncated")
        == 200
    )
    assert {s for s, f in first if f == "server_error"} == {500}
    assert {s for s, f in first if f == "rate_limited"} == {429}
    assert {s for s, f in first if f is None} == {200}


def test_random_faults_come_after_scripted_ones() -> None:
    with FakeOpenAIServer(random_faults=[{"kind": "overloaded", "rate": 1.0}], fault_seed=1) as server:
        server.add_fault("moderation_blocked")
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            assert gen(client).status_code == 400
            assert gen(client).status_code == 503
            server.reset()  # keeps the constructor's random mix
            assert gen(client).status_code == 503


def test_random_fault_validation() -> None:
    with pytest.raises(ValueError, match="add up to more than 1"):
        FakeOpenAIServer(random_faults=[{"kind": "drop", "rate": 0.6}, {"kind": "reset", "rate": 0.6}])
    with pytest.raises(ValueError, match="Unknown fault kind"):
        FakeOpenAIServer(random_faults=[{"kind": "meteor", "rate": 0.1}])
    with pytest.raises(ValueError, match="option"):
        FakeOpenAIServer(random_faults=[{"kind": "drop", "rate": 0.1, "colour": "red"}])


def test_the_answer_log_says_what_was_billed(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("server_error")
    fake_openai.add_fault("truncated")
    fake_openai.add_fault("drop")
    assert gen(client, prompt="first").status_code == 500
    with pytest.raises(httpx.RemoteProtocolError):
        gen(client, prompt="second")
    with pytest.raises(httpx.RemoteProtocolError):
        gen(client, prompt="third")
    answer = gen(client, prompt="fourth", n=2)
    log = fake_openai.answers
    assert [(a["prompt"], a["status"], a["fault"], a["billed"]) for a in log] == [
        ("first", 500, "server_error", False),
        ("second", 200, "truncated", True),  # generated (and billed by OpenAI), never delivered
        ("third", None, "drop", False),
        ("fourth", 200, None, True),
    ]
    assert log[3]["request_id"] == answer.headers["x-request-id"] and log[3]["n"] == 2
    assert log[3]["images"] == [
        hashlib.sha256(base64.b64decode(d["b64_json"])).hexdigest() for d in answer.json()["data"]
    ]


def test_the_command_line_server_takes_a_random_fault_mix() -> None:
    from django_gptimage.testing import serve_in_subprocess

    mix = [{"kind": "overloaded", "rate": 1.0}]
    with serve_in_subprocess(random_faults=mix, fault_seed=3) as base_url, httpx.Client(timeout=30) as client:
        assert (
            client.post(
                f"{base_url}/images/generations", json={"model": "gpt-image-2", "prompt": "x"}
            ).status_code
            == 503
        )
        log = client.get(base_url.removesuffix("/v1") + "/_fake/answers").json()
    assert [(a["status"], a["fault"]) for a in log] == [(503, "overloaded")]
