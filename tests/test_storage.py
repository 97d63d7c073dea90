"""Results (and inputs) written through Django's storage API, here a FileSystemStorage.

Generations run in-process (``RUN_MODE = "sync"``) with the offline provider: real images at
the exact size, nothing on the network.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tracemalloc
import zlib
from typing import Any, ClassVar

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import transaction
from PIL import Image

from django_gptimage.models import GeneratedImage, ImageGeneration, Status, get_storage
from django_gptimage.service import request_generation
from django_gptimage.storage import (
    PNG_SIGNATURE,
    CheckedImage,
    ImageCheckError,
    check_image,
    result_name,
    save_file,
)

# Transactional: run_generation() starts with close_old_connections(), which closes a connection
# that is inside an atomic block (a plain `db` test's). Workers run in autocommit mode too.
pytestmark = pytest.mark.django_db(transaction=True)

FS = "django.core.files.storage.FileSystemStorage"


class RecordingStorage(FileSystemStorage):
    """Remembers the content type each saved file was handed over with."""

    saved: ClassVar[list[tuple[str, str | None]]] = []

    def _save(self, name: str, content: Any) -> str:
        stored = super()._save(name, content)
        RecordingStorage.saved.append((stored, getattr(content, "content_type", None)))
        return stored


@pytest.fixture
def media(settings, tmp_path):
    """A fresh MEDIA_ROOT and spool directory for every test."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.GPTIMAGE = {**settings.GPTIMAGE, "SPOOL_DIR": str(tmp_path / "spool")}
    return tmp_path / "media"


@pytest.fixture
def generate(media):
    """request_generation(...) run to the end (sync mode runs it on commit), refreshed."""

    def run(**kwargs: Any) -> ImageGeneration:
        kwargs.setdefault("prompt", "A lighthouse at dusk, poster style")
        generation = request_generation(**kwargs)
        generation.refresh_from_db()
        return generation

    return run


def stored_bytes(name: str) -> bytes:
    with get_storage().open(name, "rb") as handle:
        return handle.read()


def test_default_template_renders_every_placeholder(generate):
    generation = generate(ratio="16:9", tier="1K")

    assert generation.status == Status.SUCCEEDED, generation.error_message
    image = generation.images.get()
    expected = f"gptimage/{generation.created_at:%Y/%m/%d}/{generation.pk}/0-16x9-1K-{image.sha256[:12]}.png"
    assert image.file.name == expected
    assert get_storage().exists(expected)


def test_custom_upload_to_from_settings(settings, generate):
    settings.GPTIMAGE = {
        **settings.GPTIMAGE,
        "UPLOAD_TO": (
            "covers/{app_label}/{model_name}/{date:%Y-%m}/{id}/"
            "{index}-{ratio}-{ratio_slug}-{tier}-{model}-{hash}.{ext}"
        ),
    }
    generation = generate(
        ratio="3:2",
        tier="1K",
        n=2,
        output_format="jpeg",
        metadata={"target": {"app_label": "blog", "model": "post"}},
    )

    assert generation.status == Status.SUCCEEDED, generation.error_message
    images = list(generation.images.order_by("index"))
    assert [i.index for i in images] == [0, 1]
    for image in images:
        assert image.file.name == (
            f"covers/blog/post/{generation.created_at:%Y-%m}/{generation.pk}/"
            f"{image.index}-3:2-3x2-1K-gpt-image-2-{image.sha256[:12]}.jpg"
        )
        assert get_storage().exists(image.file.name)


def test_target_defaults_when_metadata_has_none(settings, generate):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "UPLOAD_TO": "{app_label}/{model_name}/{id}-{index}.{ext}"}
    generation = generate()

    assert generation.images.get().file.name == f"gptimage/generation/{generation.pk}-0.png"


def test_an_existing_file_is_never_overwritten(settings, media):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "UPLOAD_TO": "fixed/{id}-{index}.{ext}"}
    original = b"someone else's file"
    # Sync mode starts the generation when the transaction commits: by then the name it
    # would be saved under is taken.
    with transaction.atomic():
        generation = request_generation(prompt="A red kite over the dunes")
        taken = f"fixed/{generation.pk}-0.png"
        os.makedirs(media / "fixed", exist_ok=True)
        (media / taken).write_bytes(original)
        assert not generation.images.exists()
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED, generation.error_message
    name = generation.images.get().file.name
    assert name != taken
    assert name.startswith(f"fixed/{generation.pk}-0") and name.endswith(".png")
    assert (media / taken).read_bytes() == original
    assert hashlib.sha256(stored_bytes(name)).hexdigest() == generation.images.get().sha256


def test_save_file_picks_a_free_name(media, tmp_path):
    source = tmp_path / "a.png"
    Image.new("RGB", (8, 8), "red").save(source)
    first = save_file(str(source), "same/name.png", "png")
    second = save_file(str(source), "same/name.png", "png")
    third = save_file(str(source), "same/name.png", "png")

    assert first == "same/name.png"
    assert len({first, second, third}) == 3
    assert all(n.startswith("same/name") and n.endswith(".png") for n in (second, third))


def test_another_storages_alias(settings, generate, media, tmp_path):
    other = tmp_path / "elsewhere"
    settings.STORAGES = {
        **settings.STORAGES,
        "gptimage": {"BACKEND": FS, "OPTIONS": {"location": str(other)}},
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "gptimage"}

    generation = generate(ratio="1:1")

    assert generation.status == Status.SUCCEEDED, generation.error_message
    name = generation.images.get().file.name
    assert (other / name).is_file()
    assert not (media / name).exists()
    assert get_storage().location == str(other)


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_recorded_metadata_matches_the_stored_file(generate, output_format):
    generation = generate(ratio="16:9", tier="1K", n=2, output_format=output_format)

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert generation.images.count() == 2
    for image in generation.images.all():
        data = stored_bytes(image.file.name)
        assert image.size_bytes == len(data)
        assert image.sha256 == hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as opened:
            assert opened.size == (image.width, image.height) == (1088, 608)
            assert opened.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[output_format]
        assert image.format == output_format
        assert image.file.name.endswith({"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[output_format])
    # The spool is emptied once everything is stored.
    assert generation.spool_dir == ""
    assert "spooled" not in generation.metadata


@pytest.mark.parametrize(
    ("output_format", "content_type"),
    [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")],
)
def test_content_type_is_handed_to_the_storage(settings, generate, output_format, content_type):
    settings.STORAGES = {**settings.STORAGES, "recording": {"BACKEND": f"{__name__}.RecordingStorage"}}
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "recording"}
    RecordingStorage.saved.clear()

    generation = generate(output_format=output_format)

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert RecordingStorage.saved == [(generation.images.get().file.name, content_type)]


def test_input_images_use_input_upload_to(settings, generate, tmp_path):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "INPUT_UPLOAD_TO": "inputs/{id}/{role}-{index}.{ext}"}
    source = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), (10, 120, 200)).save(source, "JPEG")

    generation = generate(images=[str(source)], ratio="1:1")

    assert generation.status == Status.SUCCEEDED, generation.error_message
    stored = generation.inputs.get()
    assert stored.file.name == f"inputs/{generation.pk}/image-0.jpg"
    assert stored_bytes(stored.file.name) == source.read_bytes()
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_result_name_uses_the_format_extension(generate):
    generation = generate()
    sha = "ab" * 32
    assert result_name(generation, index=3, sha256=sha, fmt="jpeg").endswith(f"/3-1x1-1K-{sha[:12]}.jpg")
    assert result_name(generation, index=0, sha256=sha, fmt="webp").endswith(".webp")
    assert GeneratedImage.objects.filter(generation=generation).count() == 1


# -- check_image ---------------------------------------------------------------------------------


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(PNG_SIGNATURE)
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return bytes(out)


def single_idat_png(path: os.PathLike[str], size: tuple[int, int]) -> bytes:
    """A noise PNG whose pixel data is one big IDAT chunk (some encoders write them like that)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, "PNG", compress_level=1)
    chunks = _chunks(buffer.getvalue())
    assert sum(kind == b"IDAT" for kind, _ in chunks) > 1
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    merged = [c for c in chunks if c[0] not in (b"IDAT", b"IEND")] + [(b"IDAT", idat), (b"IEND", b"")]
    data = _png(merged)
    with open(path, "wb") as handle:
        handle.write(data)
    return data


@pytest.mark.parametrize(("fmt", "pil"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_check_image_reads_format_and_size(tmp_path, fmt, pil):
    path = tmp_path / f"a.{fmt}"
    Image.new("RGB", (320, 200), "teal").save(path, pil)
    assert check_image(str(path)) == CheckedImage(fmt, 320, 200)


def test_check_image_big_png_chunk_with_flat_memory(tmp_path):
    path = tmp_path / "single.png"
    data = single_idat_png(path, (2048, 1152))
    assert len(data) > 6_000_000
    tracemalloc.start()
    try:
        checked = check_image(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checked == CheckedImage("png", 2048, 1152)
    # Pillow's verify() would read the 7 MB chunk whole (twice that at peak); we read 1 MiB blocks.
    assert peak < 3 * 2**20


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:-12], "no IEND"),
        (lambda d: d[:200] + bytes([d[200] ^ 0xFF]) + d[201:], "checksum"),
        (lambda d: b"<html><body>Bad Gateway</body></html>", "UnidentifiedImageError"),
        (lambda d: b"", "UnidentifiedImageError"),
    ],
    ids=["cut-in-half", "no-iend", "flipped-byte", "html", "empty"],
)
def test_check_image_refuses_broken_pngs(tmp_path, damage, message):
    good = tmp_path / "good.png"
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(good, "PNG")
    bad = tmp_path / "bad.png"
    bad.write_bytes(damage(good.read_bytes()))

    with pytest.raises(ImageCheckError) as error:
        check_image(str(bad))
    assert message in str(error.value)
    assert str(error.value).startswith("not a readable image")


def test_check_image_refuses_a_png_without_pixels(tmp_path):
    path = tmp_path / "empty.png"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    path.write_bytes(_png([c for c in _chunks(buffer.getvalue()) if c[0] != b"IDAT"]))
    with pytest.raises(ImageCheckError):
        check_image(str(path))


def test_check_image_refuses_other_formats(tmp_path):
    path = tmp_path / "a.gif"
    Image.new("P", (8, 8)).save(path, "GIF")
    with pytest.raises(ImageCheckError, match="unexpected image format 'gif'"):
        check_image(str(path))


def test_check_image_missing_file_is_not_a_bad_image(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_image(str(tmp_path / "gone.png"))
