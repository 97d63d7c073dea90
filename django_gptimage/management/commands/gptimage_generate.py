"""Run one generation from the command line: ``manage.py gptimage_generate --prompt "…"``.

Exit status: 0 succeeded (or queued, without --wait), 1 the generation failed, 2 refused
before sending (nothing sent, nothing billed).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_gptimage.access.cli import find_user
from django_gptimage.domain.capabilities import BACKGROUNDS, FORMATS, QUALITIES
from django_gptimage.domain.sizes import RATIOS, TIERS
from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import GenerationRefused, QueueUnavailable, request_generation, why_waiting

EXIT_FAILED = 1
EXIT_REFUSED = 2


def generation_summary(generation: ImageGeneration) -> dict[str, Any]:
    images = list(generation.images.all())
    width = generation.width or (images[0].width if images else None)
    height = generation.height or (images[0].height if images else None)
    cost = generation.actual_cost if generation.actual_cost is not None else None
    return {
        "id": str(generation.pk),
        "status": generation.status,
        "error_code": generation.error_code or None,
        "error_message": generation.error_message or None,  # rendered in the active language
        "error_detail": generation.error_detail or None,  # the facts behind it, for scripts
        "width": width,
        "height": height,
        "files": [image.file.name for image in images],
        "provider_request_id": generation.provider_request_id or None,
        "cost": str(cost) if cost is not None else None,
        "estimated_cost": str(generation.estimated_cost) if generation.estimated_cost is not None else None,
        "attempts": generation.attempts,
        "model": generation.model,
        "ratio": generation.ratio,
        "tier": generation.tier,
    }


def no_record_summary(status: str, error_code: str, error_message: str) -> dict[str, Any]:
    """The --json object when no generation was recorded (refused, or the queue was down)."""
    return {
        "id": None, "status": status, "error_code": error_code, "error_message": error_message,
        "width": None, "height": None, "files": [], "provider_request_id": None, "cost": None,
    }  # fmt: skip


class Command(BaseCommand):
    help = "Generate images with the configured provider, exactly as the admin would."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prompt", required=True)
        parser.add_argument("--model", help="Default: GPTIMAGE['MODEL'].")
        parser.add_argument(
            "--ratio", help=f"One of {', '.join(RATIOS)}. Default: GPTIMAGE['DEFAULT_RATIO']."
        )
        parser.add_argument("--tier", help=f"One of {', '.join(TIERS)}. Default: GPTIMAGE['DEFAULT_TIER'].")
        parser.add_argument("--size", help="An explicit WIDTHxHEIGHT instead of --ratio/--tier.")
        parser.add_argument("--quality", help=f"One of {', '.join(QUALITIES)}.")
        parser.add_argument("--format", dest="output_format", help=f"One of {', '.join(FORMATS)}.")
        parser.add_argument("--compression", type=int, help="0-100, jpeg and webp only.")
        parser.add_argument("--background", help=f"One of {', '.join(BACKGROUNDS)}.")
        parser.add_argument("--n", type=int, default=1, help="Number of images (default: %(default)s).")
        parser.add_argument(
            "--image", action="append", default=[], metavar="PATH", help="Input image (repeat)."
        )
        parser.add_argument(
            "--mask", metavar="PATH", help="PNG mask with alpha, same size as the first image."
        )
        parser.add_argument("--wait", action="store_true", help="Wait for the final outcome.")
        parser.add_argument("--sync", action="store_true", help="Run in this process instead of on a worker.")
        parser.add_argument(
            "--timeout", type=float, default=3600.0, help="Seconds --wait waits (%(default)s)."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--user", metavar="USERNAME", help="Request as this user, with their plan and credits."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = int(options.get("verbosity", 1))
        user = find_user(options["user"]) if options["user"] else None
        try:
            generation = request_generation(
                user=user,
                prompt=options["prompt"], model=options["model"], ratio=options["ratio"], tier=options["tier"],
                size=options["size"], quality=options["quality"], output_format=options["output_format"],
                output_compression=options["compression"], background=options["background"], n=options["n"],
                images=options["image"], mask=options["mask"], source="cli",
                run_mode="sync" if options["sync"] else None,
            )  # fmt: skip
        except GenerationRefused as refused:
            self._refused(refused, options)
            sys.exit(EXIT_REFUSED)
        except PermissionDenied as exc:  # --user lacks django_gptimage.generate
            raise CommandError(str(exc), returncode=EXIT_REFUSED) from None
        except QueueUnavailable as exc:
            if options["json"]:
                self.stdout.write(json.dumps(no_record_summary("failed", "queue_unavailable", str(exc))))
            else:
                self.stderr.write(self.style.ERROR(str(exc)))
            sys.exit(EXIT_FAILED)
        if options["wait"] and not generation.is_finished:
            generation = self._wait(generation, options["timeout"])
        self._report(generation, options)
        if generation.status in (Status.FAILED, Status.CANCELED):
            sys.exit(EXIT_FAILED)
        if options["wait"] and generation.status != Status.SUCCEEDED:
            sys.exit(EXIT_FAILED)

    def _wait(self, generation: ImageGeneration, timeout: float) -> ImageGeneration:
        deadline = time.monotonic() + timeout
        check_at = time.monotonic() + 5
        last = None
        warned: set[str] = set()
        while time.monotonic() < deadline:
            generation.refresh_from_db()
            state = (generation.status, generation.phase, generation.error_code)
            if state != last and self.verbosity >= 2:
                self.stderr.write(f"{generation.status}: {generation.editor_message}")
            last = state
            if generation.is_finished:
                return generation
            if time.monotonic() > check_at:
                check_at = time.monotonic() + 5
                self._warn_if_stuck(generation, warned)
            time.sleep(0.25)
        return generation

    def _warn_if_stuck(self, generation: ImageGeneration, warned: set[str]) -> None:
        """Nothing picked the job (or its retry) up after a while: say why, once, instead of
        waiting silently."""
        problem = why_waiting(generation)
        if problem:
            key = problem.split(" s ago")[-1]  # the same cause, however late by now
            if key not in warned:
                warned.add(key)
                hint = " Or run with --sync." if not generation.attempts else ""
                self.stderr.write(self.style.WARNING(problem + hint))

    def _refused(self, refused: GenerationRefused, options: dict[str, Any]) -> None:
        if options["json"]:
            payload = no_record_summary("refused", refused.code.value, str(refused))
            self.stdout.write(json.dumps({**payload, "problems": refused.as_dict()}))
            return
        self.stderr.write(self.style.ERROR("Refused before sending (nothing sent, nothing billed):"))
        for problem in refused.problems:
            self.stderr.write(f"  {problem.field}: {problem.message}")

    def _report(self, generation: ImageGeneration, options: dict[str, Any]) -> None:
        summary = generation_summary(generation)
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        styles: dict[str, Any] = {Status.SUCCEEDED: self.style.SUCCESS, Status.FAILED: self.style.ERROR}
        style = styles.get(generation.status, self.style.WARNING)
        self.stdout.write(style(f"{generation.pk}: {generation.status}"))
        if generation.error_code:
            self.stdout.write(f"  {generation.error_code}: {generation.error_message}")
        for name in summary["files"]:
            self.stdout.write(f"  {name}")


__all__ = ["Command", "generation_summary", "no_record_summary"]
