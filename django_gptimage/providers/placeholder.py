"""Placeholder artwork for the offline provider: it should read as what was asked for.

A portrait request (or a prompt naming a poster, flyer or event) becomes a poster, a square one
(or a product shot, packshot, detail image) a product card, anything else an editorial cover.
The title comes from the prompt's words (quoted text wins), and a spec strip shows the ratio,
tier, pixel size and quality, so an editor sees at a glance which settings produced it.

The same request always draws the same pixels (colours and shapes come from a hash of the
request, never from a random source). Drawing stays cheap at 4K: the background is a 2x2
image resized, shapes are a handful of ImageDraw primitives, and text is drawn once.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from django_gptimage.domain.sizes import ratio_label, tier_for_size

from .base import ProviderRequest

RGB = tuple[int, int, int]

KIND_WORDS = (
    ("poster", ("poster", "flyer", "event", "concert", "festival", "gig", "exhibition")),
    ("ad", ("ad creative", "advert", "advertisement", "ad for", "banner ad", "campaign", "promo")),
    ("product", ("product", "packshot", "pack shot", "detail image", "detail-page", "e-commerce", "catalog")),
    ("cover", ("cover", "article", "hero", "header", "blog", "magazine", "editorial", "banner")),
)
KIND_LABELS = {"poster": "POSTER", "ad": "AD CREATIVE", "product": "PRODUCT", "cover": "COVER"}

# Leading filler that says what kind of picture it is rather than what it shows.
_FILLER = re.compile(
    r"^\s*(?:(?:an?|the)\s+)?(?:[\w-]+\s+){0,3}?"
    r"(?:cover|poster|image|photo|photograph|picture|illustration|visual|banner|creative|shot|"
    r"packshot|render|artwork|article|flyer|ad|advert|advertisement|hero|header)s?"
    r"(?:\s+(?:image|photo|art|illustration))?\s+(?:for|of|about|showing|depicting|with|on)\s+",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"(?:^|\s)[\"“«']([^\"”»']{3,80})[\"”»'](?=\W|$)")


def kind_of(prompt: str, width: int, height: int) -> str:
    """``poster`` / ``ad`` / ``product`` / ``cover``: from the prompt's words, else the shape."""
    text = prompt.lower()
    for kind, words in KIND_WORDS:
        if any(word in text for word in words):
            return kind
    if height > width * 1.05:
        return "poster"
    if abs(width - height) <= width * 0.05:
        return "product"
    return "cover"


def title_of(prompt: str, *, max_words: int = 9) -> str:
    """A headline from the prompt: quoted text if any, else its first clause without filler."""
    quoted = _QUOTED.search(prompt)
    if quoted:
        return quoted.group(1).strip()
    text = " ".join(prompt.split())
    for _ in range(3):  # "A cover for an article about X" -> "X"
        stripped = _FILLER.sub("", text, count=1)
        if stripped == text or not stripped:
            break
        text = stripped
    clause = re.split(r"[.;:!?\n]|,\s|\s[-–—]\s", text, maxsplit=1)[0].strip()
    words = clause.split()
    if len(words) > 1 and words[0].lower() in ("a", "an"):
        words = words[1:]
    title = " ".join(words[:max_words]) + ("…" if len(words) > max_words else "")
    return title[:1].upper() + title[1:] if title else "Untitled"


def _seed(request: ProviderRequest, width: int, height: int, index: int) -> bytes:
    key = "\0".join(
        (request.model, request.mode, request.prompt, f"{width}x{height}", request.quality,
         request.background, str(index))
    )  # fmt: skip
    return hashlib.sha256(key.encode()).digest()


def _hls(hue: float, light: float, sat: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, light, sat)
    return int(r * 255), int(g * 255), int(b * 255)


@lru_cache(maxsize=64)
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, max_width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and draw.textlength(candidate, font=font) > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines or [""]


def _fit(
    draw: ImageDraw.ImageDraw, text: str, max_width: float, start: int, max_lines: int
) -> tuple[Any, list[str], int]:
    """The largest font (from ``start`` down) that fits ``text`` in ``max_lines`` lines."""
    size = start
    while True:
        font = _font(size)
        lines = _wrap(draw, text, font, max_width)
        widest = max(draw.textlength(line, font=font) for line in lines)
        if (len(lines) <= max_lines and widest <= max_width) or size <= 12:
            return font, lines[:max_lines], size
        size = max(12, int(size * 0.86))


def _text_block(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    lines: list[str],
    font: Any,
    size: int,
    fill: RGB,
    *,
    bold: bool = False,
    anchor: str = "la",
    spacing: float = 1.18,
) -> float:
    """Draw ``lines`` from ``xy``; return the y below the block."""
    x, y = xy
    stroke = max(1, size // 28) if bold else 0
    for line in lines:
        draw.text((x, y), line, font=font, fill=fill, anchor=anchor, stroke_width=stroke, stroke_fill=fill)
        y += size * spacing
    return y


def spec_lines(request: ProviderRequest, width: int, height: int, *, index: int = 0) -> tuple[str, str]:
    """The two lines of the spec strip: ratio, tier, size, quality; then provider, mode, index."""
    spec = f"{ratio_label(width, height)}  ·  {tier_for_size(width, height)}  ·  {width}x{height}  ·  {request.quality}"
    sub = f"offline placeholder  ·  {request.mode}  ·  image {index + 1} of {request.n}"
    return spec, sub


def draw_placeholder(
    request: ProviderRequest, width: int, height: int, *, index: int = 0, draft: bool = False
) -> Image.Image:
    """The placeholder for result ``index`` of ``request`` at exactly ``width`` x ``height``."""
    seed = _seed(request, width, height, index)
    kind = kind_of(request.prompt, width, height)
    hue = seed[0] / 255
    dark, mid, light = _hls(hue, 0.16, 0.55), _hls(hue + 0.06, 0.36, 0.6), _hls(hue + 0.1, 0.62, 0.7)
    accent = _hls(hue + 0.45 + seed[1] / 2550, 0.58, 0.85)
    transparent = request.background == "transparent"

    # A four-corner gradient: a 2x2 image resized (bilinear) costs next to nothing at 4K.
    corners = Image.new("RGB", (2, 2))
    corners.putdata([light, mid, mid, dark] if seed[2] % 2 else [mid, light, dark, mid])
    image = corners.resize((width, height), Image.Resampling.BILINEAR)
    if transparent:
        image = image.convert("RGBA")
        image.putalpha(0 if kind == "product" else 170)
    draw = ImageDraw.Draw(image, "RGBA")

    short = min(width, height)
    margin = short // 14
    layout = {"poster": _poster, "product": _product}.get(kind, _cover)
    layout(draw, seed, width, height, short, margin, accent, dark, light)

    # The title, fitted to its box.
    title = title_of(request.prompt)
    top: float
    box_w: float
    if kind == "poster":
        box_w, start, max_lines, top = width - 2 * margin, short // 7, 4, margin + short // 12
        font, lines, size = _fit(draw, title.upper(), box_w, start, max_lines)
        _text_block(draw, (margin, top), lines, font, size, (255, 255, 255), bold=True)
    elif kind == "product":
        box_w = width - 2 * margin
        font, lines, size = _fit(draw, title, box_w, short // 13, 2)
        top = height - margin - short // 9 - len(lines) * size * 1.18
        _text_block(draw, (width / 2, top), lines, font, size, (255, 255, 255), bold=True, anchor="ma")
    else:
        box_w = width * 0.58 - margin
        font, lines, size = _fit(draw, title, box_w, short // 7, 3)
        block_h = len(lines) * size * 1.18
        top = height - margin - short // 9 - block_h
        draw.rectangle((0, top - margin * 0.6, width * 0.62, height), fill=(*dark, 150))
        _text_block(draw, (margin, top), lines, font, size, (255, 255, 255), bold=True)

    # Kind label top-left, spec strip at the bottom: what was asked for, legibly.
    label_font = _font(max(10, short // 34))
    draw.text(
        (margin, margin * 0.55), KIND_LABELS[kind] + (" · PREVIEW" if draft else ""),
        font=label_font, fill=(*accent, 255), stroke_width=max(1, short // 900), stroke_fill=accent,
    )  # fmt: skip
    spec, sub = spec_lines(request, width, height, index=index)
    spec_font, sub_font = _font(max(11, short // 30)), _font(max(9, short // 48))
    strip_h = short // 30 + short // 48 + margin // 2
    y0 = height - strip_h - margin // 3
    draw.rectangle((0, y0, width, height), fill=(0, 0, 0, 120))
    draw.text((margin, y0 + margin // 6), spec, font=spec_font, fill=(255, 255, 255))
    draw.text((margin, y0 + margin // 6 + short // 28), sub, font=sub_font, fill=(220, 220, 220))
    draw.rectangle((0, 0, width - 1, height - 1), outline=(255, 255, 255, 200), width=max(2, short // 220))
    return image


def _cover(
    draw: Any, seed: bytes, w: int, h: int, short: int, m: int, accent: RGB, dark: RGB, light: RGB
) -> None:
    """Editorial cover: a sun, layered hills and diagonal rays on the right."""
    cx, cy, r = w * (0.68 + seed[3] / 2550), h * (0.32 + seed[4] / 2550), short * 0.2
    for i in range(5):
        x = w * 0.45 + i * short * 0.16
        draw.line((x, 0, x + h * 0.6, h), fill=(255, 255, 255, 22), width=max(2, short // 60))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*accent, 235))
    for i, shade in enumerate((light, accent, dark)):
        base = h * (0.58 + i * 0.12)
        peaks: list[tuple[float, float]] = [(w * 0.3, h)]
        for k in range(6):
            x = w * 0.3 + k * w * 0.14
            peaks.append((x, base - (seed[5 + i * 6 + k] / 255) * h * 0.18))
        peaks.append((w, h))
        draw.polygon(peaks, fill=(*shade, 170 + i * 30))


def _poster(
    draw: Any, seed: bytes, w: int, h: int, short: int, m: int, accent: RGB, dark: RGB, light: RGB
) -> None:
    """Poster: concentric rings behind the middle, a bold band, a date-block corner."""
    cx, cy = w / 2, h * 0.58
    for i in range(6, 0, -1):
        r = short * (0.08 + i * 0.075)
        shade = accent if i % 2 else light
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*shade, 60 + (6 - i) * 25))
    band = h * (0.74 + seed[3] / 5100)
    draw.rectangle((0, band, w, band + short * 0.05), fill=(*accent, 230))
    bx = w - m - short * 0.22
    draw.rectangle(
        (bx, m * 0.5, w - m, m * 0.5 + short * 0.22), outline=(255, 255, 255, 210), width=max(2, short // 150)
    )
    draw.line(
        (bx, m * 0.5 + short * 0.08, w - m, m * 0.5 + short * 0.08),
        fill=(255, 255, 255, 210),
        width=max(2, short // 150),
    )


def _product(
    draw: Any, seed: bytes, w: int, h: int, short: int, m: int, accent: RGB, dark: RGB, light: RGB
) -> None:
    """Product card: an object on a pedestal with a soft shadow, centred."""
    cx, base = w / 2, h * 0.56
    pw, ph = short * 0.42, short * 0.07
    draw.ellipse((cx - pw * 0.75, base - ph * 0.2, cx + pw * 0.75, base + ph * 1.2), fill=(0, 0, 0, 70))
    draw.rectangle((cx - pw / 2, base - ph, cx + pw / 2, base), fill=(*light, 255))
    ow, oh = short * (0.2 + seed[3] / 2550), short * (0.3 + seed[4] / 2550)
    shape = seed[5] % 3
    box = (cx - ow / 2, base - ph - oh, cx + ow / 2, base - ph)
    if shape == 0:
        draw.rounded_rectangle(box, radius=short * 0.04, fill=(*accent, 255))
    elif shape == 1:
        draw.ellipse(box, fill=(*accent, 255))
    else:
        draw.polygon([(cx, box[1]), (box[2], box[3]), (box[0], box[3])], fill=(*accent, 255))
    hx = box[0] + ow * 0.22
    draw.rectangle((hx, box[1] + oh * 0.2, hx + ow * 0.08, box[3] - oh * 0.25), fill=(255, 255, 255, 120))
