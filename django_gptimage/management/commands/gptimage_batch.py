"""Generate for every object of a model: ``manage.py gptimage_batch app.Model --preset NAME``.

Prints the plan first (objects, outputs per object, what is already done or in flight and
skipped, what is refused and why, the estimated cost), asks, then queues with a progress bar
and, with --wait, follows the generations live. Ctrl-C stops queueing cleanly; running the same
command again resumes (nothing done or in flight is sent twice).

Exit status: 0 all succeeded (or planned, for --dry-run; or queued, without --wait), 1 some
failed, were refused or were left (Ctrl-C), 2 refused before anything was sent.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldError, PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_gptimage.access.cli import find_user
from django_gptimage.batch import summary_lines
from django_gptimage.conf import gptimage_settings
from django_gptimage.service import (
    BatchPlan,
    BatchProgress,
    BatchRun,
    GenerationRefused,
    batch_progress,
    plan_batch,
    run_batch,
    workers_listening,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2


class Command(BaseCommand):
    help = "Generate images for every object of a model (a preset per object), with a cost plan first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", metavar="app_label.Model")
        parser.add_argument("--preset", required=True, help="The preset to generate with.")
        parser.add_argument("--field", help="The image field (default: each preset output's own field).")
        parser.add_argument(
            "--filter", action="append", default=[], metavar="LOOKUP=VALUE",
            help="Only objects matching this queryset filter, e.g. cover= or title__icontains=jazz (repeat).",
        )  # fmt: skip
        parser.add_argument(
            "--limit",
            type=int,
            help="At most this many objects with something to send (the next run takes the next ones).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the plan and stop; nothing is sent."
        )
        parser.add_argument(
            "--max-cost", metavar="AMOUNT", help="Stop, sending nothing, if the estimate is above this."
        )
        parser.add_argument("--yes", action="store_true", help="Do not ask before sending.")
        parser.add_argument("--wait", action="store_true", help="Follow the generations until they finish.")
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object (the rest goes to stderr)."
        )
        parser.add_argument(
            "--user", metavar="USERNAME", help="Generate as this user, with their plan and credits."
        )

    # -- output helpers ----------------------------------------------------------------------------

    def say(self, text: str = "", style: Any = None) -> None:
        out = self.stderr if self.json else self.stdout
        out.write(style(text) if style else text)

    def finish(self, code: int, message: str = "", **extra: Any) -> None:
        if message:
            self.stderr.write(self.style.ERROR(message) if code == EXIT_REFUSED else message)
        if self.json:
            payload: dict[str, Any] = {"exit_status": code, "message": message or None, **extra}
            self.stdout.write(json.dumps(payload, default=str))
        if code:
            sys.exit(code)

    # -- the command -------------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        self.json = options["json"]
        self.interrupted = False
        try:
            model = apps.get_model(options["model"])
        except (LookupError, ValueError):
            raise CommandError(f"{options['model']!r} is not an installed model (write app_label.Model).",
                               returncode=EXIT_REFUSED) from None  # fmt: skip
        max_cost = None
        if options["max_cost"] is not None:
            try:
                max_cost = Decimal(options["max_cost"])
            except InvalidOperation:
                raise CommandError(
                    f"--max-cost {options['max_cost']!r} is not an amount.", returncode=EXIT_REFUSED
                ) from None
        queryset = model._default_manager.all()
        for item in options["filter"]:
            lookup, sep, value = item.partition("=")
            if not sep or not lookup:
                raise CommandError(f"--filter {item!r}: write LOOKUP=VALUE.", returncode=EXIT_REFUSED)
            try:
                queryset = queryset.filter(**{lookup: value})
                queryset.exists()  # a bad lookup fails here, before any work
            except (FieldError, ValidationError, ValueError) as exc:
                raise CommandError(f"--filter {item!r}: {exc}", returncode=EXIT_REFUSED) from None
        user = find_user(options["user"]) if options["user"] else None
        try:
            plan = plan_batch(queryset, field=options["field"], preset=options["preset"], user=user,
                              limit=options["limit"], source="cli")  # fmt: skip
        except GenerationRefused as refused:
            self.finish(EXIT_REFUSED, f"Refused before sending (nothing sent): {refused}")
            return
        except PermissionDenied as exc:
            self.finish(EXIT_REFUSED, str(exc))
            return
        for line in summary_lines(plan):
            self.say(line)
        base: dict[str, Any] = {"plan": plan.as_dict()}
        if options["dry_run"]:
            self.say("Dry run: nothing was sent.")
            self.finish(EXIT_OK, **base, generation_ids=plan.existing_ids)
            return
        if plan.to_send == 0:
            if plan.refused_objects and not plan.existing_ids:
                self.finish(
                    EXIT_REFUSED, "Nothing to send: every object was refused.", **base, generation_ids=[]
                )
                return
            self.say("Nothing to send: everything is done or in flight.")
            run = BatchRun(plan)
        else:
            if max_cost is not None and plan.estimated_cost > max_cost:
                self.finish(
                    EXIT_REFUSED,
                    f"The estimated cost {plan.estimated_cost.quantize(Decimal('0.01'))} {plan.currency} is over "
                    f"--max-cost {max_cost} {plan.currency}: nothing was sent. Raise --max-cost to run it.",
                    **base, generation_ids=[],
                )  # fmt: skip
                return
            if not options["yes"] and not self.confirm(plan):
                return
            run = self.run(plan)
        progress = None
        if options["wait"] and run.generation_ids and not run.stopped and not run.error:
            progress = self.follow(run)
        elif run.generation_ids:
            progress = batch_progress(run.generation_ids)
        code = self.report(run, progress, waited=options["wait"])
        self.finish(code, **base, run=run.as_dict(), progress=progress.as_dict() if progress else None,
                    generation_ids=run.generation_ids)  # fmt: skip

    def confirm(self, plan: BatchPlan) -> bool:
        if not sys.stdin.isatty():
            self.finish(EXIT_REFUSED, "Not sent: no terminal to confirm on. Pass --yes to run without asking.",
                        plan=plan.as_dict(), generation_ids=[])  # fmt: skip
            return False
        cost = plan.estimated_cost.quantize(Decimal("0.01"))
        self.stderr.write(
            f"Send {plan.to_send} generation(s) for about {cost} {plan.currency}? [y/N] ", ending=""
        )
        self.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            self.finish(EXIT_REFUSED, "Nothing was sent.", plan=plan.as_dict(), generation_ids=[])
            return False
        return True

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.interrupted = True
        self.stderr.write("\nStopping after the current object (Ctrl-C again to quit at once)...")

    def run(self, plan: BatchPlan) -> BatchRun:
        total = len(plan.pending)
        tty = self.stderr.isatty()
        step = max(1, total // 10)

        def progress(run: BatchRun) -> None:
            done = run.objects_done
            if tty:
                filled = 30 * done // max(total, 1)
                self.stderr.write(
                    f"\r  queueing [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} objects", ending=""
                )
            elif done % step == 0 or done == total:
                self.stderr.write(f"  queued {done}/{total} objects ({len(run.sent_ids)} generations)")

        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            run = run_batch(plan, should_stop=lambda: self.interrupted, on_progress=progress)
        finally:
            signal.signal(signal.SIGINT, previous)
        if tty:
            self.stderr.write("")
        if run.stopped:
            self.say(
                f"Stopped after {run.objects_done} of {total} objects: {len(run.sent_ids)} generation(s) were "
                f"queued and continue in the workers, nothing more was sent. Run the same command again to "
                f"resume (what is done or in flight is skipped)."
            )
        if run.error:
            self.say(f"Stopped after {run.objects_done} of {total} objects: {run.error}", self.style.ERROR)
        return run

    def follow(self, run: BatchRun) -> BatchProgress:
        tty = self.stderr.isatty()
        started = time.monotonic()
        warned = False
        last = ""
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        self.interrupted = False
        try:
            while True:
                progress = batch_progress(run.generation_ids)
                line = self.progress_line(progress)
                if line != last:
                    self.stderr.write(("\r" + line) if tty else line, ending="" if tty else "\n")
                    last = line
                if progress.finished:
                    break
                if self.interrupted:
                    self.say(f"\nStopped following: {progress.in_flight} in flight continue in the workers. "
                             "Run the same command with --wait to follow them (nothing is sent twice).")  # fmt: skip
                    break
                if (
                    not warned
                    and time.monotonic() - started > 10
                    and progress.succeeded + sum(progress.failed.values()) == 0
                ):
                    warned = True
                    if workers_listening() is False:
                        self.stderr.write(self.style.WARNING(
                            f"\nNo worker is listening on queue {gptimage_settings.QUEUE!r}: start one with "
                            "`manage.py gptimage_worker`."))  # fmt: skip
                time.sleep(1.0)
        finally:
            signal.signal(signal.SIGINT, previous)
        if tty:
            self.stderr.write("")
        return progress

    @staticmethod
    def progress_line(p: BatchProgress) -> str:
        failed = sum(p.failed.values())
        codes = ", ".join(f"{code} {n}" for code, n in p.failed.most_common())
        return (f"  succeeded {p.succeeded} · failed {failed}" + (f" ({codes})" if codes else "")
                + f" · in flight {p.in_flight} · cost so far {p.cost.quantize(Decimal('0.01'))}")  # fmt: skip

    def report(self, run: BatchRun, progress: BatchProgress | None, *, waited: bool) -> int:
        plan = run.plan
        refused = sum(run.refused.values()) + plan.refused_objects
        rows: list[tuple[str, object]] = [
            ("objects queued", run.objects_done),
            ("generations sent", len(run.sent_ids)),
            ("skipped (done or in flight)", len(plan.existing_ids) + len(run.reused_ids)),
            ("objects refused", refused),
        ]
        if progress is not None:
            rows += [("succeeded", progress.succeeded)]
            rows += [(f"failed: {code}", n) for code, n in progress.failed.most_common()]
            rows += [("canceled", progress.canceled), ("in flight", progress.in_flight),
                     (f"cost so far ({plan.currency})", progress.cost.quantize(Decimal("0.01")))]  # fmt: skip
        width = max(len(label) for label, _ in rows)
        self.say("Summary:")
        for label, value in rows:
            self.say(f"  {label:<{width}}  {value}")
        for reason, n in run.refused.most_common():
            self.say(f"  refused while sending: {n} × {reason}")
        if run.error and not run.sent_ids and not plan.existing_ids:
            return EXIT_REFUSED
        incomplete = run.stopped or bool(run.error) or refused > 0
        if progress is not None and (progress.failed.total() or progress.canceled):
            return EXIT_FAILED
        if waited and progress is not None and progress.in_flight:
            return EXIT_FAILED
        return EXIT_FAILED if incomplete else EXIT_OK


__all__ = ["Command"]
