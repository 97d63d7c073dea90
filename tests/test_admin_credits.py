"""The admin's credit pages: read-only balances and ledger, the usage report, its chart and CSV,
and the credit line on the generate page."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from django_gptimage.access import credits
from django_gptimage.access.models import CreditEntry
from django_gptimage.access.plans import assign
from django_gptimage.admin.charts import spend_chart_svg
from django_gptimage.models import ImageGeneration
from django_gptimage.service import request_generation, usage_report

pytestmark = pytest.mark.django_db(transaction=True)

LEDGER = "admin:django_gptimage_creditentry_changelist"
BALANCES = "admin:django_gptimage_creditaccount_changelist"
USAGE = "admin:django_gptimage_creditentry_usage"
ADD = "admin:django_gptimage_imagegeneration_add"


@pytest.fixture
def sync_credits(settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "CREDITS": True, "RUN_MODE": "sync"}


def generations(user: Any, fake: Any) -> list[ImageGeneration]:
    made = [
        request_generation(prompt="A harbour at dawn", quality="low", user=user),
        request_generation(prompt="A harbour at dusk", quality="low", n=2, user=user),
    ]
    fake.add_fault("moderation_blocked")
    made.append(request_generation(prompt="Refused", quality="low", user=user))
    for g in made:
        g.refresh_from_db()
    return made


def test_ledger_and_balances_are_read_only(
    admin_client: Any, admin_user: Any, sync_credits: Any, gptimage_openai: Any
):
    assign(admin_user, "paid")
    credits.grant(admin_user, 50, by=admin_user, note="starter credits")
    generations(admin_user, gptimage_openai)
    page = admin_client.get(reverse(LEDGER)).content.decode()
    for kind in ("Grant", "Reserve", "Capture", "Refund"):
        assert kind in page
    assert "starter credits" in page and "Usage and spend" in page
    entry = CreditEntry.objects.filter(kind="capture").first()
    detail = admin_client.get(reverse("admin:django_gptimage_creditentry_change", args=[entry.pk]))
    assert detail.status_code == 200 and b'name="amount"' not in detail.content  # nothing editable
    assert admin_client.get(reverse("admin:django_gptimage_creditentry_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:django_gptimage_creditentry_delete", args=[entry.pk])).status_code
        == 403
    )
    balances = admin_client.get(reverse(BALANCES)).content.decode()
    assert credits.balance(admin_user).available < 50
    assert f">{credits.balance(admin_user).available.quantize(Decimal('0.01'))}<" in balances


def test_usage_report_totals_chart_and_csv(
    admin_client: Any, admin_user: Any, sync_credits: Any, gptimage_openai: Any
):
    assign(admin_user, "paid")
    credits.grant(admin_user, 50)
    made = generations(admin_user, gptimage_openai)
    report = usage_report(days=7)
    total = report.totals
    assert total.generations == 3 and total.succeeded == 2 and total.failed == 1 and total.images == 3
    assert total.cost == sum(g.actual_cost or 0 for g in made)
    [(day, spent)] = [(d, a) for d, a in report.spend_per_day() if a]
    assert day == timezone.localdate() and spent == total.cost
    assert len(report.spend_per_day()) == 7

    page = admin_client.get(reverse(USAGE) + "?days=7").content.decode()
    assert "<svg" in page and f'data-day="{day.isoformat()}"' in page
    assert "Per user, model, tier and day" in page and "gpt-image-2" in page
    response = admin_client.get(reverse(USAGE) + "?days=7&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["day", "user", "model", "tier"]
    assert rows[1][:4] == [day.isoformat(), admin_user.username, "gpt-image-2", "1K"]
    assert rows[-1][0] == "total" and rows[-1][4] == "3" and Decimal(rows[-1][-1]) == total.cost


def test_the_usage_report_needs_the_ledger_view_permission(client: Any, django_user_model: Any):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(USAGE)).status_code == 403


def test_the_chart_has_one_bar_per_day_scaled_to_a_round_maximum():
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(5)]
    svg = spend_chart_svg(
        list(
            zip(days, [Decimal("0"), Decimal("0.5"), Decimal("1.7"), Decimal(0), Decimal("0.2")], strict=True)
        )
    )
    assert svg.count("<rect") == 5 and ">2.00 USD<" in svg  # the axis tops at 2
    assert 'data-day="2026-03-03" data-amount="1.7"' in svg
    assert spend_chart_svg([]).startswith("<svg")


def test_the_generate_page_shows_the_balance_and_what_it_would_reserve(
    admin_client: Any, admin_user: Any, sync_credits: Any
):
    credits.grant(admin_user, 30)  # the default quality (auto, estimated as high) reserves 12.48
    page = admin_client.get(reverse(ADD)).content.decode()
    assert (
        "data-gptimage-credits" in page and 'data-per-usd="100' in page and 'data-available="30.0000"' in page
    )
    assert "credits of your 30.00" in page and "credits.js" in page


def test_the_generate_page_says_nothing_about_credits_when_they_are_off(admin_client: Any):
    page = admin_client.get(reverse(ADD)).content.decode()
    assert "data-gptimage-credits" not in page
