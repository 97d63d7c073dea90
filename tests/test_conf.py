from __future__ import annotations

import ast
import io
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from django_gptimage.conf import (
    DEFAULT_BASE_URL,
    DEFAULTS,
    SECTIONS,
    SETTINGS,
    Integer,
    Settings,
    gptimage_settings,
)
from django_gptimage.domain.policy import Policy
from django_gptimage.settings_reference import REGENERATE_COMMAND, render_markdown, render_setting

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# Docs -------------------------------------------------------------------------------------------


def test_settings_doc_is_generated_from_conf():
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), (
        f"docs/settings.md is stale. Regenerate it with: {REGENERATE_COMMAND}"
    )


def _documented_keys() -> list[str]:
    return re.findall(r"^### `([A-Z_]+)`$", DOCS.read_text(encoding="utf-8"), re.M)


def test_every_setting_is_documented_once_in_declaration_order():
    assert _documented_keys() == [key for key in SETTINGS if key in _documented_keys()]
    assert sorted(_documented_keys()) == sorted(DEFAULTS)


def test_every_setting_declares_type_default_meaning_and_example():
    for name, setting in SETTINGS.items():
        assert setting.name == name
        assert setting.section in SECTIONS, name
        assert setting.meaning.strip() and "\n" not in setting.meaning, f"{name}: one-line meaning"
        assert setting.meaning.endswith("."), name
        assert f'"{name}": ' in setting.example, f"{name}: the example does not set the key"
        assert setting.accepts(setting.default), (
            f"{name}: default {setting.default!r} is not a {setting.kind}"
        )
        assert DEFAULTS[name] == setting.default


def test_documented_defaults_match_the_code():
    sections = re.split(r"^### ", DOCS.read_text(encoding="utf-8"), flags=re.M)[1:]
    assert len(sections) == len(DEFAULTS)
    for section in sections:
        key = section.split("`")[1]
        documented = re.search(r"^Default: `([^`]*)`", section, re.M)
        assert documented, f"{key}: no 'Default: `...`' line"
        assert ast.literal_eval(documented[1]) == DEFAULTS[key], f"docs/settings.md: wrong default for {key}"


def test_doc_header_says_how_to_regenerate():
    head = DOCS.read_text(encoding="utf-8").split("# Settings", 1)[0]
    assert REGENERATE_COMMAND in head
    assert "django_gptimage/conf.py" in head


def test_env_vars_are_documented():
    text = DOCS.read_text(encoding="utf-8")
    assert "`OPENAI_API_KEY`" in text
    assert "`OPENAI_BASE_URL`" in text


def test_write_docs_writes_and_then_reports_up_to_date(tmp_path):
    target = tmp_path / "settings.md"
    out = io.StringIO()
    call_command("gptimage_settings", "--write-docs", str(target), stdout=out)
    assert target.read_text(encoding="utf-8") == render_markdown()
    out = io.StringIO()
    call_command("gptimage_settings", "--write-docs", str(target), stdout=out)
    assert "up to date" in out.getvalue()


def test_markdown_option_prints_the_reference():
    out = io.StringIO()
    call_command("gptimage_settings", "--markdown", stdout=out)
    assert out.getvalue() == render_markdown()


def test_a_new_key_needs_no_other_edit_than_its_declaration():
    class Extended(Settings):
        EXTRA_KEY = Integer(7, "An extra key.", section="HTTP", example='"EXTRA_KEY": 8')

    s = Extended()
    assert s.EXTRA_KEY == 7
    with override_settings(GPTIMAGE={"EXTRA_KEY": 9}):
        assert s.EXTRA_KEY == 9
    assert "### `EXTRA_KEY`" in render_setting(Extended.EXTRA_KEY)
    assert "Default: `7`. Type: integer." in render_setting(Extended.EXTRA_KEY)


def test_unknown_section_is_refused():
    with pytest.raises(ValueError, match="Unknown settings section"):
        Integer(1, "x.", section="Nowhere", example='"X": 1')


# Effective settings report ----------------------------------------------------------------------


def test_report_shows_sources_and_never_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-report-secret")
    with override_settings(GPTIMAGE={"MODEL": "gpt-image-1", "PROVIDER_OPTIONS": {"token": "hunter2"}}):
        out = io.StringIO()
        call_command("gptimage_settings", "--json", stdout=out)
        text = out.getvalue()
    rows = json.loads(text)
    assert rows["MODEL"] == {"value": "gpt-image-1", "source": "settings"}
    assert rows["API_KEY"] == {"value": "<set>", "source": "env OPENAI_API_KEY"}
    assert rows["READ_TIMEOUT"] == {"value": 600.0, "source": "default"}
    assert rows["PROVIDER_OPTIONS"]["value"] == {"token": "<hidden>"}
    assert "sk-report" not in text and "hunter2" not in text
    out = io.StringIO()
    with override_settings(GPTIMAGE={"BASE_URL": "https://user:pw@gw.example.com/v1"}):
        call_command("gptimage_settings", stdout=out)
    assert "gw.example.com/v1" in out.getvalue() and "pw@" not in out.getvalue()


# Settings object --------------------------------------------------------------------------------


@override_settings(GPTIMAGE=None)
def test_defaults_without_any_setting():
    s = Settings()
    assert s.raw == {}
    for key, default in DEFAULTS.items():
        if key not in ("API_KEY", "BASE_URL", "PROVIDER", "SPOOL_DIR"):
            assert getattr(s, key) == default, key
    assert s.API_KEY is None
    assert s.BASE_URL == DEFAULT_BASE_URL == "https://api.openai.com/v1"
    assert s.PROVIDER == "offline"
    assert os.path.join(tempfile.gettempdir(), "django-gptimage-spool") == s.SPOOL_DIR
    assert s.MODEL == "gpt-image-2"


def test_override_settings_works_without_restart(settings):
    assert gptimage_settings.MODEL == "gpt-image-2"
    with override_settings(GPTIMAGE={"MODEL": "gpt-image-1", "MAX_ATTEMPTS": 2}):
        assert gptimage_settings.MODEL == "gpt-image-1"
        assert gptimage_settings.MAX_ATTEMPTS == 2
        assert gptimage_settings.get("MAX_ATTEMPTS") == 2
    assert gptimage_settings.MODEL == "gpt-image-2"
    settings.GPTIMAGE = {"READ_TIMEOUT": 30.0}
    assert gptimage_settings.READ_TIMEOUT == 30.0
    assert gptimage_settings.MODEL == "gpt-image-2"


def test_unknown_key_is_an_attribute_error():
    with pytest.raises(AttributeError):
        gptimage_settings.get("MODLE")
    with pytest.raises(AttributeError):
        gptimage_settings.MODLE  # noqa: B018


@override_settings(GPTIMAGE={})
def test_api_key_from_env(monkeypatch):
    assert gptimage_settings.API_KEY is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert gptimage_settings.API_KEY == "sk-env"
    with override_settings(GPTIMAGE={"API_KEY": "sk-setting"}):
        assert gptimage_settings.API_KEY == "sk-setting"
    with override_settings(GPTIMAGE={"API_KEY": ""}):
        assert gptimage_settings.API_KEY == "sk-env"


@override_settings(GPTIMAGE={})
def test_base_url_from_env(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/")
    assert gptimage_settings.BASE_URL == "http://127.0.0.1:9999/v1"
    with override_settings(GPTIMAGE={"BASE_URL": "https://gateway.example.com/v1"}):
        assert gptimage_settings.BASE_URL == "https://gateway.example.com/v1"


@override_settings(GPTIMAGE={})
def test_provider_defaults_to_offline_without_key_and_openai_with_key(monkeypatch):
    assert gptimage_settings.PROVIDER == "offline"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert gptimage_settings.PROVIDER == "openai"
    monkeypatch.delenv("OPENAI_API_KEY")
    with override_settings(GPTIMAGE={"API_KEY": "sk-setting"}):
        assert gptimage_settings.PROVIDER == "openai"
    with override_settings(GPTIMAGE={"API_KEY": "sk-setting", "PROVIDER": "offline"}):
        assert gptimage_settings.PROVIDER == "offline"


def test_spool_dir_setting(settings, tmp_path):
    settings.GPTIMAGE = {"SPOOL_DIR": str(tmp_path)}
    assert str(tmp_path) == gptimage_settings.SPOOL_DIR


def test_policy_defaults_to_no_narrowing(settings):
    settings.GPTIMAGE = {}
    assert gptimage_settings.policy == Policy()


def test_policy_converts_lists_to_tuples(settings):
    settings.GPTIMAGE = {
        "ALLOWED_MODELS": ["gpt-image-2"],
        "ALLOWED_MODES": ["text-to-image"],
        "ALLOWED_RATIOS": ["1:1", "16:9"],
        "ALLOWED_TIERS": ("1K",),
        "ALLOWED_QUALITIES": ["low"],
        "ALLOWED_FORMATS": ["png"],
        "MAX_N": 2,
    }
    policy = gptimage_settings.policy
    assert policy == Policy(
        models=("gpt-image-2",),
        modes=("text-to-image",),
        ratios=("1:1", "16:9"),
        tiers=("1K",),
        qualities=("low",),
        formats=("png",),
        max_n=2,
    )
    assert isinstance(policy.ratios, tuple)
    hash(policy)  # frozen and hashable once converted


def test_properties_are_read_only():
    with pytest.raises(AttributeError, match="read-only"):
        gptimage_settings.MODEL = "gpt-image-1"


def test_mutable_defaults_are_not_shared(settings):
    settings.GPTIMAGE = {}
    gptimage_settings.PROVIDER_OPTIONS["leak"] = 1
    assert gptimage_settings.PROVIDER_OPTIONS == {}
    assert DEFAULTS["PROVIDER_OPTIONS"] == {}


@pytest.mark.parametrize(
    ("key", "good", "bad"),
    [
        ("MODEL", "gpt-image-2", 2),
        ("READ_TIMEOUT", 30, "30"),
        ("READ_TIMEOUT", 30.5, True),
        ("MAX_ATTEMPTS", 3, 3.0),
        ("MAX_N", None, False),
        ("RETRY_ON_TIMEOUT", True, 1),
        ("ALLOWED_TIERS", ("1K",), "1K"),
        ("ALLOWED_TIERS", ["1K"], [1]),
        ("PRICES", {}, []),
        ("ORGANIZATION", None, 5),
    ],
)
def test_kinds_accept_their_type_only(key, good, bad):
    setting = SETTINGS[key]
    assert setting.accepts(good)
    assert not setting.accepts(bad)
