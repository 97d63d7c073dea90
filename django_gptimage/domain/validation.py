"""One function that checks a whole generation request and returns every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from .capabilities import BACKGROUNDS, MODES, ModelCapabilities, get_capabilities
from .policy import Policy
from .sizes import (
    AUTO,
    RATIOS,
    SizeChoice,
    parse_size,
    ratio_label,
    resolve_size,
    size_problems,
    tier_for_size,
)

# Decoding more pixels than this from one input is refused as a likely decompression bomb.
MAX_INPUT_PIXELS = 50_000_000


@dataclass(frozen=True)
class InputImage:
    """What validation needs to know about an uploaded image (read from its header)."""

    name: str
    format: str | None  # "png" / "jpeg" / "webp", or None when the bytes are not an image
    size_bytes: int
    width: int = 0
    height: int = 0
    has_alpha: bool = False
    problem: str = ""  # why the bytes could not be read, when format is None


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    model: str
    mode: str = "text-to-image"
    ratio: str | None = "1:1"
    tier: str | None = "1K"
    size: str | None = None  # an explicit "WxH" (or "auto") instead of ratio/tier
    quality: str = "auto"
    output_format: str = "png"
    background: str = "auto"
    output_compression: int | None = None
    n: int = 1
    images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    code: str = "invalid"


@dataclass(frozen=True)
class ValidatedRequest:
    """A request that passed validation, with its exact size resolved."""

    request: GenerationRequest
    ratio: str
    tier: str
    width: int | None
    height: int | None

    @property
    def size(self) -> str:
        return AUTO if self.width is None or self.height is None else f"{self.width}x{self.height}"


@dataclass
class ValidationResult:
    problems: list[Problem] = field(default_factory=list)
    validated: ValidatedRequest | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, field_name: str, message: str, code: str = "invalid") -> None:
        self.problems.append(Problem(field_name, message, code))


def _choices(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values) if values else "none (the site's policy allows nothing here)"


def validate(request: GenerationRequest, policy: Policy | None = None) -> ValidationResult:
    """Check ``request`` against the model's capabilities and the site's policy."""
    policy = policy or Policy()
    result = ValidationResult()
    from .arguments import request_argument_problems  # arguments imports Problem from here

    # Wrong types first, alone: the rules below compare values and would raise on them.
    result.problems.extend(request_argument_problems(request))
    if result.problems:
        return result
    caps = get_capabilities(request.model)
    if caps is None:
        result.add("model", f"Unknown model {request.model!r}; use a GPT image model such as gpt-image-2.")
    elif not policy.allows_model(request.model):
        result.add(
            "model",
            f"This site does not allow {request.model}; choose one of {_choices(policy.models or ())}.",
        )

    prompt = request.prompt or ""
    if not prompt.strip():
        result.add("prompt", "Describe the image you want: the prompt is empty.", "required")
    elif caps and len(prompt) > caps.max_prompt_chars:
        result.add(
            "prompt", f"The prompt is {len(prompt):,} characters; the limit is {caps.max_prompt_chars:,}."
        )

    if request.mode not in MODES:
        result.add("mode", f"Unknown mode {request.mode!r}; choose one of {_choices(MODES)}.")
    elif caps and request.mode not in policy.effective_modes(caps):
        result.add(
            "mode",
            f"{request.mode} is not allowed here; choose one of {_choices(policy.effective_modes(caps))}.",
        )

    if request.background not in BACKGROUNDS:
        result.add(
            "background", f"Unknown background {request.background!r}; choose one of {_choices(BACKGROUNDS)}."
        )

    if caps is None:
        _check_inputs(request, None, result)
        return result

    qualities = policy.effective_qualities(caps)
    if request.quality not in qualities:
        result.add(
            "quality",
            f"Unknown or disallowed quality {request.quality!r}; choose one of {_choices(qualities)}.",
        )
    formats = policy.effective_formats(caps)
    if request.output_format not in formats:
        result.add(
            "output_format",
            f"Unknown or disallowed format {request.output_format!r}; choose one of {_choices(formats)}.",
        )
    elif request.background == "transparent" and request.output_format not in caps.transparent_formats:
        result.add(
            "background",
            f"A transparent background needs {' or '.join(caps.transparent_formats)}, not {request.output_format}.",
        )
    if request.output_compression is not None:
        if request.output_format == "png":
            result.add(
                "output_compression", "Compression applies only to jpeg and webp; leave it empty for png."
            )
        elif not 0 <= request.output_compression <= 100:
            result.add("output_compression", f"Compression must be 0-100 (got {request.output_compression}).")

    max_n = policy.effective_max_n(caps)
    if not 1 <= request.n <= max_n:
        result.add("n", f"The number of images must be between 1 and {max_n} (got {request.n}).")

    choice = _check_size(request, caps, policy, result)
    _check_inputs(request, caps, result)
    if result.ok and choice is not None:
        result.validated = ValidatedRequest(request, choice.ratio, choice.tier, choice.width, choice.height)
    return result


def _check_size(
    request: GenerationRequest, caps: ModelCapabilities, policy: Policy, result: ValidationResult
) -> SizeChoice | None:
    mode = request.mode if request.mode in MODES else "text-to-image"
    if request.size:
        if request.size == AUTO:
            ok = True
            if "auto" not in policy.effective_ratios():
                result.add("size", "Automatic sizing is not allowed here; pick a ratio.")
                ok = False
            if "1K" not in policy.effective_tiers():  # auto picks a size of about 1K
                result.add(
                    "tier", "Automatic sizing makes 1K images, which are not allowed here.", "access_denied"
                )
                ok = False
            return SizeChoice(AUTO, "1K", mode, None, None, True) if ok else None
        parsed = parse_size(request.size)
        if parsed is None:
            result.add(
                "size", f"{request.size!r} is not a size; write it as WIDTHxHEIGHT, for example 1536x864."
            )
            return None
        problems = size_problems(*parsed, caps)
        for message in problems:
            result.add("size", message)
        tier = tier_for_size(*parsed)
        label = ratio_label(*parsed)
        if policy.ratios is not None and label not in policy.effective_ratios():
            # An explicit size must not get round a policy that narrows the ratios.
            result.add(
                "size",
                f"{request.size} is a {label} size, which is not allowed here; "
                f"choose one of {_choices(policy.effective_ratios())}.",
            )
        if tier not in policy.effective_tiers():
            result.add(
                "tier", f"{request.size} is a {tier} size, which is not allowed here.", "access_denied"
            )
        return None if problems else SizeChoice(label, tier, mode, *parsed, True)

    ratio, tier = request.ratio or "", request.tier or ""
    ok = True
    if ratio not in RATIOS:
        result.add("ratio", f"Unknown aspect ratio {ratio!r}; choose one of {_choices(RATIOS)}.")
        ok = False
    elif ratio not in policy.effective_ratios():
        result.add(
            "ratio", f"{ratio} is not allowed here; choose one of {_choices(policy.effective_ratios())}."
        )
        ok = False
    if tier not in ("1K", "2K", "4K"):
        result.add("tier", f"Unknown resolution tier {tier!r}; choose one of 1K, 2K, 4K.")
        ok = False
    elif tier not in policy.effective_tiers():
        result.add(
            "tier",
            f"{tier} is not unlocked here; choose one of {_choices(policy.effective_tiers())}.",
            "access_denied",
        )
        ok = False
    if not ok:
        return None
    choice = resolve_size(ratio, tier, mode, caps)
    if not choice.allowed:
        result.add(choice.field or "tier", choice.reason)
        return None
    return choice


def _check_inputs(
    request: GenerationRequest, caps: ModelCapabilities | None, result: ValidationResult
) -> None:
    if request.mode == "text-to-image":
        if request.images:
            result.add(
                "images", "Input images are only used for image-to-image; switch the mode or remove them."
            )
        if request.mask:
            result.add("mask", "A mask is only used for image-to-image.")
        return
    if request.mode != "image-to-image":
        return
    if not request.images:
        result.add("images", "Image-to-image needs at least one input image.", "required")
        return
    max_images = caps.max_input_images if caps else 16
    if len(request.images) > max_images:
        result.add("images", f"At most {max_images} input images are accepted (got {len(request.images)}).")
    max_bytes = caps.max_input_bytes if caps else 50 * 1024 * 1024
    formats = caps.input_formats if caps else ("png", "jpeg", "webp")
    for image in request.images:
        _check_image(image, "images", formats, max_bytes, result)
    if request.mask is not None and caps is not None and not caps.supports_mask:
        result.add("mask", f"{caps.model} does not take a mask; remove it or choose another model.")
    elif request.mask is not None:
        mask = request.mask
        max_mask = caps.max_mask_bytes if caps else 4 * 1024 * 1024
        if _check_image(mask, "mask", ("png",), max_mask, result):
            if not mask.has_alpha:
                result.add(
                    "mask",
                    f"The mask {mask.name!r} needs an alpha channel: transparent areas mark what to edit.",
                )
            first = request.images[0]
            if first.format and (mask.width, mask.height) != (first.width, first.height):
                result.add(
                    "mask",
                    f"The mask is {mask.width}x{mask.height} but the first image is "
                    f"{first.width}x{first.height}; they must be the same size.",
                )


def _check_image(
    image: InputImage,
    field_name: str,
    formats: tuple[str, ...],
    max_bytes: int,
    result: ValidationResult,
) -> bool:
    if image.format is None:
        result.add(field_name, image.problem or f"{image.name!r} is not an image file that can be read.")
        return False
    ok = True
    if image.format not in formats:
        result.add(field_name, f"{image.name!r} is {image.format}; use {' or '.join(formats)}.")
        ok = False
    if image.size_bytes > max_bytes:
        result.add(field_name, f"{image.name!r} is {image.size_bytes:,} bytes; the limit is {max_bytes:,}.")
        ok = False
    if image.width * image.height > MAX_INPUT_PIXELS:
        result.add(
            field_name,
            f"{image.name!r} claims {image.width}x{image.height} pixels, more than the "
            f"{MAX_INPUT_PIXELS:,} allowed (a likely decompression bomb).",
        )
        ok = False
    return ok
