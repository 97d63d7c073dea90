"""Settings, read from ``settings.GPTIMAGE`` on every access so ``override_settings`` works.

Every key is declared once, as a typed descriptor on :class:`Settings` (its kind is its type),
with its default, a one-line meaning, its section and an example. docs/settings.md is generated
from these declarations (``python example_project/manage.py gptimage_settings --write-docs
docs/settings.md``) and a test fails when it is stale.

To add a key: declare it in :class:`Settings`, in the section it belongs to, with the kind that
matches its type (``Text``, ``OptionalText``, ``Number``, ``Integer``, ``OptionalInteger``,
``Flag``, ``Names``, ``Mapping``, ``Entries``, ``Backend``, ``TextWithDefault``), then regenerate the docs. Read it as ``gptimage_settings.KEY``.

The API key and the base URL also come from the ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``
environment variables, OpenAI's own convention.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, overload

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from .domain import capabilities
from .domain.capabilities import BUILTIN_CATALOG, ModelCapabilities
from .domain.model_entries import build_catalog
from .domain.policy import Policy

DEFAULT_BASE_URL = "https://api.openai.com/v1"

T = TypeVar("T")

# Sections of docs/settings.md, in page order: (title, introduction in Markdown).
PROVIDER_API = "Provider and API"
POLICY = "Site policy"
REQUEST_DEFAULTS = "Request defaults"
HTTP = "HTTP"
PRICES_SECTION = "Prices"
STORAGE_SECTION = "Storage"
ACCESS = "Access"
JOBS = "Background jobs"
TARGETS = "Targets, templates and presets"
AUTOMATION = "Automation"
WIDGET = "Widget"

SECTIONS: dict[str, str] = {
    PROVIDER_API: "",
    POLICY: (
        "The `ALLOWED_*` keys and `MAX_N` **narrow** what the models allow; they can never widen it "
        '(listing `"4K"` does not make `1:1` at 4K possible). `None` means "whatever the model allows". '
        "Lists and tuples are both accepted; a plain string is an error (check `E006`), as are values "
        "no model knows and a policy that leaves nothing allowed. "
        "`python manage.py gptimage_matrix --policy` shows the result."
    ),
    REQUEST_DEFAULTS: (
        "Used when a form or an API call does not say. Check `W004` warns when a default is refused by "
        "the default model or the policy."
    ),
    HTTP: "Timeouts in seconds for the connection to the image service.",
    PRICES_SECTION: "",
    STORAGE_SECTION: "",
    ACCESS: "",
    JOBS: "",
    TARGETS: "How `generate_for()`, `apply_result()` and prompt templates behave; see "
    "[service.md](service.md#targets-and-candidates).",
    AUTOMATION: "Generation without anybody clicking: save hooks and batch runs; see "
    "[automation.md](automation.md).",
    WIDGET: "The Generate panel on image fields; see [widget.md](widget.md).",
}


class Setting(Generic[T]):
    """One ``GPTIMAGE`` key: a typed, read-only property of :class:`Settings`.

    ``kind`` names the type in the docs; :meth:`accepts` says whether a configured value has it
    (system check ``E010`` reports one that has not). ``resolve`` turns the configured value (or
    the default) into the effective one, for keys with a fallback (environment, derived value).
    """

    kind = "any"

    def __init__(
        self,
        default: Any,
        meaning: str,
        *,
        section: str,
        example: str,
        doc: str = "",
        default_doc: str = "",
        resolve: Callable[[Settings, Any], T] | None = None,
    ) -> None:
        if section not in SECTIONS:
            raise ValueError(f"Unknown settings section {section!r}; use one of {list(SECTIONS)}.")
        self.name = ""
        self.default = default
        self.meaning = meaning
        self.section = section
        self.example = example
        self.doc = doc
        self.default_doc = default_doc
        self.resolve = resolve

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Setting[T]: ...
    @overload
    def __get__(self, obj: Settings, owner: type | None = None) -> T: ...
    def __get__(self, obj: Settings | None, owner: type | None = None) -> Setting[T] | T:
        if obj is None:
            return self
        raw = obj.raw
        value = raw[self.name] if self.name in raw else copy.copy(self.default)
        return self.resolve(obj, value) if self.resolve is not None else value

    def __set__(self, obj: Settings, value: Any) -> None:
        raise AttributeError(f"GPTIMAGE settings are read-only here; set settings.GPTIMAGE[{self.name!r}].")

    def accepts(self, value: Any) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}={self.default!r}>"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Text(Setting[str]):
    kind = "string"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)


class OptionalText(Setting["str | None"]):
    kind = "string or None"

    def accepts(self, value: Any) -> bool:
        return value is None or isinstance(value, str)


class TextWithDefault(Setting[str]):
    """A string whose ``None`` means "the built-in fallback" (so the effective value is a string)."""

    kind = "string or None"

    def accepts(self, value: Any) -> bool:
        return value is None or isinstance(value, str)


class Number(Setting[float]):
    kind = "number"

    def accepts(self, value: Any) -> bool:
        return _is_number(value)


class Integer(Setting[int]):
    kind = "integer"

    def accepts(self, value: Any) -> bool:
        return _is_int(value)


class OptionalInteger(Setting["int | None"]):
    kind = "integer or None"

    def accepts(self, value: Any) -> bool:
        return value is None or _is_int(value)


class Flag(Setting[bool]):
    kind = "boolean"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class Names(Setting["Sequence[str] | None"]):
    kind = "list of strings or None"

    def accepts(self, value: Any) -> bool:
        return value is None or (
            isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
        )


class Backend(Setting[str]):
    """A backend name, alone or like a ``STORAGES`` entry: ``{"BACKEND": ..., "OPTIONS": {...}}``."""

    kind = 'string, {"BACKEND": ..., "OPTIONS": {...}} or None'

    def accepts(self, value: Any) -> bool:
        if isinstance(value, dict):
            return (
                set(value) <= {"BACKEND", "OPTIONS"}
                and isinstance(value.get("BACKEND"), str)
                and bool(value["BACKEND"])
                and isinstance(value.get("OPTIONS", {}), dict)
            )
        return value is None or isinstance(value, str)


class Entries(Setting["list[dict[str, Any]]"]):
    kind = "list of dicts"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list | tuple) and all(isinstance(v, dict) for v in value)


class Mapping(Setting["dict[str, Any]"]):
    kind = "dict"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)


# Fallbacks of the keys whose effective value is not simply the configured one.


def _api_key(s: Settings, value: Any) -> str | None:
    return value or os.environ.get("OPENAI_API_KEY") or None


def _base_url(s: Settings, value: Any) -> str:
    url = value or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    return url.rstrip("/") if isinstance(url, str) else url


def _provider(s: Settings, value: Any) -> str:
    if isinstance(value, dict):  # the STORAGES-like form
        value = value.get("BACKEND")
    if value:
        return str(value) if isinstance(value, str) else value
    return "openai" if s.API_KEY else "offline"


def _spool_dir(s: Settings, value: Any) -> str:
    return value or os.path.join(tempfile.gettempdir(), "django-gptimage-spool")


class Settings:
    """Typed access to ``settings.GPTIMAGE``: one read-only property per documented key."""

    # -- Provider and API --------------------------------------------------------------------

    PROVIDER = Backend(
        None,
        "Which provider makes the images, and its options.",
        section=PROVIDER_API,
        default_doc=', meaning `"openai"` when an API key is set (in `GPTIMAGE["API_KEY"]` or '
        '`OPENAI_API_KEY`) and `"offline"` otherwise',
        doc='The backend is `"openai"` (OpenAI\'s Images API), `"offline"` (draws labelled placeholder '
        "images locally: no network, no cost; for development, tests and demos), or a dotted path to your "
        "own subclass of `django_gptimage.providers.Provider`. Write it alone, or like an entry of "
        '`STORAGES`: `{"BACKEND": "openai", "OPTIONS": {...}}`, the options being keyword arguments of the '
        "provider class (see [providers.md](providers.md#options)). Options are checked when the provider "
        "is built and by check `E011`: an option the provider does not take, or a value of the wrong type, "
        "is `ImproperlyConfigured` and the generation fails as `configuration_error` before anything is "
        "sent. `gptimage_settings.PROVIDER` is the backend name. Check `E001` reports a backend that is "
        'neither built in nor importable, or a malformed dict; `E003` reports `"openai"` without a key; '
        "`W007` warns when the offline provider is chosen only because no key is set while `DEBUG` is off.",
        example='"PROVIDER": "offline"\n'
        '"PROVIDER": {"BACKEND": "openai", "OPTIONS": {"max_connections": 32}}\n'
        '"PROVIDER": "myproject.images.AzureImageProvider"',
        resolve=_provider,
    )
    PROVIDER_OPTIONS = Mapping(
        {},
        "The provider's options when `PROVIDER` is a plain name (the short form of its `OPTIONS`).",
        section=PROVIDER_API,
        doc='`"PROVIDER": "offline", "PROVIDER_OPTIONS": {"delay": 2.0}` means the same as `"PROVIDER": '
        '{"BACKEND": "offline", "OPTIONS": {"delay": 2.0}}`; giving both `PROVIDER["OPTIONS"]` and '
        "`PROVIDER_OPTIONS` is an error (check `E011`). For the `openai` provider the settings on this page "
        "(key, URL, timeouts) fill its options, and an option given here wins.",
        example='"PROVIDER_OPTIONS": {"delay": 2.0}  # offline provider: take 2 s per generation, to try progress UIs',
    )
    API_KEY = OptionalText(
        None,
        "The OpenAI API key.",
        section=PROVIDER_API,
        default_doc=", then the `OPENAI_API_KEY` environment variable",
        doc="Prefer the environment variable; never commit a key.",
        example='"API_KEY": os.environ.get("OPENAI_API_KEY_IMAGES")',
        resolve=_api_key,
    )
    BASE_URL = TextWithDefault(
        None,
        "Root of the OpenAI-compatible API, ending with `/v1`.",
        section=PROVIDER_API,
        default_doc=f", then the `OPENAI_BASE_URL` environment variable, then `{DEFAULT_BASE_URL}`. "
        "A trailing `/` is removed",
        doc="Check `W001` warns when it does not end with `/v1`; `E007` reports a value that is not an "
        "http(s) URL. Change it for a proxy, a gateway or a local test server.",
        example='"BASE_URL": "https://llm-gateway.internal.example.com/v1"',
        resolve=_base_url,
    )
    ORGANIZATION = OptionalText(
        None,
        "OpenAI organization id, sent as the `OpenAI-Organization` header when set.",
        section=PROVIDER_API,
        doc="Only needed when the key belongs to several organizations.",
        example='"ORGANIZATION": "org-abc123"',
    )
    PROJECT = OptionalText(
        None,
        "OpenAI project id, sent as the `OpenAI-Project` header when set, so usage is billed to that project.",
        section=PROVIDER_API,
        example='"PROJECT": "proj_abc123"',
    )
    MODEL = Text(
        "gpt-image-2",
        "The model used when a request does not name one.",
        section=PROVIDER_API,
        doc="An id of the model catalog: the built-in ids listed in [sizes.md](sizes.md#model-catalog) "
        "(including the dated snapshot `gpt-image-2-2026-04-21`), or one added by `MODELS`. Ids are "
        "matched exactly. Check `E002` reports an unknown id.",
        example='"MODEL": "gpt-image-1.5"',
    )
    MODELS = Mapping(
        {},
        "Models added to the built-in catalog, or built-in models corrected, by id.",
        section=PROVIDER_API,
        default_doc=" (the built-in catalog only)",
        doc="Each value is a dict. A new id needs `like`: the known id whose capabilities it starts from "
        "(a built-in one or another entry). The other keys replace one capability each: `sizes` "
        '(`"flexible"`, or a list of `"WIDTHxHEIGHT"`), `auto_size`, `edge_multiple`, `max_edge`, '
        "`min_pixels`, `max_pixels`, `max_ratio` (the flexible-size limits), `qualities` (from `low`, "
        "`medium`, `high`, `xhigh`, `max`, `auto`), `formats`, `backgrounds`, `transparent_formats` "
        "(the formats a transparent background allows), `modes`, `max_n`, `max_prompt_chars`, "
        "`max_input_images`, `max_input_bytes`, `input_formats`, `mask` (whether edits take a mask), "
        "`max_mask_bytes`, `input_fidelity` (whether edits take it), `partial_images` (the most partial "
        "previews, 0-3) and `prices_as` (the id whose prices apply when `PRICES` has none for this id). "
        "Use it for a model OpenAI released after this version, a dated snapshot, or to correct the "
        "assumed capabilities of the gpt-image-2.5 and 2.6 families (see "
        "[sizes.md](sizes.md#model-catalog)). Check `E015` reports a malformed entry; a site that runs "
        "anyway gets `ImproperlyConfigured` when a model is looked up.",
        example='"MODELS": {\n'
        '    "gpt-image-2.7": {"like": "gpt-image-2.6", "qualities": ["low", "medium", "high", "auto"]},\n'
        '    "gpt-image-1-mini-2025-10-06": {"like": "gpt-image-1-mini"},\n'
        '    "gpt-image-2.5": {"backgrounds": ["auto", "opaque"]},  # correct a built-in entry\n'
        "}",
    )

    # -- Site policy -------------------------------------------------------------------------

    ALLOWED_MODELS = Names(
        None,
        "Model ids editors may choose.",
        section=POLICY,
        default_doc=" (any GPT image model)",
        doc="Matched exactly, so list dated snapshots you want to allow. Include `MODEL`.",
        example='"ALLOWED_MODELS": ["gpt-image-2", "gpt-image-1-mini"]',
    )
    ALLOWED_MODES = Names(
        None,
        "Modes editors may use.",
        section=POLICY,
        default_doc=' (`"text-to-image"` and `"image-to-image"`)',
        example='"ALLOWED_MODES": ["text-to-image"]',
    )
    ALLOWED_RATIOS = Names(
        None,
        "Aspect ratios editors may choose.",
        section=POLICY,
        default_doc=" (`auto`, `1:1`, `3:2`, `2:3`, `4:3`, `3:4`, `5:4`, `4:5`, `16:9`, `9:16`, `2:1`, "
        "`1:2`, `21:9`, `9:21`)",
        doc="Also applies to explicit `WIDTHxHEIGHT` sizes, by their nearest ratio.",
        example='"ALLOWED_RATIOS": ["1:1", "16:9", "9:16"]',
    )
    ALLOWED_TIERS = Names(
        None,
        "Resolution tiers editors may choose: the site-wide ceiling.",
        section=POLICY,
        default_doc=" (`1K`, `2K`, `4K`)",
        doc="The user's plan (`ACCESS_RESOLVER`) can narrow it further per user.",
        example='"ALLOWED_TIERS": ["1K", "2K"]',
    )
    ALLOWED_QUALITIES = Names(
        None,
        "Qualities editors may choose.",
        section=POLICY,
        default_doc=" (`low`, `medium`, `high`, `xhigh`, `max`, `auto`)",
        doc="Each model offers its own: gpt-image-1, 1.5 and 2 take `low`, `medium`, `high` and `auto`; "
        "the gpt-image-2.5 and 2.6 families also `xhigh` and `max` (see [sizes.md](sizes.md#model-catalog)).",
        example='"ALLOWED_QUALITIES": ["low", "medium"]',
    )
    ALLOWED_FORMATS = Names(
        None,
        "Output formats editors may choose.",
        section=POLICY,
        default_doc=" (`png`, `jpeg`, `webp`)",
        doc="Check `W003` warns when `webp` is allowed but Pillow cannot read it.",
        example='"ALLOWED_FORMATS": ["png", "webp"]',
    )
    MAX_N = OptionalInteger(
        None,
        "Most images per request.",
        section=POLICY,
        default_doc=" (the model's limit: 10)",
        example='"MAX_N": 4',
    )

    # -- Request defaults --------------------------------------------------------------------

    DEFAULT_RATIO = Text(
        "1:1",
        "Aspect ratio of a request that does not say.",
        section=REQUEST_DEFAULTS,
        example='"DEFAULT_RATIO": "16:9"',
    )
    DEFAULT_TIER = Text(
        "1K",
        "Resolution tier of a request that does not say.",
        section=REQUEST_DEFAULTS,
        example='"DEFAULT_TIER": "2K"',
    )
    DEFAULT_QUALITY = Text(
        "auto",
        "Quality of a request that does not say.",
        section=REQUEST_DEFAULTS,
        default_doc=" (the model decides; estimated like `high` for prices)",
        example='"DEFAULT_QUALITY": "medium"',
    )
    DEFAULT_FORMAT = Text(
        "png",
        "Output format of a request that does not say.",
        section=REQUEST_DEFAULTS,
        example='"DEFAULT_FORMAT": "webp"',
    )
    DEFAULT_BACKGROUND = Text(
        "auto",
        "Background of a request that does not say.",
        section=REQUEST_DEFAULTS,
        default_doc=" (one of `auto`, `opaque`, `transparent`; `transparent` needs png or webp)",
        example='"DEFAULT_BACKGROUND": "opaque"',
    )

    # -- HTTP --------------------------------------------------------------------------------

    CONNECT_TIMEOUT = Number(
        10.0, "Time to open a connection.", section=HTTP, example='"CONNECT_TIMEOUT": 5.0'
    )
    READ_TIMEOUT = Number(
        600.0,
        "Longest wait between two pieces of the answer.",
        section=HTTP,
        doc="High-quality and 4K images take minutes: keep it generous. A read timeout ends the attempt "
        "with `timeout` (see [errors.md](errors.md)).",
        example='"READ_TIMEOUT": 900.0',
    )
    WRITE_TIMEOUT = Number(
        120.0,
        "Time to send the request, including up to 16 input images of 50 MB.",
        section=HTTP,
        example='"WRITE_TIMEOUT": 300.0',
    )
    POOL_TIMEOUT = Number(
        30.0, "Wait for a free connection from the pool.", section=HTTP, example='"POOL_TIMEOUT": 60.0'
    )
    MAX_CONNECTIONS = Integer(
        256,
        "Size of the provider's connection pool (one pool per process, reused between generations).",
        section=HTTP,
        example='"MAX_CONNECTIONS": 32',
    )
    PARTIAL_IMAGES = Integer(
        0,
        "Number of partial preview images (1-3) to stream while an image is generated; 0 is off.",
        section=HTTP,
        doc="Shown to the editor as progress. Each partial image is billed as extra output tokens.",
        example='"PARTIAL_IMAGES": 2',
    )

    # -- Prices ------------------------------------------------------------------------------

    PRICES = Mapping(
        {},
        "USD per million tokens, per model id, overriding the built-in prices key by key.",
        section=PRICES_SECTION,
        default_doc=" (OpenAI's published prices built into `django_gptimage.domain.pricing`)",
        doc="Keys: `text_input`, `image_input`, `image_output`. A model id without an entry uses the prices "
        "of its catalog entry's `prices_as` (a dated snapshot its base model's; the assumed gpt-image-2.5 and "
        "2.6 families gpt-image-2's; see [sizes.md](sizes.md#model-catalog)), else of the longest priced "
        "prefix of its id, else gpt-image-2's. Check `E015` reports a catalog model that has no price. "
        "Used for estimates before sending and for the actual cost from the response's token usage; "
        "`xhigh` and `max` are estimated at 2x and 4x the output tokens of `high` (an assumption: OpenAI "
        "publishes no count for them).",
        example='"PRICES": {"gpt-image-2": {"image_output": "30.00"}, '
        '"my-finetune": {"text_input": 5, "image_input": 8, "image_output": 30}}',
    )

    # -- Storage -----------------------------------------------------------------------------

    STORAGE = Text(
        "default",
        "The alias in `settings.STORAGES` where inputs and results are saved.",
        section=STORAGE_SECTION,
        doc="Check `E004` reports an alias that does not exist. See [storage.md](storage.md).",
        example='"STORAGE": "gptimage"  # with STORAGES["gptimage"] = '
        '{"BACKEND": "storages.backends.s3.S3Storage", ...}',
    )
    UPLOAD_TO = Text(
        "gptimage/{date:%Y/%m/%d}/{id}/{index}-{ratio_slug}-{tier}-{hash}.{ext}",
        "Path template of result images within the storage.",
        section=STORAGE_SECTION,
        doc="Placeholders: `{date}` (creation time, with a `strftime` format after the colon), `{id}` "
        "(the generation's UUID), `{index}` (position in the result), `{ratio}` (`16:9`), `{ratio_slug}` "
        "(`16x9`), `{tier}`, `{model}`, `{app_label}` and `{model_name}` (of the model field the image is "
        "for, `gptimage`/`generation` otherwise), `{hash}` (of the image bytes), `{ext}`. The path is "
        "relative to the storage. Check `E013` formats the template with sample values and reports an "
        "unknown placeholder, an absolute path or a `..`; the same test runs before a provider is called, "
        "so a template that cannot name a file never costs a paid call.",
        example='"UPLOAD_TO": "covers/{date:%Y/%m}/{id}-{index}.{ext}"',
    )
    INPUT_UPLOAD_TO = Text(
        "gptimage/inputs/{id}/{role}-{index}.{ext}",
        "Path template of uploaded input images and masks.",
        section=STORAGE_SECTION,
        doc="Placeholders: those of `UPLOAD_TO` except `{hash}`, plus `{role}` (`image` or `mask`); "
        "`{index}` is the input's position. Checked like `UPLOAD_TO` (check `E013`), when a generation is "
        "requested.",
        example='"INPUT_UPLOAD_TO": "gptimage-inputs/{id}/{role}-{index}.{ext}"',
    )
    KEEP_FILES_ON_DELETE = Flag(
        False,
        "Whether deleting a generation leaves its stored images, inputs and preview in storage.",
        section=STORAGE_SECTION,
        doc="By default the files go with the record (after the deleting transaction commits; a file "
        "already missing is no error). Set `True` when storage keeps its own retention or audit copy. "
        "Images applied to an object's field are copies in that field's storage and are never deleted.",
        example='"KEEP_FILES_ON_DELETE": True',
    )
    SPOOL_DIR = TextWithDefault(
        None,
        "Local directory where paid-for image bytes are kept until they are safely in storage.",
        section=STORAGE_SECTION,
        default_doc=", meaning `<system temp dir>/django-gptimage-spool`",
        doc="Bytes are written there as they arrive; a `storage_error` retry stores them from there "
        "without paying again. Use a persistent directory in production: check `W002` warns when it is "
        "under the system's temporary directory with `DEBUG = False`. Every worker needs write access.",
        example='"SPOOL_DIR": "/var/lib/mysite/gptimage-spool"',
        resolve=_spool_dir,
    )
    STAGING_STORAGE = OptionalText(
        None,
        "An alias in `settings.STORAGES` every worker host can read, where paid-for bytes are staged "
        "until they are stored.",
        section=STORAGE_SECTION,
        default_doc=" (staging off: paid-for bytes wait only in each host's `SPOOL_DIR`)",
        doc="Set it when workers run on more than one machine. Each image is copied there (under "
        "`gptimage-staging/<generation id>/`) as soon as it has arrived, before the results are stored, "
        "and deleted once they are; a store-only retry that runs on a host whose `SPOOL_DIR` lacks the "
        "file reads it from there, so neither a storage outage nor the loss of the host that received "
        "the images costs a second paid call. It may be the `STORAGE` alias itself; a separate one (a "
        "shared volume, another bucket) also survives an outage of the result storage. Check `E004` "
        "reports an alias that does not exist. See [storage.md](storage.md#paid-bytes-across-hosts).",
        example='"STAGING_STORAGE": "gptimage-staging"  # with STORAGES["gptimage-staging"] = {...}',
    )
    CLEANUP_AFTER = Integer(
        6 * 3600,
        "Seconds after which the reaper removes what ended or deleted generations left behind.",
        section=STORAGE_SECTION,
        doc="Spool directories, staged copies and partial previews of generations that ended (or were "
        "deleted) are removed as they end; a worker killed at the wrong moment, or a host that was not the "
        "one running the generation, leaves them. The reaper removes such leftovers once the generation has "
        "been ended this long (for a spool directory: also untouched this long; never less than two "
        "`JOB_TIMEOUT`s). Queued and running generations, and images kept for a store-only retry, are never "
        "removed. See [jobs.md](jobs.md#cleaning-up).",
        example='"CLEANUP_AFTER": 86400',
    )

    # -- Access ------------------------------------------------------------------------------

    ACCESS_RESOLVER = OptionalText(
        "django_gptimage.access.resolver.plan_access",
        "Dotted path to a function `f(user) -> Access | iterable of tiers | None` deciding what a user has unlocked.",
        section=ACCESS,
        default_doc=" (the access plans, see [access.md](access.md))",
        doc="`django_gptimage.access.resolver.Access` lists `tiers`, `models`, `qualities`, `max_n` and "
        "`monthly_quota` (each `None` for no restriction) and may explain how to unlock more; the older "
        "form, an iterable of tiers, still works. `None` from the function, or `None` here, means no "
        "restriction beyond the site policy. It can only narrow the `ALLOWED_*` keys and `MAX_N`. A refused "
        "value ends with `access_denied`. Write your own for a site with its own billing.",
        example='"ACCESS_RESOLVER": "myproject.billing.unlocked_access"',
    )
    DEFAULT_PLAN = Text(
        "free",
        "The [access plan](access.md#access-plans) of a user with no plan of their own and none through a group.",
        section=ACCESS,
        doc="Anonymous users get it too. A name with no plan record falls back to the shipped definition "
        "for `free` and `paid`; any other missing name unlocks nothing and says so.",
        example='"DEFAULT_PLAN": "paid"  # an intranet where everyone may make 2K and 4K images',
    )
    SUPERUSER_PLAN = OptionalText(
        None,
        "A plan every superuser gets at least (the more generous of it and their own plans).",
        section=ACCESS,
        default_doc=" (superusers get their plan like anyone else: signed in, staff or superuser is not paid)",
        example='"SUPERUSER_PLAN": "paid"',
    )
    PLAN_WITHOUT_USER = OptionalText(
        None,
        "The plan of requests made for no user at all.",
        section=ACCESS,
        default_doc=" (no plan limits)",
        doc="That is `request_generation(user=None)` from your own code, a save hook that passes no user, "
        "`gptimage_generate` without `--user`. Set it when such requests should be limited too. Requests "
        "for an anonymous user get `DEFAULT_PLAN`.",
        example='"PLAN_WITHOUT_USER": "free"',
    )
    UPGRADE_HINT = Text(
        "ask a site administrator to upgrade your account",
        "The end of the unlock rule editors read when their plan does not unlock what they asked for.",
        section=ACCESS,
        doc='"2K and 4K need the Paid plan; *ask a site administrator to upgrade your account* (your plan: '
        'Free)."',
        example='"UPGRADE_HINT": "see Settings > Billing, or write to billing@example.com"',
    )

    CREDITS = Flag(
        False,
        "Whether generations are paid for with credits from the ledger (see [access.md](access.md#credits)).",
        section=ACCESS,
        default_doc=" (off: no credits are reserved or charged, as before)",
        doc="When on, a request for a signed-in user reserves its estimate in credits before it is queued "
        "(not enough credits: `insufficient_credits`, nothing recorded or sent), captures the actual cost "
        "when it succeeds and gives the difference back, and is refunded once when it fails, by its error "
        "code's refund rule. Requests made for no user at all (your own code, a save hook, "
        "`gptimage_generate` without `--user`) are not charged. Grant credits with `manage.py "
        "gptimage_credits grant USER AMOUNT`.",
        example='"CREDITS": True',
    )
    CREDITS_PER_USD = Number(
        100.0,
        "How many credits one US dollar of the image service's price is: the unit of every credit amount.",
        section=ACCESS,
        default_doc=" (one credit is one US cent)",
        doc="Prices (`PRICES`) are in US dollars; a generation estimated at 0.0530 USD reserves 5.30 credits "
        "with the default. `gptimage_credits grant`, `balance` and the ledger all use this unit. Changing "
        "it later does not convert balances already granted. Check `E014` reports a value that is not "
        "positive.",
        example='"CREDITS_PER_USD": 1.0  # credits are dollars',
    )
    CHARGE_MAYBE_BILLED = Flag(
        False,
        "Whether failures the image service may have billed without delivering images are charged.",
        section=ACCESS,
        default_doc=" (refunded: the site bears the risk, not the editor)",
        doc="These are the codes whose refund rule is `if_configured` (`timeout`, `bad_response`, "
        "`abandoned`; see [access.md](access.md#what-each-outcome-costs)). When `True` they are charged: "
        "the actual cost when the response's usage came back, else the reservation (the estimate).",
        example='"CHARGE_MAYBE_BILLED": True',
    )
    SPEND_CAPS = Mapping(
        {},
        "Most money (USD) spent per day and per calendar month, per user and for the whole site.",
        section=ACCESS,
        default_doc=" (no caps)",
        doc='Keys `"user"` and `"site"`, each a dict with `"daily"` and/or `"monthly"` amounts in US '
        "dollars (numbers or decimal strings; `None` for no cap). Spend is the actual cost of finished "
        "generations plus the estimate of those still queued or running, by the site's time zone. A "
        "request that would pass a cap is refused before anything is sent with `spend_cap_reached`. "
        "Works with or without `CREDITS`. Check `E014` reports a malformed value.",
        example='"SPEND_CAPS": {"user": {"daily": 2, "monthly": 20}, "site": {"monthly": "500.00"}}',
    )

    # -- Background jobs ---------------------------------------------------------------------

    QUEUE = Text(
        "gptimage",
        "Name of the django-rq queue generations run on.",
        section=JOBS,
        doc='It must be in `settings.RQ_QUEUES` when `RUN_MODE` is `"queue"` (check `E005`). Give it a '
        "`DEFAULT_TIMEOUT` of at least `JOB_TIMEOUT`.",
        example='"QUEUE": "images"',
    )
    RUN_MODE = Text(
        "queue",
        'Where generations run: `"queue"` (RQ workers) or `"sync"` (in the calling process).',
        section=JOBS,
        doc='`"queue"` runs generations in RQ workers (`python manage.py gptimage_worker` or '
        '`python manage.py rqworker gptimage`); `"sync"` runs them in the calling process (development, '
        "tests, small sites; a request then waits minutes). Check `E009` reports any other value.",
        example='"RUN_MODE": "sync"',
    )
    JOB_TIMEOUT = Integer(
        900,
        "RQ's limit for one generation job, in seconds, after which the worker kills it.",
        section=JOBS,
        doc="RQ's own default (180 s) is too short for 4K or high-quality images. Keep it longer than "
        "`READ_TIMEOUT` (check `W006`), so a slow answer ends as an HTTP read timeout, not a killed job.",
        example='"JOB_TIMEOUT": 1200',
    )
    MAX_ATTEMPTS = Integer(
        4,
        "Most attempts of one generation, the first included.",
        section=JOBS,
        doc="Only for failures whose retry rule allows a retry (see [errors.md](errors.md)).",
        example='"MAX_ATTEMPTS": 3',
    )
    RETRY_BACKOFF_BASE = Number(
        2.0,
        "Base of the exponential backoff between attempts, in seconds.",
        section=JOBS,
        doc="Waits are base, 2 x base, 4 x base, ... with jitter; a `Retry-After` from the service wins "
        "when it is longer.",
        example='"RETRY_BACKOFF_BASE": 5.0',
    )
    RETRY_BACKOFF_MAX = Number(
        300.0,
        "Longest backoff between two attempts, in seconds.",
        section=JOBS,
        doc="A longer `Retry-After` from the service is still honoured, up to `RETRY_AFTER_MAX`.",
        example='"RETRY_BACKOFF_MAX": 120.0',
    )
    RETRY_AFTER_MAX = Number(
        900.0,
        "The longest `Retry-After` (or `retry-after-ms`) from the image service that is waited for, in seconds.",
        section=JOBS,
        doc="A retry never starts before the service's `Retry-After`; when the service asks for a longer "
        "wait than this, the generation fails as `rate_limited` instead of sitting queued for that long, "
        "and the message says why.",
        example='"RETRY_AFTER_MAX": 3600.0',
    )
    RETRY_ON_TIMEOUT = Flag(
        False,
        "Whether a `timeout` is retried.",
        section=JOBS,
        doc="A timed-out request may still have been billed (the API has no idempotency key), so a retry "
        "can pay twice; opt in only if that is acceptable.",
        example='"RETRY_ON_TIMEOUT": True',
    )
    REQUEUE_ABANDONED = Flag(
        False,
        "Whether a generation whose worker died mid-way (`abandoned`) is queued again.",
        section=JOBS,
        doc="Like a timeout, the lost attempt may have been billed.",
        example='"REQUEUE_ABANDONED": True',
    )
    STALE_AFTER = Integer(
        120,
        "Seconds without a heartbeat after which a running generation counts as abandoned.",
        section=JOBS,
        doc="The worker was killed, ran out of memory, or was stopped by a deploy: the generation ends as "
        "`abandoned`, or is queued again when `REQUEUE_ABANDONED` is set. Keep it well above the "
        "heartbeat interval.",
        example='"STALE_AFTER": 300',
    )
    REAP_INTERVAL = Integer(
        60,
        "How often the reaper runs, in seconds.",
        section=JOBS,
        doc="The reaper finishes abandoned generations (see `STALE_AFTER`) and enqueues again queued "
        "generations whose job was lost. `gptimage_worker` schedules it itself; otherwise run "
        "`python manage.py gptimage_reap` periodically.",
        example='"REAP_INTERVAL": 30',
    )
    KEEP_RESULT_AFTER_CANCEL = Flag(
        True,
        "Whether images that arrive after their generation was canceled are kept.",
        section=JOBS,
        doc="The request was already paid for: keep and store them on the canceled record (`True`), or "
        "discard them (`False`).",
        example='"KEEP_RESULT_AFTER_CANCEL": False',
    )
    RATE_LIMITS = Mapping(
        {},
        "Requests and images per minute per model, one limit shared by every worker process and thread.",
        section=JOBS,
        default_doc=" (no pacing: OpenAI's limits depend on the account's tier, from a few images a minute "
        "to hundreds, so no figure would fit every site)",
        doc='Keys are model ids, or `"*"` for every model not listed; values have `requests_per_minute` '
        "and/or `images_per_minute` (positive integers or `None`) and optionally `headroom` (default `0.03`: "
        "the limiter paces at 97% of the figure, so network jitter does not cross it). Set your account's "
        "limits (OpenAI's dashboard, *Limits*). Turns are taken in Redis (the queue's), first come first "
        "served; a wait up to 10 s is slept, a longer one puts the generation back in the queue for its "
        "turn (phase `throttled`, not an attempt, nothing sent or billed). A lower `x-ratelimit-limit-*` "
        "announced by the API wins. Checks `E012` and `W005`. See "
        "[jobs.md](jobs.md#one-rate-limit-for-all-workers).",
        example='"RATE_LIMITS": {"gpt-image-2": {"requests_per_minute": 50, "images_per_minute": 120}}',
    )
    RATE_LIMIT_BACKOFF = Flag(
        True,
        "Whether every worker pauses when the API answers 429 or says a rate limit is used up.",
        section=JOBS,
        doc="On a `rate_limited` 429 every worker waits the `Retry-After` (at most `RETRY_AFTER_MAX`); on "
        "an answer with `x-ratelimit-remaining-*` at 0, until its `x-ratelimit-reset-*`. Works with or "
        "without `RATE_LIMITS`. `False` leaves each generation to its own retries.",
        example='"RATE_LIMIT_BACKOFF": False',
    )

    # -- Targets, templates and presets ------------------------------------------------------

    PRESETS = Mapping(
        {},
        "Named presets, merged over the shipped `cover`, `poster`, `square` and `product`.",
        section=TARGETS,
        default_doc=" (only the shipped presets)",
        doc="A name you define replaces the shipped preset of that name; `None` removes one. A preset is a "
        'dict with an `outputs` list and optional `label`, `description` and `models` (`"app_label.Model"` '
        "labels it is meant for: its templates and fields are then checked against them, and other models "
        "are refused). A dict without `outputs` is a one-output preset. Output keys: `key` and "
        "`prompt_template` (required), `model` (empty: `MODEL`), `mode` (`text-to-image`, or "
        "`image-to-image` with `source_field`, the object's image field to start from), `ratio`, `tier`, "
        "`quality`, `output_format`, `background`, `n`, and `field` (the image field the output fills; "
        "empty: the field `generate_for()` is given). A `PromptPreset` row with the same name wins over "
        "the setting. Presets defined here are checked at startup: check `E020` reports a malformed preset, "
        "a template that does not compile or names unknown fields, `E021` a size the matrix or the policy "
        "refuses (with the matrix's reason).",
        example='"PRESETS": {\n'
        '    "event-poster": {"label": "Event poster", "models": ["events.Event"], "ratio": "2:3", "tier": "2K",\n'
        '                     "prompt_template": "Poster for {{ object.title }}, {{ object.date|date:\'F Y\' }}"},\n'
        '    "product": {"models": ["shop.Product"], "outputs": [\n'
        '        {"key": "main", "field": "main_visual", "ratio": "1:1", "tier": "2K", "mode": "image-to-image",\n'
        '         "source_field": "photo", "prompt_template": "{{ object.name }} on white, studio light"},\n'
        '        {"key": "ad", "field": "ad_creative", "ratio": "16:9", "tier": "2K",\n'
        '         "prompt_template": "Advertising image featuring {{ object.name }}"}]},\n'
        '    "square": None,  # not offered on this site\n'
        "}",
    )
    PROMPT_TEMPLATE_MAX_LENGTH = Integer(
        8000,
        "The most characters a rendered prompt template may have.",
        section=TARGETS,
        doc="A longer one is refused before anything is sent; the rendered prompt is then also checked "
        "against the model's own limit (32,000).",
        example='"PROMPT_TEMPLATE_MAX_LENGTH": 4000',
    )
    APPLY_DELETE_PREVIOUS = Flag(
        False,
        "Whether `apply_result()` deletes the file the target field held before.",
        section=TARGETS,
        default_doc=" (the previous file is kept)",
        doc="Deleted once the save has committed; `apply_result(..., delete_previous=...)` overrides it per "
        "call. The `AppliedImage` row records the previous name and whether it was deleted.",
        example='"APPLY_DELETE_PREVIOUS": True',
    )

    # -- Automation --------------------------------------------------------------------------

    AUTOGENERATE = Entries(
        [],
        "Save hooks: image fields generated when an object is saved.",
        section=AUTOMATION,
        default_doc=" (none)",
        doc='Each entry is a dict: `model` (`"app_label.Model"`), `field` (its image field), `preset` '
        'and/or `template` (a template replaces the preset\'s prompt), `when` (`"created"`, `"empty"`: '
        'the field is empty, the default, or `"changed"` with `fields`, the source fields whose change '
        'since the hook\'s last generation starts a new one), `apply` (`"candidates"`, the default: the '
        'images wait for an editor; `"direct"`: the first image is applied, with `alt_field` set to its '
        "alt text if given) and an optional `name`. `django_gptimage.autogenerate(...)` registers the same "
        "from code. Hooks run after the save commits, never on raw saves (`loaddata`), never for a save that "
        "applies a result, and reuse a generation with the same fingerprint. Checks `E030`-`E034` report "
        "malformed entries, unknown models, fields and presets, and templates naming missing fields.",
        example='"AUTOGENERATE": [\n'
        '    {"model": "cms.Article", "field": "cover", "preset": "cover", "when": "empty"},\n'
        '    {"model": "cms.Product", "field": "main_visual", "preset": "product", "when": "created"},\n'
        '    {"model": "cms.Event", "field": "poster", "preset": "poster", "when": "changed",\n'
        '     "fields": ["title", "date"], "apply": "direct"},\n'
        "]",
    )

    # -- Widget ------------------------------------------------------------------------------

    WIDGET_RATE_LIMIT = OptionalInteger(
        10,
        "Generate requests one user may send from widgets per minute.",
        section=WIDGET,
        default_doc=" (per user, per minute)",
        doc="Counted in Django's default cache (use a shared cache such as Redis or Memcached when the site "
        "runs several processes); one more answers HTTP 429 with `Retry-After` and nothing is recorded or "
        "sent. `None` turns the limit off (the site policy, access plans and spend caps still apply).",
        example='"WIDGET_RATE_LIMIT": 30',
    )

    # -- Access to the raw dict and derived values -------------------------------------------

    @property
    def raw(self) -> dict[str, Any]:
        value = getattr(django_settings, "GPTIMAGE", None)
        return value if isinstance(value, dict) else {}

    def get(self, key: str) -> Any:
        """The effective value of ``key`` (as its property returns it)."""
        if key not in SETTINGS:
            raise AttributeError(f"Unknown GPTIMAGE setting {key!r}")
        return getattr(self, key)

    @property
    def provider_options(self) -> dict[str, Any]:
        """The provider's keyword options: ``PROVIDER["OPTIONS"]`` or ``PROVIDER_OPTIONS``."""
        configured = self.raw.get("PROVIDER")
        short = self.raw.get("PROVIDER_OPTIONS")
        if isinstance(configured, dict) and "OPTIONS" in configured:
            if short:
                raise ImproperlyConfigured(
                    "GPTIMAGE['PROVIDER'] has OPTIONS and GPTIMAGE['PROVIDER_OPTIONS'] is set too; "
                    "keep one of them."
                )
            options = configured["OPTIONS"]
            where = "GPTIMAGE['PROVIDER']['OPTIONS']"
        else:
            options = self.PROVIDER_OPTIONS
            where = "GPTIMAGE['PROVIDER_OPTIONS']"
        if not isinstance(options, dict):
            raise ImproperlyConfigured(
                f"{where} must be a dict of keyword options, not {type(options).__name__}."
            )
        return dict(options)

    @property
    def policy(self) -> Policy:
        def tup(value: Sequence[str] | None) -> tuple[str, ...] | None:
            return None if value is None else tuple(value)

        return Policy(
            models=tup(self.ALLOWED_MODELS),
            modes=tup(self.ALLOWED_MODES),
            ratios=tup(self.ALLOWED_RATIOS),
            tiers=tup(self.ALLOWED_TIERS),
            qualities=tup(self.ALLOWED_QUALITIES),
            formats=tup(self.ALLOWED_FORMATS),
            max_n=self.MAX_N,
        )


# The table: every key in declaration order, and its default (kept for callers of DEFAULTS).
SETTINGS: dict[str, Setting[Any]] = {
    name: value for name, value in vars(Settings).items() if isinstance(value, Setting)
}
DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}

gptimage_settings = Settings()


class _SiteCatalog:
    """The model catalog with ``GPTIMAGE["MODELS"]`` merged in, rebuilt when the setting changes."""

    def __init__(self) -> None:
        # (a copy of the raw setting, the merged catalog, its problems), replaced as one value so
        # threads never see a catalog with another setting's problems.
        self._state: tuple[Any, dict[str, ModelCapabilities], list[str]] | None = None

    def _current(self) -> tuple[Any, dict[str, ModelCapabilities], list[str]]:
        raw = gptimage_settings.raw.get("MODELS") or {}
        state = self._state
        if state is None or raw != state[0]:
            built, problems = build_catalog(raw, BUILTIN_CATALOG)
            # The setting is a live dict: compare later reads against a copy.
            state = self._state = (copy.deepcopy(raw), built, problems)
        return state

    def problems(self) -> list[str]:
        """What is wrong with ``GPTIMAGE["MODELS"]`` (for check ``E015``)."""
        return list(self._current()[2])

    def __call__(self) -> dict[str, ModelCapabilities]:
        _, built, problems = self._current()
        if problems:
            raise ImproperlyConfigured(
                "GPTIMAGE['MODELS'] is malformed (check django_gptimage.E015): " + " ".join(problems)
            )
        return built


site_catalog = _SiteCatalog()
capabilities.use_site_catalog(site_catalog)
