"""The API key never leaves the HTTP client's headers: not in reprs, errors, logs, records or CLI output."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import secrets
import traceback

import pytest
from django.core import serializers
from django.core.management import call_command
from django.forms.models import model_to_dict

from django_gptimage.models import GeneratedImage, GenerationAttempt, GenerationInput, ImageGeneration
from django_gptimage.providers import get_provider, reset_providers
from django_gptimage.providers.base import ProviderError, ProviderRequest
from django_gptimage.providers.openai import OpenAIProvider
from django_gptimage.service import request_generation
from django_gptimage.testing import FAULT_KINDS
from django_gptimage.testing.faults import USABLE_KINDS

LOGGERS = ("django_gptimage", "httpx", "httpcore")


@pytest.fixture
def api_key() -> str:
    # Made at run time: no key-like string is committed.
    return "sk-test-" + secrets.token_hex(16)


@pytest.fixture
def server(fake_openai, api_key):
    fake_openai.api_key = api_key
    return fake_openai


@pytest.fixture
def configured(settings, server, api_key, monkeypatch):
    """settings.GPTIMAGE pointing at the fake server with our key; one attempt per generation."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "PROVIDER": "openai",
        "API_KEY": api_key,
        "BASE_URL": server.base_url,
        "MAX_ATTEMPTS": 1,
        "READ_TIMEOUT": 0.5,
    }
    reset_providers()
    yield server
    reset_providers()


@pytest.fixture
def logs(caplog):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def assert_clean(text: str, key: str) -> None:
    assert key not in text
    assert key[len("sk-test-") :] not in text  # not even the secret part alone


def assert_logs_clean(caplog, key: str) -> None:
    for record in caplog.records:
        text = " ".join(
            [
                record.getMessage(),
                repr(record.args),
                record.exc_text or "",
                "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else "",
            ]
        )
        assert_clean(text, key)


def request(**overrides) -> ProviderRequest:
    fields = {
        "model": "gpt-image-2",
        "prompt": "A quiet harbour",
        "mode": "text-to-image",
        "size": "1024x1024",
    }
    return ProviderRequest(**{**fields, "quality": "low", **overrides})


def test_provider_repr_and_str(server, api_key):
    provider = OpenAIProvider(
        api_key=api_key, base_url=server.base_url, organization="org-x", project="proj-y"
    )
    try:
        for text in (repr(provider), str(provider), repr(vars(provider)), repr(provider.options)):
            assert_clean(text, api_key)
        # The key really is configured: it is sent (the server checks it).
        assert provider._client.headers["authorization"] == f"Bearer {api_key}"
    finally:
        provider.close()


def test_provider_from_settings_repr_and_fingerprint(configured, api_key):
    provider = get_provider()
    assert isinstance(provider, OpenAIProvider)
    assert_clean(repr(provider), api_key)
    assert_clean(str(provider), api_key)
    assert_clean(repr(OpenAIProvider.settings_fingerprint()), api_key)


def fault_options(kind: str) -> dict:
    return {"rate_limited": {"retry_after": 0}, "delay": {"seconds": 2}}.get(kind, {})


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_provider_errors_never_carry_the_key(server, api_key, tmp_path, logs, kind):
    server.add_fault(kind, **fault_options(kind))
    provider = OpenAIProvider(api_key=api_key, base_url=server.base_url, read_timeout=0.5)
    streaming = kind in ("stream_error", "stream_cut")
    try:
        try:
            provider.generate(request(partial_images=2 if streaming else 0), spool_dir=str(tmp_path))
        except ProviderError as error:
            for text in (
                str(error),
                repr(error),
                error.message,
                error.detail,
                repr(vars(error)),
                "".join(traceback.format_exception(error)),
            ):
                assert_clean(text, api_key)
        else:
            assert kind in ("not_image", "wrong_size", *USABLE_KINDS)  # rejected later, or usable
    finally:
        provider.close()
    assert len(server.requests) == 1
    assert_logs_clean(logs, api_key)


def test_a_wrong_key_is_not_echoed(server, tmp_path, logs):
    wrong = "sk-test-" + secrets.token_hex(16)
    provider = OpenAIProvider(api_key=wrong, base_url=server.base_url)
    try:
        with pytest.raises(ProviderError) as info:
            provider.generate(request(), spool_dir=str(tmp_path))
    finally:
        provider.close()
    assert info.value.status == 401
    assert_clean(str(info.value) + repr(info.value), wrong)
    assert_logs_clean(logs, wrong)


def test_a_key_echoed_by_the_server_is_redacted(server, api_key, tmp_path):
    server.add_fault("unauthorized", message=f"Incorrect API key provided: {api_key}.")
    provider = OpenAIProvider(api_key=api_key, base_url=server.base_url)
    try:
        with pytest.raises(ProviderError) as info:
            provider.generate(request(), spool_dir=str(tmp_path))
    finally:
        provider.close()
    assert_clean(str(info.value), api_key)


def dump_rows() -> str:
    parts = []
    for model in (ImageGeneration, GenerationAttempt, GenerationInput, GeneratedImage):
        rows = list(model.objects.all())
        parts.append(serializers.serialize("json", rows))
        parts.extend(repr(model_to_dict(row)) for row in rows)
        parts.extend(str(row) for row in rows)
    return "\n".join(parts)


def test_records_never_store_the_key(
    db, configured, api_key, logs, django_capture_on_commit_callbacks, tmp_path
):
    from PIL import Image

    source = tmp_path / "in.png"
    Image.new("RGB", (256, 256), (1, 2, 3)).save(source)
    kinds = [None, *(k for k in FAULT_KINDS if k not in ("stream_error", "stream_cut", *USABLE_KINDS))]
    for kind in kinds:
        if kind:
            configured.add_fault(kind, **fault_options(kind))
        with django_capture_on_commit_callbacks(execute=True):
            request_generation(prompt=f"case {kind}", quality="low", metadata={"case": kind})
    with django_capture_on_commit_callbacks(execute=True):
        request_generation(prompt="an edit", quality="low", images=[str(source)])
    statuses = {g.metadata["case"]: g.status for g in ImageGeneration.objects.exclude(prompt="an edit")}
    assert statuses[None] == "succeeded"
    assert all(statuses[k] == "failed" for k in kinds if k)
    assert GenerationAttempt.objects.count() == len(kinds) + 1
    assert len(configured.requests) == len(kinds) + 1
    assert_clean(dump_rows(), api_key)
    assert any(r.name.startswith("httpx") for r in logs.records)  # the capture really sees httpx
    assert any(r.name.startswith("httpcore") and r.levelno == logging.DEBUG for r in logs.records)
    assert_logs_clean(logs, api_key)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("fault", "exit_code"), [(None, None), ("unauthorized", 1), ("server_error", 1)])
def test_cli_json_output(configured, api_key, logs, fault, exit_code):
    if fault:
        configured.add_fault(fault)
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("gptimage_generate", "--prompt", "A quiet harbour", "--quality", "low", "--sync", "--json",
                     stdout=out, stderr=err)  # fmt: skip
        code = None
    except SystemExit as exc:
        code = exc.code
    assert code == exit_code
    assert_clean(out.getvalue() + err.getvalue(), api_key)
    summary = json.loads(out.getvalue())
    assert summary["status"] == ("succeeded" if fault is None else "failed")
    assert_clean(dump_rows(), api_key)
    assert_logs_clean(logs, api_key)


@pytest.mark.django_db(transaction=True)
def test_cli_json_output_when_refused(configured, api_key):
    out = io.StringIO()
    with pytest.raises(SystemExit) as info:
        call_command("gptimage_generate", "--prompt", "x", "--tier", "9K", "--json", "--sync", stdout=out)
    assert info.value.code == 2
    assert_clean(out.getvalue(), api_key)
    assert json.loads(out.getvalue())["status"] == "refused"
    assert configured.requests == []


def test_the_key_is_only_in_the_authorization_header(server, api_key, tmp_path):
    provider = OpenAIProvider(api_key=api_key, base_url=server.base_url)
    try:
        provider.generate(request(user="django-user-1"), spool_dir=str(tmp_path))
    finally:
        provider.close()
    recorded = server.last_request
    assert recorded.headers["authorization"] == "Bearer ***"
    assert_clean(json.dumps(recorded.body), api_key)
    assert_clean(recorded.query, api_key)
    assert_clean(repr({k: v for k, v in recorded.headers.items() if k != "authorization"}), api_key)
    assert_clean(repr(dataclasses.asdict(recorded)), api_key)
