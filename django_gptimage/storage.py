"""Writing result (and input) images through Django's storage API, never overwriting."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from django.core.files import File
from django.utils import timezone
from PIL import Image

from django_gptimage.conf import gptimage_settings
from django_gptimage.inputs import FORMAT_TO_CONTENT_TYPE, FORMAT_TO_EXT, PIL_TO_FORMAT
from django_gptimage.models import get_storage

if TYPE_CHECKING:
    from django_gptimage.models import ImageGeneration


class ImageCheckError(ValueError):
    """Bytes that are not a usable image of the expected kind."""


@dataclass(frozen=True)
class CheckedImage:
    format: str
    width: int
    height: int


class _NamedFile(File):
    """A File with the content type storages such as S3 use for the object's Content-Type."""

    def __init__(self, file: Any, name: str, content_type: str) -> None:
        super().__init__(file, name)
        self.content_type = content_type


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CRC_BLOCK = 1024 * 1024


def check_image(path: str) -> CheckedImage:
    """Open and verify the bytes; raise ImageCheckError if they are not a usable image.

    Pillow reads the header (format, size); PNGs then get every chunk's CRC checked in 1 MiB
    blocks. Pillow's own ``verify()`` reads each PNG chunk whole, so a PNG written as one big
    IDAT chunk (a 4K noise image: 24 MB) would cost twice its size in memory. No pixels are
    decoded.

    A missing file raises FileNotFoundError: kept bytes that are gone are a storage problem,
    not a bad answer from the provider (the runner must not discard the rest of the spool).
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ImageCheckError(f"not a readable image ({exc.__class__.__name__})") from None
    with handle:
        try:
            with Image.open(handle) as image:
                fmt = PIL_TO_FORMAT.get(image.format or "")
                size = image.size
                if fmt != "png":
                    image.verify()  # a no-op or a header check for JPEG/WebP: cheap
            if fmt == "png":
                _verify_png(handle)
        except ImageCheckError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken data
            raise ImageCheckError(f"not a readable image ({exc.__class__.__name__})") from None
    if fmt not in FORMAT_TO_CONTENT_TYPE:
        raise ImageCheckError(f"unexpected image format {fmt!r}")
    return CheckedImage(fmt, size[0], size[1])


def _verify_png(handle: BinaryIO) -> None:
    """Walk the PNG's chunks from IHDR to IEND checking each CRC, with flat memory use."""
    handle.seek(0)
    if handle.read(8) != PNG_SIGNATURE:
        raise ImageCheckError("not a readable image (no PNG signature)")
    seen: set[bytes] = set()
    while True:
        head = handle.read(8)
        if len(head) < 8:
            raise ImageCheckError("not a readable image (truncated PNG: no IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        if not seen and kind != b"IHDR":
            raise ImageCheckError("not a readable image (PNG does not start with IHDR)")
        crc = zlib.crc32(kind)
        remaining = length
        while remaining:
            block = handle.read(min(remaining, _CRC_BLOCK))
            if not block:
                raise ImageCheckError("not a readable image (truncated PNG chunk)")
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
        stored = handle.read(4)
        if len(stored) < 4:
            raise ImageCheckError("not a readable image (truncated PNG chunk)")
        if struct.unpack(">I", stored)[0] != crc:
            raise ImageCheckError(
                f"not a readable image (broken PNG {kind.decode('latin-1')} chunk checksum)"
            )
        seen.add(kind)
        if kind == b"IEND":
            if b"IDAT" not in seen:
                raise ImageCheckError("not a readable image (PNG without image data)")
            return


def _context(generation: ImageGeneration, **extra: Any) -> dict[str, Any]:
    target = (generation.metadata or {}).get("target") or {}
    return {
        "date": generation.created_at or timezone.now(),
        "id": generation.pk,
        "ratio": generation.ratio,
        "ratio_slug": generation.ratio.replace(":", "x"),
        "tier": generation.tier,
        "model": generation.model,
        "app_label": target.get("app_label", "gptimage"),
        "model_name": target.get("model", "generation"),
        **extra,
    }


def result_name(generation: ImageGeneration, *, index: int, sha256: str, fmt: str) -> str:
    return gptimage_settings.UPLOAD_TO.format(
        **_context(generation, index=index, hash=sha256[:12], ext=FORMAT_TO_EXT[fmt])
    )


def input_name(generation: ImageGeneration, *, role: str, index: int, fmt: str) -> str:
    return gptimage_settings.INPUT_UPLOAD_TO.format(
        **_context(generation, role=role, index=index, ext=FORMAT_TO_EXT.get(fmt, "bin"))
    )


def holds_copy(name: str, sha256: str) -> bool:
    """Whether the storage already holds exactly these bytes under the result name ``name``.

    An attempt interrupted between writing an image and recording it (a worker killed there, an
    upload whose answer was lost) leaves the file behind; its store-only retry keeps that file
    instead of writing the same bytes again under a free variant of the name. Only when
    ``UPLOAD_TO`` gives every image of every generation a name of its own (``{id}`` and
    ``{index}``): otherwise the file could be another image's, and sharing it would let deleting
    one delete the other.
    """
    template = gptimage_settings.UPLOAD_TO
    if "{id" not in template or "{index" not in template:
        return False
    storage = get_storage()
    if not storage.exists(name):
        return False
    digest = hashlib.sha256()
    with storage.open(name, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest() == sha256


def save_file(path: str, name: str, fmt: str) -> str:
    """Save a local file under ``name`` (or a free variant of it) and return the stored name.

    ``exists()`` is checked first because some backends (S3 with ``file_overwrite=True``)
    would otherwise replace an object silently.
    """
    storage = get_storage()
    candidate, n = name, 0
    while storage.exists(candidate):
        n += 1
        root, ext = os.path.splitext(name)
        candidate = f"{root}-{n}{ext}"
    with open(path, "rb") as handle:
        return storage.save(
            candidate, _NamedFile(handle, os.path.basename(candidate), FORMAT_TO_CONTENT_TYPE[fmt])
        )
