"""What the fake server keeps of each request, and how it reads request bodies."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, BinaryIO

from .errors import APIError
from .multipart import FileSummary, UploadedFile, parse_multipart

_SECRET_HEADERS = ("authorization", "proxy-authorization", "api-key", "x-api-key", "cookie")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; secrets in headers are redacted."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: Any = None  # parsed JSON, or the form fields of a multipart body (repeats as lists)
    files: list[FileSummary] = field(default_factory=list)
    multipart: bool = False

    @property
    def json(self) -> Any:
        return None if self.multipart else self.body

    @property
    def form(self) -> dict[str, Any]:
        return self.body if self.multipart else {}


@dataclass
class ParsedBody:
    body: Any = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)
    multipart: bool = False
    error: APIError | None = None  # answered later, after auth and faults (as OpenAI does)


def redact(name: str, value: str) -> str:
    if name.lower() not in _SECRET_HEADERS:
        return value
    scheme, _, rest = value.partition(" ")
    return f"{scheme} ***" if rest else "***"


def redacted_headers(headers: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        value = redact(key, value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def read_body(rfile: BinaryIO | io.BufferedIOBase, headers: Message) -> bytes:
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline()
    return rfile.read(int(headers.get("Content-Length") or 0))


def parse_body(content_type: str, raw: bytes) -> ParsedBody:
    if content_type.lower().startswith("multipart/form-data"):
        try:
            fields, files = parse_multipart(content_type, raw)
        except APIError as exc:
            return ParsedBody(multipart=True, error=exc)
        form: dict[str, Any] = {}
        for name, value in fields:
            old = form.get(name)
            form[name] = (
                value if name not in form else [*old, value] if isinstance(old, list) else [old, value]
            )
        return ParsedBody(form, fields, files, multipart=True)
    if not raw:
        return ParsedBody()
    try:
        return ParsedBody(json.loads(raw))
    except ValueError:
        hint = (
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            "using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
        return ParsedBody(error=APIError(400, hint))
