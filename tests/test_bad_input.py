"""Bad input to every public entry: a field refusal (CLI exit 2), never a traceback, nothing sent."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from PIL import Image

from django_gptimage.domain.arguments import argument_problems, bad_characters
from django_gptimage.domain.sizes import parse_size
from django_gptimage.domain.validation import GenerationRequest, validate
from django_gptimage.inputs import decode_problem, inspect_image
from django_gptimage.models import ImageGeneration
from django_gptimage.service import GenerationRefused, build_request, check_request, request_generation

pytestmark = pytest.mark.django_db(transaction=True)


def refused_fields(call: Any) -> dict[str, list[str]]:
    with pytest.raises(GenerationRefused) as excinfo:
        call()
    return excinfo.value.as_dict()


def image_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/images/")]


# Types and characters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "snippet"),
    [
        ({"prompt": b"bytes prompt"}, "prompt", "must be text, not bytes"),
        ({"prompt": 42}, "prompt", "must be text, not int"),
        ({"prompt": ["a", "list"]}, "prompt", "must be text, not list"),
        ({"prompt": "A cat\x00 on a mat"}, "prompt", "a NUL byte (U+0000) at position 6"),
        ({"prompt": "Bell\x07"}, "prompt", "a control character (U+0007)"),
        ({"prompt": "Escape \x1b[31m red"}, "prompt", "U+001B"),
        ({"prompt": "C1 \x85 next line"}, "prompt", "U+0085"),
        ({"prompt": "Lone \ud800 surrogate"}, "prompt", "a lone surrogate (U+D800)"),
        ({"prompt": "ok", "n": True}, "n", "whole number, not True (bool)"),
        ({"prompt": "ok", "n": 2.0}, "n", "not 2.0 (float)"),
        ({"prompt": "ok", "n": "2"}, "n", "not '2' (str)"),
        ({"prompt": "ok", "n": None}, "n", "not None"),
        ({"prompt": "ok", "output_compression": False}, "output_compression", "not False (bool)"),
        ({"prompt": "ok", "output_compression": "80"}, "output_compression", "(str)"),
        ({"prompt": "ok", "ratio": 16}, "ratio", "must be text, not 16 (int)"),
        ({"prompt": "ok", "tier": b"2K"}, "tier", "(bytes)"),
        ({"prompt": "ok", "model": ["gpt-image-2"]}, "model", "(list)"),
        ({"prompt": "ok", "size": "1024x1024\x00"}, "size", "NUL byte"),
        ({"prompt": "ok", "quality": "x" * 10_000}, "quality", "10,000 characters"),
    ],
)
@pytest.mark.parametrize("entry", ["build_request", "request_generation"])
def test_bad_arguments_are_field_refusals(
    kwargs: dict[str, Any], field: str, snippet: str, entry: str
) -> None:
    call = build_request if entry == "build_request" else request_generation
    problems = refused_fields(lambda: call(**kwargs))
    assert field in problems, problems
    assert any(snippet in message for message in problems[field]), problems[field]
    assert ImageGeneration.objects.count() == 0


def test_tabs_and_line_breaks_are_fine() -> None:
    assert bad_characters("Line one\nline two\r\n\tindented, with emoji \U0001f308 and accents é") == []
    assert argument_problems(prompt="a\tb\nc", n=1) == []


def test_long_values_are_not_quoted_whole() -> None:
    problems = refused_fields(lambda: build_request(prompt="ok", ratio=["x" * 5000]))
    assert all(len(message) < 200 for message in problems["ratio"])


def test_check_request_refuses_a_request_built_by_hand() -> None:
    request = GenerationRequest(prompt=b"hand made", model="gpt-image-2", n=True)  # type: ignore[arg-type]
    problems = refused_fields(lambda: check_request(request))
    assert {"prompt", "n"} <= set(problems)


def test_validate_never_raises_on_wrong_types() -> None:
    request = GenerationRequest(
        prompt=None,
        model=7,
        mode=None,
        ratio=[],
        tier={},
        quality=1.5,
        output_format=b"png",
        n="3",  # type: ignore[arg-type]
    )
    result = validate(request)
    assert not result.ok and result.validated is None
    assert {p.field for p in result.problems} >= {"model", "n", "ratio", "tier", "quality", "output_format"}


@pytest.mark.parametrize(
    ("images", "snippet"),
    [
        ("photo.png", "a list of images, not a single str"),
        (b"\x89PNG", "a list of images, not a single bytes"),
        ([42], "image 1 must be a path or a file opened in binary mode, not int"),
        ([None], "not NoneType"),
    ],
)
def test_bad_image_arguments(images: Any, snippet: str) -> None:
    problems = refused_fields(lambda: request_generation(prompt="Edit", images=images))
    assert any(snippet in message for message in problems["images"]), problems


def test_bad_mask_argument(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64)).save(source)
    problems = refused_fields(lambda: request_generation(prompt="Edit", images=[source], mask=3.5))
    assert any("not float" in message for message in problems["mask"])


# Sizes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        "1024",
        "1024x",
        "x1024",
        "1024x1024x1",
        "-1024x1024",
        "1024 x 1024",
        "１０２４x１０２４",
        "²x²",
        "0x1e3",
        "",
    ],
)
def test_malformed_sizes_are_refused_not_crashes(size: str) -> None:
    assert parse_size(size) is None or size == ""
    if size:
        problems = refused_fields(lambda: check_request(build_request(prompt="ok", size=size)))
        assert "size" in problems


def test_well_formed_sizes_parse() -> None:
    assert parse_size("1536x864") == (1536, 864)
    assert parse_size("1536X864") == (1536, 864)


# Damaged input images ------------------------------------------------------------------------------


def _png(path: Path, size: tuple[int, int] = (256, 256)) -> bytes:
    Image.effect_noise(size, 64).convert("RGB").save(path, "PNG")
    return path.read_bytes()


def _jpeg(path: Path) -> bytes:
    Image.effect_noise((256, 256), 64).convert("RGB").save(path, "JPEG", quality=90)
    return path.read_bytes()


def test_good_images_decode(tmp_path: Path) -> None:
    for name, maker in (("a.png", _png), ("a.jpg", _jpeg)):
        maker(tmp_path / name)
        info = inspect_image(name, str(tmp_path / name))
        assert info.format in ("png", "jpeg") and not info.problem
    Image.new("RGBA", (64, 32), (0, 0, 0, 0)).save(tmp_path / "a.webp", "WEBP")
    assert decode_problem(str(tmp_path / "a.webp"), "webp") is None
    Image.new("RGB", (33, 17)).save(
        tmp_path / "i.png", "PNG", interlace=1
    )  # Pillow ignores it; still checked
    assert decode_problem(str(tmp_path / "i.png"), "png") is None


def _truncated_png(tmp_path: Path) -> Path:
    data = _png(tmp_path / "full.png")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _png_with_bad_pixels(tmp_path: Path) -> Path:
    """Every chunk checksum right, the header right, the compressed pixels garbage."""
    import struct

    data = _png(tmp_path / "good.png", (64, 64))
    ihdr = data[8 : 8 + 25]
    junk = zlib.compress(b"\x00" * 100)  # a valid zlib stream of the wrong length
    idat = struct.pack(">I", len(junk)) + b"IDAT" + junk + struct.pack(">I", zlib.crc32(b"IDAT" + junk))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    path = tmp_path / "bad-pixels.png"
    path.write_bytes(data[:8] + ihdr + idat + iend)
    return path


def _truncated_jpeg(tmp_path: Path) -> Path:
    data = _jpeg(tmp_path / "full.jpg")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.mark.parametrize("maker", [_truncated_png, _png_with_bad_pixels, _truncated_jpeg])
def test_damaged_images_are_refused_by_decoding(tmp_path: Path, maker: Any, gptimage_openai: Any) -> None:
    path = maker(tmp_path)
    with Image.open(path) as image:  # the header alone looks fine
        assert image.size[0] > 0
    problems = refused_fields(lambda: request_generation(prompt="Edit it", images=[path], ratio="1:1"))
    [message] = problems["images"]
    assert path.name in message and "damaged or truncated" in message
    assert image_requests(gptimage_openai) == []
    assert ImageGeneration.objects.count() == 0


def test_damaged_mask_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64)).save(source)
    mask = tmp_path / "mask.png"
    Image.new("RGBA", (64, 64)).save(mask)
    mask.write_bytes(mask.read_bytes()[:-20])
    problems = refused_fields(lambda: request_generation(prompt="Edit", images=[source], mask=mask))
    assert "mask" in problems


# The CLI -------------------------------------------------------------------------------------------


def generate(*args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("gptimage_generate", *args, "--json", stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    text = out.getvalue().strip()
    return status, (json.loads(text) if text else {}), err.getvalue()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--prompt", "A cat\x00"), "prompt"),
        (("--prompt", "Cat", "--size", "1024x"), "size"),
        (("--prompt", "Cat", "--size", "²x²"), "size"),
        (("--prompt", "Cat", "--size=-5x1024"), "size"),
        (("--prompt", "Cat", "--ratio", "16:9\x1b"), "ratio"),
    ],
)
def test_cli_bad_input_exits_2_with_the_field(
    args: tuple[str, ...], field: str, gptimage_openai: Any
) -> None:
    status, record, err = generate(*args)
    assert status == 2, (record, err)
    assert record["status"] == "refused" and field in record["problems"]
    assert "Traceback" not in err
    assert image_requests(gptimage_openai) == []


def test_cli_truncated_image_exits_2(tmp_path: Path, gptimage_openai: Any) -> None:
    path = _truncated_png(tmp_path)
    status, record, _ = generate("--prompt", "Edit", "--image", str(path), "--ratio", "1:1")
    assert status == 2 and "images" in record["problems"]
    assert image_requests(gptimage_openai) == []
