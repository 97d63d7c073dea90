"""Writing answers on the wire, including the deliberately broken ones."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any

from . import answers
from .errors import APIError
from .faults import Fault


def duration(seconds: float) -> str:
    """OpenAI's rate-limit reset format: ``120ms``, ``6s``, ``1m30s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _head(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()


def send(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str],
    content_type: str = "application/json",
    fraction: float | None = None,
) -> None:
    """A whole body, or (``fraction``) the full Content-Length but only part of the body, then hang up."""
    _head(h, status, {**headers, "content-type": content_type, "content-length": str(len(body))})
    if fraction is None:
        h.wfile.write(body)
        return
    h.wfile.write(body[: int(len(body) * fraction)])
    h.close_connection = True


def send_error(h: BaseHTTPRequestHandler, exc: APIError, headers: dict[str, str]) -> None:
    send(h, exc.status, json.dumps(exc.envelope()).encode(), {**headers, **exc.headers})


def send_stream(
    h: BaseHTTPRequestHandler,
    events: Iterable[bytes],
    headers: dict[str, str],
    fault: Fault | None,
    after: int,
    model: str,
    sleep: Callable[[float], Any] = time.sleep,
) -> None:
    """Server-sent events over chunked encoding; stream faults strike before event ``after``
    (``delay`` pauses there: partial images arrive, then the final image takes its time)."""
    stream_headers = {"content-type": "text/event-stream; charset=utf-8", "transfer-encoding": "chunked"}
    _head(h, 200, {**headers, **stream_headers, "cache-control": "no-cache"})

    def chunk(data: bytes) -> None:
        h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        h.wfile.flush()

    kind = fault.kind if fault else None
    for index, event in enumerate(events):
        if index == after and kind == "delay" and fault is not None:
            sleep(fault.seconds)
        if index == after and kind == "stream_error":
            error = Fault("server_error").error(model, headers["x-request-id"])
            chunk(answers.sse("error", {"type": "error", **error.envelope()}))
            break
        if index == after and kind == "stream_cut":
            break  # a clean end of stream, just without the completed event
        if index == after and kind == "truncated" and fault is not None:
            h.wfile.write(b"%x\r\n%s" % (len(event), event[: int(len(event) * fault.fraction)]))
            h.close_connection = True
            return
        chunk(event)
    h.wfile.write(b"0\r\n\r\n")
