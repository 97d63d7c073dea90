"""The job machinery: queue glue, the one runner, the reaper and the threaded worker pool.

- :mod:`.queue`: RQ glue (job ids, enqueue after commit, ``QueueUnavailable``, ``run_job``);
- :mod:`.runner`: ``run_generation``, one attempt of one record, whatever runs it;
- :mod:`.reaper`: records of dead workers and lost jobs are settled;
- :mod:`.worker`: ``gptimage_worker``'s pool of RQ workers as threads.

Faces (admin, widget, views, commands) import the service API, not this package: what they
need from here (``QueueUnavailable``, whether workers listen, ``reap``) the service re-exports.
"""

from __future__ import annotations

from .queue import (
    JOB_PREFIX,
    OVERDUE_GRACE,
    QueueUnavailable,
    enqueue,
    enqueue_on_commit,
    enqueue_overdue,
    ensure_reachable,
    generation_id_of,
    get_queue,
    job_id,
    remove_queued,
    run_job,
    scheduler_running,
)

__all__ = [
    "JOB_PREFIX",
    "OVERDUE_GRACE",
    "QueueUnavailable",
    "enqueue",
    "enqueue_on_commit",
    "enqueue_overdue",
    "ensure_reachable",
    "generation_id_of",
    "get_queue",
    "job_id",
    "remove_queued",
    "run_job",
    "scheduler_running",
]
