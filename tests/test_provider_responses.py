"""Classes of provider answer that must end in a defined outcome, served by the loopback server."""

from __future__ import annotations

import email.utils
import io
import json
import logging
import os
import socket
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.core.management import call_command

from django_gptimage.domain.errors import ErrorCode
from django_gptimage.models import GenerationAttempt, Status
from django_gptimage.providers.base import ProviderError, ProviderRequest
from django_gptimage.providers.openai import OpenAIProvider, parse_retry_after, retry_after, scrub_secrets
from django_gptimage.testing.faults import Fault

KEY = "sk-test-responses-0123"


def text_request(**overrides: Any) -> ProviderRequest:
    fields = {
        "model": "gpt-image-2",
        "prompt": "A lighthouse",
        "mode": "text-to-image",
        "size": "1024x1024",
        "quality": "low",
    }
    return ProviderRequest(**{**fields, **overrides})


@pytest.fixture
def server(fake_openai: Any) -> Any:
    fake_openai.api_key = KEY
    return fake_openai


@pytest.fixture
def provider(server: Any) -> Any:
    p = OpenAIProvider(api_key=KEY, base_url=server.base_url)
    yield p
    p.close()


@pytest.fixture
def spool(tmp_path: Any) -> str:
    path = tmp_path / "spool"
    path.mkdir()
    return str(path)


# Retry-After ---------------------------------------------------------------------------------------


def test_retry_after_both_http_forms() -> None:
    now = datetime(2026, 12, 2, 3, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 02 Dec 2026 03:00:30 GMT", now=now) == 30.0  # IMF-fixdate
    assert parse_retry_after("Wednesday, 02-Dec-26 03:01:00 GMT", now=now) == 60.0  # RFC 850
    assert parse_retry_after("Wed Dec  2 03:00:05 2026", now=now) == 5.0  # asctime
    assert parse_retry_after("Wed, 02 Dec 2026 02:00:00 GMT", now=now) == 0.0  # past: now
    assert parse_retry_after("-5") == 0.0
    for junk in ("soon", "", "inf", "nan", "Wed, 99 Foo 2026"):
        assert parse_retry_after(junk) is None, junk


def test_retry_after_date_header_on_a_response() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    wait = retry_after(httpx.Response(429, headers={"retry-after": when}))
    assert wait is not None and 85 <= wait <= 90


def test_fake_server_sends_a_date_and_the_provider_reads_it(provider: Any, server: Any, spool: str) -> None:
    server.add_fault("rate_limited", retry_after=40, retry_after_form="date")
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(), spool_dir=spool)
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.retry_after is not None and 37 <= info.value.retry_after <= 41


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("form", ["seconds", "date"])
def test_the_recorded_attempt_shows_the_wait(settings: Any, gptimage_openai: Any, form: str) -> None:
    from django_gptimage.service import request_generation

    settings.GPTIMAGE = {**settings.GPTIMAGE, "RETRY_BACKOFF_MAX": 1.0, "MAX_ATTEMPTS": 2}
    gptimage_openai.add_fault("rate_limited", retry_after=30, retry_after_form=form)
    from django_gptimage.jobs.runner import run_generation

    generation = _queued(request_generation)
    run_generation(generation.pk)
    generation.refresh_from_db()
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert attempt.outcome == "rate_limited" and attempt.will_retry
    assert attempt.retry_after is not None and 27 <= attempt.retry_after <= 31
    assert "Next attempt in" in attempt.error_message
    assert generation.status == Status.QUEUED and generation.next_attempt_at is not None
    wait = (generation.next_attempt_at - attempt.finished_at).total_seconds()
    assert wait >= 27  # never sooner than the service asked


def _queued(request_generation: Any) -> Any:
    """A record without running it (as if a worker were about to take it)."""
    from unittest import mock

    with mock.patch("django_gptimage.service.dispatch"):
        return request_generation(prompt="Busy")


# Compressed bodies --------------------------------------------------------------------------------


def test_a_gzip_body_is_decoded_as_it_streams(provider: Any, server: Any, spool: str) -> None:
    server.add_fault("gzip")
    result = provider.generate(text_request(), spool_dir=spool)
    assert len(result.files) == 1 and result.files[0].size_bytes > 0


def test_a_lying_content_encoding_is_a_bad_response(provider: Any, server: Any, spool: str) -> None:
    server.add_fault("false_gzip")
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(), spool_dir=spool)
    assert info.value.code is ErrorCode.BAD_RESPONSE
    assert "Content-Encoding 'gzip'" in str(info.value)
    assert os.listdir(spool) == []  # nothing half-decoded left behind


# Extra images and bulky fields ---------------------------------------------------------------------


def test_extra_images_are_kept_not_dropped(provider: Any, server: Any, spool: str) -> None:
    server.add_fault("extra_images", count=2)
    result = provider.generate(text_request(n=1), spool_dir=spool)
    assert len(result.files) == 3
    assert result.extra["extra_images"] == 2
    assert all(os.path.getsize(f.path) == f.size_bytes > 0 for f in result.files)


def test_a_bulky_non_image_field_over_http(provider: Any, server: Any, spool: str, caplog: Any) -> None:
    bulk = 8 * 1024 * 1024
    server.add_fault("bulky_field", count=bulk, field="revised_prompt")
    caplog.set_level(logging.WARNING, logger="django_gptimage")
    result = provider.generate(text_request(), spool_dir=spool)
    assert len(result.files) == 1  # the paid image is kept
    assert result.extra["ignored_bytes"] >= bulk
    assert "were not kept" in caplog.text


@pytest.mark.parametrize("field", ["revised_prompt", "unknown_debug_dump", "usage"])
def test_reader_memory_is_bounded_whatever_field_carries_bulk(tmp_path: Any, field: str) -> None:
    """The parser alone (the loopback server would build the body in this process too)."""
    import base64

    from django_gptimage.providers._b64stream import MAX_SKELETON, JSONImageReader

    image = base64.b64encode(b"\x89PNG" + b"\0" * 1000)
    bulk, chunk = 48 * 1024 * 1024, b"x" * (256 * 1024)
    reader = JSONImageReader(lambda i: str(tmp_path / f"r-{i}.bin"))
    tracemalloc.start()
    try:
        reader.feed(b'{"data":[{"b64_json":"' + image + b'"}],"' + field.encode() + b'":"')
        for _ in range(bulk // len(chunk)):
            reader.feed(chunk)
        reader.feed(b'"}')
        document = reader.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_SKELETON + 2 * len(chunk) + 512 * 1024, (
        f"peak {peak:,} bytes for {bulk:,} bytes of {field}"
    )
    assert reader.ignored_bytes >= bulk
    assert [item["b64_json"] for item in document["data"]] == ["__gptimage_file_0__"]
    assert reader.files[0].size_bytes == 1004


@pytest.mark.parametrize("field", ["unknown_debug_dump", "b64_jsonx"])
def test_bulk_in_any_field_name(provider: Any, server: Any, spool: str, field: str) -> None:
    server.add_fault("bulky_field", count=3 * 1024 * 1024, field=field)
    result = provider.generate(text_request(), spool_dir=spool)
    assert len(result.files) == 1 and result.extra["ignored_bytes"] > 0


# The same faults, streamed (PARTIAL_IMAGES: an event stream instead of one JSON document) ------------


def test_streamed_extra_images_are_kept_not_dropped(provider: Any, server: Any, spool: str) -> None:
    server.add_fault("extra_images", count=2)
    result = provider.generate(text_request(n=1, partial_images=1), spool_dir=spool)
    assert len(result.files) == 3 and result.extra["extra_images"] == 2
    assert len({f.path for f in result.files}) == 3
    assert all(os.path.getsize(f.path) == f.size_bytes > 0 for f in result.files)


def test_a_streamed_bulky_field_before_the_type_keeps_the_paid_image(
    provider: Any, server: Any, spool: str, caplog: Any
) -> None:
    bulk = 3 * 1024 * 1024
    server.add_fault("bulky_field", count=bulk, field="unknown_debug_dump")
    caplog.set_level(logging.WARNING, logger="django_gptimage")
    result = provider.generate(text_request(partial_images=1), spool_dir=spool)
    assert len(result.files) == 1 and result.files[0].size_bytes > 0
    assert result.extra["ignored_bytes"] >= bulk
    assert "streamed response" in caplog.text and "were not kept" in caplog.text
    # The partial preview was handed over, then its spool file removed: only the result is left.
    assert os.listdir(spool) == [os.path.basename(result.files[0].path)]


def _stream_event(event: str, body: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


@pytest.mark.parametrize("where", ["field_before_type", "no_colon_line", "event_name", "comment"])
def test_sse_reader_memory_is_bounded_whatever_carries_bulk(tmp_path: Any, where: str) -> None:
    """The stream parser alone, fed 48 MB of bulk in 256 KiB chunks: in a non-image field placed
    before the event's type, in an overlong line that is no field, in the ``event:`` value, in a
    comment. Memory stays near one chunk plus ``MAX_SKELETON``; the paid image is kept."""
    import base64

    from django_gptimage.providers._b64stream import MAX_SKELETON
    from django_gptimage.providers._sse import MAX_EVENT_NAME, SSEImageReader

    image = base64.b64encode(b"\x89PNG" + b"\0" * 1000)
    bulk, chunk = 48 * 1024 * 1024, b"x" * (256 * 1024)
    events: list[tuple[dict[str, Any], list[Any]]] = []
    reader = SSEImageReader(lambda i: str(tmp_path / f"s-{i}.bin"), lambda e, d: events.append((e, d)))
    heads = {
        "field_before_type": b'event: image_generation.completed\ndata: {"dump":"',
        "no_colon_line": b"",
        "event_name": b"event: image_generation.completed",
        "comment": b": ",
    }
    tails = {
        "field_before_type": b'","type":"image_generation.completed","b64_json":"' + image + b'"}\n\n',
        "no_colon_line": b"\n"
        + _stream_event("image_generation.completed", b'{"b64_json":"' + image + b'"}'),
        "event_name": b'\ndata: {"type":"image_generation.completed","b64_json":"' + image + b'"}\n\n',
        "comment": b"\n" + _stream_event("image_generation.completed", b'{"b64_json":"' + image + b'"}'),
    }
    tracemalloc.start()
    try:
        reader.feed(heads[where])
        for _ in range(bulk // len(chunk)):
            reader.feed(chunk)
        reader.feed(tails[where])
        reader.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_SKELETON + 2 * len(chunk) + 512 * 1024, (
        f"peak {peak:,} bytes for {bulk:,} bytes ({where})"
    )
    [(event, decoded)] = events
    assert event["type"] == "image_generation.completed"
    assert [d.size_bytes for d in decoded] == [1004]
    assert reader.ignored_bytes >= bulk - MAX_EVENT_NAME  # an event name keeps its first bytes


def test_sse_events_with_many_images_never_share_a_file(tmp_path: Any) -> None:
    """Files are numbered across events: an event with more images than any real one (20)
    must not overwrite the next event's files."""
    import base64

    from django_gptimage.providers._sse import SSEImageReader

    def b64(i: int) -> str:
        return base64.b64encode(bytes([i]) * 10).decode()

    events: list[list[Any]] = []
    reader = SSEImageReader(lambda i: str(tmp_path / f"s-{i}.bin"), lambda e, d: events.append(d))
    many = ",".join(f'"img{i}":{{"b64_json":"{b64(i)}"}}' for i in range(20))
    reader.feed(_stream_event("x.completed", ("{" + many + "}").encode()))
    reader.feed(_stream_event("x.completed", f'{{"b64_json":"{b64(99)}"}}'.encode()))
    reader.close()
    first, second = events
    assert len(first) == 20 and len(second) == 1
    paths = [d.path for d in first + second]
    assert len(set(paths)) == 21
    for i, d in enumerate(first):
        with open(d.path, "rb") as handle:
            assert handle.read() == bytes([i]) * 10


# Connections that cannot be made --------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_service_says_so(spool: str) -> None:
    port = _closed_port()
    p = OpenAIProvider(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=2)
    try:
        with pytest.raises(ProviderError) as info:
            p.generate(text_request(), spool_dir=spool)
    finally:
        p.close()
    text = str(info.value)
    assert text.startswith(f"Could not reach the image service at 127.0.0.1:{port}.")
    assert "overloaded" not in text and "refused" in text
    assert info.value.code is ErrorCode.PROVIDER_ERROR  # transient: retried with backoff


@pytest.mark.django_db(transaction=True)
def test_unreachable_service_on_the_record(settings: Any) -> None:
    from django_gptimage.providers import reset_providers
    from django_gptimage.service import request_generation

    port = _closed_port()
    settings.GPTIMAGE = {
        **settings.GPTIMAGE, "PROVIDER": "openai", "API_KEY": KEY,
        "BASE_URL": f"http://127.0.0.1:{port}/v1", "MAX_ATTEMPTS": 1,
    }  # fmt: skip
    reset_providers()
    try:
        generation = request_generation(prompt="Nobody home")
    finally:
        reset_providers()
    assert generation.status == Status.FAILED
    assert generation.editor_message.startswith(f"Could not reach the image service at 127.0.0.1:{port}.")
    assert "overloaded" not in generation.editor_message


# Secrets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [
        KEY,
        KEY[:20],  # cut short
        KEY[-12:],  # only its tail
        "sk-proj-****cdef",  # masked the way OpenAI does
        "x" * 495 + KEY,  # where shortening to 500 characters would cut it
    ],
)
def test_secrets_are_scrubbed_before_shortening(provider: Any, server: Any, spool: str, echo: str) -> None:
    server.add_fault("unauthorized", message=f"Incorrect API key provided: {echo}. See the docs.")
    with pytest.raises(ProviderError) as info:
        provider.generate(text_request(), spool_dir=spool)
    text = str(info.value) + repr(info.value) + (info.value.detail or "")
    for size in (8, 12):
        for start in range(len(KEY) - size + 1):
            assert KEY[start : start + size] not in text, (KEY[start : start + size], text)
    assert len(info.value.detail) <= 500


def test_scrub_secrets_function() -> None:
    assert scrub_secrets(f"a {KEY} b", KEY) == "a sk-*** b"
    assert KEY[4:16] not in scrub_secrets(f"echo {KEY[4:16]}!", KEY)
    assert scrub_secrets("no key here", KEY) == "no key here"
    assert scrub_secrets("sk-abcd1234efgh", None) == "sk-***"


@pytest.mark.django_db(transaction=True)
def test_no_key_fragment_on_the_record_or_the_cli_json(
    settings: Any, gptimage_openai: Any, caplog: Any
) -> None:
    key = gptimage_openai.api_key
    gptimage_openai.add_fault("unauthorized", message="y" * 490 + f" key {key} rejected")
    caplog.set_level(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command("gptimage_generate", "--prompt", "Leak?", "--sync", "--json", stdout=out, stderr=err)
    record = json.loads(out.getvalue())
    from django_gptimage.models import ImageGeneration

    generation = ImageGeneration.objects.get(pk=record["id"])
    attempts = list(GenerationAttempt.objects.filter(generation=generation))
    # The stored facts themselves (raw JSON), and the messages rendered from them.
    stored = [json.dumps(generation.error_detail), *(json.dumps(a.error_detail) for a in attempts)]
    rendered = [generation.error_message, *(a.error_message for a in attempts)]
    assert "rejected" in generation.error_message  # the service's words are kept, the key is not
    everywhere = " ".join([out.getvalue(), err.getvalue(), caplog.text, *stored, *rendered])
    for start in range(len(key) - 7):
        assert key[start : start + 8] not in everywhere


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="retry_after_form"):
        Fault("rate_limited", retry_after_form="minutes")
