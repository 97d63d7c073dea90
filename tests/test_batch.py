"""Batch runs: the plan (done, in flight, refused, cost), the command's exits, Ctrl-C and resume,
the admin action on the same implementation. Real RQ workers and the loopback server."""

from __future__ import annotations

import json
import re
import signal
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_gptimage.batch import PAGE_SIZE
from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import generate_for, plan_batch, run_batch
from tests.conftest import wait_for
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

FROM_BODY = {"prompt_template": "{{ object.body }}", "ratio": "1:1", "quality": "low"}


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def openai(queue_mode: Any, gptimage_openai: Any, settings: Any) -> Any:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PRESETS": {"from-body": FROM_BODY}}
    return gptimage_openai


def image_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/images/")]


def batch(*args: str) -> tuple[int, str, str]:
    """Run gptimage_batch in this process: (exit status, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("gptimage_batch", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def articles(n: int, **fields: Any) -> list[Article]:
    return Article.objects.bulk_create(
        [Article(title=f"Article {i:03}", body=f"Harbour scene number {i:03}", **fields) for i in range(n)]
    )


def test_the_plan_counts_done_in_flight_refused_and_the_cost(openai: Any, run_worker: Any) -> None:
    done, in_flight, a, b = articles(4)
    empty = Article.objects.create(title="Empty", body="")
    generate_for(done, "cover", preset="from-body")
    run_worker()
    [queued] = generate_for(in_flight, "cover", preset="from-body")  # no worker: stays queued
    sent_before = len(image_requests(openai))

    plan = plan_batch(Article.objects.all(), field="cover", preset="from-body")

    assert (plan.objects, plan.outputs_per_object, plan.to_send) == (5, 1, 2)
    assert (plan.done, plan.in_flight, plan.refused_objects) == (1, 1, 1)
    assert plan.pending == [a.pk, b.pk]
    assert dict(plan.refused) == {"Describe the image you want: the prompt is empty.": 1}
    assert plan.refused_named == [("Empty", "Describe the image you want: the prompt is empty.")]
    assert plan.estimated_cost == 2 * queued.estimated_cost and plan.currency == "USD"
    assert len(image_requests(openai)) == sent_before and ImageGeneration.objects.count() == 2

    run = run_batch(plan)
    assert len(run.sent_ids) == 2 and run.reused_ids == [] and run.remaining == 0
    assert sorted(run.generation_ids) == sorted([*plan.existing_ids, *run.sent_ids])
    run_worker()
    assert ImageGeneration.objects.filter(status=Status.SUCCEEDED).count() == 4
    assert empty.pk not in {int(g.target_object_id) for g in ImageGeneration.objects.all()}


def test_planning_takes_a_constant_number_of_queries_per_page(openai: Any) -> None:
    articles(2 * PAGE_SIZE)
    with CaptureQueriesContext(connection) as two_pages:
        plan_batch(Article.objects.all(), field="cover", preset="from-body")
    articles(2 * PAGE_SIZE)
    with CaptureQueriesContext(connection) as four_pages:
        plan = plan_batch(Article.objects.all(), field="cover", preset="from-body")
    assert plan.to_send == 4 * PAGE_SIZE
    per_page = (len(four_pages) - len(two_pages)) / 2
    assert per_page <= 2, [q["sql"][:80] for q in four_pages.captured_queries]
    assert len(two_pages) <= 2 * 2 + 3


def test_dry_run_prints_the_plan_and_sends_nothing(openai: Any) -> None:
    articles(3)
    code, out, _ = batch("testapp.Article", "--preset", "from-body", "--field", "cover", "--dry-run")
    assert code == 0
    assert "3 articles looked at, 1 output(s) each" in out and "to send:   3 generation(s)" in out
    assert "estimated cost: " in out and "USD" in out and "Dry run: nothing was sent." in out
    assert not ImageGeneration.objects.exists() and image_requests(openai) == []

    code, out, err = batch(
        "testapp.Article", "--preset", "from-body", "--field", "cover", "--dry-run", "--json"
    )
    payload = json.loads(out)
    assert code == 0 and payload["exit_status"] == 0 and payload["plan"]["to_send"] == 3
    assert Decimal(payload["plan"]["estimated_cost"]) > 0 and "to send" in err


def test_refusals_before_anything_is_sent_exit_2(openai: Any) -> None:
    articles(2)
    base = ("testapp.Article", "--preset", "from-body", "--field", "cover")
    code, out, err = batch(*base, "--max-cost", "0.001")
    assert code == 2 and "over --max-cost 0.001 USD: nothing was sent" in err
    code, out, err = batch(*base)  # no --yes, and no terminal to ask on
    assert code == 2 and "no terminal to confirm on" in err
    code, out, err = batch("testapp.Article", "--preset", "no-such", "--field", "cover", "--yes")
    assert code == 2 and "Unknown preset 'no-such'" in err
    with pytest.raises(Exception) as bad_filter:
        call_command("gptimage_batch", *base, "--filter", "colour=red", "--yes")
    assert "colour" in str(bad_filter.value) and getattr(bad_filter.value, "returncode", None) == 2
    Article.objects.update(body="")
    code, out, err = batch(*base, "--yes", "--json")
    assert code == 2 and json.loads(out)["plan"]["refused_objects"] == 2
    assert not ImageGeneration.objects.exists() and image_requests(openai) == []


def test_filter_and_limit_then_the_next_run_takes_the_next_ones(openai: Any) -> None:
    articles(5)
    Article.objects.create(title="Other", body="Not a harbour")
    args = (
        "testapp.Article",
        "--preset",
        "from-body",
        "--field",
        "cover",
        "--filter",
        "body__startswith=Harbour",
    )
    code, out, _ = batch(*args, "--limit", "2", "--yes", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["run"]["sent"] == 2 and payload["plan"]["left_by_limit"] == 3
    code, out, _ = batch(*args, "--limit", "2", "--yes", "--json")
    payload = json.loads(out)
    assert payload["plan"]["in_flight"] == 2 and payload["run"]["sent"] == 2
    code, out, _ = batch(*args, "--yes", "--json")
    assert json.loads(out)["run"]["sent"] == 1
    assert ImageGeneration.objects.count() == 5
    assert not ImageGeneration.objects.filter(prompt="Not a harbour").exists()


def test_wait_follows_to_the_end_and_exits_1_on_a_failure(
    openai: Any, thread_worker: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    articles(4)
    openai.add_fault("moderation_blocked")
    thread_worker(concurrency=2)
    code, out, err = batch("testapp.Article", "--preset", "from-body", "--field", "cover", "--yes", "--wait")
    assert code == 1, out + err
    assert "succeeded 3 · failed 1 (moderation_blocked 1) · in flight 0" in err
    assert re.search(r"failed: moderation_blocked +1\n", out) and re.search(r"succeeded +3\n", out)

    # Running it again sends only the failed one again; everything else is skipped.
    code, out, err = batch(
        "testapp.Article", "--preset", "from-body", "--field", "cover", "--yes", "--wait", "--json"
    )
    payload = json.loads(out)
    assert code == 0, err
    assert payload["plan"]["done"] == 3 and payload["run"]["sent"] == 1
    assert payload["progress"] == {"succeeded": 4, "failed": {}, "canceled": 0, "in_flight": 0,
                                   "cost": payload["progress"]["cost"]}  # fmt: skip
    assert len(payload["generation_ids"]) == 4
    assert len(image_requests(openai)) == 5


@pytest.mark.slow
def test_200_objects_with_failures_and_a_ctrl_c_resume_to_completion(
    openai: Any, worker_process: Any, thread_worker: Any
) -> None:
    articles(200)
    args = ("testapp.Article", "--preset", "from-body", "--field", "cover", "--yes")
    child = worker_process(*args, command="gptimage_batch")
    wait_for(lambda: ImageGeneration.objects.count() >= 30, timeout=120, what="30 generations queued")
    child.signal(signal.SIGINT)
    assert child.wait(60) == 1, child.output()
    output = child.output()
    assert "Run the same command again to resume" in output, output
    first = ImageGeneration.objects.count()
    assert 30 <= first < 200, output
    assert f"{first} generation(s) were queued" in output

    # Scripted failures, all retried by the workers: 3 server errors, 2 rate limits.
    openai.add_fault("server_error", times=3)
    openai.add_fault("rate_limited", times=2, retry_after=0)
    thread_worker(concurrency=4)
    code, out, err = batch(*args, "--wait", "--json")
    payload = json.loads(out)
    assert code == 0, err
    assert payload["plan"]["done"] + payload["plan"]["in_flight"] == first
    assert payload["run"]["sent"] == 200 - first
    assert payload["progress"]["succeeded"] == 200 and payload["progress"]["failed"] == {}

    per_object = {}
    for g in ImageGeneration.objects.all():
        per_object[g.target_object_id] = per_object.get(g.target_object_id, 0) + 1
        assert g.status == Status.SUCCEEDED
    assert len(per_object) == 200 and set(per_object.values()) == {1}  # each generated exactly once
    assert len(image_requests(openai)) == 200 + 5  # and no provider call beyond the scripted retries

    code, out, _ = batch(*args, "--json")  # once more: nothing left to send
    assert code == 0 and json.loads(out)["plan"]["done"] == 200 and len(image_requests(openai)) == 205


# -- the admin action is the same implementation ----------------------------------------------------


def test_the_admin_action_skips_what_is_done_and_says_so(admin_client: Any, gptimage_openai: Any) -> None:
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    from django_gptimage.access.plans import assign

    assign(get_user_model().objects.get(username="admin"), "paid")
    chosen = articles(2)
    data = {"action": "generate_cover_images_cover", "_selected_action": [a.pk for a in chosen]}
    first = admin_client.post(reverse("admin:testapp_article_changelist"), data, follow=True)
    assert [str(m) for m in first.context["messages"]] == ["2 queued."]
    again = admin_client.post(reverse("admin:testapp_article_changelist"), data, follow=True)
    assert [str(m) for m in again.context["messages"]] == [
        "2 already generated with the same settings, not sent again."
    ]
    assert ImageGeneration.objects.count() == 2 and len(image_requests(gptimage_openai)) == 2
    html = again.content.decode()  # the review grid shows the existing candidates
    assert html.count("data-gptimage-row") == 2


def test_the_plan_refuses_what_the_monthly_quota_cannot_take_all_together(
    openai: Any, django_user_model: Any, run_worker: Any
) -> None:
    from django.contrib.auth.models import Permission

    from django_gptimage.access.models import AccessPlan, UserPlan

    user = django_user_model.objects.create_user("editor", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="generate", content_type__app_label="django_gptimage")
    )
    capped = AccessPlan.objects.create(name="capped", label="Capped", rank=1, tiers=["1K"], monthly_quota=3)
    UserPlan.objects.create(user=user, plan=capped)
    first, *rest = articles(5)
    generate_for(first, "cover", preset="from-body", user=user)
    run_worker()  # one image of the three used

    plan = plan_batch(Article.objects.all(), field="cover", preset="from-body", user=user)
    assert (plan.done, plan.to_send, plan.refused_objects) == (1, 2, 2)
    assert plan.pending == [rest[0].pk, rest[1].pk]
    [(reason, count)] = plan.refused.items()
    assert count == 2 and reason == (
        "Over the monthly quota: Capped includes 3 images a month (1 used so far), so this batch can send 2 more."
    )
    run = run_batch(plan)
    assert len(run.sent_ids) == 2 and not run.refused
