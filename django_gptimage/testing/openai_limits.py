"""OpenAI's limits per GPT image model, as the loopback server enforces them.

Written from the text of OpenAI's API contract (``openapi.yaml``: ``CreateImageRequest``,
``CreateImageEditRequest``, ``InputFidelity``, ``PartialImages``), on purpose without importing
``django_gptimage.domain``: the package's catalog and this table are two readings of the same
documents, and tests/test_openai_limits.py compares them model by model, so a wrong limit in the
package fails a test instead of being accepted by a server that shares it.

Models the contract does not describe (the gpt-image-2.5 and gpt-image-2.6 families) are served
with the package's documented assumption for them: gpt-image-2's limits plus the ``xhigh`` and
``max`` qualities. ``FakeOpenAIServer(models={"new-id": "known-id"})`` serves a further id with
a known id's limits, like a model OpenAI released after this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# "less than 50MB" / "less than 4MB": read as MiB, the unit OpenAI's upload limits use elsewhere.
_MIB = 1 << 20


@dataclass(frozen=True)
class OpenAILimits:
    model: str
    # None: any WIDTHxHEIGHT within the rules below ("arbitrary resolutions are supported").
    # Otherwise the only sizes accepted besides ``auto``.
    standard_sizes: tuple[str, ...] | None
    auto_size: bool = True
    divisible_by: int = 16  # "Width and height must both be divisible by 16"
    widest: float = 3.0  # "aspect ratio must be between 1:3 and 3:1"
    longest_edge: int = 3840  # "the maximum supported resolution is 3840x2160"
    most_pixels: int = 3840 * 2160
    # Not in the contract ("the model's current pixel and edge limits"): OpenAI's image
    # generation guide gives 655,360 pixels as gpt-image-2's smallest size.
    fewest_pixels: int = 655_360
    qualities: tuple[str, ...] = ("low", "medium", "high", "auto")
    output_formats: tuple[str, ...] = ("png", "jpeg", "webp")
    backgrounds: tuple[str, ...] = ("auto", "opaque", "transparent")
    # "When using transparent, set the output format to png or webp."
    transparent_formats: tuple[str, ...] = ("png", "webp")
    most_images_out: int = 10  # n: "Must be between 1 and 10"
    longest_prompt: int = 32_000  # "32000 characters for the GPT image models"
    most_input_images: int = 16  # "You can provide up to 16 images."
    input_image_bytes: int = 50 * _MIB  # "each image should be a png, webp, or jpg file less than 50MB"
    input_image_formats: tuple[str, ...] = ("png", "jpeg", "webp")
    takes_mask: bool = True
    mask_bytes: int = 4 * _MIB  # the mask: "Must be a valid PNG file, less than 4MB"
    # InputFidelity: "only supported for gpt-image-1 and gpt-image-1.5 and later models,
    # unsupported for gpt-image-1-mini". gpt-image-2 refuses it (it always edits at high
    # fidelity), which is what this server answers for the 2.x ids.
    input_fidelity: bool = False
    most_partial_images: int = 3  # PartialImages: 0-3


_THREE_SIZES = ("1024x1024", "1536x1024", "1024x1536")
_FIRST = OpenAILimits("gpt-image-1", standard_sizes=_THREE_SIZES, input_fidelity=True)
_SECOND = OpenAILimits("gpt-image-2", standard_sizes=None)
_NEWER = replace(_SECOND, qualities=("low", "medium", "high", "xhigh", "max", "auto"))

OPENAI_LIMITS: dict[str, OpenAILimits] = {
    limits.model: limits
    for limits in (
        _FIRST,
        replace(_FIRST, model="gpt-image-1.5"),
        replace(_FIRST, model="gpt-image-1-mini", input_fidelity=False),
        _SECOND,
        replace(_SECOND, model="gpt-image-2-2026-04-21"),
        *(
            replace(_NEWER, model=f"gpt-image-{version}{variant}")
            for version in ("2.5", "2.6")
            for variant in ("", "-flare", "-sunburst")
        ),
    )
}

_SIZE = re.compile(r"([0-9]+)x([0-9]+)")


def parse_size(value: str) -> tuple[int, int] | None:
    match = _SIZE.fullmatch(value)
    return (int(match[1]), int(match[2])) if match else None


def size_problems(width: int, height: int, limits: OpenAILimits) -> list[str]:
    """Why OpenAI refuses ``WIDTHxHEIGHT`` for this model (empty when it accepts it)."""
    if limits.standard_sizes is not None:
        if f"{width}x{height}" in limits.standard_sizes:
            return []
        return [f"Supported sizes for {limits.model} are {', '.join(limits.standard_sizes)} and auto."]
    if not width or not height:
        return ["Width and height must be positive."]
    problems = []
    if width % limits.divisible_by or height % limits.divisible_by:
        problems.append(f"Width and height must both be divisible by {limits.divisible_by}.")
    if max(width, height) > limits.widest * min(width, height):
        problems.append("The aspect ratio must be between 1:3 and 3:1.")
    if max(width, height) > limits.longest_edge:
        problems.append(f"The longest edge must be at most {limits.longest_edge} pixels.")
    if width * height > limits.most_pixels:
        problems.append(f"The image must have at most {limits.most_pixels} pixels.")
    if width * height < limits.fewest_pixels:
        problems.append(f"The image must have at least {limits.fewest_pixels} pixels.")
    return problems
