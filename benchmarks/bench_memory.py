"""Peak memory of receiving a large image result: django-gptimage's pipeline vs a naive client.

    .venv/bin/python benchmarks/bench_memory.py                 # 3840x2160, n=4, PNG, noise
    .venv/bin/python benchmarks/bench_memory.py --size 2048x1152 --n 2

The fake OpenAI server runs in a separate process (image_mode="noise": random pixels, so the
PNGs are as large as real photographic 4K results), so its memory is never counted. Each
client runs in a fresh subprocess of this script:

- ``naive``: ``httpx.post(...).json()``, then ``base64.b64decode`` of every ``b64_json`` and a
  file write: the usual few lines.
- ``provider``: ``OpenAIProvider.generate`` (streams the body, decodes base64 straight to spool
  files) + ``storage.check_image`` + ``storage.save_file`` into a FileSystemStorage.
- ``run``: the whole thing: ``request_generation`` with ``RUN_MODE = "sync"`` (validation,
  SQLite records, provider, check, storage, spool cleanup).

Method: the child imports everything and makes one small warm-up request through the same code
path, then resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``, Linux
>= 4.0), reads its RSS, makes the measured request and reads the new peak (``VmHWM``). Peak
extra = VmHWM - RSS before the call. Without clear_refs it falls back to
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the peak since start; the warm-up is small).
``MALLOC_MMAP_THRESHOLD_`` is pinned at 128 KiB so glibc returns large freed buffers to the
OS instead of keeping them in the heap: memory retained from the warm-up cannot then hide part
of the measured call's peak.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from django_gptimage.testing.process import serve_in_subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
API_KEY = "sk-bench-not-secret"
WARMUP_SIZE, WARMUP_N = "1024x1024", 1
MODES = ("naive", "provider", "run")

# -- shared with bench_pipeline.py -------------------------------------------------------------


def fake_server(image_mode: str) -> Any:
    """The loopback server in its own process (its memory and CPU are not the client's)."""
    return serve_in_subprocess(api_key=API_KEY, image_mode=image_mode)


def configure_django(base_url: str, workdir: str) -> None:
    """A minimal site: SQLite in ``workdir``, FileSystemStorage, the openai provider, sync mode."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-secret",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django_gptimage"],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(workdir, "db.sqlite3")}
        },
        MEDIA_ROOT=os.path.join(workdir, "media"),
        STORAGES={"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}},
        GPTIMAGE={
            "PROVIDER": "openai",
            "API_KEY": API_KEY,
            "BASE_URL": base_url,
            "RUN_MODE": "sync",
            "SPOOL_DIR": os.path.join(workdir, "spool"),
            "MAX_ATTEMPTS": 1,
        },
    )
    django.setup()
    call_command("migrate", verbosity=0)


def size_arg(value: str) -> tuple[int, int]:
    w, _, h = value.lower().partition("x")
    return int(w), int(h)


def ratio_tier(width: int, height: int) -> tuple[str, str]:
    """The ratio and tier django-gptimage maps to exactly this size (for request_generation)."""
    from django_gptimage.domain.capabilities import get_capabilities
    from django_gptimage.domain.sizes import RATIOS, TIERS, resolve_size

    caps = get_capabilities("gpt-image-2")
    for ratio in RATIOS:
        for tier in TIERS:
            choice = resolve_size(ratio, tier, "text-to-image", caps)
            if choice.allowed and (choice.width, choice.height) == (width, height):
                return ratio, tier
    raise SystemExit(f"{width}x{height} is not a ratio x tier size of gpt-image-2")


def naive_generate(base_url: str, size: str, n: int, out_dir: str) -> int:
    """What most clients do: read the whole JSON, decode every image, write it. Returns bytes."""
    import httpx

    response = httpx.post(
        f"{base_url}/images/generations",
        json={"model": "gpt-image-2", "prompt": "bench", "size": size, "n": n, "output_format": "png"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=600,
    )
    response.raise_for_status()
    total = 0
    for i, item in enumerate(response.json()["data"]):
        data = base64.b64decode(item["b64_json"])
        with open(os.path.join(out_dir, f"naive-{i}.png"), "wb") as handle:
            handle.write(data)
        total += len(data)
    return total


def provider_generate(base_url: str, size: str, n: int, spool_dir: str) -> int:
    """OpenAIProvider.generate + check_image + save_file (what the runner does, without records)."""
    from django_gptimage.providers import ProviderRequest
    from django_gptimage.providers.openai import OpenAIProvider
    from django_gptimage.storage import check_image, save_file

    provider = _provider(base_url)
    request = ProviderRequest(model="gpt-image-2", prompt="bench", mode="text-to-image", size=size, n=n)
    result = provider.generate(request, spool_dir=spool_dir)
    total = 0
    for item in result.files:
        checked = check_image(item.path)
        save_file(item.path, f"bench/{os.path.basename(spool_dir)}-{item.index}.png", checked.format)
        total += item.size_bytes
    shutil.rmtree(spool_dir, ignore_errors=True)
    assert isinstance(provider, OpenAIProvider)
    return total


_providers: dict[str, Any] = {}


def _provider(base_url: str) -> Any:
    from django_gptimage.providers.openai import OpenAIProvider

    if base_url not in _providers:
        _providers[base_url] = OpenAIProvider(api_key=API_KEY, base_url=base_url)
    return _providers[base_url]


def run_generate(width: int, height: int, n: int) -> int:
    """The whole pipeline: request_generation in sync mode. Returns the stored bytes."""
    from django_gptimage.service import request_generation

    ratio, tier = ratio_tier(width, height)
    generation = request_generation(prompt="bench", ratio=ratio, tier=tier, n=n, output_format="png")
    if generation.status != "succeeded":
        raise RuntimeError(f"generation {generation.status}: {generation.error_message}")
    return sum(image.size_bytes for image in generation.images.all())


# -- measuring (child) -------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def child(mode: str, base_url: str, width: int, height: int, n: int, workdir: str) -> dict[str, Any]:
    size = f"{width}x{height}"
    if mode == "naive":
        import httpx  # noqa: F401  (imported before measuring, like every other import)

        def call(s: str, count: int) -> int:
            return naive_generate(base_url, s, count, workdir)
    else:
        configure_django(base_url, workdir)
        if mode == "provider":
            counter = iter(range(1_000_000))

            def call(s: str, count: int) -> int:
                return provider_generate(
                    base_url, s, count, os.path.join(workdir, "spool", f"c{next(counter)}")
                )
        else:

            def call(s: str, count: int) -> int:
                w, h = size_arg(s)
                return run_generate(w, h, count)

    call(WARMUP_SIZE, WARMUP_N)
    gc.collect()
    method = "VmHWM after clear_refs" if _reset_peak() else "ru_maxrss"
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    decoded = call(size, n)
    seconds = time.perf_counter() - started
    if method == "ru_maxrss":
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    else:
        peak = _status_kib("VmHWM")
    return {
        "mode": mode,
        "decoded_bytes": decoded,
        "rss_before_kib": before,
        "peak_kib": peak,
        "extra_bytes": max(0, peak - before) * 1024,
        "seconds": seconds,
        "method": method,
    }


def measure(mode: str, base_url: str, width: int, height: int, n: int) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix=f"gptimage-bench-{mode}-")
    try:
        env = {**os.environ, "PYTHONPATH": ROOT, "MALLOC_MMAP_THRESHOLD_": "131072"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        args = [sys.executable, __file__, "--child", mode, "--base-url", base_url, "--workdir", workdir]
        args += ["--size", f"{width}x{height}", "--n", str(n)]
        out = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{mode} child failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="3840x2160")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: naive,provider,run")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = size_arg(args.size)

    if args.child:
        print(json.dumps(child(args.child, args.base_url, width, height, args.n, args.workdir)))
        return

    modes = [m for m in args.modes.split(",") if m]
    print(f"{width}x{height} PNG, n={args.n}, fake server image_mode=noise (separate process)")
    results = []
    with fake_server("noise") as base_url:
        for mode in modes:
            result = measure(mode, base_url, width, height, args.n)
            results.append(result)
    print(
        f"method: peak RSS minus RSS before the call ({results[0]['method']}), one fresh process per client"
    )
    print(f"decoded image bytes: {mib(results[0]['decoded_bytes'])} ({results[0]['decoded_bytes']:,} bytes)")
    print(f"{'client':<10} {'peak extra':>14} {'peak/decoded':>13} {'time':>8}")
    for r in results:
        ratio = r["extra_bytes"] / r["decoded_bytes"]
        print(f"{r['mode']:<10} {mib(r['extra_bytes']):>14} {ratio:>12.2f}x {r['seconds']:>7.2f}s")
    ours = [r for r in results if r["mode"] != "naive"]
    if ours:
        worst = max(r["extra_bytes"] / r["decoded_bytes"] for r in ours)
        print(f"target for ours <= 0.25x: {'met' if worst <= 0.25 else 'MISSED'} (worst {worst:.3f}x)")


if __name__ == "__main__":
    main()
