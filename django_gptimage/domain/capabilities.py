"""What each OpenAI image model accepts, as published in OpenAI's API contract."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

QUALITIES = ("low", "medium", "high", "auto")
FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("auto", "opaque", "transparent")
MODES = ("text-to-image", "image-to-image")
INPUT_FORMATS = ("png", "jpeg", "webp")

# gpt-image-2's published size limits.
EDGE_MULTIPLE = 16
MAX_EDGE = 3840
MAX_PIXELS = 8_294_400  # 3840 x 2160
MIN_PIXELS = 655_360
MAX_RATIO = 3.0


@dataclass(frozen=True)
class ModelCapabilities:
    """Limits of one model id. ``fixed_sizes`` is None for models that take any valid WxH."""

    model: str
    family: str
    fixed_sizes: tuple[tuple[int, int], ...] | None = None
    supports_auto_size: bool = True
    qualities: tuple[str, ...] = QUALITIES
    formats: tuple[str, ...] = FORMATS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    transparent_formats: tuple[str, ...] = ("png", "webp")
    modes: tuple[str, ...] = MODES
    max_n: int = 10
    max_prompt_chars: int = 32_000
    max_input_images: int = 16
    max_input_bytes: int = 50 * 1024 * 1024
    max_mask_bytes: int = 4 * 1024 * 1024
    input_formats: tuple[str, ...] = INPUT_FORMATS
    edge_multiple: int = EDGE_MULTIPLE
    max_edge: int = MAX_EDGE
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS
    max_ratio: float = MAX_RATIO
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def flexible_sizes(self) -> bool:
        return self.fixed_sizes is None


_GPT_IMAGE_1_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))

# Model ids are matched by family so dated snapshots (gpt-image-2-2026-04-21) and point
# releases (gpt-image-2.5, gpt-image-2.5-mini) resolve without a code change.
_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^gpt-image-2(\.\d+)?(-mini)?(-\d{4}-\d{2}-\d{2})?$"), "gpt-image-2"),
    (re.compile(r"^gpt-image-1(\.5)?(-mini)?(-\d{4}-\d{2}-\d{2})?$"), "gpt-image-1"),
)

KNOWN_MODELS = (
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-2.5",
    "gpt-image-1.5",
    "gpt-image-1",
    "gpt-image-1-mini",
)


def model_family(model: str) -> str | None:
    for pattern, family in _FAMILIES:
        if pattern.match(model):
            return family
    return None


def get_capabilities(model: str) -> ModelCapabilities | None:
    """Capabilities of ``model``, or None when the id is not a GPT image model we know."""
    family = model_family(model)
    if family == "gpt-image-2":
        return ModelCapabilities(model=model, family=family)
    if family == "gpt-image-1":
        return ModelCapabilities(model=model, family=family, fixed_sizes=_GPT_IMAGE_1_SIZES)
    return None
