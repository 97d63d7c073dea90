"""Reading uploaded input images safely: the header first, then the pixels decoded with bounded memory.

A header can lie: a truncated or corrupt file still opens and reports a size. Every input is
therefore decoded before it is accepted (PNGs inflated as a stream, JPEGs at 1/8 scale, other
formats whole once the pixel limit has been checked), so a damaged upload is a refusal with the
file's name, not a paid request that fails at the provider.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

from django_gptimage.domain.validation import MAX_INPUT_PIXELS, InputImage, Problem

PIL_TO_FORMAT = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
FORMAT_TO_CONTENT_TYPE = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FORMAT_TO_EXT = {"png": "png", "jpeg": "jpg", "webp": "webp"}


@dataclass(frozen=True)
class InspectedUpload:
    """An upload read into a local temporary file, plus what validation needs to know."""

    info: InputImage
    path: str
    sha256: str


def inspect_image(name: str, path: str) -> InputImage:
    """Format, size and alpha of the image at ``path``, its pixels decoded to prove the file whole."""
    size_bytes = os.path.getsize(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns (or raises) on huge images; validation reports bombs itself.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                fmt = PIL_TO_FORMAT.get(image.format or "", (image.format or "").lower() or None)
                has_alpha = image.mode in ("RGBA", "LA", "PA") or (
                    image.mode == "P" and "transparency" in image.info
                )
                width, height = image.width, image.height
    except Image.DecompressionBombError:
        problem = f"{name!r} claims far more pixels than any input may have (a likely decompression bomb)."
        return InputImage(name, None, size_bytes, problem=problem)
    except (UnidentifiedImageError, OSError, ValueError):
        return InputImage(name, None, size_bytes)
    if width * height <= MAX_INPUT_PIXELS:  # larger ones are refused as bombs without decoding
        damage = decode_problem(path, fmt)
        if damage:
            problem = f"{name!r} is damaged or truncated: its pixels cannot be decoded ({damage})."
            return InputImage(name, None, size_bytes, problem=problem)
    return InputImage(name, fmt, size_bytes, width, height, has_alpha)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BLOCK = 1024 * 1024
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by IHDR colour type


def _png_problem(path: str) -> str | None:
    """Walk every chunk (CRC checked) and inflate the image data to its end, in 1 MiB blocks.

    Flat memory whatever the image size: pixels are inflated and dropped, never kept. A
    non-interlaced image must inflate to exactly its rows; any image must end its zlib stream.
    """
    with open(path, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return "no PNG signature"
        inflater = zlib.decompressobj()
        inflated = 0
        expected: int | None = None
        while True:
            head = handle.read(8)
            if len(head) < 8:
                return "truncated: the file ends before the PNG's last chunk"
            length, kind = struct.unpack(">I4s", head)
            crc = zlib.crc32(kind)
            remaining = length
            data_head = b""
            while remaining:
                block = handle.read(min(remaining, _BLOCK))
                if not block:
                    return "truncated in the middle of a chunk"
                crc = zlib.crc32(block, crc)
                remaining -= len(block)
                if kind == b"IHDR":
                    data_head += block
                elif kind == b"IDAT":
                    try:
                        inflated += len(inflater.decompress(block, _BLOCK))
                        while inflater.unconsumed_tail:
                            inflated += len(inflater.decompress(inflater.unconsumed_tail, _BLOCK))
                    except zlib.error:
                        return "its image data is corrupt"
            stored = handle.read(4)
            if len(stored) < 4 or struct.unpack(">I", stored)[0] != crc:
                return f"a damaged {kind.decode('latin-1')} chunk (checksum mismatch)"
            if kind == b"IHDR" and len(data_head) >= 13:
                width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data_head[:13])
                channels = _PNG_CHANNELS.get(colour)
                if channels and not interlace:
                    expected = height * (1 + (width * channels * depth + 7) // 8)
            if kind == b"IEND":
                if not inflater.eof:
                    return "its image data ends early (truncated)"
                if expected is not None and inflated != expected:
                    return "its image data has the wrong length"
                return None


def decode_problem(path: str, fmt: str | None) -> str | None:
    """Why the pixels of the image at ``path`` cannot be decoded, or None when they can.

    Headers are not trusted: a truncated or corrupt upload would otherwise be sent (and
    billed) and fail at the provider. PNGs are inflated in a stream; JPEGs are decoded at
    1/8 scale (the whole entropy-coded data is still read); other formats are decoded fully,
    which the pixel limit checked before bounds.
    """
    if fmt == "png":
        return _png_problem(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if fmt == "jpeg":
                    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken data
        reason = str(exc) or exc.__class__.__name__
        return reason if len(reason) <= 80 else reason[:77] + "..."
    return None


def _is_upload(value: Any) -> bool:
    if hasattr(value, "source") and hasattr(value, "name"):  # a NamedUpload
        value = value.source
    if isinstance(value, str | os.PathLike):
        return True
    return callable(getattr(value, "read", None)) and not isinstance(value, io.TextIOBase)


def _single(value: Any) -> bool:
    return isinstance(value, str | bytes | os.PathLike) or callable(getattr(value, "read", None))


def as_upload_list(images: Any) -> Any:
    """``images`` as a list when it is an iterable of uploads (a generator is read once), else as is."""
    return list(images) if isinstance(images, Iterable) and not _single(images) else images


def upload_argument_problems(images: Any, mask: Any) -> list[Problem]:
    """Arguments that are not a list of uploads (paths, binary files) or not one mask."""
    hint = "a path or a file opened in binary mode"
    if _single(images):
        return [
            Problem(
                "images",
                f"images must be a list of images, not a single {type(images).__name__}; write images=[...].",
            )
        ]
    if not isinstance(images, Iterable):
        return [Problem("images", f"images must be a list of images, not {type(images).__name__}.")]
    problems = [
        Problem(
            "images", f"image {index} must be {hint}, not {type(item).__name__} (wrap bytes in io.BytesIO)."
        )
        for index, item in enumerate(images, start=1)
        if not _is_upload(item)
    ]
    if mask is not None and not _is_upload(mask):
        problems.append(
            Problem("mask", f"The mask must be {hint}, not {type(mask).__name__} (wrap bytes in io.BytesIO).")
        )
    return problems


def spool_upload(
    name: str, source: str | os.PathLike[str] | IO[bytes], directory: str, stem: str
) -> InspectedUpload:
    """Copy an upload (a path or a file object) to ``directory`` in chunks and inspect it."""
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, stem)
    digest = hashlib.sha256()
    if isinstance(source, str | os.PathLike):
        try:
            handle: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            # A refusal with the field, like any other unreadable input, not a traceback.
            reason = exc.strerror or exc.__class__.__name__
            problem = f"{name!r} cannot be read ({reason.lower()})."
            return InspectedUpload(InputImage(name, None, 0, problem=problem), "", "")
    else:
        handle = source
    try:
        if hasattr(handle, "seek"):
            handle.seek(0)
        with open(target, "wb") as out:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
    finally:
        if handle is not source:
            handle.close()
    return InspectedUpload(inspect_image(name, target), target, digest.hexdigest())
