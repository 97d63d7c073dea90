from __future__ import annotations

import ast
import os
import re
import tempfile
from pathlib import Path

import pytest
from django.test import override_settings

from django_gptimage.conf import DEFAULT_BASE_URL, DEFAULTS, Settings, gptimage_settings
from django_gptimage.domain.policy import Policy

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# Docs -------------------------------------------------------------------------------------------


def _documented_keys() -> list[str]:
    return re.findall(r"^### `([A-Z_]+)`$", DOCS.read_text(encoding="utf-8"), re.M)


def test_every_setting_is_documented():
    missing = [key for key in DEFAULTS if key not in _documented_keys()]
    assert not missing, f"docs/settings.md has no '### `KEY`' section for {missing}"


def test_no_documented_setting_is_stale():
    stale = [key for key in _documented_keys() if key not in DEFAULTS]
    assert not stale, f"docs/settings.md documents settings that do not exist: {stale}"


def test_every_documented_setting_has_default_and_example():
    sections = re.split(r"^### ", DOCS.read_text(encoding="utf-8"), flags=re.M)[1:]
    assert len(sections) == len(DEFAULTS)
    for section in sections:
        key = section.split("`")[1]
        assert "Default: " in section, key
        assert f'"{key}": ' in section, f"{key}: no example"


def test_documented_defaults_match_the_code():
    sections = re.split(r"^### ", DOCS.read_text(encoding="utf-8"), flags=re.M)[1:]
    for section in sections:
        key = section.split("`")[1]
        documented = re.search(r"^Default: `([^`]*)`", section, re.M)
        assert documented, f"{key}: no 'Default: `...`' line"
        assert ast.literal_eval(documented[1]) == DEFAULTS[key], f"docs/settings.md: wrong default for {key}"


def test_env_vars_are_documented():
    text = DOCS.read_text(encoding="utf-8")
    assert "`OPENAI_API_KEY`" in text
    assert "`OPENAI_BASE_URL`" in text


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
