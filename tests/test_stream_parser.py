"""The streaming parsers: base64 images decoded to files while the body arrives, in any chunking."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random

import pytest
from PIL import Image

from django_gptimage.providers._b64stream import JSONImageReader, StreamFormatError, placeholder_index
from django_gptimage.providers._sse import SSEImageReader


def png_bytes(width: int, height: int, seed: int, *, noise: bool = False) -> bytes:
    """A real PNG; ``noise`` makes it incompressible so its base64 text is long."""
    rng = random.Random(seed)
    if noise:
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    else:
        image = Image.new(
            "RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def b64(data: bytes, *, escape_slashes: bool = False) -> str:
    text = base64.b64encode(data).decode("ascii")
    return text.replace("/", "\\/") if escape_slashes else text


def images_doc(images: list[bytes], *, escape_slashes: bool = False, spaced: bool = False) -> bytes:
    """An ImagesResponse body as OpenAI sends it (optionally with ``\\/`` escapes and loose spacing)."""
    template = '{"b64_json" :  "%s"}' if spaced else '{"b64_json":"%s"}'
    items = ",".join(template.replace("%s", b64(img, escape_slashes=escape_slashes)) for img in images)
    head = '{"created": 1700000000, "data": ['
    tail = (
        '], "size": "1024x1024", "quality": "low", "output_format": "png", "background": "opaque", '
        '"usage": {"total_tokens": 300, "input_tokens": 28, "output_tokens": 272}}'
    )
    return (head + items + tail).encode()


def random_chunks(data: bytes, rng: random.Random, max_size: int) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, max_size)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def read_json(tmp_path, chunks: list[bytes]) -> tuple[dict, JSONImageReader]:
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    for chunk in chunks:
        reader.feed(chunk)
    return reader.close(), reader


def assert_images(
    document: dict, reader: JSONImageReader, expected: list[bytes], *, are_images: bool = True
) -> None:
    """Each placeholder points at the file holding exactly the image that was in its place."""
    assert len(reader.files) == len(expected)
    assert len(document["data"]) == len(expected)
    for position, item in enumerate(document["data"]):
        index = placeholder_index(item["b64_json"])
        assert index is not None
        decoded = reader.files[index]
        with open(decoded.path, "rb") as fh:
            content = fh.read()
        assert content == expected[position]
        assert decoded.size_bytes == len(expected[position])
        assert decoded.sha256 == hashlib.sha256(expected[position]).hexdigest()
        if are_images:
            with Image.open(decoded.path) as im:
                im.verify()


# -- JSONImageReader -------------------------------------------------------------------------------


def test_whole_document_in_one_chunk(tmp_path):
    images = [png_bytes(64, 48, 1)]
    document, reader = read_json(tmp_path, [images_doc(images)])
    assert_images(document, reader, images)
    # The rest of the document survives the round trip.
    assert document["size"] == "1024x1024"
    assert document["usage"]["output_tokens"] == 272
    assert document["created"] == 1700000000


def test_several_images_map_to_the_right_files(tmp_path):
    images = [png_bytes(40 + i, 30 + i, seed=i, noise=True) for i in range(4)]
    assert len({hashlib.sha256(i).hexdigest() for i in images}) == 4
    document, reader = read_json(tmp_path, [images_doc(images)])
    assert_images(document, reader, images)
    assert [placeholder_index(d["b64_json"]) for d in document["data"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("seed", range(12))
def test_random_chunkings(tmp_path, seed):
    rng = random.Random(seed)
    images = [png_bytes(50, 40, seed * 10 + i, noise=True) for i in range(rng.randint(1, 3))]
    body = images_doc(images, escape_slashes=seed % 2 == 1, spaced=seed % 3 == 0)
    chunks = random_chunks(body, rng, max_size=rng.choice([3, 17, 100, 1000, 5000]))
    assert b"".join(chunks) == body
    document, reader = read_json(tmp_path, chunks)
    assert_images(document, reader, images)


def test_one_byte_chunks(tmp_path):
    images = [png_bytes(8, 8, 1, noise=True), png_bytes(9, 7, 2, noise=True)]
    body = images_doc(images, escape_slashes=True, spaced=True)
    assert b"\\/" in body  # the escape path is really exercised
    document, reader = read_json(tmp_path, [body[i : i + 1] for i in range(len(body))])
    assert_images(document, reader, images)


def test_every_split_point_of_a_small_document(tmp_path):
    images = [png_bytes(4, 4, 3)]
    body = images_doc(images, escape_slashes=True)
    for cut in range(1, len(body)):
        directory = tmp_path / str(cut)
        directory.mkdir()
        document, reader = read_json(directory, [body[:cut], body[cut:]])
        assert_images(document, reader, images)


def test_escaped_slashes_are_decoded(tmp_path):
    # Find bytes whose base64 has many slashes, so "\/" matters.
    data = bytes([0xFF, 0xFF, 0xFF]) * 50
    assert "/" in b64(data)
    body = b'{"data":[{"b64_json":"' + b64(data, escape_slashes=True).encode() + b'"}]}'
    for size in (1, 2, 3, 5, 7):
        directory = tmp_path / str(size)
        directory.mkdir()
        document, reader = read_json(directory, [body[i : i + size] for i in range(0, len(body), size)])
        assert_images(document, reader, [data], are_images=False)


def test_escaped_backslash_just_before_the_closing_quote(tmp_path):
    # JSON "QUJD\\" is the text QUJD\ : the quote after the escaped backslash ends the value.
    body = b'{"data":[{"b64_json":"QUJD\\\\"},{"b64_json":"REVG"}],"size":"1x1"}'
    assert json.loads(body)["data"][0]["b64_json"] == "QUJD\\"
    document, reader = read_json(tmp_path, [body])
    assert document["size"] == "1x1"
    assert_images(document, reader, [b"ABC", b"DEF"], are_images=False)


def test_key_split_across_chunks(tmp_path):
    images = [png_bytes(6, 6, 4)]
    body = images_doc(images)
    key = body.index(b'"b64_json"')
    for cut in range(key, key + len(b'"b64_json"') + 3):
        directory = tmp_path / str(cut)
        directory.mkdir()
        document, reader = read_json(directory, [body[:cut], body[cut:]])
        assert_images(document, reader, images)


def test_document_without_images(tmp_path):
    document, reader = read_json(tmp_path, [b'{"data": [], "created": 1}'])
    assert document == {"data": [], "created": 1}
    assert reader.files == []


def test_truncated_inside_an_image_is_an_error(tmp_path):
    body = images_doc([png_bytes(30, 30, 5, noise=True)])
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    reader.feed(body[: len(body) // 2])
    with pytest.raises(StreamFormatError):
        reader.close()


@pytest.mark.parametrize("keep", [1, 10, 25])
def test_truncated_outside_an_image_is_an_error(tmp_path, keep):
    body = images_doc([png_bytes(8, 8, 6)])
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    reader.feed(body[: len(body) - keep])
    with pytest.raises(StreamFormatError):
        reader.close()


def test_truncated_before_the_first_image_is_an_error(tmp_path):
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    reader.feed(b'{"created": 1, "data": [{"b64')
    with pytest.raises(StreamFormatError):
        reader.close()


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>",
        b"",
        b"not json at all",
        b"[1, 2, 3]",
        b'"just a string"',
    ],
)
def test_non_json_is_an_error(tmp_path, body):
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    reader.feed(body)
    with pytest.raises(StreamFormatError):
        reader.close()


@pytest.mark.parametrize("value", [b"null", b"123", b"true", b'["QUJD"]', b'{"x": "QUJD"}'])
def test_b64_json_that_is_not_a_string_is_an_error(tmp_path, value):
    body = b'{"data": [{"b64_json": ' + value + b"}]}"
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    with pytest.raises(StreamFormatError):
        for i in range(len(body)):
            reader.feed(body[i : i + 1])
        reader.close()


def test_base64_cut_mid_group_is_an_error(tmp_path):
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    with pytest.raises(StreamFormatError):
        reader.feed(b'{"data": [{"b64_json": "QUJDRA"}]}')  # 6 characters, no padding
        reader.close()


def test_abort_removes_decoded_files(tmp_path):
    reader = JSONImageReader(lambda i: os.path.join(tmp_path, f"out-{i}.bin"))
    body = images_doc([png_bytes(8, 8, 7), png_bytes(8, 8, 8)])
    reader.feed(body[: len(body) - 5])
    paths = [f.path for f in reader.files]
    assert paths and all(os.path.exists(p) for p in paths)
    reader.abort()
    assert not any(os.path.exists(p) for p in paths)


def test_placeholder_index():
    assert placeholder_index("__gptimage_file_0__") == 0
    assert placeholder_index("__gptimage_file_12__") == 12
    assert placeholder_index("__gptimage_file_x__") is None
    assert placeholder_index("QUJD") is None
    assert placeholder_index(None) is None
    assert placeholder_index(3) is None


# -- SSEImageReader --------------------------------------------------------------------------------


def sse_event(kind: str, payload: dict, *, crlf: bool = False, space: bool = True) -> bytes:
    nl = "\r\n" if crlf else "\n"
    sep = ": " if space else ":"
    text = f"event{sep}{kind}{nl}data{sep}{json.dumps(payload, separators=(',', ':'))}{nl}{nl}"
    return text.encode()


def image_stream(partials: list[bytes], final: bytes, **kw) -> bytes:
    events = [
        sse_event(
            "image_generation.partial_image",
            {
                "type": "image_generation.partial_image",
                "b64_json": b64(p),
                "partial_image_index": k,
                "size": "1024x1024",
            },
            **kw,
        )
        for k, p in enumerate(partials)
    ]
    events.append(
        sse_event(
            "image_generation.completed",
            {
                "type": "image_generation.completed",
                "b64_json": b64(final),
                "size": "1024x1024",
                "usage": {"total_tokens": 300, "input_tokens": 28, "output_tokens": 272},
            },
            **kw,
        )
    )
    return b"".join(events)


class Collector:
    def __init__(self) -> None:
        self.events: list[tuple[dict, list[bytes]]] = []

    def __call__(self, event: dict, decoded: list) -> None:
        contents = []
        for d in decoded:
            with open(d.path, "rb") as fh:
                content = fh.read()
            assert hashlib.sha256(content).hexdigest() == d.sha256
            assert len(content) == d.size_bytes
            contents.append(content)
        self.events.append((event, contents))


def read_sse(tmp_path, chunks: list[bytes]) -> Collector:
    collector = Collector()
    reader = SSEImageReader(lambda i: os.path.join(tmp_path, f"sse-{i}.bin"), collector)
    for chunk in chunks:
        reader.feed(chunk)
    reader.close()
    return collector


def assert_stream(collector: Collector, partials: list[bytes], final: bytes) -> None:
    kinds = [e["type"] for e, _ in collector.events]
    assert kinds == ["image_generation.partial_image"] * len(partials) + ["image_generation.completed"]
    for k, (event, contents) in enumerate(collector.events[:-1]):
        assert event["partial_image_index"] == k
        assert placeholder_index(event["b64_json"]) == 0
        assert contents == [partials[k]]
    event, contents = collector.events[-1]
    assert contents == [final]
    assert event["usage"]["output_tokens"] == 272


def test_sse_partial_and_completed_events(tmp_path):
    partials = [png_bytes(16, 16, 10), png_bytes(16, 16, 11)]
    final = png_bytes(32, 32, 12, noise=True)
    collector = read_sse(tmp_path, [image_stream(partials, final)])
    assert_stream(collector, partials, final)
    # Every event got its own files: nothing was overwritten.
    paths = {os.path.join(tmp_path, name) for name in os.listdir(tmp_path)}
    assert len(paths) == 3


def test_sse_crlf_line_endings(tmp_path):
    partials = [png_bytes(16, 16, 13)]
    final = png_bytes(24, 24, 14)
    body = image_stream(partials, final, crlf=True, space=False)
    assert b"\r\n\r\n" in body
    assert_stream(read_sse(tmp_path, [body]), partials, final)


@pytest.mark.parametrize("crlf", [False, True])
def test_sse_event_split_anywhere(tmp_path, crlf):
    partials = [png_bytes(4, 4, 15)]
    final = png_bytes(4, 4, 16)
    body = image_stream(partials, final, crlf=crlf)
    for cut in range(1, len(body)):
        directory = tmp_path / str(cut)
        directory.mkdir()
        assert_stream(read_sse(directory, [body[:cut], body[cut:]]), partials, final)


@pytest.mark.parametrize("seed", range(8))
def test_sse_random_chunkings(tmp_path, seed):
    rng = random.Random(seed)
    partials = [png_bytes(20, 20, seed * 5 + k, noise=True) for k in range(rng.randint(0, 3))]
    final = png_bytes(30, 30, seed * 5 + 4, noise=True)
    body = image_stream(partials, final, crlf=seed % 2 == 0)
    chunks = random_chunks(body, rng, max_size=rng.choice([1, 7, 64, 999]))
    assert_stream(read_sse(tmp_path, chunks), partials, final)


def test_sse_comments_and_unknown_fields_are_ignored(tmp_path):
    final = png_bytes(8, 8, 20)
    body = b": keep-alive\n\nid: 1\nretry: 1000\n" + image_stream([], final) + b": trailing comment\n\n"
    assert_stream(read_sse(tmp_path, [body]), [], final)


def test_sse_last_event_without_blank_line(tmp_path):
    final = png_bytes(8, 8, 21)
    body = image_stream([], final).rstrip(b"\n")
    assert_stream(read_sse(tmp_path, [body]), [], final)


def test_sse_error_event_is_passed_on(tmp_path):
    body = sse_event(
        "error",
        {"type": "error", "error": {"message": "boom", "type": "server_error", "code": None, "param": None}},
    )
    collector = read_sse(tmp_path, [body])
    assert len(collector.events) == 1
    event, contents = collector.events[0]
    assert event["error"]["message"] == "boom"
    assert contents == []


def test_sse_truncated_inside_an_image_is_an_error(tmp_path):
    body = image_stream([], png_bytes(30, 30, 22, noise=True))
    collector = Collector()
    reader = SSEImageReader(lambda i: os.path.join(tmp_path, f"sse-{i}.bin"), collector)
    reader.feed(body[: len(body) // 2])
    with pytest.raises(StreamFormatError):
        reader.close()
    assert collector.events == []


def test_sse_event_data_not_json_is_an_error(tmp_path):
    collector = Collector()
    reader = SSEImageReader(lambda i: os.path.join(tmp_path, f"sse-{i}.bin"), collector)
    with pytest.raises(StreamFormatError):
        reader.feed(b"event: x\ndata: <html>oops</html>\n\n")
        reader.close()
