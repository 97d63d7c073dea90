"""Server-sent events whose ``data`` lines are image JSON, decoded to files as they arrive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._b64stream import DecodedFile, JSONImageReader, StreamFormatError

EventHandler = Callable[[dict[str, Any], list[DecodedFile]], None]


class SSEImageReader:
    """Splits an event stream into events; each event's data goes through a JSONImageReader."""

    def __init__(self, path_for: Callable[[int], str], on_event: EventHandler) -> None:
        self._path_for = path_for
        self._on_event = on_event
        self._count = 0
        self._field = b""
        self._in_value = False
        self._value_is_data = False
        self._skip_space = False
        self._reader: JSONImageReader | None = None
        self._has_data = False

    def _new_reader(self) -> JSONImageReader:
        base = self._count

        def path_for(i: int) -> str:
            return self._path_for(base * 16 + i)

        return JSONImageReader(path_for)

    def feed(self, chunk: bytes) -> None:
        pos = 0
        while pos < len(chunk):
            if self._in_value:
                end = chunk.find(b"\n", pos)
                stop = len(chunk) if end < 0 else end
                value = chunk[pos:stop]
                if self._skip_space and value:
                    if value[:1] == b" ":
                        value = value[1:]
                    self._skip_space = False
                if self._value_is_data and value:
                    if self._reader is None:
                        self._reader = self._new_reader()
                    self._reader.feed(value.rstrip(b"\r") if end >= 0 else value)
                    self._has_data = True
                if end < 0:
                    return
                self._in_value = False
                pos = end + 1
                continue
            end = chunk.find(b"\n", pos)
            colon = chunk.find(b":", pos)
            if colon >= 0 and (end < 0 or colon < end):
                self._field += chunk[pos:colon]
                self._in_value = True
                self._value_is_data = self._field.strip() == b"data"
                self._skip_space = True
                self._field = b""
                pos = colon + 1
                continue
            if end < 0:
                self._field += chunk[pos:]
                return
            line = (self._field + chunk[pos:end]).rstrip(b"\r")
            self._field = b""
            pos = end + 1
            if not line:
                self._dispatch()
            # A field without a colon (e.g. "data") carries an empty value: nothing to do.

    def _dispatch(self) -> None:
        if not self._has_data or self._reader is None:
            return
        reader, self._reader, self._has_data = self._reader, None, False
        self._count += 1
        document = reader.close()
        self._on_event(document, reader.files)

    def close(self) -> None:
        """Dispatch a last event not followed by a blank line."""
        if self._in_value and self._value_is_data:
            self._in_value = False
        if self._has_data:
            self._dispatch()

    def abort(self) -> None:
        if self._reader is not None:
            self._reader.abort()


__all__ = ["SSEImageReader", "StreamFormatError"]
