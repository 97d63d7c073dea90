"""Credits and plans from the command line.

    python manage.py gptimage_credits grant USER AMOUNT [--note TEXT]
    python manage.py gptimage_credits adjust USER AMOUNT --note TEXT     (negative takes away)
    python manage.py gptimage_credits plan USER PLAN                     ("-" removes the user's own plan)
    python manage.py gptimage_credits balance USER [--json]
    python manage.py gptimage_credits ledger USER [--limit N] [--json]
    python manage.py gptimage_credits refunds [--write-docs docs/access.md]

AMOUNT and every balance are in credits (``CREDITS_PER_USD`` credits per US dollar).
Exit status 2 for an unknown user or plan, or an amount that cannot be applied.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_gptimage.access import credits, plans
from django_gptimage.access.cli import find_user
from django_gptimage.access.models import AccessPlan
from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.credits import format_credits, refund_policy_markdown

REGENERATE_COMMAND = "python example_project/manage.py gptimage_credits refunds --write-docs docs/access.md"
BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: refunds -->\n)(?P<body>.*?)(?P<end><!-- END GENERATED: refunds -->)",
    re.S,
)


def render_docs(text: str) -> str:
    """``text`` with its refunds block holding the current table."""
    return BLOCK.sub(lambda m: m["begin"] + refund_policy_markdown() + m["end"], text)


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"{text!r} is not a number of credits.", returncode=2) from None
    if not value.is_finite():
        raise CommandError(f"{text!r} is not a number of credits.", returncode=2)
    return value


class Command(BaseCommand):
    help = "Grant credits, assign plans, show balances and the credit ledger."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        grant = sub.add_parser("grant", help="Add AMOUNT credits to USER's balance.")
        grant.add_argument("user")
        grant.add_argument("amount")
        grant.add_argument("--note", default="", help="Why (shown in the ledger).")
        adjust = sub.add_parser("adjust", help="Correct USER's balance by AMOUNT (negative takes away).")
        adjust.add_argument("user")
        adjust.add_argument("amount")
        adjust.add_argument("--note", required=True, help="Why (required).")
        plan = sub.add_parser("plan", help='Give USER the access plan PLAN ("-" removes their own plan).')
        plan.add_argument("user")
        plan.add_argument("plan")
        plan.add_argument("--note", default="")
        balance = sub.add_parser("balance", help="USER's balance, in credits.")
        balance.add_argument("user")
        balance.add_argument("--json", action="store_true")
        ledger = sub.add_parser("ledger", help="USER's ledger entries, newest first.")
        ledger.add_argument("user")
        ledger.add_argument("--limit", type=int, default=50)
        ledger.add_argument("--json", action="store_true")
        refunds = sub.add_parser("refunds", help="The per-error-code refund table (Markdown).")
        refunds.add_argument("--write-docs", metavar="PATH", help="Rewrite the generated block of PATH.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, "_" + options["action"])(options)

    def _grant(self, options: dict[str, Any]) -> None:
        user = find_user(options["user"])
        try:
            entry = credits.grant(user, _amount(options["amount"]), note=options["note"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self._warn_if_off()
        self.stdout.write(
            f"Granted {format_credits(entry.amount)} credits to {user}; balance {format_credits(entry.balance_after)}."
        )

    def _adjust(self, options: dict[str, Any]) -> None:
        user = find_user(options["user"])
        try:
            entry = credits.adjust(user, _amount(options["amount"]), note=options["note"])
        except (ValueError, credits.InsufficientCredits) as exc:
            if isinstance(exc, credits.InsufficientCredits):
                exc = ValueError(f"The balance of {user} cannot go below zero.")
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(
            f"Adjusted {user} by {format_credits(entry.amount)} credits; balance {format_credits(entry.balance_after)}."
        )

    def _plan(self, options: dict[str, Any]) -> None:
        user = find_user(options["user"])
        name = options["plan"]
        if name == "-":
            plans.assign(user, None)
            self.stdout.write(f"{user} has no plan of their own now: {plans.plan_for(user)}.")
            return
        try:
            assigned = plans.assign(user, name, note=options["note"])
        except AccessPlan.DoesNotExist:
            known = ", ".join(p.name for p in plans.all_plans())
            raise CommandError(f"No access plan {name!r}; plans: {known}.", returncode=2) from None
        assert assigned is not None
        self.stdout.write(
            f"{user} has the {assigned.plan} plan; their effective plan is {plans.plan_for(user)}."
        )

    def _balance(self, options: dict[str, Any]) -> None:
        user = find_user(options["user"])
        balance = credits.balance(user)
        if options["json"]:
            payload = {"user": str(user), "enabled": credits.enabled(), **balance.as_dict()}
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(
            f"{user}: {format_credits(balance.available)} credits available, "
            f"{format_credits(balance.reserved)} reserved by generations in progress."
        )
        self._warn_if_off()

    def _ledger(self, options: dict[str, Any]) -> None:
        user = find_user(options["user"])
        entries = list(credits.ledger(user)[: max(1, options["limit"])])
        if options["json"]:
            rows = [
                {
                    "at": e.created_at.isoformat(), "kind": e.kind, "amount": str(e.amount), "held": str(e.held),
                    "charged": str(e.charged), "balance_after": str(e.balance_after),
                    "reserved_after": str(e.reserved_after), "generation": e.generation_ref or None,
                    "by": str(e.created_by) if e.created_by else None, "note": e.note,
                }
                for e in entries
            ]  # fmt: skip
            self.stdout.write(json.dumps(rows))
            return
        if not entries:
            self.stdout.write(f"{user} has no ledger entries.")
            return
        for e in entries:
            gen = f" {e.generation_ref[:8]}" if e.generation_ref else ""
            by = f" by {e.created_by}" if e.created_by else ""
            self.stdout.write(
                f"{e.created_at:%Y-%m-%d %H:%M:%S} {e.kind:<8} {format_credits(e.amount):>10} "
                f"balance {format_credits(e.balance_after):>10} reserved {format_credits(e.reserved_after):>8}"
                f"{gen}{by}  {e.note}"
            )

    def _refunds(self, options: dict[str, Any]) -> None:
        if not options["write_docs"]:
            self.stdout.write(refund_policy_markdown())
            return
        path = Path(options["write_docs"])
        if not path.is_file():
            raise CommandError(f"{path} does not exist.")
        text = path.read_text(encoding="utf-8")
        if not BLOCK.search(text):
            raise CommandError(
                f"{path} has no <!-- BEGIN GENERATED: refunds --> ... <!-- END GENERATED: refunds --> block."
            )
        new = render_docs(text)
        if new == text:
            self.stdout.write(f"{path} is up to date.")
            return
        path.write_text(new, encoding="utf-8")
        self.stdout.write(f"Rewrote the refunds table in {path}.")

    def _warn_if_off(self) -> None:
        if not gptimage_settings.CREDITS:
            self.stderr.write(
                'Credits are off (GPTIMAGE["CREDITS"] is False): balances are kept but not charged.'
            )
