"""Test helpers: a loopback OpenAI-compatible Images API and a pytest plugin that serves it.

from django_gptimage.testing import FakeOpenAIServer

with FakeOpenAIServer() as server:
    server.add_fault("rate_limited", retry_after=2)
    client = openai.OpenAI(api_key="sk-test", base_url=server.base_url)

Or from a shell: ``python -m django_gptimage.testing --port 8089`` (see ``__main__``).
"""

from __future__ import annotations

from .faults import FAULT_KINDS, Fault
from .multipart import FileSummary
from .process import serve_in_subprocess
from .recording import RecordedRequest
from .server import FakeOpenAIServer

__all__ = [
    "FAULT_KINDS",
    "FakeOpenAIServer",
    "Fault",
    "FileSummary",
    "RecordedRequest",
    "serve_in_subprocess",
]
