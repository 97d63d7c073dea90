"""The loopback server in a process of its own, so its CPU and memory never count as the caller's
(benchmarks) and it keeps answering while the caller is busy or blocked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


@contextmanager
def serve_in_subprocess(
    *,
    api_key: str | None = None,
    image_mode: str = "solid",
    delay: float = 0.0,
    images_per_minute: int | None = None,
    requests_per_minute: int | None = None,
    models: Mapping[str, str] | None = None,
    random_faults: Iterable[Mapping[str, Any]] | None = None,
    fault_seed: int | None = None,
) -> Iterator[str]:
    """Start ``python -m django_gptimage.testing`` and yield its base URL; stop it on exit.

    ``GET <base URL without /v1>/_fake/stats`` returns its counters (see ``FakeOpenAIServer.stats``),
    ``GET <base URL without /v1>/_fake/answers`` its answer log (``FakeOpenAIServer.answers``).
    """
    args = [sys.executable, "-m", "django_gptimage.testing", "--until-stdin-closes",
            "--image-mode", image_mode, "--delay", str(delay)]  # fmt: skip
    if api_key:
        args += ["--api-key", api_key]
    if images_per_minute:
        args += ["--images-per-minute", str(images_per_minute)]
    if requests_per_minute:
        args += ["--requests-per-minute", str(requests_per_minute)]
    for new, known in (models or {}).items():
        args += ["--model", f"{new}={known}"]
    if random_faults:
        args += ["--random-faults", json.dumps(list(map(dict, random_faults)))]
    if fault_seed is not None:
        args += ["--fault-seed", str(fault_seed)]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError("the loopback OpenAI server did not start")
        yield base_url
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
