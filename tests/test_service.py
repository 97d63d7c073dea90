"""The service API end to end: validation, records, the fake OpenAI server, files in storage."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import random
import struct
import uuid
import zlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from django_gptimage.domain import validation as validation_module
from django_gptimage.domain.errors import ErrorCode, error_info
from django_gptimage.domain.pricing import DEFAULT_PRICES
from django_gptimage.models import (
    GeneratedImage,
    GenerationAttempt,
    GenerationInput,
    ImageGeneration,
    Phase,
    Status,
)
from django_gptimage.service import (
    GenerationNotRetryable,
    GenerationRefused,
    NamedUpload,
    cancel_generation,
    request_generation,
    retry_generation,
)
from tests.contract import validate_edit_request, validate_generation_request

PROMPT = "A lighthouse at dusk"  # 20 characters: 5 text tokens
PRICES = DEFAULT_PRICES["gpt-image-2"]
MILLION = Decimal(1_000_000)


# -- helpers ---------------------------------------------------------------------------------------


def png_bytes(width: int, height: int, *, mode: str = "RGB", colour=(30, 90, 160)) -> bytes:
    fill = colour if mode == "RGB" else (*colour, 0)
    out = io.BytesIO()
    Image.new(mode, (width, height), fill).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def cost(text_tokens: int, image_tokens: int, output_tokens: int) -> Decimal:
    total = (
        text_tokens * PRICES.text_input
        + image_tokens * PRICES.image_input
        + output_tokens * PRICES.image_output
    )
    return (total / MILLION).quantize(Decimal("0.000001"))


@pytest.fixture
def generate(django_capture_on_commit_callbacks):
    """request_generation, with its on-commit run executed; returns the refreshed record."""

    def run(**kwargs) -> ImageGeneration:
        kwargs.setdefault("prompt", PROMPT)
        with django_capture_on_commit_callbacks(execute=True):
            generation = request_generation(**kwargs)
        generation.refresh_from_db()
        return generation

    return run


def may_generate(user):
    """``user`` with the generate permission (the service checks it when given a user)."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="django_gptimage", codename="generate")
    )
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def editor(django_user_model):
    return may_generate(django_user_model.objects.create_user("editor", password="x"))


@pytest.fixture
def one_attempt(settings, gptimage_openai):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    return gptimage_openai


def assert_nothing_happened(server) -> None:
    assert server.requests == []
    assert ImageGeneration.objects.count() == 0
    assert GenerationInput.objects.count() == 0


# -- success ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_text_to_image_records_everything(gptimage_openai, editor):
    before = timezone.now()
    generation = request_generation(
        prompt=PROMPT,
        user=editor,
        source="admin",
        ratio="1:1",
        tier="1K",
        quality="low",
        metadata={"post": 7},
    )
    after = timezone.now()

    # Sync mode: it ran on commit, in this process.
    assert generation.status == Status.SUCCEEDED
    assert generation.phase == Phase.DONE
    assert generation.error_code == "" and generation.error_message == ""
    assert isinstance(generation.pk, uuid.UUID)
    assert generation.requested_by == editor
    assert generation.source == "admin"
    assert before <= generation.created_at <= generation.started_at <= generation.finished_at <= after
    assert generation.provider == "openai"
    assert generation.model == "gpt-image-2"
    assert (generation.mode, generation.ratio, generation.tier) == ("text-to-image", "1:1", "1K")
    assert (generation.size, generation.width, generation.height) == ("1024x1024", 1024, 1024)
    assert (generation.quality, generation.output_format, generation.background) == ("low", "png", "auto")
    assert generation.output_compression is None
    assert generation.n == 1
    assert generation.prompt == PROMPT
    assert generation.attempts == 1
    assert generation.metadata["post"] == 7
    assert "spooled" not in generation.metadata
    assert generation.spool_dir == ""
    assert generation.metadata["response"]["size"] == "1024x1024"
    assert generation.metadata["response"]["rate_limit"]["x-ratelimit-limit-requests"]

    # What the fake server received.
    (recorded,) = gptimage_openai.requests
    assert recorded.path == "/v1/images/generations"
    validate_generation_request(recorded.json)
    assert recorded.json["user"] == f"django-user-{editor.pk}"
    assert recorded.json["size"] == "1024x1024" and recorded.json["quality"] == "low"

    # Our id and the provider's request id.
    assert generation.provider_request_id.startswith("req_")
    (attempt,) = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.number == 1
    assert attempt.outcome == "succeeded"
    assert attempt.provider_request_id == generation.provider_request_id
    assert attempt.maybe_billed is True
    assert attempt.will_retry is False
    assert attempt.http_status is None
    assert generation.started_at <= attempt.started_at <= attempt.finished_at <= generation.finished_at

    # Usage and money, by hand: ceil(20 / 4) = 5 text tokens, 272 output tokens for low 1024x1024.
    assert generation.usage == {
        "total_tokens": 277,
        "input_tokens": 5,
        "output_tokens": 272,
        "input_tokens_details": {"text_tokens": 5, "image_tokens": 0},
        "output_tokens_details": {"image_tokens": 272, "text_tokens": 0},
    }
    assert generation.actual_cost == cost(5, 0, 272) == Decimal("0.008185")
    assert generation.estimated_cost > 0
    assert generation.estimated_cost == Decimal("0.008185")  # 20 // 4 text tokens + 272 output tokens

    # The image in storage is exactly what the record says.
    (image,) = generation.images.all()
    data = stored_bytes(image.file.name)
    assert image.index == 0
    assert image.size_bytes == len(data)
    assert image.sha256 == sha(data)
    assert image.format == "png"
    with Image.open(io.BytesIO(data)) as im:
        assert (im.format, im.size) == ("PNG", (image.width, image.height)) == ("PNG", (1024, 1024))
    assert image.file.name.endswith(".png")
    assert "1x1-1K" in image.file.name


def test_several_images_and_formats(db, generate, gptimage_openai):
    generation = generate(
        ratio="16:9", tier="2K", quality="medium", output_format="webp", output_compression=60, n=3
    )
    assert generation.status == Status.SUCCEEDED
    assert (generation.width, generation.height) == (2048, 1152)
    body = gptimage_openai.last_request.json
    assert body["output_compression"] == 60 and body["n"] == 3 and body["size"] == "2048x1152"
    images = list(generation.images.order_by("index"))
    assert [i.index for i in images] == [0, 1, 2]
    assert len({i.sha256 for i in images}) == 3
    for image in images:
        data = stored_bytes(image.file.name)
        assert sha(data) == image.sha256 and len(data) == image.size_bytes
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.size) == ("WEBP", (2048, 1152))
    output_tokens = 3 * round(1056 * 2048 * 1152 / (1024 * 1024))
    assert generation.usage["output_tokens"] == output_tokens
    assert generation.actual_cost == cost(5, 0, output_tokens)


@pytest.mark.django_db(transaction=True)
def test_image_to_image_with_inputs_and_mask(gptimage_openai, editor, tmp_path):
    first = png_bytes(512, 512)
    second = jpeg_bytes(640, 480)
    mask = png_bytes(512, 512, mode="RGBA")
    first_path = tmp_path / "living-room.png"
    first_path.write_bytes(first)
    generation = request_generation(
        prompt="Add a green armchair",
        user=editor,
        images=[str(first_path), NamedUpload("sofa.jpg", io.BytesIO(second))],
        mask=SimpleUploadedFile("mask.png", mask, content_type="image/png"),
        quality="low",
    )
    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert generation.mode == "image-to-image"

    # Inputs are stored and recorded.
    inputs = list(generation.inputs.order_by("role", "index"))
    assert [(i.role, i.index, i.original_name, i.format, i.width, i.height) for i in inputs] == [
        ("image", 0, "living-room.png", "png", 512, 512),
        ("image", 1, "sofa.jpg", "jpeg", 640, 480),
        ("mask", 0, "mask.png", "png", 512, 512),
    ]
    for record, original in zip(inputs, (first, second, mask), strict=True):
        assert record.sha256 == sha(original)
        assert record.size_bytes == len(original)
        assert stored_bytes(record.file.name) == original

    # It reached the fake server as a multipart edit carrying exactly those bytes.
    (recorded,) = gptimage_openai.requests
    assert recorded.path == "/v1/images/edits"
    assert recorded.multipart
    assert [(f.field, f.filename, f.content_type, f.sha256) for f in recorded.files] == [
        ("image[]", "living-room.png", "image/png", sha(first)),
        ("image[]", "sofa.jpg", "image/jpeg", sha(second)),
        ("mask", "mask.png", "image/png", sha(mask)),
    ]
    validate_edit_request(recorded)
    assert recorded.form["model"] == "gpt-image-2"
    assert "input_fidelity" not in recorded.form and "response_format" not in recorded.form

    # Input image tokens as the fake server charges them: 65 + 129 per 512-px tile.
    image_tokens = (65 + 129 * 1) + (65 + 129 * 2 * 1)
    text_tokens = math.ceil(len("Add a green armchair") / 4)
    assert generation.usage["input_tokens_details"] == {
        "text_tokens": text_tokens,
        "image_tokens": image_tokens,
    }
    assert generation.actual_cost == cost(text_tokens, image_tokens, 272)
    assert generation.estimated_cost > 0
    (image,) = generation.images.all()
    assert (image.width, image.height, image.format) == (1024, 1024, "png")


def test_a_single_input_image_is_sent_as_image(db, generate, gptimage_openai):
    generation = generate(images=[NamedUpload("only.png", io.BytesIO(png_bytes(300, 200)))])
    assert generation.status == Status.SUCCEEDED
    assert [f.field for f in gptimage_openai.last_request.files] == ["image"]
    validate_edit_request(gptimage_openai.last_request)


def test_partial_previews_are_stored(db, generate, gptimage_openai, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PARTIAL_IMAGES": 2}
    generation = generate(quality="low")
    assert generation.status == Status.SUCCEEDED
    assert gptimage_openai.last_request.json["partial_images"] == 2
    assert generation.preview == ""  # shown while it runs, removed when it ends (tests/test_cleanup.py)
    [image] = generation.images.all()
    with Image.open(io.BytesIO(stored_bytes(image.file.name))) as im:
        assert im.size == (1024, 1024)


def test_offline_provider_records_no_cost(db, generate):
    generation = generate(ratio="3:2", tier="1K")
    assert generation.provider == "offline"
    assert generation.status == Status.SUCCEEDED
    assert generation.actual_cost == 0
    assert generation.usage is None
    assert generation.provider_request_id.startswith("offline-")
    assert not generation.attempt_log.get().maybe_billed


# -- refused before sending --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"ratio": "7:3"}, {"ratio"}),
        ({"tier": "8K"}, {"tier"}),
        ({"model": "dall-e-3"}, {"model"}),
        ({"prompt": ""}, {"prompt"}),
        ({"prompt": "   "}, {"prompt"}),
        ({"prompt": "x" * 32_001}, {"prompt"}),
        ({"n": 0}, {"n"}),
        ({"n": 11}, {"n"}),
        ({"background": "transparent", "output_format": "jpeg"}, {"background"}),
        ({"output_compression": 50}, {"output_compression"}),
        ({"output_compression": 101, "output_format": "webp"}, {"output_compression"}),
        ({"ratio": "1:1", "tier": "4K"}, {"tier"}),  # over the pixel cap
        ({"size": "1000x1000"}, {"size"}),
        ({"prompt": "", "n": 0, "ratio": "7:3"}, {"prompt", "n", "ratio"}),  # every problem at once
    ],
)
def test_bad_parameters_are_refused_before_sending(db, generate, gptimage_openai, kwargs, fields):
    with pytest.raises(GenerationRefused) as info:
        generate(**kwargs)
    refused = info.value
    assert refused.code is ErrorCode.INVALID_PARAMETERS
    assert set(refused.as_dict()) == fields
    assert all(refused.as_dict()[f] for f in fields)
    assert {p.field for p in refused.problems} == fields
    for p in refused.problems:
        assert p.field in str(refused)
    assert_nothing_happened(gptimage_openai)


def test_the_prompt_limit_is_inclusive(db, generate, gptimage_openai):
    assert generate(prompt="x" * 32_000, quality="low").status == Status.SUCCEEDED


def refused_inputs(generate, **kwargs) -> GenerationRefused:
    with pytest.raises(GenerationRefused) as info:
        generate(**kwargs)
    return info.value


def test_an_input_that_is_not_an_image(db, generate, gptimage_openai):
    refused = refused_inputs(
        generate, images=[NamedUpload("notes.png", io.BytesIO(b"just some text\n" * 20))]
    )
    assert list(refused.as_dict()) == ["images"]
    assert "not an image" in refused.as_dict()["images"][0]
    assert_nothing_happened(gptimage_openai)


def test_an_input_that_is_too_large(db, generate, gptimage_openai, monkeypatch):
    real = validation_module.get_capabilities

    def small_caps(model):
        caps = real(model)
        return caps and dataclasses.replace(caps, max_input_bytes=1_000)

    monkeypatch.setattr(validation_module, "get_capabilities", small_caps)
    out = io.BytesIO()
    Image.frombytes("RGB", (64, 64), random.Random(1).randbytes(64 * 64 * 3)).save(out, "PNG")
    assert len(out.getvalue()) > 1_000
    refused = refused_inputs(generate, images=[NamedUpload("big.png", io.BytesIO(out.getvalue()))])
    assert list(refused.as_dict()) == ["images"]
    assert "the limit is 1,000" in refused.as_dict()["images"][0]
    assert_nothing_happened(gptimage_openai)


@pytest.mark.parametrize("side", [8_000, 20_000])
def test_a_decompression_bomb(db, generate, gptimage_openai, side):
    bomb = png_claiming(side, side)
    assert len(bomb) < 200
    refused = refused_inputs(generate, images=[NamedUpload("bomb.png", io.BytesIO(bomb))])
    assert list(refused.as_dict()) == ["images"]
    if side == 8_000:  # under Pillow's own hard limit: our pixel cap names it
        assert "decompression bomb" in refused.as_dict()["images"][0]
    assert_nothing_happened(gptimage_openai)


def test_a_mask_of_the_wrong_size(db, generate, gptimage_openai):
    refused = refused_inputs(
        generate,
        images=[NamedUpload("a.png", io.BytesIO(png_bytes(512, 512)))],
        mask=NamedUpload("mask.png", io.BytesIO(png_bytes(256, 256, mode="RGBA"))),
    )
    assert list(refused.as_dict()) == ["mask"]
    assert "same size" in refused.as_dict()["mask"][0]
    assert_nothing_happened(gptimage_openai)


def test_a_mask_without_alpha(db, generate, gptimage_openai):
    refused = refused_inputs(
        generate,
        images=[NamedUpload("a.png", io.BytesIO(png_bytes(512, 512)))],
        mask=NamedUpload("mask.png", io.BytesIO(png_bytes(512, 512))),
    )
    assert list(refused.as_dict()) == ["mask"]
    assert "alpha" in refused.as_dict()["mask"][0]
    assert_nothing_happened(gptimage_openai)


def test_a_mask_that_is_not_a_png(db, generate, gptimage_openai):
    refused = refused_inputs(
        generate,
        images=[NamedUpload("a.jpg", io.BytesIO(jpeg_bytes(512, 512)))],
        mask=NamedUpload("mask.jpg", io.BytesIO(jpeg_bytes(512, 512))),
    )
    assert list(refused.as_dict()) == ["mask"]
    assert_nothing_happened(gptimage_openai)


def test_a_mask_for_text_to_image(db, generate, gptimage_openai):
    refused = refused_inputs(
        generate,
        mode="text-to-image",
        mask=NamedUpload("mask.png", io.BytesIO(png_bytes(512, 512, mode="RGBA"))),
    )
    assert list(refused.as_dict()) == ["mask"]
    assert_nothing_happened(gptimage_openai)


# -- policy and access ---------------------------------------------------------------------------------


def test_site_policy_refuses_a_tier(db, generate, gptimage_openai, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_TIERS": ["1K"]}
    refused = refused_inputs(generate, ratio="16:9", tier="2K")
    assert refused.code is ErrorCode.ACCESS_DENIED
    assert [(p.field, p.code) for p in refused.problems] == [("tier", "access_denied")]
    assert_nothing_happened(gptimage_openai)
    # An explicit size cannot get round it.
    refused = refused_inputs(generate, size="2048x1152")
    assert refused.code is ErrorCode.ACCESS_DENIED
    assert_nothing_happened(gptimage_openai)
    assert generate(ratio="16:9", tier="1K", quality="low").status == Status.SUCCEEDED


def paid_tiers(user):
    """An ACCESS_RESOLVER: staff have paid for every tier, everyone else gets 1K."""
    if user is not None and user.is_authenticated and user.is_staff:
        return None
    return ("1K",)


def test_access_resolver_narrows_tiers_per_user(db, generate, gptimage_openai, settings, django_user_model):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ACCESS_RESOLVER": "tests.test_service.paid_tiers"}
    free = may_generate(django_user_model.objects.create_user("free"))
    paid = may_generate(django_user_model.objects.create_user("paid", is_staff=True))

    for user in (free, None):
        refused = refused_inputs(generate, user=user, ratio="1:1", tier="2K")
        assert refused.code is ErrorCode.ACCESS_DENIED
        assert refused.as_dict().keys() == {"tier"}
        assert_nothing_happened(gptimage_openai)

    assert generate(user=free, ratio="1:1", tier="1K", quality="low").status == Status.SUCCEEDED
    generation = generate(user=paid, ratio="1:1", tier="2K", quality="low")
    assert generation.status == Status.SUCCEEDED
    assert (generation.width, generation.height) == (2048, 2048)
    assert gptimage_openai.last_request.json["size"] == "2048x2048"
    assert len(gptimage_openai.requests) == 2


def test_a_refusal_mixing_access_and_parameters_is_invalid_parameters(
    db, generate, gptimage_openai, settings
):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_TIERS": ["1K"]}
    refused = refused_inputs(generate, tier="2K", n=0)
    assert refused.code is ErrorCode.INVALID_PARAMETERS
    assert set(refused.as_dict()) == {"tier", "n"}


# -- cancel and retry --------------------------------------------------------------------------------


def test_cancel_a_queued_generation(db, gptimage_openai, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        generation = request_generation(prompt=PROMPT)
    assert generation.status == Status.QUEUED
    assert len(callbacks) == 1

    canceled = cancel_generation(generation)
    assert canceled.status == Status.CANCELED
    assert canceled.phase == Phase.DONE
    assert canceled.error_code == ErrorCode.CANCELED
    assert canceled.error_message == error_info(ErrorCode.CANCELED).message
    assert canceled.cancel_requested
    assert canceled.finished_at is not None

    callbacks[0]()  # the job starts anyway: it must not run
    canceled.refresh_from_db()
    assert canceled.status == Status.CANCELED
    assert canceled.attempts == 0
    assert gptimage_openai.requests == []
    assert not GenerationAttempt.objects.exists()
    with pytest.raises(GenerationNotRetryable):
        retry_generation(canceled)


@pytest.mark.parametrize("kind", ["moderation_blocked", "unauthorized", "insufficient_quota", "not_image"])
def test_retry_refuses_never_retryable_failures(db, generate, one_attempt, kind):
    one_attempt.add_fault(kind)
    generation = generate(quality="low")
    assert generation.status == Status.FAILED
    with pytest.raises(GenerationNotRetryable) as info:
        retry_generation(generation)
    assert str(info.value) == error_info(generation.error_code).message
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert len(one_attempt.requests) == 1


def test_retry_refuses_a_succeeded_generation(db, generate, gptimage_openai):
    generation = generate(quality="low")
    with pytest.raises(GenerationNotRetryable):
        retry_generation(generation)


def test_retry_a_transient_failure(db, generate, one_attempt, django_capture_on_commit_callbacks):
    one_attempt.add_fault("server_error")
    generation = generate(quality="low")
    assert (generation.status, generation.error_code) == (Status.FAILED, ErrorCode.PROVIDER_ERROR)
    with django_capture_on_commit_callbacks(execute=True):
        retry_generation(generation)
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert generation.error_code == ""
    assert generation.attempts == 2
    assert [a.outcome for a in generation.attempt_log.order_by("number")] == ["provider_error", "succeeded"]
    assert len(one_attempt.requests) == 2
    assert generation.images.count() == 1


def test_automatic_retry_after_a_transient_failure(db, generate, gptimage_openai, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 3}
    gptimage_openai.add_fault("overloaded")
    gptimage_openai.add_fault("rate_limited", retry_after=0)
    generation = generate(quality="low")
    assert generation.status == Status.SUCCEEDED
    attempts = list(generation.attempt_log.order_by("number"))
    assert [(a.outcome, a.http_status, a.will_retry) for a in attempts] == [
        ("provider_error", 503, True),
        ("rate_limited", 429, True),
        ("succeeded", None, False),
    ]
    assert generation.attempts == 3
    assert len(gptimage_openai.requests) == 3


# -- provider failures on the record -----------------------------------------------------------------

FAILURES = [
    # fault kind, options, error code, http status on the attempt, detail fragment
    ("rate_limited", {"retry_after": 2}, ErrorCode.RATE_LIMITED, 429, "Rate limit reached"),
    ("insufficient_quota", {}, ErrorCode.QUOTA_EXCEEDED, 429, "exceeded your current quota"),
    ("unauthorized", {}, ErrorCode.AUTH_FAILED, 401, "Incorrect API key"),
    ("forbidden", {}, ErrorCode.AUTH_FAILED, 403, "must be verified"),
    ("moderation_blocked", {}, ErrorCode.MODERATION_BLOCKED, 400, "safety system"),
    ("server_error", {}, ErrorCode.PROVIDER_ERROR, 500, "error while processing"),
    ("overloaded", {}, ErrorCode.PROVIDER_ERROR, 503, "overloaded"),
    ("delay", {"seconds": 2}, ErrorCode.TIMEOUT, None, "timed out"),
    ("drop", {}, ErrorCode.TIMEOUT, None, "connection was closed before an answer"),
    ("truncated", {}, ErrorCode.BAD_RESPONSE, None, "cut off"),
    ("not_json", {}, ErrorCode.BAD_RESPONSE, None, "not JSON"),
    ("not_image", {}, ErrorCode.BAD_RESPONSE, None, "not a readable image"),
    ("wrong_size", {"size": "512x512"}, ErrorCode.BAD_RESPONSE, None, "is 512x512, not 1024x1024"),
]


@pytest.mark.parametrize(("kind", "options", "code", "status", "detail"), FAILURES)
def test_provider_failures_end_on_the_record(
    db, generate, one_attempt, settings, kind, options, code, status, detail
):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "READ_TIMEOUT": 0.5}
    one_attempt.add_fault(kind, **options)
    started = timezone.now()
    generation = generate(quality="low")

    assert generation.status == Status.FAILED
    assert generation.phase == Phase.DONE
    assert generation.error_code == code
    info = error_info(code)
    assert generation.error_message.startswith(info.message)
    assert detail in generation.error_message
    assert generation.editor_message == generation.error_message
    assert generation.attempts == 1
    assert started - timedelta(seconds=1) <= generation.finished_at <= timezone.now()
    assert len(one_attempt.requests) == 1

    (attempt,) = generation.attempt_log.all()
    assert attempt.outcome == code
    assert attempt.http_status == status
    assert attempt.will_retry is False
    assert attempt.error_message == generation.error_message
    assert attempt.maybe_billed is (info.maybe_billed or code is ErrorCode.BAD_RESPONSE)
    if status is not None:
        assert generation.provider_request_id.startswith("req_")
        assert attempt.provider_request_id == generation.provider_request_id
    if kind == "rate_limited":
        assert attempt.retry_after == 2.0
    if kind == "wrong_size":
        # Paid-for images are kept and shown, but the outcome is not what was asked for.
        (image,) = generation.images.all()
        assert (image.width, image.height) == (512, 512)
        assert generation.actual_cost > 0
    else:
        assert not GeneratedImage.objects.filter(generation=generation).exists()


def test_every_failure_code_reads_differently(db, generate, one_attempt, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "READ_TIMEOUT": 0.5}
    messages: dict[str, str] = {}
    for kind in (
        "rate_limited",
        "insufficient_quota",
        "unauthorized",
        "moderation_blocked",
        "server_error",
        "not_json",
    ):
        one_attempt.add_fault(kind, **({"retry_after": 0} if kind == "rate_limited" else {}))
        generation = generate(quality="low")
        assert generation.status == Status.FAILED
        messages[generation.error_code] = error_info(generation.error_code).message
    assert set(messages) == {
        "rate_limited", "quota_exceeded", "auth_failed", "moderation_blocked", "provider_error", "bad_response"
    }  # fmt: skip
    assert len(set(messages.values())) == len(messages)
