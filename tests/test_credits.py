"""Credits: an immutable ledger; reserve before the job, capture or refund once; never negative.

Generations run for real against the loopback OpenAI server (sync mode, or RQ with real Redis);
concurrency uses real threads on the real database (SQLite's serialised writes here, PostgreSQL in
CI through DATABASE_URL).
"""

from __future__ import annotations

import io
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from django_gptimage.access import credits
from django_gptimage.access.models import CreditAccount, CreditEntry, ImmutableEntry
from django_gptimage.domain.credits import capture, to_credits
from django_gptimage.domain.errors import ERRORS, ErrorCode, RefundRule
from django_gptimage.jobs.reaper import reap
from django_gptimage.jobs.runner import claim
from django_gptimage.models import GenerationAttempt, ImageGeneration, Status
from django_gptimage.service import (
    GenerationRefused,
    cancel_generation,
    credit_quote,
    request_generation,
    retry_generation,
)

PROMPT = "A lighthouse at dusk"
ROOT = Path(__file__).resolve().parent.parent


def make_editor(django_user_model: Any, name: str = "editor") -> Any:
    user = django_user_model.objects.create_user(name, is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="django_gptimage", codename="generate")
    )
    return django_user_model.objects.get(pk=user.pk)  # permission cache fresh


@pytest.fixture
def editor(db: None, django_user_model: Any) -> Any:
    return make_editor(django_user_model)


@pytest.fixture
def credits_on(settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "CREDITS": True, "RUN_MODE": "sync", "RETRY_BACKOFF_BASE": 0.01}


def generate(capture_callbacks: Any, **kwargs: Any) -> ImageGeneration:
    with capture_callbacks(execute=True):
        generation = request_generation(prompt=PROMPT, quality="low", **kwargs)
    generation.refresh_from_db()
    return generation


def kinds(user: Any) -> list[str]:
    return [e.kind for e in credits.ledger(user).order_by("pk")]


def assert_consistent(user: Any) -> None:
    """The cached row equals the ledger's sums, and neither is negative."""
    cached, summed = credits.balance(user), credits.ledger_balance(user)
    assert cached == summed, (cached, summed)
    assert cached.available >= 0 and cached.reserved >= 0


# -- pure rules ------------------------------------------------------------------------------------


def test_conversion_rounds_reservations_up_and_charges_to_the_nearest():
    assert to_credits(Decimal("0.008231"), 100, round_up=True) == Decimal("0.8231")
    assert to_credits(Decimal("0.0082311"), 100, round_up=True) == Decimal("0.8232")
    assert to_credits(Decimal("0.0082311"), 100) == Decimal("0.8231")


def test_capture_never_takes_the_balance_below_zero():
    assert capture(Decimal(5), Decimal(3), Decimal(10)) == capture(Decimal(5), Decimal(3), Decimal(0))
    split = capture(Decimal(5), Decimal(3), Decimal(0))
    assert (split.charged, split.released, split.uncollected) == (3, 2, 0)
    split = capture(Decimal(5), Decimal(8), Decimal(2))  # 3 over: 2 from the balance, 1 uncollected
    assert (split.charged, split.released, split.uncollected) == (7, -2, 1)


def test_refused_before_sending_and_moderation_are_never_charged():
    for code in (ErrorCode.INVALID_PARAMETERS, ErrorCode.ACCESS_DENIED, ErrorCode.INSUFFICIENT_CREDITS,
                 ErrorCode.SPEND_CAP_REACHED):  # fmt: skip
        assert ERRORS[code].refund is RefundRule.NOT_RESERVED
    assert ERRORS[ErrorCode.MODERATION_BLOCKED].refund is RefundRule.REFUND


# -- off by default --------------------------------------------------------------------------------


def test_credits_are_off_by_default_and_nothing_is_reserved(
    editor, gptimage_openai, settings, django_capture_on_commit_callbacks
):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RUN_MODE": "sync"}
    generation = generate(django_capture_on_commit_callbacks, user=editor)
    assert generation.status == Status.SUCCEEDED
    assert not CreditEntry.objects.exists() and not CreditAccount.objects.exists()
    assert credit_quote(user=editor, quality="low").enabled is False


# -- reserve, capture ------------------------------------------------------------------------------


def test_success_reserves_the_estimate_then_captures_the_actual_cost(
    editor, credits_on, gptimage_openai, django_capture_on_commit_callbacks
):
    credits.grant(editor, 100, note="welcome")
    generation = generate(django_capture_on_commit_callbacks, user=editor)
    assert generation.status == Status.SUCCEEDED and generation.actual_cost is not None
    assert kinds(editor) == ["grant", "reserve", "capture"]
    grant, reserve, captured = credits.ledger(editor).order_by("pk")
    assert reserve.generation == generation and reserve.generation_ref == str(generation.pk)
    assert -reserve.amount == reserve.held == to_credits(generation.estimated_cost, 100, round_up=True)
    charged = to_credits(generation.actual_cost, 100)
    assert captured.charged == charged and captured.held == -reserve.held
    assert captured.amount == reserve.held - charged  # the difference is released
    assert credits.balance(editor).available == Decimal(100) - charged
    assert credits.balance(editor).reserved == 0
    assert_consistent(editor)
    # The note says why; who is the system (no user) for generation entries, the grant has none either.
    assert "actual cost" in captured.note and grant.note == "welcome"


def test_not_enough_credits_is_refused_before_anything_is_recorded_or_sent(
    editor, credits_on, gptimage_openai, django_capture_on_commit_callbacks
):
    credits.grant(editor, Decimal("0.10"))
    with pytest.raises(GenerationRefused) as info:
        generate(django_capture_on_commit_callbacks, user=editor)
    assert info.value.code is ErrorCode.INSUFFICIENT_CREDITS
    [message] = info.value.as_dict()["credits"]
    assert "your balance is 0.10 credits" in message and "Ask an administrator for more credits" in message
    assert ImageGeneration.objects.count() == 0 and gptimage_openai.requests == []
    assert kinds(editor) == ["grant"]


def test_the_reservation_itself_refuses_what_the_early_check_let_through(
    editor, credits_on, gptimage_openai, monkeypatch, django_capture_on_commit_callbacks
):
    """Between the lock-free check and the locked reservation the balance may change: the
    reservation decides, and its refusal rolls the record back (no reservation, no job)."""
    credits.grant(editor, Decimal("0.10"))
    monkeypatch.setattr(credits, "credit_problems", lambda cost, user: [])
    with pytest.raises(GenerationRefused) as info:
        generate(django_capture_on_commit_callbacks, user=editor)
    assert info.value.code is ErrorCode.INSUFFICIENT_CREDITS
    assert ImageGeneration.objects.count() == 0 and gptimage_openai.requests == []
    assert kinds(editor) == ["grant"] and credits.balance(editor).available == Decimal("0.10")


def test_requests_for_no_user_are_not_charged(
    credits_on, db, gptimage_openai, django_capture_on_commit_callbacks
):
    generation = generate(django_capture_on_commit_callbacks)
    assert generation.status == Status.SUCCEEDED and not CreditEntry.objects.exists()


# -- refunds by error code -------------------------------------------------------------------------


def test_moderation_is_refunded_in_full(
    editor, credits_on, gptimage_openai, django_capture_on_commit_callbacks
):
    credits.grant(editor, 100)
    gptimage_openai.add_fault("moderation_blocked")
    generation = generate(django_capture_on_commit_callbacks, user=editor)
    assert generation.error_code == ErrorCode.MODERATION_BLOCKED
    assert kinds(editor) == ["grant", "reserve", "refund"]
    assert credits.balance(editor).available == 100 and credits.balance(editor).reserved == 0
    assert_consistent(editor)


def test_automatic_retries_reuse_the_reservation_and_the_failure_is_refunded_once(
    editor, credits_on, gptimage_openai, settings, django_capture_on_commit_callbacks
):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 3}
    credits.grant(editor, 100)
    gptimage_openai.add_fault("server_error", times=3)
    generation = generate(django_capture_on_commit_callbacks, user=editor)
    assert generation.status == Status.FAILED and generation.attempts == 3
    assert kinds(editor) == ["grant", "reserve", "refund"]  # three attempts, one reservation
    assert credits.balance(editor).available == 100
    assert credits.settle(generation) == []  # settling again changes nothing
    assert kinds(editor) == ["grant", "reserve", "refund"]


def test_a_retry_that_succeeds_captures_once(
    editor, credits_on, gptimage_openai, django_capture_on_commit_callbacks
):
    credits.grant(editor, 100)
    gptimage_openai.add_fault("server_error")
    generation = generate(django_capture_on_commit_callbacks, user=editor)
    assert generation.status == Status.SUCCEEDED and generation.attempts == 2
    assert kinds(editor) == ["grant", "reserve", "capture"]
    assert_consistent(editor)


@pytest.mark.parametrize("charge", [False, True])
def test_a_timeout_follows_charge_maybe_billed(
    editor, credits_on, gptimage_openai, settings, charge, django_capture_on_commit_callbacks
):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "READ_TIMEOUT": 0.3, "CHARGE_MAYBE_BILLED": charge}
    credits.grant(editor, 100)
    gptimage_openai.add_fault("delay", seconds=1.5)
    generation = generate(django_capture_on_commit_callbacks, user=editor)
    assert generation.error_code == ErrorCode.TIMEOUT
    reserve = credits.ledger(editor).get(kind="reserve")
    if charge:
        assert kinds(editor) == ["grant", "reserve", "capture"]
        assert credits.balance(editor).available == 100 - reserve.held  # the estimate, no usage came back
    else:
        assert kinds(editor) == ["grant", "reserve", "refund"]
        assert credits.balance(editor).available == 100
    assert_consistent(editor)


def test_a_queued_generation_canceled_is_refunded(editor, credits_on, settings, queue_mode):
    credits.grant(editor, 100)
    generation = request_generation(prompt=PROMPT, quality="low", user=editor)
    assert kinds(editor) == ["grant", "reserve"]
    cancel_generation(generation)
    assert kinds(editor) == ["grant", "reserve", "refund"]
    cancel_generation(generation)
    assert kinds(editor) == ["grant", "reserve", "refund"]
    assert credits.balance(editor).available == 100


def test_a_retry_by_hand_reserves_again_and_is_refused_without_credits(
    editor, credits_on, gptimage_openai, django_capture_on_commit_callbacks
):
    credits.grant(editor, 100)
    gptimage_openai.add_fault("moderation_blocked")
    generation = generate(django_capture_on_commit_callbacks, user=editor)
    ImageGeneration.objects.filter(pk=generation.pk).update(error_code=ErrorCode.PROVIDER_ERROR)  # retryable
    with django_capture_on_commit_callbacks(execute=True):
        retry_generation(generation)
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert kinds(editor) == ["grant", "reserve", "refund", "reserve", "capture"]
    assert_consistent(editor)

    # Without credits the retry is refused and the record stays failed.
    credits.adjust(editor, -credits.balance(editor).available, note="used up")
    gptimage_openai.add_fault("moderation_blocked")
    second = generate(django_capture_on_commit_callbacks, user=None)  # not charged
    ImageGeneration.objects.filter(pk=second.pk).update(
        error_code=ErrorCode.PROVIDER_ERROR, requested_by=editor
    )
    second.refresh_from_db()
    with pytest.raises(GenerationRefused) as info:
        retry_generation(second)
    assert info.value.code is ErrorCode.INSUFFICIENT_CREDITS
    second.refresh_from_db()
    assert second.status == Status.FAILED


# -- the reaper --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_reaper_refunds_a_dead_workers_reservation(credits_on, settings, queue_mode, django_user_model):
    """Reserved, claimed by a worker that then died (no heartbeat): the reaper ends it as
    abandoned and refunds the reservation, once."""
    editor = make_editor(django_user_model)
    credits.grant(editor, 100)
    generation = request_generation(prompt=PROMPT, quality="low", user=editor)
    queue_mode.empty()
    claimed = claim(generation.pk, "dead-host:1:1")
    assert claimed is not None
    GenerationAttempt.objects.create(
        generation=claimed, number=1, started_at=claimed.started_at, worker="dead"
    )
    assert credits.balance(editor).reserved > 0
    report = reap(stale_after=0)
    assert report.abandoned == [str(generation.pk)]
    assert kinds(editor) == ["grant", "reserve", "refund"]
    assert credits.balance(editor) == credits.Balance(Decimal(100), Decimal(0))
    assert not reap(stale_after=0).settled


@pytest.mark.django_db(transaction=True)
def test_the_reaper_settles_finished_generations_that_still_hold_credits(
    credits_on, settings, queue_mode, django_user_model
):
    editor = make_editor(django_user_model)
    credits.grant(editor, 100)
    finished = request_generation(prompt=PROMPT, quality="low", user=editor)
    deleted = request_generation(prompt=PROMPT + " 2", quality="low", user=editor)
    # Ended without settling (as if killed between the two), and one deleted while queued.
    ImageGeneration.objects.filter(pk=finished.pk).update(
        status=Status.FAILED, error_code=ErrorCode.PROVIDER_ERROR
    )
    ImageGeneration.objects.filter(pk=deleted.pk).delete()
    report = reap()
    assert sorted(report.settled) == sorted([str(finished.pk), str(deleted.pk)])
    assert kinds(editor) == ["grant", "reserve", "reserve", "refund", "refund"]
    assert credits.balance(editor) == credits.Balance(Decimal(100), Decimal(0))
    assert reap().settled == []


# -- concurrency -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_parallel_requests_never_overdraw(credits_on, settings, queue_mode, django_user_model):
    """Eight threads, credits for three: exactly three are reserved, the rest refused."""
    editor = make_editor(django_user_model)
    probe = credit_quote(user=editor, quality="low", prompt=PROMPT)
    credits.grant(editor, probe.reserve * 3 + Decimal("0.0001"))
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def one() -> None:
        try:
            barrier.wait(10)
            request_generation(prompt=PROMPT, quality="low", user=editor)
            outcome = "reserved"
        except GenerationRefused as refused:
            outcome = refused.code.value
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome = f"crash: {exc!r}"
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["insufficient_credits"] * 5 + ["reserved"] * 3, results
    assert ImageGeneration.objects.count() == 3
    assert CreditEntry.objects.filter(kind="reserve").count() == 3
    assert credits.balance(editor).available == Decimal("0.0001")
    assert_consistent(editor)


# -- the ledger is immutable -----------------------------------------------------------------------


def test_entries_cannot_be_changed_or_deleted(editor):
    entry = credits.grant(editor, 5)
    entry.note = "changed"
    with pytest.raises(ImmutableEntry):
        entry.save()
    with pytest.raises(ImmutableEntry):
        entry.delete()


def test_adjust_never_takes_the_balance_below_zero(editor):
    credits.grant(editor, 5)
    with pytest.raises(credits.InsufficientCredits):
        credits.adjust(editor, -6, note="too much")
    credits.adjust(editor, -5, note="all of it")
    assert credits.balance(editor).available == 0
    assert_consistent(editor)


# -- the quote for faces ---------------------------------------------------------------------------


def test_credit_quote_says_what_would_be_reserved(editor, credits_on):
    credits.grant(editor, 1)
    quote = credit_quote(user=editor, quality="low", prompt=PROMPT)
    assert quote.enabled and quote.enough and 0 < quote.reserve < 1
    assert quote.as_dict()["balance"]["available"] == "1.0000"
    assert quote.message.startswith(f"Reserves {quote.as_dict()['reserve_display']} credits of your 1.00")
    big = credit_quote(user=editor, quality="high", tier="1K", n=4, prompt=PROMPT)
    assert not big.enough and "your balance is 1.00 credits" in big.message


# -- the command -----------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("gptimage_credits", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_command_grant_balance_ledger_plan(editor, credits_on):
    assert "Granted 12.50 credits to editor; balance 12.50" in run(
        "grant", "editor", "12.5", "--note", "trial"
    )
    payload = json.loads(run("balance", "editor", "--json"))
    assert (
        payload["available"] == "12.5000" and payload["reserved"] == "0.0000" and payload["enabled"] is True
    )
    assert "12.50 credits available" in run("balance", "editor")
    assert "grant" in run("ledger", "editor") and "trial" in run("ledger", "editor")
    [row] = json.loads(run("ledger", "editor", "--json"))
    assert row["kind"] == "grant" and row["amount"] == "12.5000" and row["note"] == "trial"
    assert "paid plan" in run("plan", "editor", "paid").lower()
    assert editor.gptimage_plan.plan.name == "paid"
    for bad in (["grant", "editor", "-3"], ["grant", "editor", "lots"], ["grant", "nobody", "3"],
                ["plan", "editor", "gold"], ["adjust", "editor", "-100", "--note", "x"]):  # fmt: skip
        with pytest.raises(CommandError) as info:
            run(*bad)
        assert info.value.returncode == 2, bad


def test_gptimage_generate_as_a_user_without_credits_exits_2(editor, credits_on, gptimage_openai, capsys):
    with pytest.raises(SystemExit) as info:
        call_command("gptimage_generate", "--prompt", PROMPT, "--user", "editor", "--json", "--sync")
    assert info.value.code == 2
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["error_code"] == "insufficient_credits" and "credits" in payload["problems"]
    assert gptimage_openai.requests == []


# -- docs ------------------------------------------------------------------------------------------


def test_the_refund_table_in_docs_is_generated_from_the_code():
    from django_gptimage.management.commands.gptimage_credits import REGENERATE_COMMAND, render_docs

    text = (ROOT / "docs" / "access.md").read_text(encoding="utf-8")
    assert "<!-- BEGIN GENERATED: refunds -->" in text
    assert render_docs(text) == text, f"docs/access.md is stale. Regenerate it with: {REGENERATE_COMMAND}"
    for code in ErrorCode:
        assert f"| `{code.value}` | `{ERRORS[code].refund.value}` |" in text


# -- spend caps ------------------------------------------------------------------------------------


def test_a_user_daily_cap_refuses_before_sending_with_its_own_code(
    editor, settings, gptimage_openai, django_capture_on_commit_callbacks
):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RUN_MODE": "sync", "SPEND_CAPS": {"user": {"daily": "0.02"}}}
    first = generate(django_capture_on_commit_callbacks, user=editor)
    assert first.status == Status.SUCCEEDED and first.actual_cost < Decimal("0.02")
    sent = len(gptimage_openai.requests)
    with pytest.raises(GenerationRefused) as info:
        generate(django_capture_on_commit_callbacks, user=editor, n=3)
    assert info.value.code is ErrorCode.SPEND_CAP_REACHED
    [message] = info.value.as_dict()["spend_cap"]
    assert "would go over your daily spending limit of 0.0200 USD" in message
    assert "The limit renews tomorrow" in message
    assert len(gptimage_openai.requests) == sent and ImageGeneration.objects.count() == 1
    # Another user has a cap of their own; no user at all has no user cap.
    assert generate(django_capture_on_commit_callbacks, user=None, n=3).status == Status.SUCCEEDED


def test_a_site_monthly_cap_counts_generations_in_flight(editor, settings, queue_mode):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "SPEND_CAPS": {"site": {"monthly": 0.02}}}
    queued = request_generation(prompt=PROMPT, quality="low")  # not run: its estimate counts
    assert queued.estimated_cost < Decimal("0.02")
    with pytest.raises(GenerationRefused) as info:
        request_generation(prompt=PROMPT, quality="low", n=2, user=editor)
    assert info.value.code is ErrorCode.SPEND_CAP_REACHED
    assert "this site's monthly spending limit" in info.value.as_dict()["spend_cap"][0]
    assert credit_quote(user=editor, quality="low", n=2).cap_message.startswith("This generation (about")


@pytest.mark.parametrize(
    "value, fragment",
    [
        ({"users": {}}, "unknown key 'users'"),
        ({"user": 5}, "must be a dict"),
        ({"user": {"weekly": 5}}, "unknown key 'weekly'"),
        ({"site": {"daily": "lots"}}, "is not an amount"),
        ({"site": {"daily": -1}}, "is not a positive amount"),
    ],
)
def test_malformed_caps_are_e014(settings, value, fragment):
    from django_gptimage.checks import check_settings

    settings.GPTIMAGE = {**settings.GPTIMAGE, "SPEND_CAPS": value}
    found = [m for m in check_settings() if m.id == "django_gptimage.E014"]
    assert found and fragment in found[0].msg, [m.msg for m in check_settings()]


def test_credits_per_usd_must_be_positive(settings):
    from django_gptimage.checks import check_settings

    settings.GPTIMAGE = {**settings.GPTIMAGE, "CREDITS_PER_USD": 0}
    assert [m.id for m in check_settings() if m.id == "django_gptimage.E014"] == ["django_gptimage.E014"]
    settings.GPTIMAGE = {**settings.GPTIMAGE, "CREDITS_PER_USD": 1}
    assert not [m for m in check_settings() if m.id == "django_gptimage.E014"]
