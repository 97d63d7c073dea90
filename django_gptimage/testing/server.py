"""A loopback, OpenAI-compatible Images API for tests: real validation, real images, scripted faults.

Stdlib only (plus Pillow for the images). Every connection gets its own daemon thread, so a
delayed or stalled request never blocks the others, and HTTP/1.1 keep-alive lets tests
assert that a client reuses its connections (``connections_opened``).
"""

from __future__ import annotations

import contextlib
import gzip
import hmac
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import answers
from .errors import APIError
from .faults import ERROR_KINDS, Fault, RandomFaults
from .images import IMAGE_MODES
from .limits import Limits, rate_limit_error
from .openai_limits import OPENAI_LIMITS, OpenAILimits
from .recording import ParsedBody, RecordedRequest, parse_body, read_body, redacted_headers
from .transport import send, send_error, send_stream
from .validation import validate_edit, validate_generation

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
STATS = "/_fake/stats"  # not OpenAI's: counters for harnesses that run the server in a subprocess
ANSWERS = "/_fake/answers"  # not OpenAI's either: the answer log (see FakeOpenAIServer.answers)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128  # many concurrent connects must not overflow the listen backlog

    def __init__(self, address: tuple[str, int], app: FakeOpenAIServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.app._connection_opened(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        if self.app._connection_closed(request):
            self.close_request(request)  # a "reset": no FIN first, the zero linger sends a RST
            return
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this each answer on a kept-alive
    # connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def _dispatch(self) -> None:
        self.answer: dict[str, Any] | None = None  # this request's entry in the answer log
        try:
            self.server.app._handle(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to answer

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.answer is not None:
            self.answer["status"] = code  # before the client can see it
        super().send_response(code, message)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests don't want access logs (and headers are never logged)."""


class FakeOpenAIServer:
    """OpenAI's ``/v1/images/generations`` and ``/v1/images/edits`` on 127.0.0.1.

    ``api_key``: when set, requests must carry ``Authorization: Bearer <api_key>``.
    ``image_mode``: "solid" (small, fast) or "noise" (random pixels, realistically large).
    ``delay``: seconds to wait before answering every request.
    ``requests_per_minute`` / ``images_per_minute``: when set, enforced over a sliding minute
    (429 ``rate_limit_exceeded`` with ``Retry-After`` beyond it); ``rate_limit_requests`` and
    ``rate_limit_tokens`` are only reported in the ``x-ratelimit-*`` headers. ``rate_limit_window``
    shortens the minute (seconds) for fast tests: the limits then apply per window.
    ``models``: further model ids to serve, each with the limits of a model of
    :data:`~django_gptimage.testing.openai_limits.OPENAI_LIMITS` (``{"gpt-image-2.7": "gpt-image-2.6"}``),
    as OpenAI serves models released after that table was written.
    ``random_faults`` / ``fault_seed``: a seeded random fault mix for requests no scripted fault
    takes (see :class:`~django_gptimage.testing.faults.RandomFaults`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        image_mode: str = "solid",
        delay: float = 0.0,
        rate_limit_requests: int = 5000,
        rate_limit_tokens: int = 4_000_000,
        requests_per_minute: int | None = None,
        images_per_minute: int | None = None,
        rate_limit_window: float = 60.0,
        models: Mapping[str, str] | None = None,
        random_faults: Iterable[Mapping[str, Any]] | None = None,
        fault_seed: int | None = None,
    ) -> None:
        if image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {IMAGE_MODES}, not {image_mode!r}.")
        unknown = [like for like in (models or {}).values() if like not in OPENAI_LIMITS]
        if unknown:
            raise ValueError(
                f"models must map new ids to served ones ({', '.join(OPENAI_LIMITS)}), not {unknown}."
            )
        self.models: dict[str, OpenAILimits] = {
            **OPENAI_LIMITS,
            **{new: replace(OPENAI_LIMITS[like], model=new) for new, like in (models or {}).items()},
        }
        self.host, self.port = host, port
        self.api_key = api_key
        self.image_mode = image_mode
        self.delay = delay
        self.rate_limit_requests = rate_limit_requests
        self.rate_limit_tokens = rate_limit_tokens
        self.requests_per_minute = requests_per_minute
        self.images_per_minute = images_per_minute
        self.rate_limit_window = rate_limit_window
        self.limits = self._new_limits()
        self._random_spec = (list(random_faults or ()), fault_seed)
        self.random_faults = RandomFaults(*self._random_spec)
        self._defaults = (api_key, image_mode, delay)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._answers: list[dict[str, Any]] = []
        self._resets: set[socket.socket] = set()
        self._connections = 0
        self._answered = 0
        self._tokens = 0
        self._rate_limited = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer((self.host, self.port), self)
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes sleeping delays
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:  # idle keep-alive connections would otherwise linger
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # -- inspection and scripting ---------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    @property
    def answers(self) -> list[dict[str, Any]]:
        """How each image request was answered, in order: ``request_id``, ``path``, ``prompt``,
        ``n``, ``status`` (the HTTP status sent; None when the connection was closed without one, or
        while it is being answered),
        ``fault`` (the kind that struck, or None), ``billed`` (images were generated for it, as
        OpenAI would bill them, whether or not the client got them: a truncated body, a late
        answer after the client's timeout) and ``images`` (SHA-256 of each image of a JSON answer).
        """
        with self._lock:
            return [dict(a, images=list(a["images"])) for a in self._answers]

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections

    @property
    def faults(self) -> list[Fault]:
        """Faults still waiting for a request."""
        with self._lock:
            return list(self._faults)

    def add_fault(self, kind: str | Fault, times: int = 1, **options: Any) -> Fault:
        """Queue a fault (FIFO) for the next ``times`` image requests (see ``Fault`` for options)."""
        fault = kind if isinstance(kind, Fault) else Fault(kind, times, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget requests, faults and counters; restore constructor settings (shared servers)."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._answers.clear()
            self._connections = self._answered = self._tokens = self._rate_limited = 0
        self.api_key, self.image_mode, self.delay = self._defaults
        self.limits = self._new_limits()
        self.random_faults = RandomFaults(*self._random_spec)

    def stats(self) -> dict[str, int]:
        """Counters: image requests received, answered with images, refused by the rate limit."""
        with self._lock:
            received = sum(1 for r in self._requests if r.path in (GENERATIONS, EDITS))
            return {
                "requests": received,
                "answered": self._answered,
                "rate_limited": self._rate_limited,
                "images": self.limits.accepted_images,
                "images_in_window": self.limits.images.used() if self.limits.images else 0,
                "requests_in_window": self.limits.requests.used(),
            }

    def _new_limits(self) -> Limits:
        return Limits(
            requests=self.rate_limit_requests,
            tokens=self.rate_limit_tokens,
            requests_per_minute=self.requests_per_minute,
            images_per_minute=self.images_per_minute,
            window=self.rate_limit_window,
        )

    # -- internals --------------------------------------------------------------------------------

    def _connection_opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._sockets.add(sock)

    def _connection_closed(self, sock: socket.socket) -> bool:
        """Forget ``sock``; True when it is to be reset rather than closed."""
        with self._lock:
            self._sockets.discard(sock)
            if sock in self._resets:
                self._resets.discard(sock)
                return True
            return False

    def _take_fault(self, path: str, stream: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, stream):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return self.random_faults.draw(path, stream) if self.random_faults else None

    def _headers(self, request_id: str, started: float) -> dict[str, str]:
        return {
            "x-request-id": request_id,
            "openai-version": "2020-10-01",
            "openai-processing-ms": str(round((time.monotonic() - started) * 1000)),
            **self.limits.headers(),  # the last minute's requests and tokens (and images)
        }

    def _auth_error(self, sent: str, request_id: str) -> APIError | None:
        if self.api_key is None:
            return None
        if not sent.startswith("Bearer "):
            msg = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header."
            )
            return APIError(401, msg, code="invalid_api_key")
        if not hmac.compare_digest(sent[7:].encode(), self.api_key.encode()):
            return Fault("unauthorized").error("", request_id)  # never echoes the key
        return None

    def _handle(self, h: _Handler) -> None:
        started = time.monotonic()
        request_id = f"req_{uuid.uuid4().hex}"
        raw = read_body(h.rfile, h.headers)
        split = urlsplit(h.path)
        path = split.path.rstrip("/")
        if h.command == "GET" and path == STATS:  # introspection: neither recorded nor delayed
            return send(h, 200, json.dumps(self.stats()).encode(), {"x-request-id": request_id})
        if h.command == "GET" and path == ANSWERS:
            return send(h, 200, json.dumps(self.answers).encode(), {"x-request-id": request_id})
        parsed = parse_body(h.headers.get("Content-Type", ""), raw)
        body, multipart = parsed.body, parsed.multipart
        record = RecordedRequest(
            method=h.command,
            path=path,
            query=split.query,
            headers=redacted_headers(h.headers),
            body=body,
            files=[f.summary() for f in parsed.files],
            multipart=multipart,
        )
        with self._lock:
            self._requests.append(record)
        enforcing = self.limits.enforced
        if self.delay and not enforcing:
            self._stopping.wait(self.delay)

        auth_error = self._auth_error(h.headers.get("Authorization", ""), request_id)
        if auth_error is not None:
            return send_error(h, auth_error, self._headers(request_id, started))

        if h.command != "POST" or path not in (GENERATIONS, EDITS):
            err = APIError(404, f"Invalid URL ({h.command} {split.path})")
            return send_error(h, err, self._headers(request_id, started))

        params = body if isinstance(body, dict) else {}
        answer: dict[str, Any] = {
            "request_id": request_id, "path": path, "prompt": params.get("prompt"), "n": params.get("n", 1),
            "status": None, "fault": None, "billed": False, "images": [],
        }  # fmt: skip
        with self._lock:
            self._answers.append(answer)  # in the order requests arrive, filled in as it is answered
        h.answer = answer
        self._answer(h, params, answer, parsed, started, enforcing)

    def _answer(
        self,
        h: _Handler,
        params: dict[str, Any],
        answer: dict[str, Any],
        parsed: ParsedBody,
        started: float,
        enforcing: bool,
    ) -> None:
        request_id, path = answer["request_id"], answer["path"]
        body, multipart = parsed.body, parsed.multipart
        stream = str(params.get("stream")).lower() == "true"  # JSON true or form "true"
        model = params.get("model")
        fault = self._take_fault(path, stream)
        answer["fault"] = fault.kind if fault is not None else None
        if fault is not None:
            if fault.kind in ERROR_KINDS:
                err = fault.error(model if isinstance(model, str) else "gpt-image-2", request_id)
                return send_error(h, err, self._headers(request_id, started))
            if fault.kind == "delay" and not (stream and fault.after is not None):
                self._stopping.wait(fault.seconds)  # (a streamed delay with `after` waits mid-stream)
            elif fault.kind == "drop":
                h.close_connection = True  # hang up without a word
                return
            elif fault.kind == "reset":
                # SO_LINGER 0 and no shutdown(): closing sends a TCP RST (ECONNRESET on the client).
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with self._lock:
                    self._resets.add(h.connection)
                h.close_connection = True
                return
            elif fault.kind == "not_json":
                page = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
                return send(h, 200, page, self._headers(request_id, started), "text/html")

        try:
            if parsed.error is not None:
                raise parsed.error
            if path == GENERATIONS:
                if multipart:
                    raise APIError(400, "Expected a JSON body (Content-Type: application/json).")
                job = validate_generation(body, self.models)
            else:
                if not multipart:
                    raise APIError(400, "This fake server only implements multipart/form-data image edits.")
                job = validate_edit(parsed.fields, parsed.files, self.models)
        except APIError as exc:
            return send_error(h, exc, self._headers(request_id, started))

        refusal = self.limits.admit(job.n)
        if refusal is not None:
            with self._lock:
                self._rate_limited += 1
            return send_error(h, rate_limit_error(refusal, job.model), self._headers(request_id, started))
        if self.delay and enforcing:  # a 429 comes back at once; an admitted request takes its time
            self._stopping.wait(self.delay)

        answer["billed"] = True  # generated from here on, whatever reaches the client
        if job.stream:
            self._account(answers.job_usage(job)["total_tokens"])
            events = answers.stream_events(job, self.image_mode, fault)
            after = job.partial_images if fault is None or fault.after is None else fault.after
            return send_stream(
                h, events, self._headers(request_id, started), fault, after, job.model, self._stopping.wait
            )
        payload = answers.images_response(job, self.image_mode, fault, digests=answer["images"])
        self._account(payload["usage"]["total_tokens"])
        kind = fault.kind if fault is not None else None
        if kind == "extra_images" and fault is not None:
            payload["data"] = payload["data"] + payload["data"][:1] * fault.count
        if kind == "bulky_field" and fault is not None:
            payload["data"][0][fault.field] = "x" * fault.count
        encoded = json.dumps(payload).encode()
        headers = self._headers(request_id, started)
        if kind in ("gzip", "false_gzip"):
            headers = {**headers, "content-encoding": "gzip"}
            if kind == "gzip":
                encoded = gzip.compress(encoded, compresslevel=1)
        fraction = fault.fraction if fault is not None and kind == "truncated" else None
        send(h, 200, encoded, headers, fraction=fraction)

    def _account(self, tokens: int) -> None:
        with self._lock:
            self._answered += 1
            self._tokens += tokens
        self.limits.tokens.add(tokens)
