"""A high-density RQ worker: one process, N ``SimpleWorker``-based workers in threads.

Image calls spend minutes waiting on the network. RQ's default worker forks a work horse per
job (a whole Django process each, about 34 MiB PSS per job in flight); here one process runs
``concurrency`` RQ workers as threads that share the provider's pooled httpx client, so a job
in flight costs a thread and its sockets instead of a process (see docs/jobs.md for figures).

What the threads need that RQ's ``SimpleWorker`` does not do off the main thread:

- no signal handlers (``signal.signal`` only works in the main thread): the pool's main thread
  handles SIGINT/SIGTERM and asks every worker for a warm stop; a second signal exits at once
  and leaves the records in flight to the reaper. The handler only records the signal (it may
  interrupt code holding a lock it would need); the supervising loop acts on it;
- job timeouts without SIGALRM (per process, main thread only) and without RQ's
  ``TimerDeathPenalty`` (an asynchronous exception that can land inside shared connection-pool
  code): each job has a deadline checked at safe points (:mod:`.liveness`), and a job stuck past
  it plus ``LIVENESS_GRACE`` makes the pool stop taking work and exit with ``EXIT_STUCK`` (3);
- RQ's commands per worker thread: ``stop-job`` stops that job at its next safe point (status
  stopped, never retried), ``shutdown`` is a warm stop of that thread only (the process exits
  once every thread has stopped);
- an idle worker blocks in BLMOVE for at most ``poll_interval`` seconds, so it notices a
  stop request (RQ's own loop only learns about it from a signal raised into the main thread);
- job heartbeats while a job runs (``SimpleWorker`` sends none, so its started-registry entry
  would outlive a killed process by the whole job timeout): one monitor thread for the pool;
- one pattern subscription for RQ's worker commands instead of a pubsub thread per worker;
- the scheduler in a thread of this process (RQ forks a process for it, which is unsafe in a
  multi-threaded process), run by one worker only;
- the thread's Django DB connections closed after every job, so idle threads hold none.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis.exceptions
from redis import BlockingConnectionPool, ConnectionPool
from rq.command import PUBSUB_CHANNEL_TEMPLATE
from rq.defaults import (
    DEFAULT_JOB_MONITORING_INTERVAL,
    DEFAULT_LOGGING_DATE_FORMAT,
    DEFAULT_LOGGING_FORMAT,
    DEFAULT_WORKER_TTL,
)
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.logutils import setup_loghandlers
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.scheduler import run as run_scheduler
from rq.utils import now
from rq.worker import BaseWorker, SimpleWorker, WorkerStatus

from django_gptimage.jobs import liveness

logger = logging.getLogger("django_gptimage.worker")

DEFAULT_CONCURRENCY = 32
DEFAULT_POLL_INTERVAL = 5


def close_db_connections() -> None:
    """Close this thread's Django DB connections (Django keeps one per thread and alias)."""
    from django.db import connections

    connections.close_all()


def _ensure_pool_size(connection: Any, size: int) -> None:
    """redis-py's pool refuses a 101st connection by default ("Too many connections"), and
    every idle thread holds one in its blocking pop."""
    pool = connection.connection_pool
    if isinstance(pool, BlockingConnectionPool):
        if pool.max_connections < size:
            logger.warning(
                "Redis BlockingConnectionPool of %d for %d threads: threads will wait",
                pool.max_connections,
                size,
            )
    elif isinstance(pool, ConnectionPool) and pool.max_connections < size:
        pool.max_connections = size


class ThreadScheduler(RQScheduler):
    """RQ's scheduler loop in a daemon thread of this process instead of a forked process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The worker's maintenance and the pool's monitor may both try to (re)start it.
        self._start_lock = threading.RLock()

    def _install_signal_handlers(self) -> None:
        """The pool's main thread owns the signals; ``request_stop()`` stops the loop."""

    @property
    def running(self) -> bool:
        return isinstance(self._process, threading.Thread) and self._process.is_alive()

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        with self._start_lock:
            return super().acquire_locks(auto_start=auto_start)

    def start(self) -> threading.Thread:
        with self._start_lock:
            if self.running:
                return self._process  # type: ignore[return-value]
            self._status = self.Status.STARTED
            self._stop_requested = False
            thread = threading.Thread(target=run_scheduler, args=(self,), name="rq-scheduler", daemon=True)
            self._process = thread  # type: ignore[assignment]  # RQ checks ``_process.is_alive()`` to restart a dead scheduler
            thread.start()
            return thread

    def work(self) -> None:
        """RQ's loop, restarted after a Redis outage (RQ's scheduler process just dies then,
        until a worker's maintenance restarts it up to ten minutes later)."""
        delay = 1.0
        while not self._stop_requested:
            started = time.monotonic()
            try:
                super().work()
                return
            except redis.exceptions.ConnectionError as exc:
                if time.monotonic() - started > 60:
                    delay = 1.0  # a new outage, not the same one
                self.log.warning("Scheduler: Redis unreachable (%s); retrying in %.0f s", exc, delay)
                deadline = time.monotonic() + delay
                while not self._stop_requested and time.monotonic() < deadline:
                    time.sleep(0.2)
                delay = min(delay * 2, 30.0)


class ThreadWorker(SimpleWorker):
    """An RQ ``SimpleWorker`` that runs in a thread next to others in the same process."""

    death_penalty_class = liveness.CooperativeDeathPenalty
    # A Redis outage must not leave a thread asleep for a minute after a stop request.
    max_connection_wait_time = 30.0

    def __init__(
        self,
        *args: Any,
        poll_interval: int = DEFAULT_POLL_INTERVAL,
        stop_event: threading.Event | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.poll_interval = max(1, int(poll_interval))
        self._stop_event = stop_event or threading.Event()
        self._job_lock = threading.Lock()
        self._monitored_job: Job | None = None

    # -- things only the main thread may do -------------------------------------------------

    def _install_signal_handlers(self) -> None:
        """No-op: ``signal.signal`` raises off the main thread; the pool handles signals."""

    def request_stop(self, signum: Any = None, frame: Any = None) -> None:
        """Warm stop: finish the current job, take no new one (never raises into the caller)."""
        self._stop_requested = True
        self._shutdown_requested_date = now()
        with contextlib.suppress(redis.exceptions.RedisError):  # informational only
            self.set_shutdown_requested_date()
        if self.scheduler is not None:
            self.scheduler.request_stop()

    def teardown(self) -> None:
        # RQ's teardown writes to Redis (register_death); after a Redis error it would raise
        # over the error that ended the loop. The worker's key expires on its own.
        try:
            super().teardown()
        except redis.exceptions.RedisError as exc:
            self.log.warning("Worker %s: could not register its stop (%s)", self.name, exc)

    def kill_horse(self, sig: Any = None) -> None:
        """RQ's ``stop-job`` (and ``kill-horse``): there is no horse process to kill. The
        generation is canceled (a request already out is answered and its images kept, as a
        cancel keeps them) and the job stops at its next safe point (see :mod:`.liveness`)."""
        from django_gptimage import jobs
        from django_gptimage.models import ImageGeneration, Status

        job_id = self.get_current_job_id()
        if not job_id or not liveness.stop(job_id):
            return
        self.log.info("Worker %s: job %s stops at its next safe point", self.name, job_id)
        if pk := jobs.generation_id_of(job_id):
            try:
                ImageGeneration.objects.filter(pk=pk, status__in=(Status.QUEUED, Status.RUNNING)).update(
                    cancel_requested=True
                )
            finally:
                close_db_connections()  # this runs in the pool's command thread

    def handle_payload(self, message: Any) -> None:
        """RQ's worker commands; ``shutdown`` is a warm stop of this worker thread only (RQ's
        own handler sends SIGINT to the process, which would stop every thread)."""
        from rq.command import handle_command, parse_payload

        payload = parse_payload(message)
        if payload.get("command") == "shutdown":
            self.log.info("Worker %s: shutdown command, warm stop of this worker", self.name)
            self.request_stop()
            return
        if payload.get("command") == "kill-horse":  # RQ's handler needs a horse pid
            self.kill_horse()
            return
        handle_command(self, payload)

    def procline(self, message: str) -> None:
        """No-op: the process title is shared by every thread."""

    def subscribe(self) -> None:
        """No-op: the pool listens for every worker's commands on one pattern subscription."""

    def unsubscribe(self) -> None:
        """No-op, see :meth:`subscribe`."""

    # -- scheduler in a thread --------------------------------------------------------------

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        self.scheduler = ThreadScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return  # another process schedules; the pool's monitor takes over when it stops
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    def stop_scheduler(self) -> None:
        scheduler = self.scheduler
        if scheduler is None:
            return
        scheduler.request_stop()
        thread = scheduler._process
        if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
            thread.join(timeout=scheduler.interval + 5)

    # -- heartbeats while a job runs --------------------------------------------------------

    def get_heartbeat_ttl(self, job: Job) -> int:
        # The pool's monitor thread beats every job_monitoring_interval (like the forking
        # worker does), so a killed process's started-registry entries expire within about
        # 90 s instead of SimpleWorker's job timeout + 60 s.
        return BaseWorker.get_heartbeat_ttl(self, job)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        with self._job_lock:
            self._monitored_job = job

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        # Stop beating before RQ removes the execution, or a late beat could re-add it.
        with self._job_lock:
            self._monitored_job = None
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    @property
    def busy(self) -> bool:
        return self._monitored_job is not None

    def maintain_job_heartbeat(self) -> bool:
        """Called by the pool's monitor thread; True if a job was running."""
        with self._job_lock:
            job = self._monitored_job
            if job is None or job.started_at is None or self.execution is None:
                return False
            self.set_current_job_working_time((now() - job.started_at).total_seconds())
            self.maintain_heartbeats(job)
            return True

    # -- the job ----------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            # Each thread has its own Django connection; an idle thread should hold none.
            close_db_connections()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's dequeue loop, blocking at most ``poll_interval`` at a time to notice stops.

        Same steps as ``BaseWorker.dequeue_job_and_maintain_ttl`` (heartbeat, maintenance,
        dequeue_any, reorder, logging); ``timeout=None`` is burst mode: one non-blocking pass.
        """
        qnames = ",".join(self.queue_names())
        self.set_state(WorkerStatus.IDLE)
        connection_wait_time = 1.0
        idle_since = time.monotonic()
        while True:
            if self._stop_requested:
                raise StopRequested()
            try:
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                block: int | None = None
                if timeout is not None:
                    wait = float(min(timeout, self.poll_interval))
                    if max_idle_time is not None:
                        left = max_idle_time - (time.monotonic() - idle_since)
                        if left <= 0:
                            self.log.info(
                                "Worker %s: idle for %d seconds, quitting", self.name, max_idle_time
                            )
                            return None
                        wait = min(wait, left)
                    block = max(1, math.ceil(wait))
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    block,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
                if result is None:
                    return None  # burst: nothing left
                job, queue = result
                if self._stop_requested:
                    # Popped by a BLMOVE that was already blocking when the stop came (RQ's
                    # signal handler would have interrupted it): not ours to start any more.
                    self._give_back(job, queue)
                    raise StopRequested()
                self.reorder_queues(reference_queue=queue)
                job.redis_server_version = self.get_redis_server_version()
                self.log.info("Worker %s: %s: %s (%s)", self.name, queue.name, job.description, job.id)
                self.heartbeat()
                return result
            except DequeueTimeout:
                continue
            except redis.exceptions.ConnectionError as exc:
                self.log.error(
                    "Worker %s: could not connect to Redis (%s) for %s; retrying in %d s",
                    self.name,
                    exc,
                    qnames,
                    connection_wait_time,
                )
                self._stop_event.wait(connection_wait_time)
                connection_wait_time = min(
                    connection_wait_time * self.exponential_backoff_factor, self.max_connection_wait_time
                )

    def _give_back(self, job: Job, queue: Queue) -> None:
        with self.connection.pipeline() as pipeline:
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            queue.push_job_id(job.id, pipeline=pipeline, at_front=True)
            pipeline.execute()
        self.log.info("Worker %s: stopping, job %s put back on %s", self.name, job.id, queue.name)


class ThreadWorkerPool:
    """``concurrency`` ThreadWorkers in one process, supervised by the main thread.

    ``run()`` blocks until every worker has stopped: at once in burst mode when the queues are
    empty, otherwise after a SIGINT/SIGTERM (warm: current jobs finish) or ``request_stop()``.
    """

    worker_class: type[ThreadWorker] = ThreadWorker

    def __init__(
        self,
        queues: Sequence[str],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        connection: Any = None,
        burst: bool = False,
        with_scheduler: bool = True,
        name: str | None = None,
        poll_interval: int = DEFAULT_POLL_INTERVAL,
        worker_ttl: int = DEFAULT_WORKER_TTL,
        job_monitoring_interval: int = DEFAULT_JOB_MONITORING_INTERVAL,
        logging_level: str = "INFO",
        max_jobs: int | None = None,
        reaper: bool = False,
    ) -> None:
        import django_rq

        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not queues:
            raise ValueError("at least one queue name is needed")
        self.queue_names = list(queues)
        self.concurrency = concurrency
        # One Redis client (one connection pool) for every thread: a blocked BLMOVE holds one
        # connection, a busy worker none between its Redis calls.
        self.connection = connection or django_rq.get_connection(self.queue_names[0])
        _ensure_pool_size(self.connection, concurrency + 16)  # + monitor, pubsub, main thread
        self.queues = [
            django_rq.get_queue(q, connection=self.connection, commit_mode="auto") for q in self.queue_names
        ]
        self.burst = burst
        self.with_scheduler = with_scheduler
        self.name = name or f"{socket.gethostname()}.{os.getpid()}"
        self.poll_interval = poll_interval
        self.worker_ttl = worker_ttl
        self.job_monitoring_interval = job_monitoring_interval
        self.logging_level = logging_level
        self.max_jobs = max_jobs
        self.reaper = reaper and not burst

        self.stop_event = threading.Event()  # warm stop requested
        self._closed = threading.Event()  # everything finished: stop the service threads
        self._lock = threading.Lock()
        self._workers: dict[int, ThreadWorker] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._crashed: dict[int, bool] = {}
        self._restarts: dict[int, int] = {}
        self._next_restart: dict[int, float] = {}
        self._pubsub: Any = None
        self._pubsub_thread: Any = None
        self._monitor_thread: threading.Thread | None = None
        self._signals = 0
        self._pending_signal: int | None = None
        self._stuck: list[liveness.Deadline] = []  # jobs past their timeout + grace

    # -- introspection ----------------------------------------------------------------------

    @property
    def workers(self) -> list[ThreadWorker]:
        with self._lock:
            return list(self._workers.values())

    def in_flight(self) -> int:
        return sum(1 for w in self.workers if w.busy)

    def alive(self) -> int:
        with self._lock:
            return sum(1 for t in self._threads.values() if t.is_alive())

    # -- lifecycle --------------------------------------------------------------------------

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Start, supervise until every worker stopped, clean up. Returns an exit status."""
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
        self.start()
        try:
            while True:
                self._handle_pending_signal()
                if not self._supervise():
                    break
                time.sleep(0.2)  # signal handlers run in this thread, between sleeps
        finally:
            self.close()
        if self._stuck:
            return liveness.EXIT_STUCK
        return 1 if self.burst and any(self._crashed.values()) else 0

    def start(self) -> None:
        setup_loghandlers(self.logging_level, name="rq.worker")
        setup_loghandlers(self.logging_level, name="rq.job")
        close_db_connections()  # the main thread needs no DB connection while supervising
        self._listen_for_commands()
        self._monitor_thread = threading.Thread(target=self._monitor, name="rq-job-monitor", daemon=True)
        self._monitor_thread.start()
        for slot in range(self.concurrency):
            self._start_slot(slot)
        logger.info(
            "gptimage worker %s: %d threads on %s%s",
            self.name,
            self.concurrency,
            ", ".join(self.queue_names),
            " (burst)" if self.burst else "",
        )
        self._warn_of_other_hosts()

    def _warn_of_other_hosts(self) -> None:
        """Workers of these queues on other hosts, without STAGING_STORAGE: a store-only retry
        may then run where the paid images are not (docs/storage.md). Said once, at start; a
        hint, not a check: hosts come and go, so nothing can be sure."""
        from django_gptimage.conf import gptimage_settings

        if gptimage_settings.STAGING_STORAGE:
            return
        try:
            hosts = {
                w.hostname for q in self.queues for w in BaseWorker.all(connection=q.connection, queue=q)
            }
        except redis.exceptions.RedisError:
            return
        others = sorted(h for h in hosts if h and h != socket.gethostname())
        if others:
            logger.warning(
                "gptimage worker %s: workers on other hosts (%s) take jobs from %s, and "
                "GPTIMAGE['STAGING_STORAGE'] is not set: a store-only retry that runs on another host "
                "than the one that received the images cannot store them. Set STAGING_STORAGE to a storage "
                "every worker host can read (docs/storage.md, 'Paid bytes across hosts').",
                self.name,
                ", ".join(others[:5]),
                ", ".join(self.queue_names),
            )

    def request_stop(self) -> None:
        """Warm stop: every worker finishes its current job and takes no new one."""
        self.stop_event.set()
        for worker in self.workers:
            worker.request_stop()

    def close(self) -> None:
        self.request_stop()
        stuck = {d.thread for d in self._stuck}
        for thread in list(self._threads.values()):
            if thread.name not in stuck:  # a stuck thread dies with the process (a daemon)
                thread.join(timeout=self.poll_interval + 5)
        self._closed.set()
        if self._pubsub_thread is not None:
            self._pubsub_thread.stop()
            self._pubsub_thread.join(timeout=2)
        if self._pubsub is not None:
            with contextlib.suppress(redis.exceptions.RedisError):
                self._pubsub.close()
        if self._monitor_thread is not None:
            self._monitor_thread.join(timeout=2)
        from django_gptimage.providers import reset_providers

        reset_providers()  # close the pooled HTTP connections

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Only record the signal: this runs between two bytecodes of the main thread, which
        may hold ``self._lock``, a logging handler's lock or a connection pool's lock right now.
        A second signal exits at once, writing its line with ``os.write`` (no lock at all)."""
        self._signals += 1
        if self._signals > 1:
            busy = sum(1 for w in tuple(self._workers.values()) if w._monitored_job is not None)
            line = (
                f"gptimage worker {self.name}: second {signal.Signals(signum).name}, exiting now; "
                f"{busy} generation(s) in flight are left to the reaper\n"
            )
            with contextlib.suppress(OSError):
                os.write(2, line.encode())
            os._exit(128 + signum)
        self._pending_signal = signum

    def _handle_pending_signal(self) -> None:
        signum, self._pending_signal = self._pending_signal, None
        if signum is None:
            return
        logger.warning(
            "gptimage worker %s: %s, warm stop: waiting for %d job(s) in flight (send it again to exit at once)",
            self.name,
            signal.Signals(signum).name,
            self.in_flight(),
        )
        self.request_stop()

    # -- worker threads ---------------------------------------------------------------------

    def _worker_name(self, slot: int) -> str:
        restarts = self._restarts.get(slot, 0)
        return f"{self.name}.{slot}" + (f"-{restarts}" if restarts else "")

    def _start_slot(self, slot: int) -> None:
        try:
            worker = self.worker_class(
                self.queues,
                name=self._worker_name(slot),
                connection=self.connection,
                queue_class=type(self.queues[0]),
                worker_ttl=self.worker_ttl,
                job_monitoring_interval=self.job_monitoring_interval,
                poll_interval=self.poll_interval,
                stop_event=self.stop_event,
            )
        except redis.exceptions.RedisError as exc:
            # RQ's Worker() talks to Redis (CLIENT SETNAME): during an outage the slot stays
            # empty and is tried again with backoff, instead of the exception ending the process.
            delay = min(30.0, 2.0 ** min(self._restarts.get(slot, 0), 5))
            self._restarts[slot] = self._restarts.get(slot, 0) + 1
            self._next_restart[slot] = time.monotonic() + delay
            with self._lock:
                self._threads[slot] = threading.Thread(name=f"rq-worker-{slot}-not-started")
            logger.warning(
                "gptimage worker %s: could not start thread %d (%s); trying again in %.0f s",
                self.name,
                slot,
                exc,
                delay,
            )
            return
        thread = threading.Thread(
            target=self._work, args=(slot, worker), name=f"rq-worker-{slot}", daemon=True
        )
        with self._lock:
            self._workers[slot] = worker
            self._threads[slot] = thread
            self._crashed[slot] = False
        thread.start()

    def _work(self, slot: int, worker: ThreadWorker) -> None:
        try:
            worker.work(
                burst=self.burst,
                # One scheduler per process is plenty (RQ's lock allows one per queue anyway).
                with_scheduler=self.with_scheduler and slot == 0,
                logging_level=self.logging_level,
                max_jobs=self.max_jobs,
            )
        except Exception:
            self._crashed[slot] = True
            logger.exception("gptimage worker %s crashed", worker.name)
        finally:
            close_db_connections()

    def _supervise(self) -> bool:
        """Restart crashed workers (not in burst mode, not while stopping); False when all done."""
        alive = False
        stuck = {d.thread for d in self._stuck}
        for slot, thread in list(self._threads.items()):
            if thread.is_alive():
                alive = alive or thread.name not in stuck  # a stuck thread is not waited for
                continue
            if self.burst or self.stop_event.is_set() or self.max_jobs is not None:
                continue
            worker = self._workers.get(slot)
            if worker is not None and worker._stop_requested:
                continue  # stopped on purpose (RQ's shutdown command to this worker)
            # A worker ends on its own only after an error (e.g. Redis gone): back off, retry.
            now_ = time.monotonic()
            due = self._next_restart.get(slot)
            if due is None:
                delay = min(30.0, 2.0 ** min(self._restarts.get(slot, 0), 5))
                self._next_restart[slot] = now_ + delay
                logger.warning(
                    "gptimage worker %s stopped; restarting in %.0f s", self._workers[slot].name, delay
                )
            elif now_ >= due:
                del self._next_restart[slot]
                self._restarts[slot] = self._restarts.get(slot, 0) + 1
                self._start_slot(slot)
            alive = True
        return alive

    # -- shared services --------------------------------------------------------------------

    def _monitor(self) -> None:
        """Job heartbeats for every busy worker, like the forking worker's monitor loop; taking
        over the scheduler when another process held its lock and has stopped; and keeping the
        periodic reaper scheduled (its chain ends if Redis loses its data)."""
        self._ensure_reaper()
        while not self._closed.wait(self.job_monitoring_interval):
            unreachable: list[str] = []
            for worker in self.workers:
                try:
                    worker.maintain_job_heartbeat()
                except redis.exceptions.RedisError as exc:
                    unreachable.append(str(exc))  # one line per round, not one per thread
                except Exception:  # noqa: BLE001 - a missed beat is retried next round
                    logger.warning("gptimage worker %s: heartbeat failed", worker.name, exc_info=True)
            if unreachable:
                logger.warning(
                    "gptimage worker %s: job heartbeats failed for %d job(s): %s",
                    self.name,
                    len(unreachable),
                    unreachable[0],
                )
            self._watch_for_stuck_jobs()
            self._take_over_scheduler()
            self._ensure_reaper()
            self._enqueue_overdue()

    def _ensure_reaper(self) -> None:
        if not self.reaper or self.stop_event.is_set():
            return
        from django_gptimage.jobs.reaper import schedule_reaper

        try:
            schedule_reaper()  # a no-op while a run is scheduled
        except redis.exceptions.RedisError:
            pass  # Redis is away; next round
        except Exception:  # noqa: BLE001 - the reaper must not take the monitor down
            logger.warning("gptimage worker %s: could not schedule the reaper", self.name, exc_info=True)

    def _watch_for_stuck_jobs(self) -> None:
        """A job past its timeout + LIVENESS_GRACE never reached a safe point (a storage write
        or a socket that hangs without a timeout): nothing can end that thread from here. Stop
        taking work, let the other jobs finish, exit with EXIT_STUCK for the supervisor to
        restart the process; the reaper settles the stuck records (their heartbeats stopped)."""
        stuck = [d for d in liveness.overdue() if d not in self._stuck]
        if not stuck:
            return
        self._stuck.extend(stuck)
        for deadline in stuck:
            logger.error(
                "gptimage worker %s: job %s in thread %s is stuck %.0f s past its timeout of %.0f s; "
                "taking no more work and exiting with status %d once the other jobs are done",
                self.name,
                deadline.job_id,
                deadline.thread,
                time.monotonic() - deadline.at,
                deadline.timeout,
                liveness.EXIT_STUCK,
            )
        self.request_stop()

    def _enqueue_overdue(self) -> None:
        """Scheduled retries that no scheduler moved (ours is off, or its process died)."""
        from django_gptimage import jobs

        if self.stop_event.is_set():
            return
        for queue in self.queues:
            try:
                jobs.enqueue_overdue(queue)
            except redis.exceptions.RedisError:
                return  # Redis is away; next round

    def _take_over_scheduler(self) -> None:
        # RQ itself retries only at a worker's maintenance, every ten minutes: scheduled retries
        # (and the reaper) would wait that long after the scheduling process stopped.
        if self.burst or self.stop_event.is_set() or not self.with_scheduler:
            return
        worker = self._workers.get(0)
        scheduler = worker.scheduler if worker is not None else None
        if isinstance(scheduler, ThreadScheduler) and not scheduler.running:
            try:
                if scheduler.acquire_locks(auto_start=True):
                    logger.info("gptimage worker %s: took over the RQ scheduler", self.name)
            except redis.exceptions.RedisError:
                pass  # Redis is away; next round

    def _listen_for_commands(self) -> None:
        """One pattern subscription for RQ's worker commands (shutdown, stop-job, kill-horse)."""
        prefix = PUBSUB_CHANNEL_TEMPLATE % ""
        pattern = PUBSUB_CHANNEL_TEMPLATE % f"{self.name}.*"

        def dispatch(message: dict[str, Any]) -> None:
            channel = message.get("channel")
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            for worker in self.workers:
                if prefix + worker.name == name:
                    worker.handle_payload(message)  # "shutdown" sends SIGINT to this process

        def on_error(exc: Exception, pubsub: Any, thread: Any) -> None:
            if isinstance(exc, redis.exceptions.ConnectionError):
                self._closed.wait(2.0)  # redis-py resubscribes once the connection is back
                return
            raise exc

        try:
            self._pubsub = self.connection.pubsub()
            self._pubsub.psubscribe(**{pattern: dispatch})
            self._pubsub_thread = self._pubsub.run_in_thread(
                sleep_time=1.0, daemon=True, exception_handler=on_error
            )
        except redis.exceptions.RedisError:
            logger.warning("gptimage worker %s: could not subscribe to worker commands", self.name)


__all__ = [
    "DEFAULT_CONCURRENCY",
    "ThreadScheduler",
    "ThreadWorker",
    "ThreadWorkerPool",
    "close_db_connections",
]
