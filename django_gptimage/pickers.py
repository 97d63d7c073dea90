"""Radio widgets that show what they choose: ratio shapes and resolution tier buttons.

Plain radio inputs underneath (they work without JavaScript and with the keyboard);
``static/django_gptimage/js/options.js`` disables the invalid ones with their reason.
"""

from __future__ import annotations

from typing import Any

from django import forms

from django_gptimage.domain.sizes import TIER_LONG_EDGE, parse_ratio

__all__ = ["RatioSelect", "TierSelect", "ratio_shape"]

SHAPE_LONG_EDGE = 30  # px of the drawn shape's longer side


def ratio_shape(ratio: str, long_edge: int = SHAPE_LONG_EDGE) -> tuple[int, int]:
    """Width and height (px) of a small drawing of ``ratio``; a square for ``auto``."""
    parsed = parse_ratio(ratio)
    if parsed is None:
        return long_edge, long_edge
    value = float(parsed)
    if value >= 1:
        return long_edge, max(6, round(long_edge / value))
    return max(6, round(long_edge * value)), long_edge


class RatioSelect(forms.RadioSelect):
    template_name = "django_gptimage/widgets/ratio_select.html"
    option_template_name = "django_gptimage/widgets/ratio_option.html"

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        width, height = ratio_shape(str(option["value"]))
        option["shape_width"], option["shape_height"] = width, height
        option["is_auto"] = option["value"] == "auto"
        return option


class TierSelect(forms.RadioSelect):
    template_name = "django_gptimage/widgets/tier_select.html"
    option_template_name = "django_gptimage/widgets/tier_option.html"

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        option["long_edge"] = TIER_LONG_EDGE.get(str(option["value"]))
        return option
