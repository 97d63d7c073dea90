"""Mark generations whose worker died as abandoned (or re-queue them) and re-enqueue orphans."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_gptimage.reaper import reap


class Command(BaseCommand):
    help = "Reap generations stuck in running/queued: abandoned workers, lost jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-after", type=float, help="Seconds without heartbeat (default: STALE_AFTER)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")
        parser.add_argument("--loop", type=float, metavar="SECONDS", help="Keep running, every SECONDS.")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.getLogger("django_gptimage").setLevel(logging.DEBUG if self.verbosity > 1 else logging.INFO)
        while True:
            report = reap(stale_after=options["stale_after"], dry_run=options["dry_run"])
            prefix = "would be " if options["dry_run"] else ""
            for label in ("abandoned", "requeued", "reenqueued"):
                for pk in getattr(report, label):
                    self.stdout.write(f"{pk}: {prefix}{label}")
            if not report and self.verbosity >= 1:
                self.stdout.write("Nothing to reap.")
            if not options["loop"]:
                return
            time.sleep(options["loop"])
