"""Editor-facing error messages as data: a record keeps its code and the facts, words come later.

A failed (or retried, or waiting) record stores its error code and a *detail*: a list of
parts, each a template key and the facts it needs, e.g. ``{"key": "job_timeout", "seconds": 300}``
or ``{"key": "said", "text": "Your request was rejected", "status": 400}``. The sentences live only
in :data:`TEMPLATES` (English msgids) and in the code's own message (:mod:`.errors`), so a
corrected or translated sentence applies to every row, old ones included.

:func:`render` composes the message. It takes the translation functions as arguments so this
module stays free of Django: ``django_gptimage.messages`` passes Django's ``gettext``.

What the image service (or an exception) said is a fact, kept verbatim in a ``said`` part
(scrubbed of secrets before it is stored) and never translated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import ERRORS, ErrorCode, error_info
from .i18n import gettext_noop

__all__ = [
    "LEGACY",
    "SAID",
    "TEMPLATES",
    "Part",
    "Place",
    "Rendered",
    "Template",
    "as_parts",
    "gettext_noop",
    "parse_legacy",
    "part",
    "render",
    "said",
]


Part = dict[str, Any]
Gettext = Callable[[str], str]


class Place(StrEnum):
    HEADLINE = "headline"  # replaces the code's own message: it says more than that one does
    FACT = "fact"  # in brackets after the message, several separated by "; "
    SENTENCE = "sentence"  # one more sentence after the message


@dataclass(frozen=True)
class Template:
    place: Place
    text: str  # an English msgid with %(name)s placeholders for the part's facts


SAID = "said"  # the image service's (or an exception's) own words: shown as they are
LEGACY = "legacy"  # a message stored before details were structured and not recognised


def _t(place: Place, text: str) -> Template:
    return Template(place, text)


H, F, S = Place.HEADLINE, Place.FACT, Place.SENTENCE

TEMPLATES: dict[str, Template] = {
    SAID: _t(F, "%(text)s"),
    LEGACY: _t(H, "%(text)s"),
    # No connection could be made: nothing was sent.
    "unreachable": _t(
        H, gettext_noop("Could not reach the image service at %(host)s. Nothing was sent or billed.")
    ),
    "connect_timeout": _t(F, gettext_noop("timed out connecting")),
    "host_unknown": _t(F, gettext_noop("the host name could not be resolved")),
    "connection_refused": _t(F, gettext_noop("the connection was refused")),
    "tls_failed": _t(F, gettext_noop("the TLS handshake failed")),
    "proxy_refused": _t(F, gettext_noop("the proxy refused the connection")),
    "connect_failed": _t(F, gettext_noop("the connection could not be made (%(exception)s)")),
    "connection_failed": _t(F, gettext_noop("connection failed: %(exception)s")),
    # Timeouts and dropped connections.
    "timed_out_waiting": _t(F, gettext_noop("timed out waiting for the response")),
    "timed_out_sending": _t(F, gettext_noop("timed out sending the request")),
    "timed_out_pool": _t(F, gettext_noop("timed out waiting for a free connection")),
    "timed_out": _t(F, gettext_noop("timed out during the request")),
    "connection_closed": _t(
        F, gettext_noop("the connection was closed before an answer came (%(exception)s)")
    ),
    "job_timeout": _t(F, gettext_noop("the job ran longer than JOB_TIMEOUT (%(seconds)s s)")),
    # What came back.
    "http_status": _t(F, gettext_noop("HTTP %(status)s")),
    "error_event": _t(F, gettext_noop("an error event without a message")),
    "too_few_images": _t(F, gettext_noop("asked for %(asked)d image(s), received %(received)d")),
    "undecodable": _t(
        F, gettext_noop("the response body could not be decoded as its Content-Encoding '%(encoding)s' says")
    ),
    "cut_off": _t(F, gettext_noop("the response was cut off (%(exception)s)")),
    "no_images": _t(F, gettext_noop("the response has no images")),
    "no_b64": _t(F, gettext_noop("an image has no b64_json data")),
    "stream_ended": _t(F, gettext_noop("the stream ended before the image was complete")),
    "image_unusable": _t(F, gettext_noop("image %(index)d: %(text)s")),
    "image_mismatch": _t(F, gettext_noop("image %(index)d is %(got)s, not %(wanted)s")),
    "unexpected": _t(F, gettext_noop("unexpected %(exception)s; not retried automatically")),
    # Storage.
    "reading_inputs": _t(F, gettext_noop("reading the input images: %(text)s")),
    "kept_image_gone": _t(F, gettext_noop("the kept image file is gone")),
    # Retries and their end.
    "gave_up": _t(F, gettext_noop("gave up after %(count)d attempt(s)")),
    "retry_after_too_long": _t(
        F, gettext_noop("Retry-After of %(seconds)s s is longer than RETRY_AFTER_MAX")
    ),
    "next_attempt": _t(S, gettext_noop("Next attempt in %(seconds)s s.")),
    # Canceled.
    "stopped_by_rq": _t(F, gettext_noop("stopped by RQ's stop-job command")),
    "images_kept": _t(F, gettext_noop("the images were kept")),
    "before_sent": _t(F, gettext_noop("before it was sent")),
    # The site's own rate limit: a wait, not an attempt.
    "rate_wait_site": _t(
        S,
        gettext_noop(
            "Waiting for its turn (the site's rate limit): it goes out in about %(about)s. "
            "Nothing has been sent or billed for it yet."
        ),
    ),
    "rate_wait_provider": _t(
        S,
        gettext_noop(
            "Waiting for its turn (the image service asked this site to slow down): it goes out in "
            "about %(about)s. Nothing has been sent or billed for it yet."
        ),
    ),
    # A worker that died.
    "worker_stopped": _t(F, gettext_noop("the worker stopped before it finished")),
    "abandoned_requeued": _t(S, gettext_noop("It will be tried again (this may be billed twice).")),
    "abandoned_kept_requeued": _t(
        S,
        gettext_noop(
            "The images had already arrived and are kept; they will be saved again without "
            "generating (or paying) twice."
        ),
    ),
    "abandoned_kept": _t(
        S,
        gettext_noop(
            "The images had already arrived and are kept; retry to save them without generating (or paying) twice."
        ),
    ),
    "taken_over": _t(S, gettext_noop("The record was taken over by the reaper.")),
    "late_result": _t(
        S,
        gettext_noop("The answer arrived after the reaper had taken the record back; its images were kept."),
    ),
}

# Units for a wait rendered as "about 40 s" / "about 3 min" (``wait`` facts, in seconds).
_SECONDS = gettext_noop("%(n)d s")
_MINUTES = gettext_noop("%(n)d min")
# How a message and its facts are put together (translatable too: word order and brackets).
_WITH_FACTS = gettext_noop("%(message)s (%(detail)s)")
_FACT_SEPARATOR = gettext_noop("; ")


def part(key: str, **facts: Any) -> Part:
    """One part of a detail; ``key`` must be one of :data:`TEMPLATES` (a typo fails here, in
    tests, rather than as a blank in front of an editor)."""
    if key not in TEMPLATES:
        raise KeyError(f"unknown message template {key!r}")
    return {"key": key, **facts}


def said(text: str, **facts: Any) -> Part:
    """The image service's (or an exception's) own words, kept verbatim."""
    return {"key": SAID, "text": text, **facts}


def as_parts(detail: Any) -> list[Part]:
    """A stored detail as a list of parts, whatever an older or hand-edited row holds."""
    if not detail:
        return []
    if isinstance(detail, str):
        return [said(detail)]
    if isinstance(detail, Mapping):
        detail = [detail]
    return [dict(p) for p in detail if isinstance(p, Mapping) and isinstance(p.get("key"), str)]


@dataclass(frozen=True)
class Rendered:
    message: str  # the first sentence: the code's own message, or a headline that says more
    detail: str  # the facts and the sentences after it, "" when there are none
    text: str  # everything, as one message


def _identity(message: str) -> str:
    return message


class _Facts(dict[str, Any]):
    """Facts for %-formatting: a missing one shows as "?" rather than failing a whole page."""

    def __missing__(self, key: str) -> str:
        return "?"


def _one(p: Part, gettext: Gettext) -> str:
    key = p["key"]
    template = TEMPLATES.get(key)
    if template is None:  # a key this version does not know (a newer release wrote it)
        return str(p.get("text", ""))
    if key in (SAID, LEGACY):
        return str(p.get("text", ""))
    facts = _Facts(p)
    if "wait" in facts:
        seconds = float(facts["wait"])
        unit, n = (_SECONDS, seconds) if seconds < 120 else (_MINUTES, seconds / 60)
        facts["about"] = gettext(unit) % {"n": round(n)}
    words = gettext(template.text)
    try:
        return words % facts
    except (TypeError, ValueError):  # a fact of the wrong type in a hand-edited row
        return gettext(template.text)


def render(
    code: str | ErrorCode,
    detail: Any = None,
    *,
    gettext: Gettext = _identity,
) -> Rendered:
    """The message for ``code`` with ``detail``'s facts, in the language ``gettext`` speaks."""
    parts = as_parts(detail)
    legacy = next((p for p in parts if p["key"] == LEGACY), None)
    if legacy is not None:  # stored before details had a structure: shown as it was written
        return Rendered(str(legacy.get("text", "")), "", str(legacy.get("text", "")))
    headline = next(
        (p for p in parts if TEMPLATES.get(p["key"], TEMPLATES[SAID]).place is Place.HEADLINE), None
    )
    message = _one(headline, gettext) if headline else gettext(error_info(code).message) if code else ""
    facts = [
        text
        for p in parts
        if p["key"] not in TEMPLATES or TEMPLATES[p["key"]].place is Place.FACT
        if (text := _one(p, gettext))
    ]
    sentences = [
        _one(p, gettext)
        for p in parts
        if p["key"] in TEMPLATES and TEMPLATES[p["key"]].place is Place.SENTENCE
    ]
    fact_text = gettext(_FACT_SEPARATOR).join(facts)
    text = gettext(_WITH_FACTS) % {"message": message, "detail": fact_text} if facts else message
    text = " ".join(t for t in (text, *sentences) if t)
    detail_text = " ".join([t for t in (fact_text, *sentences) if t])
    return Rendered(message, detail_text, text)


def _pattern(template: Template) -> re.Pattern[str]:
    pieces = re.split(r"%\((\w+)\)[sd]", template.text)
    out = []
    for i, piece in enumerate(pieces):
        out.append(re.escape(piece) if i % 2 == 0 else f"(?P<{piece}>.+?)")
    return re.compile("".join(out) + r"\Z", re.DOTALL)


_PATTERNS = {key: _pattern(t) for key, t in TEMPLATES.items() if key not in (SAID, LEGACY)}
_GAVE_UP = re.compile(r"gave up after (?P<count>\d+) attempts?\Z")


def _number(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def _match(text: str, place: Place) -> Part | None:
    if place is Place.FACT and (m := _GAVE_UP.match(text)):  # older releases wrote the plural out
        return part("gave_up", count=int(m["count"]))
    for key, pattern in _PATTERNS.items():
        if TEMPLATES[key].place is place and (m := pattern.match(text)):
            return {"key": key, **{k: _number(v) for k, v in m.groupdict().items()}}
    return None


def _facts(inner: str) -> list[Part]:
    """Facts joined by "; " (a template or the service's own words may hold "; " too): the
    shortest known template at each point, the words in between kept as they are."""
    pieces, i = inner.split("; "), 0
    parts: list[Part] = []
    pending: list[str] = []
    while i < len(pieces):
        for j in range(i + 1, len(pieces) + 1):
            if found := _match("; ".join(pieces[i:j]), Place.FACT):
                if pending:
                    parts.append(said("; ".join(pending)))
                    pending = []
                parts.append(found)
                i = j
                break
        else:
            pending.append(pieces[i])
            i += 1
    if pending:
        parts.append(said("; ".join(pending)))
    return parts


def parse_legacy(code: str, message: str) -> list[Part]:
    """The parts of a message stored as rendered English by an older release (a data migration
    uses it): the code's (or a headline's) first sentence, facts in brackets, sentences after.
    What it cannot take apart is kept whole, shown as it was written."""
    message = message.strip()
    if not message:
        return []
    head = error_info(code).message if code in {c.value for c in ERRORS} else None
    parts: list[Part] = []
    rest: str | None = None
    if head and message.startswith(head):
        rest = message[len(head) :]
    else:
        for key, pattern in _PATTERNS.items():
            if TEMPLATES[key].place is not Place.HEADLINE:
                continue
            # A headline is a first sentence: its facts (a host) hold no spaces, the rest follows.
            first = re.compile(pattern.pattern.removesuffix(r"\Z").replace(".+?", r"\S+?"))
            if m := first.match(message):
                parts.append({"key": key, **m.groupdict()})
                rest = message[m.end() :]
                break
    if rest is None:
        return [{"key": LEGACY, "text": message}]
    rest = rest.strip()
    if rest.startswith("("):
        depth, end = 0, -1
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                end = i
                break
        if end < 0:
            return [{"key": LEGACY, "text": message}]
        parts += _facts(rest[1:end])
        rest = rest[end + 1 :].strip()
    if rest:
        sentence = _match(rest, Place.SENTENCE)
        if sentence is None:
            return [{"key": LEGACY, "text": message}]
        parts.append(sentence)
    return parts
