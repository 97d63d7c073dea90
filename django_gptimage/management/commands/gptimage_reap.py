"""Mark generations whose worker died as abandoned (or re-queue them) and re-enqueue orphans."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_gptimage.jobs.reaper import reap
from django_gptimage.jobs.runner import HEARTBEAT_INTERVAL


class Command(BaseCommand):
    help = "Reap generations stuck in running/queued: abandoned workers, lost jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-after", type=float, help="Seconds without heartbeat (default: STALE_AFTER)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")
        parser.add_argument(
            "--sweep",
            action="store_true",
            help="Also look for leftovers of ended generations now (spools, staged copies, previews); "
            "otherwise at most every 10 minutes.",
        )
        parser.add_argument("--loop", type=float, metavar="SECONDS", help="Keep running, every SECONDS.")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options["verbosity"])
        logging.getLogger("django_gptimage").setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
        stale_after = options["stale_after"]
        if stale_after is not None and stale_after < 2 * HEARTBEAT_INTERVAL:
            self.stderr.write(
                self.style.WARNING(
                    f"--stale-after {stale_after:g} is shorter than two heartbeats "
                    f"({2 * HEARTBEAT_INTERVAL:g} s): generations that are still running may be judged dead."
                )
            )
        while True:
            report = reap(stale_after=stale_after, dry_run=options["dry_run"], sweep=options["sweep"] or None)
            prefix = "would be " if options["dry_run"] else ""
            for label in ("abandoned", "requeued", "reenqueued", "overdue"):
                for pk in getattr(report, label):
                    self.stdout.write(f"{pk}: {prefix}{label}")
            for leftover in report.cleaned:  # "spool <id>", "staged <id>", "previews <id>"
                kind, _, pk = leftover.partition(" ")
                self.stdout.write(f"{pk}: {kind} {prefix}removed")
            if not report and verbosity >= 1:
                self.stdout.write("Nothing to reap.")
            if not options["loop"]:
                return
            time.sleep(options["loop"])
