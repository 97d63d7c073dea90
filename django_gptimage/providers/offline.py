"""A provider that needs no network: draws a real cover with Pillow at the exact size.

It is the default when no API key is set, so the example site and first experiments work on a
fresh machine. The prompt, ratio, tier and size are printed on the image so editors can see
which settings produced it. Nothing is billed.
"""

from __future__ import annotations

import colorsys
import hashlib
import os
import textwrap
import time
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from django_gptimage.domain.sizes import parse_size, ratio_label, tier_for_size

from .base import ProgressCallback, Provider, ProviderRequest, ProviderResult, ResultFile

AUTO_SIZE = (1024, 1024)
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class OfflineProvider(Provider):
    name = "offline"
    billable = False

    def __init__(self, *, delay: float = 0.0, **options: Any) -> None:
        super().__init__(**options)
        self.delay = float(delay)

    def generate(
        self, request: ProviderRequest, *, spool_dir: str, progress: ProgressCallback | None = None
    ) -> ProviderResult:
        report = progress or (lambda phase, data: None)
        os.makedirs(spool_dir, exist_ok=True)
        width, height = parse_size(request.size) or AUTO_SIZE
        report("sending", {})
        report("waiting", {})
        if request.partial_images:
            preview = draw_cover(request, width, height, index=0, draft=True)
            path = os.path.join(spool_dir, "partial-0.png")
            preview.save(path, "PNG")
            report("partial", {"path": path, "index": 0})
        if self.delay:
            time.sleep(self.delay)
        report("receiving", {})
        files = []
        for index in range(request.n):
            image = draw_cover(request, width, height, index=index)
            path = os.path.join(spool_dir, f"result-{index}.bin")
            save_kwargs: dict[str, Any] = {}
            if request.output_format in ("jpeg", "webp"):
                save_kwargs["quality"] = (
                    request.output_compression if request.output_compression is not None else 95
                )
            if request.output_format == "jpeg":
                image = image.convert("RGB")
            image.save(path, PIL_FORMATS[request.output_format], **save_kwargs)
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            files.append(ResultFile(index, path, os.path.getsize(path), digest))
        return ProviderResult(
            files=files,
            request_id=f"offline-{hashlib.sha256(os.urandom(16)).hexdigest()[:24]}",
            usage=None,
            size=f"{width}x{height}",
            quality="medium" if request.quality == "auto" else request.quality,
            background="transparent" if request.background == "transparent" else "opaque",
            output_format=request.output_format,
            created=int(time.time()),
        )


def _palette(prompt: str, index: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(f"{prompt}\0{index}".encode()).digest()
    hue = digest[0] / 255
    top = colorsys.hls_to_rgb(hue, 0.35, 0.55)
    bottom = colorsys.hls_to_rgb((hue + 0.12) % 1, 0.15, 0.6)
    return tuple(int(c * 255) for c in top), tuple(int(c * 255) for c in bottom)  # type: ignore[return-value]


def draw_cover(
    request: ProviderRequest, width: int, height: int, *, index: int = 0, draft: bool = False
) -> Image.Image:
    """A poster-like image: gradient, the prompt as a headline, and the request's parameters."""
    top, bottom = _palette(request.prompt, index)
    # A vertical gradient made from a 1-pixel-wide strip, resized: fast even at 4K.
    strip = Image.new("RGB", (1, 256))
    for y in range(256):
        t = y / 255
        strip.putpixel((0, y), tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    image = strip.resize((width, height), Image.Resampling.BILINEAR)
    if request.background == "transparent":
        image = image.convert("RGBA")
        image.putalpha(200)
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    margin = short // 12
    headline = ImageFont.load_default(size=max(12, short // 14))
    small = ImageFont.load_default(size=max(10, short // 32))
    chars = max(8, int((width - 2 * margin) / (short // 14 * 0.55)))
    lines = textwrap.wrap(request.prompt, width=chars)[:6] or [""]
    y = margin
    for line in lines:
        draw.text((margin, y), line, font=headline, fill=(255, 255, 255))
        y += int(short / 14 * 1.25)
    label = f"{ratio_label(width, height)} · {tier_for_size(width, height)} · {width}x{height} · {request.quality}"
    label += f" · #{index + 1}/{request.n}" + (" · draft" if draft else "")
    draw.text((margin, height - margin - short // 32), label, font=small, fill=(230, 230, 230))
    draw.rectangle((0, 0, width - 1, height - 1), outline=(255, 255, 255), width=max(2, short // 200))
    return image
