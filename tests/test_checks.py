from __future__ import annotations

import os
import re
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.test import override_settings

from django_gptimage import checks
from django_gptimage.checks import check_settings
from django_gptimage.conf import DEFAULTS

# A spool directory outside the temp dir, so W002 stays quiet unless a test wants it. Not in
# the checkout: a clone under /tmp (as CI may make) would put it inside the temp dir.
PERSISTENT_SPOOL = "/var/lib/gptimage-test-spool-not-created"
CLEAN = {"PROVIDER": "offline", "SPOOL_DIR": PERSISTENT_SPOOL}


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(checks, "_pillow_supports", lambda fmt: True)


def run(**gptimage) -> list:
    with override_settings(GPTIMAGE={**CLEAN, **gptimage}):
        return check_settings()


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def only(messages, check_id: str):
    found = [m for m in messages if m.id == check_id]
    assert len(found) == 1, messages
    message = found[0]
    assert message.hint, f"{check_id} has no hint"
    return message


def test_clean_settings_pass():
    assert run() == []


def test_no_gptimage_setting_at_all_is_fine():
    with override_settings(GPTIMAGE=None, DEBUG=True):
        assert check_settings() == []


# E001 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "provider",
    ["dalle", "myproject.images.NoSuchProvider", "django_gptimage.conf.Settings", "os.path.join"],
)
def test_e001_unknown_provider(provider):
    message = only(run(PROVIDER=provider), "django_gptimage.E001")
    assert isinstance(message, Error)
    assert provider in message.msg
    assert "openai" in message.hint and "offline" in message.hint


@pytest.mark.parametrize(
    "provider", ["offline", "openai", "django_gptimage.providers.offline.OfflineProvider"]
)
def test_e001_known_providers(provider):
    assert "django_gptimage.E001" not in ids(run(PROVIDER=provider, API_KEY="sk-test"))


# E002 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["dall-e-3", "gpt-image-3", "", None])
def test_e002_unknown_default_model(model):
    message = only(run(MODEL=model), "django_gptimage.E002")
    assert isinstance(message, Error)
    assert "gpt-image-2" in message.hint


@pytest.mark.parametrize("model", ["gpt-image-2-2026-04-21", "gpt-image-2.5", "gpt-image-1-mini"])
def test_e002_known_models(model):
    assert run(MODEL=model) == []


# E003 -----------------------------------------------------------------------------------------


def test_e003_openai_without_key():
    message = only(run(PROVIDER="openai"), "django_gptimage.E003")
    assert isinstance(message, Error)
    assert "OPENAI_API_KEY" in message.hint


def test_e003_openai_by_dotted_path_without_key():
    messages = run(PROVIDER="django_gptimage.providers.openai.OpenAIProvider")
    assert ids(messages) == ["django_gptimage.E003"]


def test_e003_key_from_setting_or_env(monkeypatch):
    assert run(PROVIDER="openai", API_KEY="sk-setting") == []
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert run(PROVIDER="openai") == []


def test_no_message_ever_contains_the_key(monkeypatch):
    secret = "sk-SECRET-unprinted"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    messages = run(
        PROVIDER="openai",
        API_KEY=secret,
        BASE_URL=f"https://user:{secret}@gateway.example.com/openai",
        MODEL="nope",
        APIKEY=secret,
    )
    assert {"django_gptimage.W001", "django_gptimage.E002", "django_gptimage.E008"} <= set(ids(messages))
    for message in messages:
        assert secret not in str(message)
        assert secret not in (message.hint or "")


# E004 -----------------------------------------------------------------------------------------


def test_e004_storage_alias_missing():
    message = only(run(STORAGE="s3-images"), "django_gptimage.E004")
    assert isinstance(message, Error)
    assert "'s3-images'" in message.msg
    assert "default" in message.hint


def test_e004_storage_alias_present():
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "images": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        assert run(STORAGE="images") == []
        assert run(STORAGE="images", STAGING_STORAGE="default") == []


def test_e004_staging_storage_alias_missing():
    message = only(run(STAGING_STORAGE="shared-staging"), "django_gptimage.E004")
    assert "STAGING_STORAGE" in message.msg and "'shared-staging'" in message.msg


# E005 -----------------------------------------------------------------------------------------


def test_e005_queue_missing():
    message = only(run(QUEUE="images"), "django_gptimage.E005")
    assert isinstance(message, Error)
    assert "RQ_QUEUES" in message.msg
    assert "sync" in message.hint


def test_e005_no_rq_queues_setting(settings):
    del settings.RQ_QUEUES
    assert ids(run()) == ["django_gptimage.E005"]


def test_e005_only_in_queue_mode():
    assert run(QUEUE="images", RUN_MODE="sync") == []


# E006 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "snippet"),
    [
        ({"ALLOWED_MODELS": ["dall-e-3"]}, "allows no model"),
        ({"ALLOWED_MODELS": ["gpt-image-1"]}, "not in GPTIMAGE['ALLOWED_MODELS']"),
        ({"ALLOWED_RATIOS": []}, "ALLOWED_RATIOS"),
        ({"ALLOWED_TIERS": ()}, "ALLOWED_TIERS"),
        ({"ALLOWED_QUALITIES": []}, "ALLOWED_QUALITIES"),
        ({"ALLOWED_FORMATS": []}, "ALLOWED_FORMATS"),
        ({"ALLOWED_MODES": []}, "ALLOWED_MODES"),
        ({"MAX_N": 0}, "MAX_N"),
        ({"MAX_N": "4"}, "whole number"),
        ({"ALLOWED_TIERS": "4K"}, "list"),
    ],
)
def test_e006_policy_allows_nothing(policy, snippet):
    messages = run(**policy)
    assert set(ids(messages)) == {"django_gptimage.E006"}, messages
    assert any(snippet in m.msg for m in messages), messages
    assert all(m.hint for m in messages)


def test_e006_policy_values_no_model_knows():
    messages = run(ALLOWED_TIERS=["1K", "4k"], ALLOWED_FORMATS=["png", "jpg"])
    assert ids(messages) == ["django_gptimage.E006", "django_gptimage.E006"]
    text = " ".join(m.msg for m in messages)
    assert "'4k'" in text and "'jpg'" in text
    assert "4K" in messages[0].hint


def test_e006_unknown_models_among_known_ones():
    message = only(run(ALLOWED_MODELS=["gpt-image-2", "dalle"]), "django_gptimage.E006")
    assert "'dalle'" in message.msg


def test_e006_non_string_models():
    message = only(run(ALLOWED_MODELS=["gpt-image-2", 2]), "django_gptimage.E006")
    assert "2" in message.msg


def test_e006_all_unknown_values_leave_nothing():
    messages = run(ALLOWED_QUALITIES=["ultra"])
    assert ids(messages) == ["django_gptimage.E006", "django_gptimage.E006"]  # unknown + empty


@pytest.mark.parametrize(
    "policy",
    [
        {"ALLOWED_RATIOS": ["1:1"], "ALLOWED_TIERS": ["4K"], "DEFAULT_RATIO": "1:1", "DEFAULT_TIER": "4K"},
        {"MODEL": "gpt-image-1", "ALLOWED_TIERS": ["2K", "4K"], "DEFAULT_TIER": "2K"},
        {"ALLOWED_RATIOS": ["auto"], "ALLOWED_TIERS": ["2K"], "DEFAULT_RATIO": "auto", "DEFAULT_TIER": "2K"},
    ],
)
def test_e006_lists_that_each_allow_something_but_no_combination(policy):
    message = only(run(**policy), "django_gptimage.E006")
    assert "every request is refused" in message.msg
    assert "gptimage_matrix" in message.hint


def test_e006_a_narrow_policy_is_fine():
    assert (
        run(
            ALLOWED_MODELS=["gpt-image-2", "gpt-image-1"],
            ALLOWED_TIERS=["1K", "2K"],
            ALLOWED_QUALITIES=["low", "medium"],
            ALLOWED_FORMATS=["png"],
            MAX_N=2,
            DEFAULT_QUALITY="low",
        )
        == []
    )


# E007 / W001 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["api.openai.com/v1", "ftp://example.com/v1", "https:///v1"])
def test_e007_base_url_not_http(url):
    message = only(run(BASE_URL=url), "django_gptimage.E007")
    assert isinstance(message, Error)


def test_w001_base_url_without_v1():
    message = only(run(BASE_URL="https://api.openai.com"), "django_gptimage.W001")
    assert isinstance(message, Warning)
    assert "/v1" in message.hint


def test_w001_env_base_url(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/")
    assert ids(run()) == ["django_gptimage.W001"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1/")
    assert run() == []


def test_w001_hides_url_credentials():
    message = only(run(BASE_URL="https://bob:hunter2@proxy.example.com/openai"), "django_gptimage.W001")
    assert "hunter2" not in message.msg
    assert "proxy.example.com" in message.msg


# E008 -----------------------------------------------------------------------------------------


def test_e008_unknown_key_suggests_the_right_one():
    message = only(run(MODLE="gpt-image-2"), "django_gptimage.E008")
    assert isinstance(message, Error)
    assert "'MODLE'" in message.msg
    assert "Did you mean 'MODEL'?" in message.hint
    assert all(key in message.hint for key in DEFAULTS)


def test_e008_each_unknown_key():
    assert ids(run(TIMEOUT=5, allowed_tiers=["1K"])) == ["django_gptimage.E008", "django_gptimage.E008"]


def test_e008_gptimage_not_a_dict():
    with override_settings(GPTIMAGE=[("MODEL", "gpt-image-2")]):
        assert ids(check_settings()) == ["django_gptimage.E008"]


# E009 -----------------------------------------------------------------------------------------


def test_e009_unknown_run_mode():
    message = only(run(RUN_MODE="celery"), "django_gptimage.E009")
    assert "'sync'" in message.hint


# E010 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("READ_TIMEOUT", "600", "number"),
        ("JOB_TIMEOUT", 900.0, "integer"),
        ("MAX_ATTEMPTS", True, "integer"),
        ("RETRY_ON_TIMEOUT", 1, "boolean"),
        ("PRICES", [], "dict"),
        ("UPLOAD_TO", None, "string"),
        ("ORGANIZATION", 42, "string or None"),
    ],
)
def test_e010_value_of_the_wrong_type(key, value, kind):
    message = only(run(**{key: value}), "django_gptimage.E010")
    assert f"GPTIMAGE[{key!r}] must be a {kind}" in message.msg
    assert repr(value) in message.msg


def test_e010_never_shows_a_secret_value():
    message = only(run(API_KEY=["sk-secret-in-a-list"], PROVIDER="offline"), "django_gptimage.E010")
    assert "sk-secret" not in message.msg + message.hint
    message = only(run(PROVIDER_OPTIONS=[("token", "hunter2")]), "django_gptimage.E010")
    assert "hunter2" not in message.msg + message.hint


def test_e010_leaves_keys_with_their_own_check_alone():
    assert "django_gptimage.E010" not in ids(run(MAX_N="4", ALLOWED_TIERS="1K", RUN_MODE=3))


def test_e010_well_typed_values_pass():
    assert run(READ_TIMEOUT=30, MAX_ATTEMPTS=2, RETRY_ON_TIMEOUT=True, ORGANIZATION=None) == []


# W002 -----------------------------------------------------------------------------------------


def test_w002_spool_dir_in_temp_dir_without_debug(settings):
    settings.DEBUG = False
    spool = os.path.join(tempfile.gettempdir(), "paid-images")
    message = only(run(SPOOL_DIR=spool), "django_gptimage.W002")
    assert isinstance(message, Warning)
    assert "reboot" in message.hint


def test_w002_default_spool_dir(settings):
    settings.DEBUG = False
    with override_settings(GPTIMAGE={"PROVIDER": "offline"}):
        assert ids(check_settings()) == ["django_gptimage.W002"]


def test_w002_quiet_in_debug_or_persistent_dir(settings):
    settings.DEBUG = True
    assert run(SPOOL_DIR=os.path.join(tempfile.gettempdir(), "x")) == []
    settings.DEBUG = False
    assert run(SPOOL_DIR=PERSISTENT_SPOOL) == []
    # A sibling whose name only starts like the temp dir is not inside it.
    assert run(SPOOL_DIR=tempfile.gettempdir().rstrip("/") + "-persistent/spool") == []


# W003 -----------------------------------------------------------------------------------------


def test_w003_pillow_without_webp(monkeypatch):
    monkeypatch.setattr(checks, "_pillow_supports", lambda fmt: fmt != "webp")
    message = only(run(), "django_gptimage.W003")
    assert isinstance(message, Warning)
    assert "ALLOWED_FORMATS" in message.hint
    assert run(ALLOWED_FORMATS=["png", "jpeg"]) == []


def test_w003_real_pillow_probe():
    assert checks._pillow_supports("webp") in (True, False)


# W004 -----------------------------------------------------------------------------------------


def test_w004_default_outside_policy():
    message = only(run(ALLOWED_TIERS=["1K", "2K"], DEFAULT_TIER="4K"), "django_gptimage.W004")
    assert "DEFAULT_TIER" in message.msg
    assert "1K, 2K" in message.hint


def test_w004_default_ratio_and_tier_that_do_not_fit():
    message = only(run(DEFAULT_RATIO="1:1", DEFAULT_TIER="4K"), "django_gptimage.W004")
    assert "pixel" in message.msg
    assert run(DEFAULT_RATIO="16:9", DEFAULT_TIER="4K") == []


def test_w004_unknown_default_format():
    assert ids(run(DEFAULT_FORMAT="gif")) == ["django_gptimage.W004"]


# manage.py check ------------------------------------------------------------------------------


def test_manage_py_check_on_the_test_settings():
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)  # raises SystemCheckError on any error
    assert "django_gptimage.E" not in out.getvalue() + err.getvalue()


@override_settings(SILENCED_SYSTEM_CHECKS=["django_gptimage.W002"])
def test_manage_py_check_tag_has_no_warnings_either():
    out = StringIO()
    call_command(
        "check", "--tag", "django_gptimage", "--fail-level", "WARNING", stdout=out, stderr=StringIO()
    )
    assert "no issues" in out.getvalue()


def test_every_check_id_is_documented():
    source = Path(checks.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'id="(django_gptimage\.[EW]\d{3})"', source))
    docs = (Path(__file__).resolve().parent.parent / "docs" / "checks.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(django_gptimage\.[EW]\d{3})` \|", docs, re.M))
    assert used, "no ids found in checks.py"
    assert used == documented, f"missing from docs/checks.md: {used - documented}; stale: {documented - used}"
