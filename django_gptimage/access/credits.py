"""The credit ledger: grant, reserve, capture, refund, adjust, each an immutable entry.

Every change takes the user's :class:`CreditAccount` row lock (``select_for_update``, and an
``UPDATE`` first so SQLite takes its write lock before reading), writes the entry and the cached
balance in the same transaction, and is checked by the database too (a balance below zero violates
a constraint). A generation's reservation is settled at most once: settling reads what the
generation still holds under the lock, so a second settle (the reaper, a retry, a race) finds
nothing left and writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain import credits as rules
from django_gptimage.domain.errors import ErrorCode, Settlement, settlement
from django_gptimage.domain.validation import Problem

from .models import CreditAccount, CreditEntry

logger = logging.getLogger("django_gptimage")
Kind = CreditEntry.Kind
ZERO = Decimal(0)
HALF_UNIT = rules.CREDIT_PLACES / 2


class InsufficientCredits(Exception):
    def __init__(self, needed: Decimal, available: Decimal) -> None:
        self.needed, self.available = needed, available
        super().__init__(insufficient_message(needed, available))


@dataclass(frozen=True)
class Balance:
    available: Decimal
    reserved: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.reserved

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": str(self.available),
            "reserved": str(self.reserved),
            "available_display": rules.format_credits(self.available),
            "reserved_display": rules.format_credits(self.reserved),
            "unit": "credits",
            "credits_per_usd": str(gptimage_settings.CREDITS_PER_USD),
        }


def enabled() -> bool:
    return bool(gptimage_settings.CREDITS)


def charged_user(user: Any) -> bool:
    """Whether requests for ``user`` pay with credits (signed-in users, with CREDITS on)."""
    return enabled() and user is not None


def credits_for_usd(usd: Decimal | float | str | None, *, round_up: bool = False) -> Decimal:
    return rules.to_credits(usd or 0, gptimage_settings.CREDITS_PER_USD, round_up=round_up)


def insufficient_message(needed: Decimal, available: Decimal) -> str:
    return (
        f"This generation reserves {rules.format_credits(needed)} credits and your balance is "
        f"{rules.format_credits(available)} credits. Ask an administrator for more credits, or choose a "
        "smaller or cheaper image."
    )


def _user_id(user: Any) -> Any:
    return getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None


def balance(user: Any) -> Balance:
    """The cached balance of ``user`` (zero without an account)."""
    found = CreditAccount.objects.filter(user_id=_user_id(user)).values("balance", "reserved").first()
    if not found:
        return Balance(ZERO, ZERO)
    return Balance(found["balance"], found["reserved"])


def _q(value: Any) -> Decimal:
    """A sum from the database in credits (SQLite sums decimals as floats)."""
    return Decimal(str(value or 0)).quantize(rules.CREDIT_PLACES)


def ledger_balance(user: Any) -> Balance:
    """The balance summed from the ledger itself (what the cached row must always equal)."""
    sums = CreditEntry.objects.filter(account__user_id=_user_id(user)).aggregate(
        a=Sum("amount"), h=Sum("held")
    )
    return Balance(_q(sums["a"]), _q(sums["h"]))


def ledger(user: Any) -> Any:
    """The user's entries, newest first."""
    return CreditEntry.objects.filter(account__user_id=_user_id(user)).select_related(
        "generation", "created_by"
    )


def _account_id(user: Any) -> Any:
    user_id = _user_id(user)
    if user_id is None:
        raise InsufficientCredits(ZERO, ZERO)
    found = CreditAccount.objects.filter(user_id=user_id).values_list("pk", flat=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return CreditAccount.objects.create(user_id=user_id).pk
    except IntegrityError:  # created by a concurrent request meanwhile
        return CreditAccount.objects.get(user_id=user_id).pk


def _locked(account_id: Any) -> CreditAccount:
    """The account row, locked until the surrounding transaction ends."""
    # The UPDATE takes the write lock on every database (SQLite has no row locks and ignores
    # select_for_update); select_for_update then reads the row under it.
    CreditAccount.objects.filter(pk=account_id).update(updated_at=timezone.now())
    return CreditAccount.objects.select_for_update().get(pk=account_id)


def _write(
    account: CreditAccount,
    kind: str,
    *,
    amount: Decimal,
    held: Decimal = ZERO,
    charged: Decimal = ZERO,
    generation: Any = None,
    by: Any = None,
    note: str = "",
    ref: str = "",
) -> CreditEntry:
    account.balance += amount
    account.reserved += held
    if account.balance < 0 or account.reserved < 0:  # the database would refuse it too
        raise InsufficientCredits(-amount, account.balance - amount)
    account.save(update_fields=["balance", "reserved", "updated_at"])
    return CreditEntry.objects.create(
        account=account, kind=kind, amount=amount, held=held, charged=charged, balance_after=account.balance,
        reserved_after=account.reserved, generation=generation, generation_ref=str(generation.pk) if generation else ref,
        created_by=by if getattr(by, "is_authenticated", False) else None, note=note[:255],
    )  # fmt: skip


def grant(user: Any, amount: Decimal | int | str, *, by: Any = None, note: str = "") -> CreditEntry:
    """Add ``amount`` credits (positive) to ``user``'s balance."""
    value = Decimal(str(amount))
    if value <= 0:
        raise ValueError("A grant must be a positive number of credits; use adjust() to take credits away.")
    with transaction.atomic():
        account = _locked(_account_id(user))
        return _write(account, Kind.GRANT, amount=value, by=by, note=note or "granted")


def adjust(user: Any, amount: Decimal | int | str, *, by: Any = None, note: str = "") -> CreditEntry:
    """Correct ``user``'s balance by ``amount`` (negative takes credits away, never below zero)."""
    value = Decimal(str(amount))
    if not note:
        raise ValueError("An adjustment needs a note saying why.")
    with transaction.atomic():
        account = _locked(_account_id(user))
        return _write(account, Kind.ADJUST, amount=value, by=by, note=note)


def held_by(account_id: Any, generation_ref: str) -> Decimal:
    held = CreditEntry.objects.filter(account_id=account_id, generation_ref=generation_ref).aggregate(
        h=Sum("held")
    )
    return _q(held["h"])


def reserve(generation: Any, user: Any, *, note: str = "") -> CreditEntry | None:
    """Reserve ``generation``'s estimate from ``user``'s credits, in the caller's transaction.

    Raises InsufficientCredits (the caller's transaction then rolls back: no record, no job).
    Reserves nothing when the generation already holds a reservation (a retry reuses it).
    """
    if not charged_user(user):
        return None
    needed = credits_for_usd(generation.estimated_cost, round_up=True)
    account = _locked(_account_id(user))
    if held_by(account.pk, str(generation.pk)) > 0:
        return None
    if account.balance < needed:
        raise InsufficientCredits(needed, account.balance)
    return _write(
        account, Kind.RESERVE, amount=-needed, held=needed, generation=generation,
        note=note or f"estimate {generation.estimated_cost} USD",
    )  # fmt: skip


def settle(generation: Any) -> list[CreditEntry]:
    """Capture or refund what a finished generation still holds; nothing if it holds nothing.

    Runs in (or as) a transaction; call it where the record is finished, in that transaction.
    """
    from django_gptimage.models import FINISHED_STATUSES, Status

    if generation.status not in FINISHED_STATUSES:
        return []
    ref = str(generation.pk)
    accounts = set(
        CreditEntry.objects.filter(generation_ref=ref, kind=Kind.RESERVE).values_list("account_id", flat=True)
    )
    if not accounts:
        return []
    entries = []
    with transaction.atomic():
        for account_id in sorted(accounts):
            account = _locked(account_id)
            held = held_by(account_id, ref)
            if held > 0:
                entries.append(
                    _settle_one(account, generation, held, succeeded=generation.status == Status.SUCCEEDED)
                )
            elif late := _late_capture(account, generation):
                entries.append(late)
    return entries


def _decision(generation: Any, *, succeeded: bool) -> tuple[str | None, Settlement]:
    code = None if succeeded else (generation.error_code or ErrorCode.ABANDONED)
    delivered = bool(generation.metadata.get("spooled")) or generation.images.exists()
    return code, settlement(
        code, delivered=delivered, charge_maybe_billed=gptimage_settings.CHARGE_MAYBE_BILLED
    )


def _late_capture(account: CreditAccount, generation: Any) -> CreditEntry | None:
    """Charge a late result whose reservation was already refunded, once.

    The reaper ended the record (``abandoned``) and refunded its reservation; then the
    worker it had judged dead got its paid answer back and the record took it (see
    ``jobs.runner._adopt_late``). Its outcome now says capture, and nothing is held any more:
    the actual cost is charged from the balance (as far as it goes). Only when the entries
    since the generation's last reservation hold a refund and no capture, so a second
    settle, or a generation refunded for good, charges nothing.
    """
    from django_gptimage.models import Status

    kinds = list(
        CreditEntry.objects.filter(account=account, generation_ref=str(generation.pk))
        .order_by("pk")
        .values_list("kind", "held")
    )
    reserves = [i for i, (kind, _) in enumerate(kinds) if kind == Kind.RESERVE]
    if not reserves:
        return None
    since = [kind for kind, _ in kinds[reserves[-1] + 1 :]]
    if Kind.REFUND not in since or Kind.CAPTURE in since:
        return None
    code, decision = _decision(generation, succeeded=generation.status == Status.SUCCEEDED)
    if decision is not Settlement.CAPTURE:
        return None
    reserved = Decimal(str(kinds[reserves[-1]][1]))
    if generation.actual_cost is not None:
        cost, why = credits_for_usd(generation.actual_cost), f"actual cost {generation.actual_cost} USD"
    else:
        cost, why = reserved, "no usage reported: the reservation is charged"
    split = rules.capture(ZERO, cost, account.balance)
    why = f"late result (after a refund): {why}"
    if split.uncollected > 0:
        why += f"; {rules.format_credits(split.uncollected)} credits over the balance not charged"
    if code:
        why += f" ({code})"
    return _write(
        account, Kind.CAPTURE, amount=-split.charged, charged=split.charged, generation=generation, note=why
    )


def _settle_one(account: CreditAccount, generation: Any, held: Decimal, *, succeeded: bool) -> CreditEntry:
    code, decision = _decision(generation, succeeded=succeeded)
    if decision is Settlement.REFUND:
        why = f"refund: {code}" if code else "refund"
        return _write(account, Kind.REFUND, amount=held, held=-held, generation=generation, note=why)
    if generation.actual_cost is not None:
        cost = credits_for_usd(generation.actual_cost)
        why = f"actual cost {generation.actual_cost} USD"
    else:
        cost = held  # no usage came back (a maybe-billed failure charged by CHARGE_MAYBE_BILLED)
        why = "no usage reported: the reservation is charged"
    split = rules.capture(held, cost, account.balance)
    if split.uncollected > 0:
        why += f"; {rules.format_credits(split.uncollected)} credits over the balance not charged"
        logger.warning(
            "gptimage %s cost %s credits more than its reservation and balance",
            generation.pk,
            split.uncollected,
        )
    if code:
        why += f" ({code})"
    return _write(
        account, Kind.CAPTURE, amount=split.released, held=-held, charged=split.charged, generation=generation,
        note=why,
    )  # fmt: skip


def open_reservations() -> list[str]:
    """Generation ids that still hold credits."""
    rows = (
        CreditEntry.objects.values("generation_ref")
        .annotate(h=Sum("held"))
        .filter(h__gt=HALF_UNIT)  # not 0: SQLite's float sums may leave a residue
        .values_list("generation_ref", flat=True)
    )
    return [r for r in rows if r]


def settle_finished() -> list[str]:
    """Settle every finished (or deleted) generation that still holds credits (the reaper's sweep)."""
    from django_gptimage.models import FINISHED_STATUSES, ImageGeneration

    settled: list[str] = []
    refs = open_reservations()
    if not refs:
        return settled
    found = {str(g.pk): g for g in ImageGeneration.objects.filter(pk__in=refs)}
    for ref in refs:
        generation = found.get(ref)
        if generation is None:
            if _refund_orphan(ref):
                settled.append(ref)
        elif generation.status in FINISHED_STATUSES and settle(generation):
            settled.append(ref)
    return settled


def _refund_orphan(ref: str) -> bool:
    """A reservation whose generation was deleted before it finished: give it back."""
    done = False
    with transaction.atomic():
        for account_id in set(
            CreditEntry.objects.filter(generation_ref=ref).values_list("account_id", flat=True)
        ):
            account = _locked(account_id)
            held = held_by(account_id, ref)
            if held > 0:
                _write(
                    account,
                    Kind.REFUND,
                    amount=held,
                    held=-held,
                    ref=ref,
                    note="refund: the generation was deleted",
                )
                done = True
    return done


def credit_problems(cost_usd: Decimal, user: Any) -> list[Problem]:
    """The early, lock-free check: can ``user``'s balance cover a reservation for ``cost_usd``?"""
    if not charged_user(user):
        return []
    needed = credits_for_usd(cost_usd, round_up=True)
    available = balance(user).available
    if needed <= available:
        return []
    return [Problem("credits", insufficient_message(needed, available), ErrorCode.INSUFFICIENT_CREDITS.value)]


@dataclass(frozen=True)
class CreditQuote:
    """What a request would reserve, the user's balance, and whether it is enough (for faces)."""

    enabled: bool  # CREDITS on and the request is charged to this user
    cost: Decimal  # the estimate, USD
    reserve: Decimal  # credits the request would reserve (0 when not charged)
    balance: Balance
    enough: bool
    message: str  # one sentence for the editor ("" when credits are off)
    cap_message: str = ""  # a spend cap this request would pass ("" when none)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "cost": str(self.cost),
            "reserve": str(self.reserve),
            "reserve_display": rules.format_credits(self.reserve),
            "balance": self.balance.as_dict(),
            "enough": self.enough,
            "message": self.message,
            "cap_message": self.cap_message,
        }


def quote(cost_usd: Decimal, user: Any) -> CreditQuote:
    from . import caps

    breaches = caps.cap_problems(cost_usd, user)
    cap_message = breaches[0].message if breaches else ""
    if not charged_user(user):
        return CreditQuote(False, cost_usd, ZERO, Balance(ZERO, ZERO), True, "", cap_message)
    needed = credits_for_usd(cost_usd, round_up=True)
    current = balance(user)
    enough = needed <= current.available
    if enough:
        message = (
            f"Reserves {rules.format_credits(needed)} credits of your {rules.format_credits(current.available)}; "
            "you are charged the actual cost when it succeeds, and refunded if it fails."
        )
    else:
        message = insufficient_message(needed, current.available)
    return CreditQuote(True, cost_usd, needed, current, enough, message, cap_message)
