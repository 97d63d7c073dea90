"""multipart/form-data bodies, parsed with the stdlib ``email`` package (``cgi`` is gone in 3.13)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from email import errors as email_errors
from email.parser import BytesParser
from email.policy import HTTP

from .errors import APIError


@dataclass(frozen=True)
class FileSummary:
    """What a test needs to know about an uploaded file, without keeping its bytes."""

    field: str
    filename: str | None
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class UploadedFile:
    field: str
    filename: str | None
    content_type: str
    data: bytes = dataclasses.field(repr=False)  # (a field named ``field`` shadows the function)

    def summary(self) -> FileSummary:
        digest = hashlib.sha256(self.data).hexdigest()
        return FileSummary(self.field, self.filename, self.content_type, len(self.data), digest)


_FATAL = (email_errors.StartBoundaryNotFoundDefect, email_errors.NoBoundaryInMultipartDefect)


def parse_multipart(content_type: str, body: bytes) -> tuple[list[tuple[str, str]], list[UploadedFile]]:
    """Text fields in order (repeats kept) and files; a part with a filename is a file."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    msg = BytesParser(policy=HTTP).parsebytes(head + body)
    if not msg.is_multipart() or any(isinstance(d, _FATAL) for d in msg.defects):
        raise APIError(
            400, "Could not parse the multipart form data of your request.", code="invalid_multipart"
        )
    fields: list[tuple[str, str]] = []
    files: list[UploadedFile] = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise APIError(400, "A multipart part has no field name.", code="invalid_multipart")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields.append((name, data.decode("utf-8", "replace")))
        else:
            raw_type = part.get("Content-Type")
            ctype = part.get_content_type() if raw_type else "application/octet-stream"
            files.append(UploadedFile(name, filename, ctype, data))
    return fields, files
