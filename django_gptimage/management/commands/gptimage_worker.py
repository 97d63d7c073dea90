"""Run many RQ workers as threads of one process: ``manage.py gptimage_worker --concurrency 64``.

Image generations wait minutes on the network; a thread per job in flight costs a fraction of
RQ's fork-per-job worker. SIGINT/SIGTERM: warm stop (jobs in flight finish, no new ones); a
second signal exits at once and the reaper takes care of the generations that were running.

Exit status: 0 after a warm stop; 1 with --burst when a thread crashed, or Redis unreachable
at start; 2 bad options; 3 a job was stuck past its timeout + LIVENESS_GRACE (restart me);
128 + signal after a second signal.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from redis.exceptions import RedisError

from django_gptimage.conf import gptimage_settings
from django_gptimage.jobs.worker import DEFAULT_CONCURRENCY, DEFAULT_POLL_INTERVAL, ThreadWorkerPool


class Command(BaseCommand):
    help = "Run N RQ workers as threads of one process (default queue: GPTIMAGE['QUEUE'])."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", help="Queues to work on (default: GPTIMAGE['QUEUE']).")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=DEFAULT_CONCURRENCY,
            help="Worker threads, i.e. jobs in flight at most (default: %(default)s).",
        )
        parser.add_argument("--burst", action="store_true", help="Quit once the queues are empty.")
        parser.add_argument(
            "--with-scheduler",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Run RQ's scheduler (needed for retries and the periodic reaper) in one thread (default: on).",
        )
        parser.add_argument(
            "--no-reaper", action="store_true", help="Do not schedule the periodic gptimage reaper job."
        )
        parser.add_argument("--name", help="Worker name prefix (default: <host>.<pid>).")
        parser.add_argument(
            "--poll-interval",
            type=int,
            default=DEFAULT_POLL_INTERVAL,
            help="Seconds an idle thread blocks on Redis before checking for a stop (default: %(default)s).",
        )
        parser.add_argument(
            "--worker-ttl", type=int, default=420, help="RQ worker TTL (default: %(default)s)."
        )
        parser.add_argument(
            "--job-monitoring-interval",
            type=int,
            default=30,
            help="Seconds between job heartbeats to Redis (default: %(default)s).",
        )
        parser.add_argument("--max-jobs", type=int, help="Each thread quits after this many jobs.")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        level = "DEBUG" if verbosity >= 2 else "WARNING" if verbosity == 0 else "INFO"
        logging.getLogger("django_gptimage").setLevel(level)
        if not logging.getLogger("django_gptimage").handlers and not logging.getLogger().handlers:
            # Root at INFO at most: -v 2 is for our and RQ's debug lines, not every library's.
            root_level = "INFO" if level == "DEBUG" else level
            logging.basicConfig(level=root_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")

        queues = options["queues"] or [gptimage_settings.QUEUE]
        concurrency = options["concurrency"]
        if concurrency < 1:
            self.stderr.write(self.style.ERROR("--concurrency must be at least 1."))
            sys.exit(2)
        if gptimage_settings.PROVIDER == "openai" and concurrency > gptimage_settings.MAX_CONNECTIONS:
            self.stderr.write(
                self.style.WARNING(
                    f"--concurrency {concurrency} is above GPTIMAGE['MAX_CONNECTIONS'] "
                    f"({gptimage_settings.MAX_CONNECTIONS}): threads will wait for a free HTTP connection."
                )
            )

        pool = ThreadWorkerPool(
            queues,
            concurrency=concurrency,
            burst=options["burst"],
            with_scheduler=options["with_scheduler"],
            name=options["name"],
            poll_interval=options["poll_interval"],
            worker_ttl=options["worker_ttl"],
            job_monitoring_interval=options["job_monitoring_interval"],
            logging_level=level,
            max_jobs=options["max_jobs"],
            reaper=not options["no_reaper"],
        )
        try:
            pool.connection.ping()
        except RedisError as exc:
            self.stderr.write(self.style.ERROR(f"Redis is not reachable for {', '.join(queues)}: {exc}"))
            sys.exit(1)
        status = pool.run()
        if status:
            sys.exit(status)
