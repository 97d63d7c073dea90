"""Request validation as strict as OpenAI's, from the server's own reading of the contract.

Parameter names come from the contract's ``CreateImageRequest`` / ``CreateImageEditRequest``
(tests/test_contract.py checks they still match); model limits come from
:mod:`.openai_limits`, written independently of ``django_gptimage.domain`` so a wrong limit in
the package is refused here instead of being agreed with (tests/test_openai_limits.py compares
the two tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors as e
from .images import ImageInfo, inspect_image
from .multipart import UploadedFile
from .openai_limits import OPENAI_LIMITS, OpenAILimits, parse_size, size_problems

GENERATION_PARAMS = frozenset(
    {
        "prompt", "model", "n", "quality", "response_format", "output_format", "output_compression",
        "stream", "partial_images", "size", "moderation", "background", "style", "user",
    }
)  # fmt: skip
EDIT_PARAMS = frozenset(
    {
        "image", "prompt", "mask", "background", "model", "n", "size", "response_format", "output_format",
        "output_compression", "user", "input_fidelity", "stream", "partial_images", "quality",
    }
)  # fmt: skip
EDIT_DEFAULT_MODEL = "gpt-image-1.5"  # the contract's default for /images/edits
INPUT_MIMETYPES = ("image/png", "image/jpeg", "image/webp")
AUTO_SIZE = (1024, 1024)
_INT_PARAMS = ("n", "output_compression", "partial_images")
_BOOL_PARAMS = ("stream",)


@dataclass
class ImageJob:
    """A validated request, with every ``auto`` resolved to what the server will produce."""

    endpoint: str  # "generation" or "edit"
    model: str
    prompt: str
    n: int
    width: int
    height: int
    quality: str
    output_format: str
    background: str
    compression: int
    stream: bool
    partial_images: int
    inputs: list[ImageInfo] = field(default_factory=list)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def _opt(params: dict[str, Any], name: str, kind: type, expected: str) -> Any:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise e.invalid_type(name, expected, value)
    return value


def _enum(params: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _opt(params, name, str, "a string")
    if value is None:
        return default
    if value not in allowed:
        raise e.invalid_enum(name, value, allowed)
    return value


def _int(params: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = _opt(params, name, int, "an integer")
    if value is None:
        return default
    problem = e.integer_range(name, value, low, high)
    if problem:
        raise problem
    return value


def _limits(
    params: dict[str, Any], default_model: str | None, models: Mapping[str, OpenAILimits]
) -> OpenAILimits:
    model = _opt(params, "model", str, "a string")
    if model is None:
        if default_model is None:
            raise e.invalid(
                "model",
                "The default model for this endpoint is dall-e-2, which this fake server does not serve; "
                "pass a GPT image model.",
            )
        model = default_model
    limits = models.get(model)
    if limits is None:
        raise e.invalid_enum("model", model, tuple(models))
    return limits


def _size(params: dict[str, Any], limits: OpenAILimits) -> tuple[int, int]:
    value = _opt(params, "size", str, "a string")
    if value is None or (value == "auto" and limits.auto_size):
        return AUTO_SIZE
    parsed = parse_size(value)
    if parsed is None:
        raise e.invalid("size", f"Invalid size '{value}'. Use 'auto' or WIDTHxHEIGHT, e.g. '1536x1024'.")
    problems = size_problems(*parsed, limits)
    if problems:
        raise e.invalid("size", f"Invalid size '{value}'. " + " ".join(problems))
    return parsed


def _job(
    params: dict[str, Any],
    endpoint: str,
    allowed: frozenset[str],
    default_model: str | None,
    models: Mapping[str, OpenAILimits],
) -> ImageJob:
    for name in params:
        if name not in allowed:
            raise e.unknown_parameter(name)
    prompt = params.get("prompt")
    if prompt is None:
        raise e.missing("prompt")
    if not isinstance(prompt, str):
        raise e.invalid_type("prompt", "a string", prompt)
    limits = _limits(params, default_model, models)
    if not prompt:
        raise e.invalid(
            "prompt", "Invalid 'prompt': empty string. Expected a non-empty string.", "empty_string"
        )
    if len(prompt) > limits.longest_prompt:
        raise e.invalid(
            "prompt",
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{limits.longest_prompt}, but got a string with length {len(prompt)} instead.",
            "string_above_max_length",
        )
    # GPT image models always answer base64, and OpenAI rejects the DALL-E-only knobs.
    if params.get("response_format") is not None:
        raise e.unknown_parameter("response_format")
    if params.get("style") is not None:
        raise e.unsupported_parameter("style", limits.model)
    if params.get("input_fidelity") is not None:
        if not limits.input_fidelity:
            raise e.unsupported_parameter("input_fidelity", limits.model)
        _enum(params, "input_fidelity", ("high", "low"), "low")
    _opt(params, "user", str, "a string")
    n = _int(params, "n", 1, limits.most_images_out, 1)
    quality = _enum(params, "quality", limits.qualities, "auto")
    fmt = _enum(params, "output_format", limits.output_formats, "png")
    background = _enum(params, "background", limits.backgrounds, "auto")
    if endpoint == "generation":
        _enum(params, "moderation", ("low", "auto"), "auto")
    compression = _int(params, "output_compression", 0, 100, 100)
    if params.get("output_compression") is not None and fmt == "png":
        raise e.invalid(
            "output_compression",
            "Invalid 'output_compression': compression is only supported for the jpeg and webp output formats.",
        )
    stream = _opt(params, "stream", bool, "a boolean") or False
    partial = _int(params, "partial_images", 0, limits.most_partial_images, 0)
    width, height = _size(params, limits)
    if background == "transparent" and fmt not in limits.transparent_formats:
        raise e.invalid(
            "background",
            f"Transparent background is not supported for output format '{fmt}'; "
            f"use {' or '.join(limits.transparent_formats)}.",
        )
    return ImageJob(
        endpoint=endpoint,
        model=limits.model,
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        quality="medium" if quality == "auto" else quality,
        output_format=fmt,
        background="transparent" if background == "transparent" else "opaque",
        compression=compression,
        stream=stream,
        partial_images=partial,
    )


def validate_generation(body: Any, models: Mapping[str, OpenAILimits] = OPENAI_LIMITS) -> ImageJob:
    if not isinstance(body, dict):
        raise e.APIError(400, "The request body must be a JSON object.", code="invalid_type")
    return _job(body, "generation", GENERATION_PARAMS, None, models)


def _coerce_form(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """Form values are strings; the API reads numbers and booleans out of them."""
    params: dict[str, Any] = {}
    for name, value in fields:
        if name in ("image", "image[]", "mask"):
            raise e.invalid_type(name.removesuffix("[]"), "a file", value)
        if name in _INT_PARAMS:
            try:
                params[name] = int(value.strip())
            except ValueError:
                raise e.invalid_type(name, "an integer", value) from None
        elif name in _BOOL_PARAMS:
            if value.strip().lower() not in ("true", "false"):
                raise e.invalid_type(name, "a boolean", value)
            params[name] = value.strip().lower() == "true"
        else:
            params[name] = value
    return params


def _check_file(upload: UploadedFile, param: str, max_bytes: int, formats: tuple[str, ...]) -> ImageInfo:
    if len(upload.data) > max_bytes:
        raise e.invalid(
            param,
            f"Invalid file '{param}': file too large ({len(upload.data):,} bytes). "
            f"The limit is {max_bytes:,} bytes.",
            "file_too_large",
        )
    if upload.content_type not in INPUT_MIMETYPES:
        raise e.invalid(
            param,
            f"Invalid file '{param}': unsupported mimetype ('{upload.content_type}'). Supported file "
            "formats are 'image/jpeg', 'image/png', and 'image/webp'.",
            "unsupported_file_mimetype",
        )
    info = inspect_image(upload.data)
    if info is None or info.format not in formats:
        raise e.invalid(
            param,
            f"Invalid image file '{upload.filename}': it must be a valid PNG, JPEG or WEBP image.",
            "invalid_image_format",
        )
    return info


def validate_edit(
    fields: list[tuple[str, str]],
    files: list[UploadedFile],
    models: Mapping[str, OpenAILimits] = OPENAI_LIMITS,
) -> ImageJob:
    params = _coerce_form(fields)
    images = [f for f in files if f.field in ("image", "image[]")]
    masks = [f for f in files if f.field == "mask"]
    for upload in files:
        if upload.field not in ("image", "image[]", "mask"):
            raise e.unknown_parameter(upload.field)
    if images:
        params["image"] = True  # present; checked below
    job = _job(params, "edit", EDIT_PARAMS, EDIT_DEFAULT_MODEL, models)
    limits = models[job.model]
    if not images:
        raise e.missing("image")
    if len(images) > limits.most_input_images:
        raise e.invalid(
            "image",
            f"Invalid 'image': array too long. Expected an array with maximum length "
            f"{limits.most_input_images}, but got an array with length {len(images)} instead.",
            "array_above_max_length",
        )
    job.inputs = [
        _check_file(upload, "image", limits.input_image_bytes, limits.input_image_formats)
        for upload in images
    ]
    if len(masks) > 1:
        raise e.invalid("mask", "Invalid 'mask': expected a single file.")
    if masks and not limits.takes_mask:
        raise e.unsupported_parameter("mask", limits.model)
    if masks:
        mask = _check_file(masks[0], "mask", limits.mask_bytes, ("png", "jpeg", "webp"))
        first = job.inputs[0]
        if mask.format != "png":
            raise e.invalid("mask", f"Invalid mask: it must be a PNG file, got {mask.format.upper()}.")
        if not mask.has_alpha:
            raise e.invalid("mask", "Invalid mask: it must have an alpha channel (RGBA or LA PNG).")
        if (mask.width, mask.height) != (first.width, first.height):
            raise e.invalid(
                "mask",
                f"Invalid mask: its size {mask.width}x{mask.height} must match the first image's "
                f"size {first.width}x{first.height}.",
            )
    return job
