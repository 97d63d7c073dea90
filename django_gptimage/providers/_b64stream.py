"""Decode ``b64_json`` values of an OpenAI images response straight to files while it arrives.

Reading a 4K, n=4 response whole and then decoding it holds the JSON text, the parsed string
and the decoded bytes at once (about 3x the image bytes). This parser scans the body chunk by
chunk: the base64 text of every ``"b64_json"`` value is decoded into its own file, and the rest
of the document (a few hundred bytes) is kept so it can be parsed with ``json`` afterwards.
The base64 runs are handed over with ``bytes.find`` so large images cost no per-byte Python.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

_KEY = b'"b64_json"'
# What is kept of the document besides its images: real answers hold a few hundred bytes.
MAX_SKELETON = 1024 * 1024
_PLACEHOLDER = "__gptimage_file_{}__"


class StreamFormatError(ValueError):
    """The body is not the JSON document it should be."""


@dataclass
class DecodedFile:
    path: str
    size_bytes: int
    sha256: str


class _Base64Sink:
    """Decodes base64 text in 4-character groups as it comes and writes the bytes to a file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self._pending = b""
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, text: bytes) -> None:
        if b"\\" in text:  # JSON may escape "/" as "\/"
            text = text.replace(b"\\", b"")
        data = self._pending + text
        cut = len(data) - len(data) % 4
        self._pending = data[cut:]
        if cut:
            try:
                decoded = binascii.a2b_base64(data[:cut], strict_mode=False)
            except binascii.Error as exc:
                raise StreamFormatError(f"b64_json is not valid base64: {exc}") from exc
            self._file.write(decoded)
            self._hash.update(decoded)
            self._size += len(decoded)

    def finish(self) -> DecodedFile:
        try:
            if self._pending.strip(b"="):
                raise StreamFormatError("b64_json ends in the middle of a base64 group")
            # Paid-for bytes: make them durable before anyone relies on them.
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        return DecodedFile(self.path, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        self._file.close()


class JSONImageReader:
    """Feed a JSON document in chunks; ``b64_json`` strings go to files named by ``path_for``."""

    def __init__(self, path_for: Callable[[int], str]) -> None:
        self._path_for = path_for
        self._skeleton: list[bytes] = []
        self._skeleton_size = 0
        self.ignored_bytes = 0  # non-image bytes dropped once MAX_SKELETON was passed
        self._tail = b""  # unscanned bytes outside of a b64 value
        self._sink: _Base64Sink | None = None
        self._escape = False
        self.files: list[DecodedFile] = []

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        self._tail = b""
        pos = 0
        while pos < len(data):
            if self._sink is not None:
                pos = self._feed_b64(data, pos)
                continue
            key = data.find(_KEY, pos)
            if key < 0:
                # Keep a possible partial key at the end for the next chunk.
                keep = len(_KEY) - 1
                safe = max(pos, len(data) - keep)
                self._keep(data[pos:safe])
                self._tail = data[safe:]
                return
            quote = self._value_start(data, key + len(_KEY))
            if quote is None:  # the colon or opening quote is in the next chunk
                self._keep(data[pos:key])
                self._tail = data[key:]
                return
            if quote < 0:  # the text "b64_json" as a value, not a key: keep scanning
                self._keep(data[pos : key + len(_KEY)])
                pos = key + len(_KEY)
                continue
            index = len(self.files) + (1 if self._sink else 0)
            self._keep(data[pos:key] + _KEY + b':"' + _PLACEHOLDER.format(index).encode() + b'"')
            self._sink = _Base64Sink(self._path_for(index))
            pos = quote + 1

    def _keep(self, piece: bytes) -> None:
        """Keep non-image text for the final parse, up to MAX_SKELETON; then only count it.

        Whatever field carries bulk (a huge ``revised_prompt``, an unknown field, garbage),
        memory stays bounded; the images already decoded are paid for and stay.
        """
        if self.ignored_bytes:
            self.ignored_bytes += len(piece)
            return
        self._skeleton.append(piece)
        self._skeleton_size += len(piece)
        if self._skeleton_size > MAX_SKELETON:
            self.ignored_bytes = self._skeleton_size
            self._skeleton = []

    @staticmethod
    def _value_start(data: bytes, pos: int) -> int | None:
        """Index of the value's opening quote; None if not yet received; -1 if this is no key."""
        colon = False
        while pos < len(data) and data[pos] in b" \t\r\n:":
            colon = colon or data[pos] == ord(":")
            pos += 1
        if pos >= len(data):
            return None
        if not colon:
            return -1
        if data[pos : pos + 1] != b'"':
            raise StreamFormatError("b64_json is not a string")
        return pos

    def _feed_b64(self, data: bytes, pos: int) -> int:
        assert self._sink is not None
        if self._escape:  # the previous chunk ended on a backslash
            self._escape = False
            self._sink.write(data[pos : pos + 1])
            pos += 1
        end = data.find(b'"', pos)
        while end >= 0 and _odd_backslashes(data, pos, end):  # an escaped quote is part of the value
            end = data.find(b'"', end + 1)
        if end < 0:
            run = data[pos:]
            if run.endswith(b"\\") and _odd_backslashes(data, pos, len(data)):
                self._escape = True
                run = run[:-1]
            self._sink.write(run)
            return len(data)
        self._sink.write(data[pos:end])
        self.files.append(self._sink.finish())
        self._sink = None
        return end + 1

    def close(self) -> dict[str, Any]:
        """Parse what was not image data; raises StreamFormatError on a truncated document."""
        if self._sink is not None:
            self._sink.abort()
            raise StreamFormatError("the body ended inside an image")
        if self.ignored_bytes:
            # Too much to parse: the images are all that can be trusted (and they are paid for).
            images = [{"b64_json": _PLACEHOLDER.format(i)} for i in range(len(self.files))]
            return {"data": images}
        text = b"".join(self._skeleton) + self._tail
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StreamFormatError(f"the body is not JSON ({exc.__class__.__name__})") from exc
        if not isinstance(document, dict):
            raise StreamFormatError("the body is not a JSON object")
        return document

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.abort()
            self._sink = None
        for f in self.files:
            _unlink(f.path)


def _odd_backslashes(data: bytes, start: int, end: int) -> bool:
    count = 0
    i = end - 1
    while i >= start and data[i : i + 1] == b"\\":
        count += 1
        i -= 1
    return count % 2 == 1


def placeholder_index(value: Any) -> int | None:
    """The file index a ``b64_json`` placeholder stands for, None for anything else."""
    if isinstance(value, str) and value.startswith("__gptimage_file_") and value.endswith("__"):
        middle = value[len("__gptimage_file_") : -2]
        if middle.isdigit():
            return int(middle)
    return None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
