"""What each OpenAI image model accepts: an explicit catalog of model ids, not a pattern.

Every id the package knows is listed with its own limits. An id that is not listed is unknown,
however much it looks like a real one (``gpt-image-2.9``, ``gpt-image-2-flare-mini``): a
guessed id would get guessed limits, and a request OpenAI refuses is found out only after the
editor waited for it. Sites add or correct models without a release through
``GPTIMAGE["MODELS"]`` (parsed in :mod:`.model_entries`); the site's catalog is installed with
:func:`use_site_catalog` by ``django_gptimage.conf``, so this module stays free of Django.

Sources: gpt-image-1, gpt-image-1-mini, gpt-image-1.5, gpt-image-2 and its snapshot
gpt-image-2-2026-04-21 are described by OpenAI's API contract (openapi.yaml, CreateImageRequest
and CreateImageEditRequest). The gpt-image-2.5 and gpt-image-2.6 families (their base, ``-flare``
and ``-sunburst`` ids) are not in the contract: their entries are ASSUMPTIONS, modelled on
gpt-image-2 plus the newer ``xhigh`` and ``max`` qualities, and marked ``assumed=True``. A site
that knows better overrides them in ``GPTIMAGE["MODELS"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

# Every quality some catalog model accepts, in the order forms offer them. The contract's four
# (low, medium, high, auto) are what gpt-image-1/1.5/2 take; xhigh and max are the newer
# families'.
CONTRACT_QUALITIES = ("low", "medium", "high", "auto")
NEWER_QUALITIES = ("low", "medium", "high", "xhigh", "max", "auto")
QUALITIES = NEWER_QUALITIES
FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("auto", "opaque", "transparent")
MODES = ("text-to-image", "image-to-image")
INPUT_FORMATS = ("png", "jpeg", "webp")

# gpt-image-2's published size limits (the contract's size text). The pixel floor is from
# OpenAI's image generation guide; the contract only says "the model's current pixel limits".
EDGE_MULTIPLE = 16
MAX_EDGE = 3840
MAX_PIXELS = 8_294_400  # 3840 x 2160
MIN_PIXELS = 655_360
MAX_RATIO = 3.0

MB = 1024 * 1024


@dataclass(frozen=True)
class ModelCapabilities:
    """Limits of one model id. ``fixed_sizes`` is None for models that take any valid WxH.

    ``family`` groups ids that share size rules (``gpt-image-1``: fixed sizes, ``gpt-image-2``:
    flexible sizes). ``snapshot_of`` is the id a dated snapshot pins. ``prices_as`` is the id whose
    built-in prices apply when ``GPTIMAGE["PRICES"]`` has no entry for this id. ``assumed`` is
    True for entries not described by OpenAI's contract.
    """

    model: str
    family: str
    fixed_sizes: tuple[tuple[int, int], ...] | None = None
    supports_auto_size: bool = True
    qualities: tuple[str, ...] = CONTRACT_QUALITIES
    formats: tuple[str, ...] = FORMATS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    transparent_formats: tuple[str, ...] = ("png", "webp")
    modes: tuple[str, ...] = MODES
    max_n: int = 10
    max_prompt_chars: int = 32_000
    max_input_images: int = 16
    max_input_bytes: int = 50 * MB
    supports_mask: bool = True
    max_mask_bytes: int = 4 * MB
    input_formats: tuple[str, ...] = INPUT_FORMATS
    edge_multiple: int = EDGE_MULTIPLE
    max_edge: int = MAX_EDGE
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS
    max_ratio: float = MAX_RATIO
    input_fidelity: bool = False  # whether /images/edits takes ``input_fidelity``
    max_partial_images: int = 3  # ``partial_images`` 0..this when streaming
    snapshot_of: str | None = None
    prices_as: str = ""
    assumed: bool = False
    source: str = "built-in"  # or "settings" for entries of GPTIMAGE["MODELS"]

    @property
    def flexible_sizes(self) -> bool:
        return self.fixed_sizes is None


_GPT_IMAGE_1_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))


def _entries(*caps: ModelCapabilities) -> dict[str, ModelCapabilities]:
    return {c.model: replace(c, prices_as=c.prices_as or c.model) for c in caps}


_GPT_IMAGE_1 = ModelCapabilities(
    model="gpt-image-1",
    family="gpt-image-1",
    fixed_sizes=_GPT_IMAGE_1_SIZES,
    input_fidelity=True,  # InputFidelity: "gpt-image-1 and gpt-image-1.5 ..., unsupported for gpt-image-1-mini"
)
_GPT_IMAGE_2 = ModelCapabilities(
    model="gpt-image-2",
    family="gpt-image-2",
    # The contract's InputFidelity text says "gpt-image-1.5 and later models", but gpt-image-2
    # refuses the parameter (it always works at high fidelity); refusing it here is the safe side
    # (the package never sends it).
    input_fidelity=False,
)
# ASSUMPTION (not in OpenAI's contract): the gpt-image-2.5 / 2.6 families take gpt-image-2's
# sizes, formats, transparency and edit inputs, plus the xhigh and max qualities. Override any
# of it in GPTIMAGE["MODELS"]; their prices default to gpt-image-2's (see domain/pricing.py).
_NEWER = replace(_GPT_IMAGE_2, qualities=NEWER_QUALITIES, assumed=True, prices_as="gpt-image-2")


def _newer(model: str) -> ModelCapabilities:
    return replace(_NEWER, model=model)


BUILTIN_CATALOG: Mapping[str, ModelCapabilities] = MappingProxyType(
    _entries(
        _GPT_IMAGE_2,
        replace(
            _GPT_IMAGE_2, model="gpt-image-2-2026-04-21", snapshot_of="gpt-image-2", prices_as="gpt-image-2"
        ),
        _newer("gpt-image-2.5"),
        _newer("gpt-image-2.5-flare"),
        _newer("gpt-image-2.5-sunburst"),
        _newer("gpt-image-2.6"),
        _newer("gpt-image-2.6-flare"),
        _newer("gpt-image-2.6-sunburst"),
        replace(_GPT_IMAGE_1, model="gpt-image-1.5"),
        _GPT_IMAGE_1,
        replace(_GPT_IMAGE_1, model="gpt-image-1-mini", input_fidelity=False),
    )
)

# The built-in ids, newest first (messages and docs list them in this order).
KNOWN_MODELS: tuple[str, ...] = tuple(BUILTIN_CATALOG)

_site_catalog: Callable[[], Mapping[str, ModelCapabilities]] | None = None


def use_site_catalog(source: Callable[[], Mapping[str, ModelCapabilities]] | None) -> None:
    """Make :func:`catalog` return ``source()`` (the built-ins merged with the site's entries).

    ``django_gptimage.conf`` installs a source reading ``GPTIMAGE["MODELS"]``; it raises
    ``ImproperlyConfigured`` for malformed entries. ``None`` restores the built-in catalog.
    """
    global _site_catalog
    _site_catalog = source


def catalog() -> Mapping[str, ModelCapabilities]:
    """Every model id this site knows, with its capabilities."""
    return BUILTIN_CATALOG if _site_catalog is None else _site_catalog()


def known_models() -> tuple[str, ...]:
    """The ids of :func:`catalog`: the built-ins, then the site's additions."""
    return tuple(catalog())


def model_family(model: str) -> str | None:
    caps = get_capabilities(model)
    return caps.family if caps else None


def get_capabilities(model: str) -> ModelCapabilities | None:
    """Capabilities of ``model``, or None when the id is not in the catalog (exact match)."""
    if not isinstance(model, str):
        return None
    return catalog().get(model)
