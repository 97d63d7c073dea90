"""Checks E013 (path templates), W006 (job timeout vs read timeout), W007 (implicit offline)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_gptimage import checks
from django_gptimage.checks import check_settings
from django_gptimage.models import GenerationAttempt, ImageGeneration, Status
from django_gptimage.upload_paths import (
    INPUT_PLACEHOLDERS,
    RESULT_PLACEHOLDERS,
    ensure_templates,
    template_problem,
)

CLEAN = {"PROVIDER": "offline", "SPOOL_DIR": "/var/lib/gptimage-test-spool-not-created"}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(checks, "_pillow_supports", lambda fmt: True)


def run(debug: bool = False, **gptimage: Any) -> list[Any]:
    with override_settings(GPTIMAGE={**CLEAN, **gptimage}, DEBUG=debug):
        return check_settings()


def only(messages: list[Any], check_id: str) -> Any:
    found = [m for m in messages if m.id == check_id]
    assert len(found) == 1, messages
    assert found[0].hint
    return found[0]


# E013 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "template", "snippet"),
    [
        ("UPLOAD_TO", "covers/{uuid}.{ext}", "unknown placeholder {uuid}"),
        ("UPLOAD_TO", "covers/{role}-{index}.{ext}", "unknown placeholder {role}"),  # inputs only
        ("INPUT_UPLOAD_TO", "in/{id}/{hash}.{ext}", "unknown placeholder {hash}"),  # results only
        ("UPLOAD_TO", "covers/{}.{ext}", "positional placeholder"),
        ("UPLOAD_TO", "covers/{id.nope}.{ext}", "cannot be formatted"),
        ("UPLOAD_TO", "covers/{index:%Y}.{ext}", "cannot be formatted"),
        ("UPLOAD_TO", "covers/{id.{ext}", "cannot be formatted"),
        ("UPLOAD_TO", "/srv/media/{id}.{ext}", "absolute path"),
        ("INPUT_UPLOAD_TO", "C:\\media\\{id}.{ext}", "absolute path"),
        ("UPLOAD_TO", "covers/../../etc/{id}.{ext}", "'..'"),
        ("UPLOAD_TO", "covers/{date:%Y/../%m}/{id}.{ext}", "'..'"),
        ("UPLOAD_TO", "covers/{id}/", "directory"),
        ("UPLOAD_TO", "", "empty path"),
    ],
)
def test_e012_bad_templates(key: str, template: str, snippet: str) -> None:
    message = only(run(**{key: template}), "django_gptimage.E013")
    assert key in message.msg and snippet in message.msg


def test_e012_good_templates_pass() -> None:
    assert run(UPLOAD_TO="covers/{date:%Y/%m}/{model}/{app_label}-{model_name}-{id}-{index}.{ext}") == []
    assert run(INPUT_UPLOAD_TO="in/{ratio_slug}/{tier}/{role}-{index}.{ext}") == []


def test_e012_each_template_separately() -> None:
    messages = [
        m for m in run(UPLOAD_TO="/a/{id}", INPUT_UPLOAD_TO="{nope}") if m.id == "django_gptimage.E013"
    ]
    assert len(messages) == 2


def test_placeholders_are_what_storage_fills() -> None:
    from django_gptimage import storage

    generation = ImageGeneration(ratio="16:9", tier="2K", model="gpt-image-2")
    result = storage._context(generation, index=0, hash="ab", ext="png")
    assert set(result) == set(RESULT_PLACEHOLDERS)
    inp = storage._context(generation, role="image", index=0, ext="png")
    assert set(inp) == set(INPUT_PLACEHOLDERS)


def test_ensure_templates_raises(settings: Any) -> None:
    settings.GPTIMAGE = {**CLEAN, "UPLOAD_TO": "{nope}.png"}
    with pytest.raises(ImproperlyConfigured, match="E013"):
        ensure_templates()
    assert template_problem(5, kind="result") == "must be a string, not int"


@pytest.mark.django_db(transaction=True)
def test_bad_input_template_refuses_before_a_record(settings: Any, tmp_path: Any) -> None:
    from PIL import Image

    from django_gptimage.service import request_generation

    settings.GPTIMAGE = {**settings.GPTIMAGE, "INPUT_UPLOAD_TO": "/abs/{id}.{ext}"}
    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64), "teal").save(source)
    with pytest.raises(ImproperlyConfigured, match="absolute path"):
        request_generation(prompt="Edit", images=[source], ratio="1:1")
    assert ImageGeneration.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_bad_result_template_fails_a_queued_record_before_paying(
    settings: Any, gptimage_openai: Any, queue_mode: Any
) -> None:
    """A record queued before the template broke (a deploy) is not sent: nothing could store it."""
    from django_gptimage.jobs.runner import run_generation
    from django_gptimage.service import request_generation

    generation = request_generation(prompt="Never paid")
    settings.GPTIMAGE = {**settings.GPTIMAGE, "UPLOAD_TO": "covers/{slug}.{ext}"}
    run_generation(generation.pk)
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "configuration_error"
    assert "{slug}" in generation.error_message
    [attempt] = GenerationAttempt.objects.filter(generation=generation)
    assert not attempt.maybe_billed
    assert gptimage_openai.requests == []


# W006 -------------------------------------------------------------------------------------------


def test_w006_job_timeout_not_longer_than_read_timeout() -> None:
    message = only(run(RUN_MODE="queue", JOB_TIMEOUT=600, READ_TIMEOUT=600.0), "django_gptimage.W006")
    assert "600" in message.msg and "READ_TIMEOUT" in message.hint


def test_w006_read_timeout_from_provider_options() -> None:
    provider = {"BACKEND": "openai", "OPTIONS": {"read_timeout": 1200.0}}
    messages = run(RUN_MODE="queue", JOB_TIMEOUT=900, PROVIDER=provider, API_KEY="sk-test")
    assert "1200.0 s" in only(messages, "django_gptimage.W006").msg


def test_w006_not_in_sync_mode_nor_with_a_long_job_timeout() -> None:
    assert "django_gptimage.W006" not in [m.id for m in run(RUN_MODE="sync", JOB_TIMEOUT=60)]
    assert "django_gptimage.W006" not in [m.id for m in run(RUN_MODE="queue", JOB_TIMEOUT=900)]


# W007 -------------------------------------------------------------------------------------------


def test_w007_implicit_offline_without_debug() -> None:
    with override_settings(GPTIMAGE={"SPOOL_DIR": CLEAN["SPOOL_DIR"]}, DEBUG=False):
        message = only(check_settings(), "django_gptimage.W007")
    assert "placeholder" in message.msg and "OPENAI_API_KEY" in message.hint


def test_w007_silent_when_chosen_keyed_or_debug(monkeypatch: Any) -> None:
    spool = {"SPOOL_DIR": CLEAN["SPOOL_DIR"]}
    with override_settings(GPTIMAGE={**spool, "PROVIDER": "offline"}, DEBUG=False):
        assert check_settings() == []
    with override_settings(GPTIMAGE={**spool, "PROVIDER": {"BACKEND": "offline"}}, DEBUG=False):
        assert check_settings() == []
    with override_settings(GPTIMAGE=spool, DEBUG=True):
        assert check_settings() == []
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with override_settings(GPTIMAGE=spool, DEBUG=False):
        assert "django_gptimage.W007" not in [m.id for m in check_settings()]
