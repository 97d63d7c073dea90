"""Cost before sending (estimate) and after (from the response's ``usage`` tokens).

GPT image models are billed per token: text and image input tokens, and image output tokens
whose number grows with quality and pixel count. Defaults are OpenAI's published USD prices
per million tokens; sites override them through ``GPTIMAGE["PRICES"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .capabilities import get_capabilities

MILLION = Decimal(1_000_000)
CENT_PRECISION = Decimal("0.000001")
# Output tokens per 1024x1024 image by quality, as published for the GPT image models;
# other sizes scale with their pixel count.
# ASSUMPTION: OpenAI publishes no counts for the newer families' xhigh and max qualities; they
# are estimated at 2x and 4x high so a reservation is not too small. A site that knows better
# corrects the money side with GPTIMAGE["PRICES"]; the actual cost always comes from the usage.
OUTPUT_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 8320, "max": 16640}
# Image input tokens per 1024x1024 input (approximate), for estimates of edits.
INPUT_IMAGE_TOKENS_1024 = 765
AUTO_SIZE_ESTIMATE = (1536, 1024)  # the largest size 'auto' may pick


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    text_input: Decimal
    image_input: Decimal
    image_output: Decimal


DEFAULT_PRICES: dict[str, Prices] = {
    "gpt-image-2": Prices(Decimal("5.00"), Decimal("8.00"), Decimal("30.00")),
    "gpt-image-1.5": Prices(Decimal("5.00"), Decimal("8.00"), Decimal("32.00")),
    "gpt-image-1": Prices(Decimal("5.00"), Decimal("10.00"), Decimal("40.00")),
    "gpt-image-1-mini": Prices(Decimal("2.00"), Decimal("2.50"), Decimal("8.00")),
}


# Models without a price of their own and outside the catalog (a custom provider's ids) are
# priced like this one: the documented fallback.
FALLBACK_PRICES_MODEL = "gpt-image-2"


def _table(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Prices]:
    table = dict(DEFAULT_PRICES)
    for key, value in (overrides or {}).items():
        base = table.get(key, Prices(Decimal(0), Decimal(0), Decimal(0)))
        table[key] = replace(base, **{k: Decimal(str(v)) for k, v in value.items()})
    return table


def price_source(model: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """The price-table key ``model`` is billed by, or None when only the fallback applies.

    In order: an entry for the id itself (built in or in ``GPTIMAGE["PRICES"]``); for a catalog
    model, its entry's ``prices_as`` (a snapshot or an assumed family: its base model); for an id
    outside the catalog (e.g. records made with a model since removed), the longest priced prefix.
    """
    table = {*DEFAULT_PRICES, *(overrides or {})}  # keys only: a malformed value is not read here
    if model in table:
        return model
    caps = get_capabilities(model)
    if caps is not None:
        # A catalog model is priced as it says, never by a guess from its id (check E015).
        return caps.prices_as if caps.prices_as in table else None
    for prefix in sorted(table, key=len, reverse=True):
        if model.startswith(prefix):
            return prefix
    return None


def prices_for(model: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Prices:
    """Prices of ``model`` (see :func:`price_source`), else gpt-image-2's."""
    table = _table(overrides)
    return table[price_source(model, overrides) or FALLBACK_PRICES_MODEL]


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT_PRECISION, rounding=ROUND_HALF_UP)


def estimate_output_tokens(quality: str, width: int | None, height: int | None) -> int:
    # 'auto' quality is estimated as 'high' so reservations are never too small.
    per_1024 = OUTPUT_TOKENS_1024.get(quality, OUTPUT_TOKENS_1024["high"])
    w, h = (width, height) if width and height else AUTO_SIZE_ESTIMATE
    return max(1, round(per_1024 * (w * h) / (1024 * 1024)))


def estimate_cost(
    *,
    model: str,
    quality: str,
    width: int | None,
    height: int | None,
    n: int,
    prompt_chars: int,
    input_image_pixels: tuple[int, ...] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Decimal:
    """An upper-leaning estimate in USD, made before anything is sent."""
    prices = prices_for(model, overrides)
    text_tokens = max(1, prompt_chars // 4)
    image_tokens = sum(max(1, round(INPUT_IMAGE_TOKENS_1024 * p / (1024 * 1024))) for p in input_image_pixels)
    output_tokens = n * estimate_output_tokens(quality, width, height)
    total = (
        text_tokens * prices.text_input
        + image_tokens * prices.image_input
        + output_tokens * prices.image_output
    ) / MILLION
    return _round(total)


def actual_cost(
    model: str, usage: Mapping[str, Any] | None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Decimal | None:
    """Cost from an ``ImagesResponse.usage`` object; None when the response had no usage."""
    if not usage:
        return None
    prices = prices_for(model, overrides)
    details = usage.get("input_tokens_details") or {}
    input_tokens = int(usage.get("input_tokens") or 0)
    text_tokens = int(details.get("text_tokens", input_tokens))
    image_tokens = int(details.get("image_tokens", max(0, input_tokens - text_tokens)))
    output_tokens = int(usage.get("output_tokens") or 0)
    total = (
        text_tokens * prices.text_input
        + image_tokens * prices.image_input
        + output_tokens * prices.image_output
    ) / MILLION
    return _round(total)
