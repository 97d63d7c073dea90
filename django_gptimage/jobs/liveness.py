"""Per-job liveness: a deadline for each job, checked at safe points, never raised asynchronously.

RQ's ``TimerDeathPenalty`` (what a worker thread would use, since SIGALRM is per process) raises
its timeout into the job's thread with ``PyThreadState_SetAsyncExc``: the exception lands at
whatever bytecode the thread is running, possibly inside httpx's or redis-py's shared connection
pool (the pool's lock held, its bookkeeping half done), which corrupts state every other thread
uses. :class:`CooperativeDeathPenalty` replaces it:

- each job gets a :class:`Deadline` (its RQ timeout from the moment it started), kept for the
  thread that runs it and in a process-wide table;
- the runner calls :func:`check` at safe points (every progress report of the provider, each
  chunk of a response body, before storing, while a retry waits), which raises
  ``JobTimeoutException`` in the job's own code path, where every ``with``/``finally`` unwinds
  normally;
- RQ's ``stop-job`` command cancels the generation (as ``cancel_generation`` does: images that
  arrive are paid for and kept per ``KEEP_RESULT_AFTER_CANCEL``), raises :class:`JobStopped` at
  the next safe point before a request goes out or while a retry waits, and the job ends with
  RQ's status ``stopped`` (never retried);
- a job that cannot reach a safe point (a storage write or a socket that hangs without a
  timeout) stops getting record heartbeats once it is ``LIVENESS_GRACE`` past its deadline, so
  the reaper settles its record, and ``gptimage_worker``'s watchdog (:func:`overdue`) makes the
  pool stop taking work and exit with ``EXIT_STUCK`` for its supervisor to restart it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rq.timeouts import BaseDeathPenalty, JobTimeoutException

# How long past its deadline a job may still be finishing (unwinding, recording its outcome)
# before it counts as stuck: no more record heartbeats, and the pool exits.
LIVENESS_GRACE = 60.0
# gptimage_worker's exit status when a job was stuck past its timeout + LIVENESS_GRACE.
EXIT_STUCK = 3


class JobStopped(Exception):
    """RQ's ``stop-job`` command reached this job: it ends at the next safe point, not retried."""


@dataclass
class Deadline:
    job_id: str
    timeout: float
    started: float = field(default_factory=time.monotonic)
    thread: str = field(default_factory=lambda: threading.current_thread().name)
    stop_requested: bool = False

    @property
    def at(self) -> float:
        """Monotonic time after which the job has run out of time."""
        return self.started + self.timeout

    def check(self, *, stoppable: bool = True) -> None:
        if stoppable and self.stop_requested:
            raise JobStopped(f"job {self.job_id} was stopped (RQ stop-job command)")
        if time.monotonic() > self.at:
            raise JobTimeoutException(f"Task exceeded maximum timeout value ({self.timeout:.0f} seconds)")


_local = threading.local()
_table: dict[str, Deadline] = {}
_table_lock = threading.Lock()


def begin(job_id: str, timeout: float) -> Deadline:
    deadline = Deadline(job_id=job_id, timeout=float(timeout))
    _local.deadline = deadline
    with _table_lock:
        _table[job_id] = deadline
    return deadline


def end(job_id: str) -> None:
    if getattr(_local, "deadline", None) is not None and _local.deadline.job_id == job_id:
        _local.deadline = None
    with _table_lock:
        _table.pop(job_id, None)


def current() -> Deadline | None:
    """The deadline of the job this thread runs (under a cooperative worker), else None."""
    return getattr(_local, "deadline", None)


def check(*, stoppable: bool = True) -> None:
    """A safe point: raise the job's timeout (or its stop, if ``stoppable``) here if it is due;
    a no-op outside a job. Not ``stoppable`` once a request went out: a stopped generation is
    canceled instead, and images that arrive are kept as a cancel keeps them (they are paid)."""
    deadline = current()
    if deadline is not None:
        deadline.check(stoppable=stoppable)


def stop(job_id: str) -> bool:
    """Ask the job to stop at its next safe point (RQ's ``stop-job``); False if not running here."""
    with _table_lock:
        deadline = _table.get(job_id)
    if deadline is None:
        return False
    deadline.stop_requested = True
    return True


def overdue(grace: float | None = None) -> list[Deadline]:
    """Jobs of this process past their deadline by more than ``grace`` (default
    ``LIVENESS_GRACE``) seconds: stuck."""
    limit = time.monotonic() - (LIVENESS_GRACE if grace is None else grace)
    with _table_lock:
        return [d for d in _table.values() if d.at < limit]


class CooperativeDeathPenalty(BaseDeathPenalty):
    """RQ's death penalty interface without an asynchronous exception (see the module)."""

    def __init__(self, timeout: Any, exception: Any = JobTimeoutException, **kwargs: Any) -> None:
        super().__init__(timeout, exception, **kwargs)
        self._job_id = str(kwargs.get("job_id") or f"anonymous-{threading.get_ident()}")

    def setup_death_penalty(self) -> None:
        if self._timeout is not None and self._timeout > 0:
            begin(self._job_id, self._timeout)

    def cancel_death_penalty(self) -> None:
        end(self._job_id)


__all__ = [
    "EXIT_STUCK",
    "LIVENESS_GRACE",
    "CooperativeDeathPenalty",
    "Deadline",
    "JobStopped",
    "begin",
    "check",
    "current",
    "end",
    "overdue",
    "stop",
]
