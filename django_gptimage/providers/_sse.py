"""Server-sent events whose ``data`` lines are image JSON, decoded to files as they arrive.

Memory stays bounded whatever the stream carries, as for a plain JSON body
(:mod:`._b64stream`): each event's data goes through its own :class:`JSONImageReader`, whose
non-image text is capped at ``MAX_SKELETON`` (beyond it only counted, in ``ignored_bytes``);
field names and the ``event:`` value are capped too, and other fields' values are skipped
without being buffered. An event whose JSON was too bulky to keep still has its images, and
its type comes from the ``event:`` line. Files get one running number across events, so an
event with any number of images never overwrites another event's file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._b64stream import DecodedFile, JSONImageReader, StreamFormatError

EventHandler = Callable[[dict[str, Any], list[DecodedFile]], None]


MAX_FIELD = 64  # a field name ("data", "event", "id", "retry") is a few bytes
MAX_EVENT_NAME = 256


class SSEImageReader:
    """Splits an event stream into events; each event's data goes through a JSONImageReader."""

    def __init__(self, path_for: Callable[[int], str], on_event: EventHandler) -> None:
        self._path_for = path_for
        self._on_event = on_event
        self._files = 0  # files of the events dispatched so far
        self._field = b""
        self._in_value = False
        self._value_is_data = False
        self._value_is_event = False
        self._skip_space = False
        self._skip_line = False  # a field name too long to be one: the rest of its line is dropped
        self._event = b""
        self._reader: JSONImageReader | None = None
        self._has_data = False
        self.ignored_bytes = 0  # bytes neither kept nor decoded (bulky fields, overlong lines)

    def _new_reader(self) -> JSONImageReader:
        base = self._files

        def path_for(i: int) -> str:
            return self._path_for(base + i)

        return JSONImageReader(path_for)

    def feed(self, chunk: bytes) -> None:
        pos = 0
        while pos < len(chunk):
            if self._skip_line:
                end = chunk.find(b"\n", pos)
                self.ignored_bytes += (len(chunk) if end < 0 else end) - pos
                if end < 0:
                    return
                self._skip_line = False
                pos = end + 1
                continue
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
                elif self._value_is_event and value:
                    room = MAX_EVENT_NAME - len(self._event)
                    self._event += value[:room]
                    self.ignored_bytes += max(0, len(value) - room)
                elif value:
                    self.ignored_bytes += len(value)  # an id, a comment, an unknown field: skipped
                if end < 0:
                    return
                self._in_value = False
                pos = end + 1
                continue
            end = chunk.find(b"\n", pos)
            colon = chunk.find(b":", pos)
            if colon >= 0 and (end < 0 or colon < end) and len(self._field) + colon - pos <= MAX_FIELD:
                self._field += chunk[pos:colon]
                self._in_value = True
                name = self._field.strip()
                self._value_is_data = name == b"data"
                self._value_is_event = name == b"event"
                if self._value_is_event:
                    self._event = b""  # the last event field of an event counts
                self._skip_space = True
                self._field = b""
                pos = colon + 1
                continue
            if len(self._field) + (len(chunk) if end < 0 else end) - pos > MAX_FIELD:
                self.ignored_bytes += len(self._field)
                self._field = b""
                self._skip_line = True  # no field name is that long: not a line to keep
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
        event, self._event = self._event, b""
        if not self._has_data or self._reader is None:
            return
        reader, self._reader, self._has_data = self._reader, None, False
        document = reader.close()
        self._files += len(reader.files)
        self.ignored_bytes += reader.ignored_bytes
        if "type" not in document and event:
            # Its JSON was too bulky to keep: the images are there, the event line says what they are.
            document["type"] = event.decode("utf-8", "replace").strip()
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
