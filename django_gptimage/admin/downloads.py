"""Originals as one zip, streamed: each file is read from storage in chunks and sent as it goes."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from typing import Any, cast

from django.http import StreamingHttpResponse

from django_gptimage.models import ImageGeneration

CHUNK = 256 * 1024


class _Pipe:
    """A write-only file that hands out what was written since the last ``drain()``."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def member_name(generation: ImageGeneration, index: int, name: str) -> str:
    ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
    return f"{generation.created_at:%Y%m%d-%H%M%S}-{str(generation.pk)[:8]}/{index}.{ext}"


def zip_stream(generations: Iterable[ImageGeneration]) -> Iterator[bytes]:
    """The zip of every generation's result images (stored uncompressed: PNG/JPEG/WebP are)."""
    pipe = _Pipe()
    with zipfile.ZipFile(
        cast(Any, pipe), mode="w", compression=zipfile.ZIP_STORED, allowZip64=True
    ) as archive:
        for generation in generations:
            for image in generation.images.all():
                info = zipfile.ZipInfo(member_name(generation, image.index, image.file.name))
                info.date_time = image.created_at.timetuple()[:6] if image.created_at else info.date_time
                with (
                    image.file.storage.open(image.file.name, "rb") as source,
                    archive.open(info, "w", force_zip64=True) as out,
                ):
                    while chunk := source.read(CHUNK):
                        out.write(chunk)
                        yield pipe.drain()
    yield pipe.drain()


def zip_response(generations: Iterable[ImageGeneration], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(zip_stream(generations), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def has_images(generations: Iterable[Any]) -> bool:
    return any(g.images.all() for g in generations)
