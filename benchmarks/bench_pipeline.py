"""Wall time of the whole django-gptimage pipeline vs a bare httpx + base64 + file-write client.

    .venv/bin/python benchmarks/bench_pipeline.py                       # solid and noise, 2K n=1 and 4K n=4
    .venv/bin/python benchmarks/bench_pipeline.py --modes noise --repeat 7

For each case the same request is made, alternately, by:

- ``bare``: one pooled ``httpx.Client``: POST, ``response.json()``, ``base64.b64decode`` of each
  image, write the file. Nothing else.
- ``provider``: ``OpenAIProvider.generate`` + ``check_image`` + ``save_file`` (no database).
- ``run``: ``request_generation`` with ``RUN_MODE = "sync"``: validation, the SQLite records
  (generation, attempt, images), the streamed provider call with fsynced spool files, Pillow's
  check, the copy into a FileSystemStorage, the spool cleanup.

The fake OpenAI server runs in a separate process. ``solid`` images are cached by the server, so
the time is almost all client work (a worst case for any fixed overhead: the PNGs are small);
``noise`` images are as large as real 4K results and the server encodes them for every request,
as the real API takes time to answer. Prints the median of ``--repeat`` runs (after one warm-up
of each) and ``run / bare`` (target <= 1.10x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_memory import (  # noqa: E402  (shared helpers, see bench_memory.py)
    API_KEY,
    configure_django,
    fake_server,
    provider_generate,
    run_generate,
    size_arg,
)

CASES = (("2048x1152", 1), ("3840x2160", 4))


def bare_client(base_url: str) -> Callable[[str, int, str], int]:
    import base64

    import httpx

    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600)

    def call(size: str, n: int, out_dir: str) -> int:
        response = client.post(
            "/images/generations",
            json={"model": "gpt-image-2", "prompt": "bench", "size": size, "n": n, "output_format": "png"},
        )
        response.raise_for_status()
        total = 0
        for i, item in enumerate(response.json()["data"]):
            data = base64.b64decode(item["b64_json"])
            with open(os.path.join(out_dir, f"bare-{time.monotonic_ns()}-{i}.png"), "wb") as handle:
                handle.write(data)
            total += len(data)
        return total

    return call


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def bench_case(
    clients: dict[str, Callable[[], int]], repeat: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    times: dict[str, list[float]] = {name: [] for name in clients}
    sizes: dict[str, int] = {}
    for fn in clients.values():  # warm-up
        fn()
    for _ in range(repeat):
        for name, fn in clients.items():  # interleaved, so drift hits every client alike
            seconds, decoded = timed(fn)
            times[name].append(seconds)
            sizes[name] = decoded
    return times, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="solid,noise", help="fake server image modes: solid,noise")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="gptimage-bench-pipeline-")
    try:
        for image_mode in [m for m in args.modes.split(",") if m]:
            with fake_server(image_mode) as base_url:
                _run_mode(image_mode, base_url, workdir, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_mode(image_mode: str, base_url: str, workdir: str, repeat: int) -> None:
    from django.conf import settings

    if not settings.configured:
        configure_django(base_url, workdir)
    else:  # a second image mode: a new server, same Django process and database
        settings.GPTIMAGE = {**settings.GPTIMAGE, "BASE_URL": base_url}
    bare = bare_client(base_url)
    out_dir = os.path.join(workdir, "bare")
    os.makedirs(out_dir, exist_ok=True)
    counter = iter(range(1_000_000))

    print(f"\nfake server image_mode={image_mode} (separate process), median of {repeat} runs")
    print(
        f"{'case':<16} {'decoded':>10} {'bare':>9} {'provider':>9} {'run':>9} {'run/bare':>9} {'run-bare':>9}"
    )
    for size, n in CASES:
        width, height = size_arg(size)
        clients: dict[str, Callable[[], Any]] = {
            "bare": lambda s=size, k=n: bare(s, k, out_dir),
            "provider": lambda s=size, k=n: provider_generate(
                base_url, s, k, os.path.join(workdir, "spool", f"p{next(counter)}")
            ),
            "run": lambda w=width, h=height, k=n: run_generate(w, h, k),
        }
        times, sizes = bench_case(clients, repeat)
        med = {name: statistics.median(values) for name, values in times.items()}
        ratio = med["run"] / med["bare"]
        print(
            f"{size + ' n=' + str(n):<16} {sizes['bare'] / 2**20:>8.1f}Mi {med['bare']:>8.3f}s "
            f"{med['provider']:>8.3f}s {med['run']:>8.3f}s {ratio:>8.2f}x {(med['run'] - med['bare']) * 1000:>7.0f}ms"
        )
        for name in ("bare", "provider", "run"):
            print(f"    {name:<9} runs: " + " ".join(f"{t:.3f}" for t in times[name]))
        # Keep the disk from filling up during long runs.
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir, exist_ok=True)
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
