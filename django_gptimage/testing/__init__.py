"""Test helpers: a loopback OpenAI-compatible Images API and a pytest plugin that serves it.

from django_gptimage.testing import FakeOpenAIServer

with FakeOpenAIServer() as server:
    server.add_fault("rate_limited", retry_after=2)
    client = openai.OpenAI(api_key="sk-test", base_url=server.base_url)

Or from a shell: ``python -m django_gptimage.testing --port 8089`` (see ``__main__``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy, so the pytest plugin (a submodule) and the embedded Redis helper import nothing heavy:
# the server, Pillow and Django load on first use of one of these names.
_EXPORTS = {
    "FAULT_KINDS": ".faults",
    "Fault": ".faults",
    "FileSummary": ".multipart",
    "serve_in_subprocess": ".process",
    "RecordedRequest": ".recording",
    "FakeOpenAIServer": ".server",
}

__all__ = [
    "FAULT_KINDS",
    "FakeOpenAIServer",
    "Fault",
    "FileSummary",
    "RecordedRequest",
    "serve_in_subprocess",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
