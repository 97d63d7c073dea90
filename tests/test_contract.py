"""The fake server against OpenAI's published contract, and against the official ``openai`` SDK."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from jsonschema import ValidationError
from PIL import Image

from django_gptimage.testing import FakeOpenAIServer
from django_gptimage.testing.faults import ERROR_KINDS
from django_gptimage.testing.validation import EDIT_PARAMS, GENERATION_PARAMS
from tests.contract import (
    request_params,
    validate_edit_request,
    validate_error,
    validate_generation_request,
    validate_images_response,
    validate_stream_event,
)
from tests.contract.extract import OUTPUT, extract, load_openapi, render

FULL_CONTRACT = Path(__file__).resolve().parents[1].parent / "shared" / "openai" / "openapi.yaml"


@pytest.fixture
def client(fake_openai: FakeOpenAIServer) -> httpx.Client:
    with httpx.Client(base_url=fake_openai.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def sdk(fake_openai: FakeOpenAIServer) -> openai.OpenAI:
    with openai.OpenAI(api_key="sk-contract", base_url=fake_openai.base_url, max_retries=0) as c:
        yield c


def png(width: int = 96, height: int = 64, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, "PNG")
    return out.getvalue()


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def decoded_size(b64: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(b64))).size


# -- the vendored extract -------------------------------------------------------------------------


@pytest.mark.skipif(
    not FULL_CONTRACT.exists(), reason="the full contract ../shared/openai/openapi.yaml is absent"
)
def test_committed_extract_is_fresh() -> None:
    fresh = render(extract(load_openapi(FULL_CONTRACT)))
    assert OUTPUT.read_text(encoding="utf-8") == fresh, "run: python tests/contract/extract.py"


def test_server_knows_exactly_the_contract_parameters() -> None:
    assert request_params("CreateImageRequest") == GENERATION_PARAMS
    assert request_params("CreateImageEditRequest") == EDIT_PARAMS


def test_request_validators_catch_mistakes() -> None:
    validate_generation_request({"model": "gpt-image-2", "prompt": "x", "n": 2, "partial_images": None})
    for bad in ({"prompt": "x", "n": 11}, {"prompt": "x", "colour": "red"}, {"model": "gpt-image-2"}):
        with pytest.raises(ValidationError):
            validate_generation_request(bad)
    upload = {"field": "image[]", "filename": "a.png", "content_type": "image/png", "size": 3}
    validate_edit_request({"prompt": "x", "n": "2", "stream": "true"}, [upload])
    with pytest.raises(ValidationError):
        validate_edit_request({"prompt": "x", "n": "many"}, [upload])
    with pytest.raises(ValidationError):
        validate_edit_request({"prompt": "x"}, [])


# -- every answer of the server follows the contract ---------------------------------------------

GENERATIONS = [
    {"model": "gpt-image-2", "size": "2048x1152", "n": 2},
    {"model": "gpt-image-2", "size": "3840x2160", "quality": "low"},
    {"model": "gpt-image-2", "output_format": "webp", "background": "transparent", "output_compression": 50},
    {"model": "gpt-image-1", "size": "1024x1536", "quality": "high", "output_format": "jpeg"},
    {"model": "gpt-image-1.5", "size": "auto", "background": "auto", "quality": "auto"},
]


@pytest.mark.parametrize("params", GENERATIONS)
def test_generation_responses_follow_the_contract(
    fake_openai: FakeOpenAIServer, client: httpx.Client, params: dict[str, Any]
) -> None:
    r = client.post("/images/generations", json={"prompt": "a lighthouse", **params})
    assert r.status_code == 200, r.text
    validate_images_response(r.json())
    validate_generation_request(fake_openai.last_request.json)


def test_edit_responses_follow_the_contract(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    files = [("image[]", ("a.png", png(), "image/png")), ("image[]", ("b.png", png(32, 32), "image/png"))]
    files.append(("mask", ("m.png", png(mode="RGBA"), "image/png")))
    data = {"model": "gpt-image-1", "prompt": "add a hat", "n": "2", "input_fidelity": "high"}
    r = client.post("/images/edits", data=data, files=files)
    assert r.status_code == 200, r.text
    validate_images_response(r.json())
    validate_edit_request(fake_openai.last_request)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/images/generations", {"prompt": "x", "model": "gpt-image-1", "size": "2048x1152"}),
        ("/images/generations", {"prompt": "x", "model": "gpt-image-2", "bogus": True}),
        ("/images/generations", {"model": "gpt-image-2"}),
        ("/images/generations", {"prompt": "x", "model": "gpt-image-2", "n": 50}),
        ("/images/edits", {"prompt": "x", "model": "gpt-image-2"}),
        ("/images/unknown", {}),
    ],
)
def test_validation_errors_follow_the_contract(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json=body)
    assert r.status_code in (400, 404)
    validate_error(r.json())


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_fault_errors_follow_the_contract(
    fake_openai: FakeOpenAIServer, client: httpx.Client, kind: str
) -> None:
    fake_openai.add_fault(kind)
    r = client.post("/images/generations", json={"prompt": "x", "model": "gpt-image-2"})
    assert r.status_code >= 400
    validate_error(r.json())


def test_auth_errors_follow_the_contract(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.api_key = "sk-only-this"
    for headers in ({}, {"Authorization": "Bearer sk-other"}):
        r = client.post("/images/generations", json={"prompt": "x"}, headers=headers)
        assert r.status_code == 401
        validate_error(r.json())


# Stream events are checked at the standard sizes only: the event schemas' ``size`` enums have the
# same 1024-only limitation as ImagesResponse.size, and the contract extract relaxes nothing else.
@pytest.mark.parametrize("size", ["1024x1024", "1536x1024", "auto"])
def test_generation_stream_events_follow_the_contract(client: httpx.Client, size: str) -> None:
    body = {"prompt": "x", "model": "gpt-image-1", "stream": True, "partial_images": 3, "size": size, "n": 2}
    found = events(client.post("/images/generations", json=body).text)
    assert len(found) == 8
    for event in found:
        validate_stream_event(event)


def test_edit_stream_events_follow_the_contract(client: httpx.Client) -> None:
    data = {
        "prompt": "x",
        "model": "gpt-image-1",
        "stream": "true",
        "partial_images": "1",
        "background": "transparent",
    }
    r = client.post("/images/edits", data=data, files=[("image", ("a.png", png(), "image/png"))])
    found = events(r.text)
    assert [e["type"] for e in found] == ["image_edit.partial_image", "image_edit.completed"]
    for event in found:
        validate_stream_event(event)


def test_stream_error_event_follows_the_contract(fake_openai: FakeOpenAIServer, client: httpx.Client) -> None:
    fake_openai.add_fault("stream_error")
    body = {"prompt": "x", "model": "gpt-image-2", "stream": True, "partial_images": 1}
    found = events(client.post("/images/generations", json=body).text)
    assert [e["type"] for e in found] == ["image_generation.partial_image", "error"]
    for event in found:
        validate_stream_event(event)


# -- the official SDK accepts it ------------------------------------------------------------------


def test_sdk_generate(fake_openai: FakeOpenAIServer, sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(
        model="gpt-image-2", prompt="a fox", size="2048x1152", output_format="png", n=2
    )
    assert result.size == "2048x1152" and result.output_format == "png" and result.usage.output_tokens > 0
    assert [decoded_size(image.b64_json) for image in result.data] == [(2048, 1152)] * 2
    validate_generation_request(fake_openai.last_request.json)
    assert fake_openai.last_request.headers["authorization"] == "Bearer ***"


def test_sdk_edit_one_image(fake_openai: FakeOpenAIServer, sdk: openai.OpenAI) -> None:
    result = sdk.images.edit(
        model="gpt-image-2", image=("in.png", png(), "image/png"), prompt="blue", size="1536x864"
    )
    assert decoded_size(result.data[0].b64_json) == (1536, 864)
    seen = fake_openai.last_request
    assert [f.field for f in seen.files] == ["image"]
    validate_edit_request(seen)


def test_sdk_edit_several_images_and_mask(fake_openai: FakeOpenAIServer, sdk: openai.OpenAI) -> None:
    result = sdk.images.edit(
        model="gpt-image-1.5",
        image=[("a.png", png(), "image/png"), ("b.png", png(48, 48), "image/png")],
        mask=("mask.png", png(mode="RGBA"), "image/png"),
        prompt="merge them",
        input_fidelity="high",
        output_format="webp",
        output_compression=80,
        quality="high",
    )
    assert result.output_format == "webp" and result.usage.input_tokens_details.image_tokens > 0
    seen = fake_openai.last_request
    assert [f.field for f in seen.files] == ["image[]", "image[]", "mask"]
    validate_edit_request(seen)


def test_sdk_stream(sdk: openai.OpenAI) -> None:
    stream = sdk.images.generate(
        model="gpt-image-2", prompt="a fox", size="1024x1024", stream=True, partial_images=2
    )
    received = list(stream)
    assert [e.type for e in received] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"
    ]
    assert [e.partial_image_index for e in received[:2]] == [0, 1]
    assert decoded_size(received[-1].b64_json) == (1024, 1024) and received[-1].usage.total_tokens > 0


def test_sdk_stream_error(fake_openai: FakeOpenAIServer, sdk: openai.OpenAI) -> None:
    fake_openai.add_fault("stream_error", after=1)
    stream = sdk.images.generate(model="gpt-image-2", prompt="x", stream=True, partial_images=2)
    with pytest.raises(openai.APIError):
        list(stream)


@pytest.mark.parametrize(
    ("kind", "options", "exception", "code"),
    [
        ("rate_limited", {"retry_after": 2}, openai.RateLimitError, "rate_limit_exceeded"),
        ("insufficient_quota", {}, openai.RateLimitError, "insufficient_quota"),
        ("unauthorized", {}, openai.AuthenticationError, "invalid_api_key"),
        ("forbidden", {}, openai.PermissionDeniedError, None),
        ("server_error", {}, openai.InternalServerError, None),
        ("overloaded", {}, openai.InternalServerError, None),
        ("moderation_blocked", {}, openai.BadRequestError, "moderation_blocked"),
    ],
)
def test_sdk_error_faults(
    fake_openai: FakeOpenAIServer,
    sdk: openai.OpenAI,
    kind: str,
    options: dict[str, Any],
    exception: type[openai.APIStatusError],
    code: str | None,
) -> None:
    fake_openai.add_fault(kind, **options)
    with pytest.raises(exception) as caught:
        sdk.images.generate(model="gpt-image-2", prompt="x")
    assert caught.value.code == code
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    if kind == "rate_limited":
        assert caught.value.response.headers["retry-after"] == "2"
        assert caught.value.response.headers["retry-after-ms"] == "2000"


def test_sdk_validation_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="gpt-image-1", prompt="x", size="2048x1152")  # type: ignore[arg-type]
    assert (caught.value.param, caught.value.code) == ("size", "invalid_value")


def test_sdk_drop_is_a_connection_error(fake_openai: FakeOpenAIServer, sdk: openai.OpenAI) -> None:
    fake_openai.add_fault("drop")
    with pytest.raises(openai.APIConnectionError):
        sdk.images.generate(model="gpt-image-2", prompt="x")


def test_sdk_delay_is_a_timeout(fake_openai: FakeOpenAIServer, sdk: openai.OpenAI) -> None:
    fake_openai.add_fault("delay", seconds=1.0)
    with pytest.raises(openai.APITimeoutError):
        sdk.images.generate(model="gpt-image-2", prompt="x", timeout=0.2)
