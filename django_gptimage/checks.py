"""System checks for ``settings.GPTIMAGE`` (run by ``manage.py check`` and at startup).

Every id is listed with its meaning and fix in docs/checks.md. Messages never contain the API
key: at most they say whether one is set.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import DEFAULTS, SETTINGS, gptimage_settings, site_catalog
from .domain.capabilities import (
    FORMATS,
    MODES,
    QUALITIES,
    ModelCapabilities,
    catalog,
    get_capabilities,
    known_models,
)
from .domain.matrix import matrix
from .domain.policy import Policy
from .domain.sizes import RATIOS, TIERS, resolve_size

_POLICY_KEYS = {
    "models": "ALLOWED_MODELS",
    "modes": "ALLOWED_MODES",
    "ratios": "ALLOWED_RATIOS",
    "tiers": "ALLOWED_TIERS",
    "qualities": "ALLOWED_QUALITIES",
    "formats": "ALLOWED_FORMATS",
}
_RUN_MODES = ("queue", "sync")


@register("django_gptimage")
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """All checks of the ``GPTIMAGE`` setting, in id order."""
    raw = getattr(settings, "GPTIMAGE", None)
    if raw is not None and not isinstance(raw, dict):
        return [
            Error(
                f"settings.GPTIMAGE must be a dict, not {type(raw).__name__}.",
                hint='Write GPTIMAGE = {"MODEL": "gpt-image-2", ...}; see docs/settings.md.',
                id="django_gptimage.E008",
            )
        ]
    messages: list[CheckMessage] = []
    messages += _check_provider()
    # A malformed GPTIMAGE["MODELS"] leaves no catalog to check models against: the checks that
    # read it wait until E015 is fixed.
    catalog_messages = _check_models()
    messages += catalog_messages
    if not catalog_messages:
        messages += _check_model()
    messages += _check_api_key()
    messages += _check_storage()
    messages += _check_queue()
    policy_messages = catalog_messages or _check_policy()
    if not catalog_messages:
        messages += policy_messages
    messages += _check_base_url()
    messages += _check_keys()
    messages += _check_run_mode()
    messages += _check_types()
    messages += _check_provider_options()
    messages += _check_upload_templates()
    messages += _check_job_timeout()
    messages += _check_implicit_offline()
    messages += _check_spool_dir()
    if not catalog_messages:
        messages += _check_rate_limits()
    messages += _check_credits()
    if not policy_messages:
        messages += _check_pillow_formats()
        messages += _check_defaults()
        messages += _check_presets()
        messages += _check_autogenerate()
    return messages


# E001 -----------------------------------------------------------------------------------------


def _check_provider() -> list[CheckMessage]:
    from .providers import PROVIDERS, get_provider_class

    configured = gptimage_settings.raw.get("PROVIDER")
    if isinstance(configured, dict) and not SETTINGS["PROVIDER"].accepts(configured):
        keys = ", ".join(sorted(map(repr, configured))) or "none"
        return [
            Error(
                "GPTIMAGE['PROVIDER'] as a dict needs a non-empty 'BACKEND' string and at most a dict "
                f"of 'OPTIONS', nothing else (its keys: {keys}).",
                hint='Write e.g. {"BACKEND": "openai", "OPTIONS": {"max_connections": 32}}, like an entry '
                "of STORAGES, or just the backend name.",
                id="django_gptimage.E001",
            )
        ]
    name = gptimage_settings.PROVIDER
    if not isinstance(name, str):
        return [
            Error(
                f"GPTIMAGE['PROVIDER'] must be a string, not {type(name).__name__}.",
                hint=f"Use one of {sorted(PROVIDERS)} or a dotted path to a Provider subclass.",
                id="django_gptimage.E001",
            )
        ]
    if name in PROVIDERS:
        # Built-in providers are imported when first used (the openai one may need an extra).
        return []
    try:
        get_provider_class(name)
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint=f"Use one of {sorted(PROVIDERS)} or a dotted path to a subclass of "
                "django_gptimage.providers.Provider.",
                obj=name,
                id="django_gptimage.E001",
            )
        ]
    return []


# E002 -----------------------------------------------------------------------------------------


def _known_models_text() -> str:
    return ", ".join(known_models())


def _check_model() -> list[CheckMessage]:
    model = gptimage_settings.MODEL
    if isinstance(model, str) and get_capabilities(model) is not None:
        return []
    return [
        Error(
            f"GPTIMAGE['MODEL'] = {model!r} is not a GPT image model django-gptimage knows.",
            hint=f"Use one of {_known_models_text()}, or add the model to GPTIMAGE['MODELS'] "
            "(see docs/settings.md#models).",
            id="django_gptimage.E002",
        )
    ]


# E015 -----------------------------------------------------------------------------------------


def _check_models() -> list[CheckMessage]:
    """GPTIMAGE["MODELS"] parses, and every model of the catalog has prices."""
    from .domain.pricing import price_source

    hint = (
        'Write e.g. {"gpt-image-2.7": {"like": "gpt-image-2.6", "qualities": ["low", "medium", "high", '
        '"auto"]}}; see docs/settings.md#models for the keys.'
    )
    problems = site_catalog.problems()
    if problems:
        return [Error(problem, hint=hint, id="django_gptimage.E015") for problem in problems]
    prices = gptimage_settings.PRICES if isinstance(gptimage_settings.PRICES, dict) else {}
    return [
        Error(
            f"GPTIMAGE['MODELS'][{model!r}] has no price: neither GPTIMAGE['PRICES'] nor the built-in "
            f"prices have {model!r} or its prices_as {caps.prices_as!r}.",
            hint="Set prices_as to a priced model id (e.g. gpt-image-2), or add the model to GPTIMAGE['PRICES'].",
            obj=model,
            id="django_gptimage.E015",
        )
        for model, caps in catalog().items()
        if price_source(model, prices) is None
    ]


# E003 -----------------------------------------------------------------------------------------


def _uses_openai(provider: Any) -> bool:
    from .providers import PROVIDERS

    return provider == "openai" or provider == PROVIDERS["openai"]


def _check_api_key() -> list[CheckMessage]:
    if not _uses_openai(gptimage_settings.PROVIDER):
        return []
    if gptimage_settings.API_KEY:
        return []
    return [
        Error(
            "The openai provider is selected but no API key is set.",
            hint="Set the OPENAI_API_KEY environment variable (or GPTIMAGE['API_KEY'], read from the "
            "environment or a secrets file, never committed), or use PROVIDER 'offline' for development.",
            id="django_gptimage.E003",
        )
    ]


# E004 -----------------------------------------------------------------------------------------


def _check_storage() -> list[CheckMessage]:
    storages = getattr(settings, "STORAGES", None) or {}
    messages: list[CheckMessage] = []
    for key, alias in (
        ("STORAGE", gptimage_settings.STORAGE),
        ("STAGING_STORAGE", gptimage_settings.STAGING_STORAGE),
    ):
        if (key == "STAGING_STORAGE" and alias is None) or (isinstance(alias, str) and alias in storages):
            continue
        messages.append(
            Error(
                f"GPTIMAGE[{key!r}] = {alias!r} is not an alias in settings.STORAGES.",
                hint=f"Use one of {sorted(storages)} or add {alias!r} to settings.STORAGES.",
                id="django_gptimage.E004",
            )
        )
    return messages


# E005 -----------------------------------------------------------------------------------------


def _check_queue() -> list[CheckMessage]:
    if gptimage_settings.RUN_MODE != "queue":
        return []
    queue = gptimage_settings.QUEUE
    queues = getattr(settings, "RQ_QUEUES", None) or {}
    if isinstance(queue, str) and queue in queues:
        return []
    return [
        Error(
            f"GPTIMAGE['QUEUE'] = {queue!r} is not a queue in settings.RQ_QUEUES.",
            hint=f"Add {queue!r} to settings.RQ_QUEUES (with a DEFAULT_TIMEOUT of at least JOB_TIMEOUT, "
            f"{gptimage_settings.JOB_TIMEOUT} s), use one of {sorted(queues)}, or set "
            "GPTIMAGE['RUN_MODE'] = 'sync'.",
            id="django_gptimage.E005",
        )
    ]


# E006 -----------------------------------------------------------------------------------------


def _policy_error(msg: str, hint: str) -> Error:
    return Error(msg, hint=hint, id="django_gptimage.E006")


def _check_policy() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key in (*_POLICY_KEYS.values(), "MAX_N"):
        value = gptimage_settings.get(key)
        if key == "MAX_N":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                errors.append(
                    _policy_error(f"GPTIMAGE['MAX_N'] = {value!r} is not a whole number.", "Use e.g. 4.")
                )
        elif value is not None and (isinstance(value, str) or not isinstance(value, Iterable)):
            errors.append(
                _policy_error(
                    f"GPTIMAGE[{key!r}] = {value!r} must be a list of values, not {type(value).__name__}.",
                    f'Write e.g. GPTIMAGE["{key}"] = [{value!r}], or None for whatever the model allows.',
                )
            )
    if errors:
        return errors

    policy = gptimage_settings.policy
    for name, values in policy.unknown_values().items():
        key = _POLICY_KEYS[name]
        errors.append(
            _policy_error(
                f"GPTIMAGE[{key!r}] has values no model knows: {', '.join(map(repr, values))}.",
                f"Remove them or fix their spelling; known values: {', '.join(_known_values(name))}.",
            )
        )
    if policy.models is not None:
        unknown_models = [m for m in policy.models if not isinstance(m, str) or get_capabilities(m) is None]
        if unknown_models:
            errors.append(
                _policy_error(
                    f"GPTIMAGE['ALLOWED_MODELS'] has models django-gptimage does not know: "
                    f"{', '.join(map(repr, unknown_models))}.",
                    f"Use models such as {_known_models_text()}.",
                )
            )
    errors += _empty_policy_errors(policy)
    return errors


_KNOWN_VALUES = {"modes": MODES, "ratios": RATIOS, "tiers": TIERS, "qualities": QUALITIES, "formats": FORMATS}


def _known_values(name: str) -> tuple[str, ...]:
    return _KNOWN_VALUES[name]


def _policy_models(policy: Policy) -> list[ModelCapabilities]:
    """The capabilities of every model the policy lets editors use."""
    models = policy.models if policy.models is not None else (gptimage_settings.MODEL,)
    caps = [get_capabilities(m) for m in models if isinstance(m, str)]
    return [c for c in caps if c is not None]


def _empty_policy_errors(policy: Policy) -> list[CheckMessage]:
    hint = "Widen the ALLOWED_* settings, or set them to None for whatever the model allows."
    if policy.max_n is not None and policy.max_n < 1:
        return [_policy_error(f"GPTIMAGE['MAX_N'] = {policy.max_n} allows no image at all.", hint)]
    if policy.models is not None:
        if not _policy_models(policy):
            return [_policy_error("GPTIMAGE['ALLOWED_MODELS'] allows no model django-gptimage knows.", hint)]
        model = gptimage_settings.MODEL
        if isinstance(model, str) and get_capabilities(model) and not policy.allows_model(model):
            return [
                _policy_error(
                    f"The default model GPTIMAGE['MODEL'] = {model!r} is not in GPTIMAGE['ALLOWED_MODELS'].",
                    "Add it to ALLOWED_MODELS or choose an allowed default model.",
                )
            ]
    empty = []
    if not policy.effective_ratios():
        empty.append("ALLOWED_RATIOS")
    if not policy.effective_tiers():
        empty.append("ALLOWED_TIERS")
    models = _policy_models(policy)
    if models:
        if not any(policy.effective_modes(caps) for caps in models):
            empty.append("ALLOWED_MODES")
        if not any(policy.effective_qualities(caps) for caps in models):
            empty.append("ALLOWED_QUALITIES")
        if not any(policy.effective_formats(caps) for caps in models):
            empty.append("ALLOWED_FORMATS")
    if empty:
        return [
            _policy_error(f"GPTIMAGE[{key!r}] leaves nothing allowed, so every request is refused.", hint)
            for key in empty
        ]
    # Each list may allow something and their combination nothing (1:1 with only 4K; gpt-image-1,
    # which has no 2K or 4K, with only those tiers): the same matrix the docs show decides.
    if models and not any(row.allowed for caps in models for row in matrix(caps.model, policy)):
        names = ", ".join(caps.model for caps in models)
        return [
            _policy_error(
                f"No ratio x tier x mode the site policy allows has a size for {names}, so every "
                "request is refused.",
                "Allow a ratio and tier that fit together; `manage.py gptimage_matrix --policy` shows them.",
            )
        ]
    return []


# E007 / W001 ----------------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    """The URL without any user:password part, so a credential never reaches a message."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_base_url() -> list[CheckMessage]:
    url = gptimage_settings.BASE_URL
    if not isinstance(url, str):
        return [
            Error(
                f"GPTIMAGE['BASE_URL'] must be a string, not {type(url).__name__}.",
                hint="Use e.g. https://api.openai.com/v1, or leave it unset.",
                id="django_gptimage.E007",
            )
        ]
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        return [
            Error(
                f"The API base URL {_safe_url(url)!r} is not an http(s) URL.",
                hint="Set GPTIMAGE['BASE_URL'] or OPENAI_BASE_URL to e.g. https://api.openai.com/v1.",
                id="django_gptimage.E007",
            )
        ]
    if not parts.path.rstrip("/").endswith("/v1"):
        return [
            Warning(
                f"The API base URL {_safe_url(url)!r} does not end with /v1.",
                hint="OpenAI-compatible endpoints are addressed as <base>/v1/images/generations; "
                "use e.g. https://api.openai.com/v1 (ignore this for a gateway with another layout).",
                id="django_gptimage.W001",
            )
        ]
    return []


# E008 -----------------------------------------------------------------------------------------


def _check_keys() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in gptimage_settings.raw:
        if key in DEFAULTS:
            continue
        close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
        guess = f"Did you mean {close[0]!r}? " if close else ""
        messages.append(
            Error(
                f"GPTIMAGE has an unknown key {key!r}.",
                hint=f"{guess}Valid keys: {', '.join(DEFAULTS)}.",
                id="django_gptimage.E008",
            )
        )
    return messages


# E009 -----------------------------------------------------------------------------------------


def _check_run_mode() -> list[CheckMessage]:
    mode = gptimage_settings.RUN_MODE
    if mode in _RUN_MODES:
        return []
    return [
        Error(
            f"GPTIMAGE['RUN_MODE'] = {mode!r} is not a run mode.",
            hint=f"Use one of {', '.join(map(repr, _RUN_MODES))}.",
            id="django_gptimage.E009",
        )
    ]


# E010 -----------------------------------------------------------------------------------------

# Keys whose own check already reports a value of the wrong type (one message per mistake).
_TYPE_CHECKED_ELSEWHERE = {
    "PROVIDER",
    "BASE_URL",
    "MODEL",
    "MODELS",
    "STORAGE",
    "RUN_MODE",
    "MAX_N",
    *_POLICY_KEYS.values(),
}
_SECRET_KEYS = {"API_KEY", "PROVIDER_OPTIONS"}  # their values may hold a credential


def _check_types() -> list[CheckMessage]:
    """Every configured value has the type its key declares (conf.py), so no property lies."""
    messages: list[CheckMessage] = []
    for key, value in gptimage_settings.raw.items():
        setting = SETTINGS.get(key)
        if setting is None or key in _TYPE_CHECKED_ELSEWHERE or setting.accepts(value):
            continue
        shown = "value hidden" if key in _SECRET_KEYS else repr(value)
        messages.append(
            Error(
                f"GPTIMAGE[{key!r}] must be a {setting.kind}, not {type(value).__name__} ({shown}).",
                hint=f"{setting.meaning} Default: {setting.default!r}; see docs/settings.md.",
                id="django_gptimage.E010",
            )
        )
    return messages


# E014 -----------------------------------------------------------------------------------------


def _check_credits() -> list[CheckMessage]:
    """CREDITS_PER_USD is a positive number; SPEND_CAPS has the documented shape."""
    from django_gptimage.domain.credits import cap_problems

    raw = gptimage_settings.raw
    messages: list[CheckMessage] = []
    per_usd = raw.get("CREDITS_PER_USD", 100.0)
    if _number(per_usd) and not per_usd > 0:
        messages.append(
            Error(
                f"GPTIMAGE['CREDITS_PER_USD'] must be more than 0, not {per_usd!r}.",
                hint="It is how many credits one US dollar is, e.g. 100 (a credit is a cent) or 1.",
                id="django_gptimage.E014",
            )
        )
    caps = raw.get("SPEND_CAPS", {})
    if isinstance(caps, dict):  # not a dict at all is E010
        messages += [
            Error(problem, hint='e.g. {"user": {"daily": 2, "monthly": 20}, "site": {"monthly": "500.00"}}',
                  id="django_gptimage.E014")
            for problem in cap_problems(caps)
        ]  # fmt: skip
    return messages


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# E011 -----------------------------------------------------------------------------------------


def _check_provider_options() -> list[CheckMessage]:
    """The provider's OPTIONS fit its constructor: caught here, not as a failed paid job."""
    from .providers import ProviderOptionsError, get_provider_class

    def error(msg: str) -> list[CheckMessage]:
        return [
            Error(
                msg,
                hint="Give only options the provider class takes as keyword arguments "
                "(docs/providers.md#options lists those of the built-in providers).",
                id="django_gptimage.E011",
            )
        ]

    try:
        options = gptimage_settings.provider_options
    except ImproperlyConfigured as exc:
        return error(str(exc))
    name = gptimage_settings.PROVIDER
    if not isinstance(name, str):
        return []  # E001
    try:
        cls = get_provider_class(name)
    except ImproperlyConfigured:
        return []  # E001 (or a built-in provider whose optional dependency is missing)
    try:
        cls.check_options(options)
    except ProviderOptionsError as exc:
        return error(str(exc))
    return []


# E012, W005 -----------------------------------------------------------------------------------


def _check_rate_limits() -> list[CheckMessage]:
    from .jobs.ratelimit import limit_problems

    hint = (
        'Write {"gpt-image-2": {"requests_per_minute": 50, "images_per_minute": 120}}: positive whole '
        'numbers (or None), an optional "headroom" from 0 to 0.5; see docs/jobs.md#one-rate-limit-for-all-workers.'
    )
    limits = gptimage_settings.RATE_LIMITS
    if not isinstance(limits, dict):
        return []  # E010 reports the type
    messages: list[CheckMessage] = [
        Error(problem, hint=hint, id="django_gptimage.E012") for problem in limit_problems(limits)
    ]
    if messages:
        return messages
    for model in gptimage_settings.RATE_LIMITS:
        if model != "*" and get_capabilities(model) is None:
            close = difflib.get_close_matches(model, known_models(), n=1)
            guess = f"Did you mean {close[0]!r}? " if close else ""
            messages.append(
                Warning(
                    f"GPTIMAGE['RATE_LIMITS'] has limits for {model!r}, which is not a GPT image model "
                    "django-gptimage knows: they limit nothing.",
                    hint=f'{guess}Known models: {_known_models_text()}; "*" applies to every model.',
                    id="django_gptimage.W005",
                )
            )
    return messages


# E013 -----------------------------------------------------------------------------------------


def _check_upload_templates() -> list[CheckMessage]:
    from .upload_paths import template_problem

    messages: list[CheckMessage] = []
    for key, kind in (("UPLOAD_TO", "result"), ("INPUT_UPLOAD_TO", "input")):
        template = gptimage_settings.get(key)
        if not isinstance(template, str):
            continue  # E010
        problem = template_problem(template, kind=kind)
        if problem:
            messages.append(
                Error(
                    f"GPTIMAGE[{key!r}] = {template!r} {problem}.",
                    hint=f"Use a relative path template such as {SETTINGS[key].default!r} "
                    "(placeholders in docs/settings.md#storage).",
                    id="django_gptimage.E013",
                )
            )
    return messages


# W006 -----------------------------------------------------------------------------------------


def _check_job_timeout() -> list[CheckMessage]:
    if gptimage_settings.RUN_MODE != "queue":
        return []
    job_timeout, read_timeout = gptimage_settings.JOB_TIMEOUT, gptimage_settings.READ_TIMEOUT
    try:
        if gptimage_settings.PROVIDER == "openai":
            read_timeout = gptimage_settings.provider_options.get("read_timeout", read_timeout)
    except ImproperlyConfigured:
        pass  # E011
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (job_timeout, read_timeout)):
        return []  # E010
    if job_timeout > read_timeout:
        return []
    return [
        Warning(
            f"GPTIMAGE['JOB_TIMEOUT'] ({job_timeout} s) is not longer than the read timeout "
            f"({read_timeout} s).",
            hint="A slow answer is then killed as a job timeout (possibly after it was billed) before the "
            "HTTP read timeout can end it cleanly. Make JOB_TIMEOUT longer than READ_TIMEOUT plus the time to "
            "send the request and store the images, e.g. READ_TIMEOUT + 300.",
            id="django_gptimage.W006",
        )
    ]


# W007 -----------------------------------------------------------------------------------------


def _check_implicit_offline() -> list[CheckMessage]:
    if settings.DEBUG or gptimage_settings.raw.get("PROVIDER") or gptimage_settings.API_KEY:
        return []
    return [
        Warning(
            "No API key is set, so django-gptimage uses the offline provider: editors get labelled "
            "placeholder images, not images from OpenAI.",
            hint="Set the OPENAI_API_KEY environment variable (or GPTIMAGE['API_KEY']) to generate real "
            "images, or set GPTIMAGE['PROVIDER'] = 'offline' if placeholders are what this site wants.",
            id="django_gptimage.W007",
        )
    ]


# W008 -----------------------------------------------------------------------------------------

PROMPT_SEARCH_INDEX = "gptimage_prompt_trgm"  # created by migration 0006_prompt_search


@register(Tags.database)
def check_prompt_search_index(databases: Sequence[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """On PostgreSQL, the admin's prompt search has its trigram index (``check --database``, migrate)."""
    from django.db import DatabaseError, connections

    messages: list[CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM django_migrations WHERE app = 'django_gptimage' "
                    "AND name = '0006_prompt_search'), EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = %s)",
                    [PROMPT_SEARCH_INDEX],
                )
                migrated, indexed = cursor.fetchone()
        except DatabaseError:
            continue  # not migrated yet: migrate reports that itself
        if migrated and not indexed:
            messages.append(
                Warning(
                    f"Database {alias!r}: the admin history's prompt search has no trigram index, so every "
                    "search reads the whole history (about 300 ms at 100,000 generations).",
                    hint="The pg_trgm extension could not be created when django_gptimage's migration "
                    "0006_prompt_search ran. As a database owner run: CREATE EXTENSION IF NOT EXISTS pg_trgm; "
                    f"CREATE INDEX {PROMPT_SEARCH_INDEX} ON django_gptimage_imagegeneration "
                    "USING gin (UPPER(prompt) gin_trgm_ops);",
                    id="django_gptimage.W008",
                )
            )
    return messages


# W002 -----------------------------------------------------------------------------------------


def _is_within(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _check_spool_dir() -> list[CheckMessage]:
    if settings.DEBUG:
        return []
    spool = gptimage_settings.SPOOL_DIR
    if not isinstance(spool, str) or not _is_within(spool, tempfile.gettempdir()):
        return []
    return [
        Warning(
            f"GPTIMAGE['SPOOL_DIR'] ({spool}) is in the system's temporary directory.",
            hint="Paid-for images wait there until they are in storage, and temporary directories may "
            "be emptied on reboot. Set SPOOL_DIR to a persistent directory, e.g. /var/lib/<site>/gptimage-spool.",
            id="django_gptimage.W002",
        )
    ]


# W003 -----------------------------------------------------------------------------------------


def _pillow_supports(fmt: str) -> bool:
    """Whether this Pillow build reads and writes ``fmt`` (webp needs libwebp)."""
    from PIL import features

    return bool(features.check(fmt))


def _check_pillow_formats() -> list[CheckMessage]:
    policy = gptimage_settings.policy
    allows_webp = any("webp" in policy.effective_formats(caps) for caps in _policy_models(policy))
    if not allows_webp or _pillow_supports("webp"):
        return []
    return [
        Warning(
            "WebP output is allowed but this Pillow build has no WebP support, so WebP results and "
            "inputs cannot be checked or given thumbnails.",
            hint="Install Pillow with libwebp (the PyPI wheels include it), or remove 'webp' from "
            "GPTIMAGE['ALLOWED_FORMATS'].",
            id="django_gptimage.W003",
        )
    ]


# W004 -----------------------------------------------------------------------------------------


def _check_defaults() -> list[CheckMessage]:
    """Request defaults the default model or the policy would refuse."""
    caps = get_capabilities(gptimage_settings.MODEL) if isinstance(gptimage_settings.MODEL, str) else None
    if caps is None:
        return []
    policy = gptimage_settings.policy
    allowed: dict[str, tuple[str, ...]] = {
        "DEFAULT_RATIO": policy.effective_ratios(),
        "DEFAULT_TIER": policy.effective_tiers(),
        "DEFAULT_QUALITY": policy.effective_qualities(caps),
        "DEFAULT_FORMAT": policy.effective_formats(caps),
        "DEFAULT_BACKGROUND": caps.backgrounds,
    }
    messages: list[CheckMessage] = []
    for key, values in allowed.items():
        value = gptimage_settings.get(key)
        if value not in values:
            messages.append(
                Warning(
                    f"GPTIMAGE[{key!r}] = {value!r} is not allowed for {caps.model} under the site policy; "
                    "forms would start with a value they refuse.",
                    hint=f"Use one of {', '.join(values)}.",
                    id="django_gptimage.W004",
                )
            )
    if messages:
        return messages
    ratio, tier = gptimage_settings.DEFAULT_RATIO, gptimage_settings.DEFAULT_TIER
    choice = resolve_size(ratio, tier, "text-to-image", caps)
    if not choice.allowed:
        messages.append(
            Warning(
                f"GPTIMAGE['DEFAULT_RATIO'] = {ratio!r} with GPTIMAGE['DEFAULT_TIER'] = {tier!r} is refused "
                f"by {caps.model}: {choice.reason}",
                hint="Choose a default ratio and tier that fit together (see docs/sizes.md).",
                id="django_gptimage.W004",
            )
        )
    return messages


# E020, E021 -----------------------------------------------------------------------------------


def _check_presets() -> list[CheckMessage]:
    """Code-defined presets: malformed entries and templates (E020), impossible sizes (E021)."""
    from .presets import code_presets, preset_errors

    try:
        presets = code_presets()
    except ValueError as exc:
        return [
            Error(
                f"GPTIMAGE['PRESETS'] is malformed: {exc}.",
                hint="See docs/settings.md#presets for the keys a preset and its outputs take.",
                id="django_gptimage.E020",
            )
        ]
    messages: list[CheckMessage] = []
    # Only the site's own: a shipped preset the policy narrows away is refused when used, with the reason.
    configured = gptimage_settings.PRESETS or {}
    for name, preset in presets.items():
        if configured.get(name) is None:
            continue
        for problem in preset_errors(preset):
            sizes = problem.field.split(".")[-1] in ("model", "mode", "ratio", "tier", "quality", "output_format",
                                                    "background", "n")  # fmt: skip
            messages.append(
                Error(
                    f"Preset {name!r}, {problem.field}: {problem.message}",
                    hint=(
                        "Pick a combination the size matrix and the site policy allow "
                        "(python manage.py gptimage_matrix --policy)."
                        if sizes
                        else "Fix the preset in GPTIMAGE['PRESETS'] (or remove it with None)."
                    ),
                    obj=name,
                    id="django_gptimage.E021" if sizes else "django_gptimage.E020",
                )
            )
    return messages


# E030-E034 ------------------------------------------------------------------------------------


def _check_autogenerate() -> list[CheckMessage]:
    """Save hooks (``GPTIMAGE["AUTOGENERATE"]`` and ``autogenerate()``): what would only fail
    at the first save is reported at startup."""
    from django.apps import apps
    from django.db import models

    from .hooks import configured_hooks
    from .presets import UnknownPreset, code_presets, get_preset, preset_errors
    from .prompts import template_problems

    hooks, malformed = configured_hooks()
    messages: list[CheckMessage] = [
        Error(
            f"GPTIMAGE['AUTOGENERATE'] is malformed: {problem}.",
            hint="See docs/automation.md for the keys of a save hook.",
            id="django_gptimage.E030",
        )
        for problem in malformed
    ]
    for hook in hooks:
        where = f"Save hook {hook.label!r}"
        try:
            model = apps.get_model(hook.model)
        except (LookupError, ValueError):
            messages.append(
                Error(
                    f"{where}: {hook.model!r} is not an installed model.",
                    hint="Write 'app_label.ModelName' of a model in INSTALLED_APPS.",
                    obj=hook.label,
                    id="django_gptimage.E031",
                )
            )
            continue
        file_fields = [f.name for f in model._meta.get_fields() if isinstance(f, models.FileField)]
        fields = {f.name for f in model._meta.concrete_fields}
        if hook.field not in file_fields:
            what = "is not a file or image field" if hook.field in fields else "does not exist"
            messages.append(
                Error(
                    f"{where}: {model._meta.label}.{hook.field} {what}.",
                    hint=f"Generate into one of its image fields: {', '.join(file_fields) or 'it has none'}.",
                    obj=hook.label,
                    id="django_gptimage.E032",
                )
            )
        for name in (*hook.fields, *([hook.alt_field] if hook.alt_field else [])):
            if name not in fields:
                messages.append(
                    Error(
                        f"{where}: {model._meta.label} has no field {name!r} "
                        f"({'alt_field' if name == hook.alt_field else 'fields'}).",
                        hint=f"Its fields: {', '.join(sorted(fields))}.",
                        obj=hook.label,
                        id="django_gptimage.E032",
                    )
                )
        problems: list[str] = []
        if hook.preset:
            try:
                preset = code_presets().get(hook.preset)
            except ValueError:  # E020 reports it
                preset = None
            if preset is None:
                try:
                    preset = get_preset(hook.preset)  # a PromptPreset row
                except UnknownPreset as exc:
                    messages.append(
                        Error(
                            f"{where}: {exc}",
                            hint="Define it in GPTIMAGE['PRESETS'] or as a prompt preset in the admin.",
                            obj=hook.label,
                            id="django_gptimage.E033",
                        )  # fmt: skip
                    )
                    continue
                except Exception:  # noqa: BLE001 - no database yet (before migrate): cannot tell
                    preset = None
            if preset is not None:
                problems += [
                    f"preset {hook.preset!r}, {p.field}: {p.message}"
                    for p in preset_errors(preset, model)
                    if not (hook.template and p.field.endswith(".prompt_template"))
                ]
        if hook.template:
            problems += [f"template: {m}" for m in template_problems(hook.template, model)]
        for problem in problems:
            messages.append(
                Error(
                    f"{where}: {problem}",
                    hint="Name only fields the model has ({{ object.<field> }}), with the allowed tags and filters.",
                    obj=hook.label,
                    id="django_gptimage.E034",
                )
            )
    return messages
