"""Real image bytes for the fake server, input image inspection and plausible token usage."""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, UnidentifiedImageError

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
IMAGE_MODES = ("solid", "noise")

# Output image tokens for a 1024x1024 image, by quality (OpenAI's published gpt-image-1 table);
# other sizes scale with their pixel count.
# xhigh and max (the gpt-image-2.5/2.6 families) have no published count: 2x and 4x high is this
# server's assumption, so their usage is plausibly larger.
OUTPUT_TOKENS_1K = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 8320, "max": 16640}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # png / jpeg / webp / gif / ... (Pillow's name, lower case)
    width: int
    height: int
    has_alpha: bool


def inspect_image(data: bytes) -> ImageInfo | None:
    """Format, size and alpha of ``data`` from its header; None when Pillow can't identify it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
                return ImageInfo((im.format or "").lower(), im.width, im.height, alpha)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


# A small palette keeps the solid-image cache warm: concurrent tests with distinct prompts would
# otherwise each pay for a fresh encode, serialised by the GIL.
PALETTE = tuple(
    (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    for h in ("e6194b", "3cb44b", "ffe119", "4363d8", "f58231", "911eb4", "46f0f0", "f032e6",
              "bcf60c", "fabebe", "008080", "e6beff", "9a6324", "800000", "aaffc3", "000075")
)  # fmt: skip


def _encode(im: Image.Image, fmt: str, compression: int, fast: bool) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        # Level 1 keeps noise images (incompressible anyway) quick to encode.
        im.save(out, "PNG", compress_level=1 if fast else 6)
    elif fmt == "jpeg":
        im.save(out, "JPEG", quality=compression)
    else:
        im.save(out, "WEBP", quality=compression, method=0 if fast else 4)
    return out.getvalue()


@lru_cache(maxsize=64)
def _solid(width: int, height: int, fmt: str, transparent: bool, compression: int, seed: int) -> bytes:
    colour = PALETTE[seed % len(PALETTE)]
    if transparent:
        # A real cut-out: transparent surround, opaque subject in the middle.
        im = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        im.paste((*colour, 255), (width // 4, height // 4, width - width // 4, height - height // 4))
    else:
        im = Image.new("RGB", (width, height), colour)
    return _encode(im, fmt, compression, fast=False)


def render(
    width: int,
    height: int,
    fmt: str,
    *,
    transparent: bool = False,
    compression: int = 100,
    mode: str = "solid",
    seed: int = 0,
) -> bytes:
    """An image of exactly ``width`` x ``height`` in ``fmt``; ``noise`` gives realistic file sizes.

    ``seed`` picks the colour of a solid image, so the images of one answer differ.
    """
    if mode == "solid":
        return _solid(width, height, fmt, transparent, compression, seed % len(PALETTE))
    channels, pil_mode = (4, "RGBA") if transparent else (3, "RGB")
    im = Image.frombytes(pil_mode, (width, height), os.urandom(width * height * channels))
    return _encode(im, fmt, compression, fast=True)


def input_image_tokens(images: list[ImageInfo]) -> int:
    """Vision-style cost of input images: a base plus a charge per 512 px tile."""
    total = 0
    for info in images:
        tiles = math.ceil(min(info.width, 2048) / 512) * math.ceil(min(info.height, 2048) / 512)
        total += 65 + 129 * tiles
    return total


def usage(
    prompt: str, quality: str, width: int, height: int, n: int, inputs: list[ImageInfo] | None = None
) -> dict[str, Any]:
    text_tokens = max(1, math.ceil(len(prompt) / 4))
    image_tokens = input_image_tokens(inputs or [])
    output_tokens = n * round(OUTPUT_TOKENS_1K[quality] * width * height / (1024 * 1024))
    return {
        "total_tokens": text_tokens + image_tokens + output_tokens,
        "input_tokens": text_tokens + image_tokens,
        "output_tokens": output_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
    }
