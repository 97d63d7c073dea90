"""Aspect ratio x resolution tier x mode -> exact pixel size, or a refusal with a reason.

Sizes are computed from the model's rules rather than typed in: the tier fixes the long
edge, the short edge follows the ratio, both snap to the edge multiple, and a size below the
pixel floor grows (keeping the ratio) until it reaches it. A result over the pixel cap or the
longest edge is refused, which is why 1:1 has no 4K while 16:9 does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from .capabilities import MODES, ModelCapabilities

AUTO = "auto"
RATIOS = (
    "auto", "1:1", "3:2", "2:3", "4:3", "3:4", "5:4", "4:5",
    "16:9", "9:16", "2:1", "1:2", "21:9", "9:21",
)  # fmt: skip
TIERS = ("1K", "2K", "4K")
TIER_LONG_EDGE = {"1K": 1024, "2K": 2048, "4K": 3840}


@dataclass(frozen=True)
class SizeChoice:
    """The outcome of resolving ratio x tier x mode for one model."""

    ratio: str
    tier: str
    mode: str
    width: int | None
    height: int | None
    allowed: bool
    reason: str = ""
    field: str = ""  # which of ratio/tier/mode a refusal is about

    @property
    def size(self) -> str | None:
        """The value of the API's ``size`` parameter, or None when refused."""
        if not self.allowed:
            return None
        if self.width is None or self.height is None:
            return AUTO
        return f"{self.width}x{self.height}"


def parse_ratio(ratio: str) -> Fraction | None:
    """``"16:9"`` -> Fraction(16, 9); None for anything that is not two positive integers."""
    parts = ratio.split(":")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    w, h = int(parts[0]), int(parts[1])
    if w <= 0 or h <= 0:
        return None
    return Fraction(w, h)


_SIZE = re.compile(r"([0-9]{1,6})[xX]([0-9]{1,6})")


def parse_size(size: str) -> tuple[int, int] | None:
    """``"1536x864"`` -> (1536, 864); None for anything else (including ``auto``).

    ASCII digits only, at most 6 per edge: ``str.isdigit()`` also accepts ``"²"`` (which
    ``int()`` refuses) and full-width digits.
    """
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        return None
    return int(match[1]), int(match[2])


def size_problems(width: int, height: int, caps: ModelCapabilities) -> list[str]:
    """Every reason the model rejects an explicit WxH (empty when it is valid)."""
    if caps.fixed_sizes is not None:
        if (width, height) in caps.fixed_sizes:
            return []
        allowed = ", ".join(f"{w}x{h}" for w, h in caps.fixed_sizes)
        return [f"{caps.model} only makes {allowed} (or auto)."]
    problems = []
    m = caps.edge_multiple
    if width <= 0 or height <= 0:
        return ["Width and height must be positive."]
    if width % m or height % m:
        problems.append(f"Width and height must both be multiples of {m} (got {width}x{height}).")
    if max(width, height) > caps.max_edge:
        problems.append(f"The longest edge may be at most {caps.max_edge} px (got {max(width, height)}).")
    if max(width, height) / min(width, height) > caps.max_ratio:
        problems.append(f"The aspect ratio must be within {caps.max_ratio:g}:1 (got {width}x{height}).")
    pixels = width * height
    if pixels > caps.max_pixels:
        problems.append(f"At most {caps.max_pixels:,} pixels are allowed (got {pixels:,}).")
    if pixels < caps.min_pixels:
        problems.append(f"At least {caps.min_pixels:,} pixels are needed (got {pixels:,}).")
    return problems


def _ratio_text(ratio: Fraction) -> str:
    """Fraction(1, 1) -> "1:1" (``str()`` would give "1")."""
    return f"{ratio.numerator}:{ratio.denominator}"


def _snap(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _flexible_size(ratio: Fraction, long_edge: int, caps: ModelCapabilities) -> tuple[int, int]:
    """Long edge from the tier, short edge from the ratio, grown to the pixel floor."""
    m = caps.edge_multiple
    landscape = ratio >= 1
    r = float(ratio if landscape else 1 / ratio)
    long_edge = _snap(long_edge, m)
    while True:
        short_edge = _snap(long_edge / r, m)
        if long_edge * short_edge >= caps.min_pixels:
            break
        # Grow in steps of one multiple; the floor is reached in a few dozen steps at most.
        long_edge += m
    return (long_edge, short_edge) if landscape else (short_edge, long_edge)


def resolve_size(ratio: str, tier: str, mode: str, caps: ModelCapabilities) -> SizeChoice:
    """Resolve the editor's ratio/tier/mode to the exact size ``caps.model`` would be asked for."""

    def refuse(
        reason: str, width: int | None = None, height: int | None = None, field: str = "tier"
    ) -> SizeChoice:
        return SizeChoice(ratio, tier, mode, width, height, False, reason, field)

    if mode not in MODES:
        return refuse(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.", field="mode")
    if mode not in caps.modes:
        return refuse(f"{caps.model} does not support {mode}.", field="mode")
    if tier not in TIERS:
        return refuse(f"Unknown resolution tier {tier!r}; choose one of {', '.join(TIERS)}.")
    if ratio == AUTO:
        if not caps.supports_auto_size:
            return refuse(f"{caps.model} needs an explicit size.", field="ratio")
        if tier != "1K":
            return refuse(
                "The 'auto' ratio lets the model pick a size of about 1K; choose a ratio for 2K or 4K.",
                field="ratio",
            )
        return SizeChoice(ratio, tier, mode, None, None, True)
    parsed = parse_ratio(ratio)
    if parsed is None:
        return refuse(f"Unknown aspect ratio {ratio!r}; use a ratio such as 16:9.", field="ratio")
    if max(parsed, 1 / parsed) > caps.max_ratio:
        return refuse(
            f"{ratio} is wider than {caps.max_ratio:g}:1, the most {caps.model} allows.", field="ratio"
        )

    if caps.fixed_sizes is not None:
        if tier != "1K":
            return refuse(f"{caps.model} only makes images of about 1K.")
        for w, h in caps.fixed_sizes:
            if Fraction(w, h) == parsed:
                return SizeChoice(ratio, tier, mode, w, h, True)
        shapes = ", ".join(_ratio_text(Fraction(w, h)) for w, h in caps.fixed_sizes)
        return refuse(f"{caps.model} only makes {shapes} images (or auto).", field="ratio")

    width, height = _flexible_size(parsed, TIER_LONG_EDGE[tier], caps)
    problems = size_problems(width, height, caps)
    if problems:
        if width * height > caps.max_pixels:
            longer = "16:9 or wider" if parsed >= 1 else "9:16 or taller"
            return refuse(
                f"{ratio} at {tier} would be {width}x{height} = {width * height:,} pixels, over the "
                f"{caps.max_pixels:,}-pixel cap; choose 2K, or a ratio of {longer}.",
                width,
                height,
            )
        return refuse(" ".join(problems), width, height)
    return SizeChoice(ratio, tier, mode, width, height, True)


def tier_for_size(width: int, height: int) -> str:
    """The tier an explicit size belongs to, by its long edge (for records and prices)."""
    long_edge = max(width, height)
    if long_edge <= 1536:
        return "1K"
    if long_edge <= 2560:
        return "2K"
    return "4K"


def _listed_ratio(ratio: str) -> float:
    value = parse_ratio(ratio)
    if value is None:  # every entry of RATIOS but auto parses
        raise ValueError(f"{ratio!r} is not a W:H ratio")
    return float(value)


def ratio_label(width: int, height: int) -> str:
    """A readable ratio for an explicit size: the nearest listed ratio, else the reduced one."""
    actual = width / height
    best = min((r for r in RATIOS if r != AUTO), key=lambda r: abs(math.log(_listed_ratio(r) / actual)))
    if abs(math.log(_listed_ratio(best) / actual)) < 0.02:
        return best
    f = Fraction(width, height)
    return f"{f.numerator}:{f.denominator}"
