"""Reading uploaded input images safely: header only, never a full decode of untrusted bytes."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

from django_gptimage.domain.validation import InputImage

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
    """Format, size and alpha of the image at ``path`` from its header (no pixel decoding)."""
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
                return InputImage(name, fmt, size_bytes, image.width, image.height, has_alpha)
    except Image.DecompressionBombError:
        problem = f"{name!r} claims far more pixels than any input may have (a likely decompression bomb)."
        return InputImage(name, None, size_bytes, problem=problem)
    except (UnidentifiedImageError, OSError, ValueError):
        return InputImage(name, None, size_bytes)


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
