"""Error messages put into words for people, in the active language: every face calls these.

Records keep an error code and its facts (``error_detail``); the words come from the tables in
``django_gptimage.domain`` (English msgids) through Django's ``gettext``, so a corrected or
translated message applies to old rows as well as new ones. Faces (admin, widget, status
endpoint, CLI) use these functions and never put messages together themselves.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.messages import Rendered, render

__all__ = ["error_rendered", "error_text", "translated"]


def error_rendered(code: str | ErrorCode, detail: Any = None) -> Rendered:
    """``code`` with the facts in ``detail``: the message, the detail, and both as one text."""
    return render(code, detail, gettext=gettext)


def error_text(code: str | ErrorCode, detail: Any = None) -> str:
    """The whole message in one text, e.g. "The image service did not answer in time, … (…)"."""
    return error_rendered(code, detail).text


def translated(msgid: str) -> str:
    """A sentence from a domain table (marked with ``gettext_noop``) in the active language."""
    return gettext(msgid) if msgid else ""
