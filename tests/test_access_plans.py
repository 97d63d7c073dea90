"""Access plans: apart from sign-in, the most generous of a user's and their groups' plans, the
default plan, superusers only by setting, unlock rules in refusals, monthly quotas, the CLI."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from django_gptimage.access import plans
from django_gptimage.access.models import AccessPlan, GroupPlan, UserPlan
from django_gptimage.access.resolver import Access
from django_gptimage.domain.errors import ErrorCode
from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import GenerationRefused, access_for, check_request, request_generation

PROMPT = "A lighthouse at dusk"


@pytest.fixture
def staff(django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("editor", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="django_gptimage", codename="generate")
    )
    return user


@pytest.fixture(autouse=True)
def run_on_commit(django_capture_on_commit_callbacks, monkeypatch):
    """request_generation() runs its generation (sync mode) as it would after a real commit."""
    import django_gptimage.service as service

    original = service.request_generation

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            generation = original(**kwargs)
        generation.refresh_from_db()
        return generation

    monkeypatch.setattr(service, "request_generation", run)
    monkeypatch.setitem(globals(), "request_generation", run)


def refused(**kwargs) -> GenerationRefused:
    with pytest.raises(GenerationRefused) as info:
        request_generation(prompt=PROMPT, **kwargs)
    return info.value


def assert_nothing_sent(server) -> None:
    assert [r for r in server.requests if r.path.startswith("/v1/images/")] == []
    assert ImageGeneration.objects.count() == 0


def test_shipped_plans(db):
    free, paid = AccessPlan.objects.get(name="free"), AccessPlan.objects.get(name="paid")
    assert free.tiers == ["1K"] and paid.tiers == ["1K", "2K", "4K"]
    assert paid.rank > free.rank
    assert (free.model_names, free.qualities, free.max_n, free.monthly_quota) == (None, None, None, None)


def test_signed_in_staff_is_free_and_gets_the_unlock_rule(db, staff, gptimage_openai):
    for tier in ("2K", "4K"):
        error = refused(user=staff, ratio="16:9", tier=tier)
        assert error.code is ErrorCode.ACCESS_DENIED
        assert [(p.field, p.code) for p in error.problems] == [("tier", "access_denied")]
        message = error.as_dict()["tier"][0]
        assert message.startswith("2K and 4K need the Paid plan; ask a site administrator"), message
        assert "(your plan: Free)" in message
    # An explicit size cannot get round it either.
    assert refused(user=staff, size="2048x1152").code is ErrorCode.ACCESS_DENIED
    assert_nothing_sent(gptimage_openai)
    generation = request_generation(prompt=PROMPT, user=staff, ratio="16:9", tier="1K", quality="low")
    assert generation.status == Status.SUCCEEDED


def test_upgrade_hint_is_a_setting(db, staff, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "UPGRADE_HINT": "write to billing@example.com"}
    message = refused(user=staff, tier="2K").as_dict()["tier"][0]
    assert message == "2K and 4K need the Paid plan; write to billing@example.com (your plan: Free)."


def test_a_user_plan_unlocks(db, staff, gptimage_openai):
    plans.assign(staff, "paid")
    generation = request_generation(prompt=PROMPT, user=staff, ratio="1:1", tier="2K", quality="low")
    assert generation.status == Status.SUCCEEDED
    assert gptimage_openai.last_request.json["size"] == "2048x2048"


def test_most_generous_of_own_and_groups_plans(db, staff):
    plans.assign(staff, "free")
    group = Group.objects.create(name="marketing")
    staff.groups.add(group)
    assert access_for(staff).plan == "free"  # an own plan wins over the default, even if lower
    GroupPlan.objects.create(group=group, plan=AccessPlan.objects.get(name="paid"))
    assert access_for(staff).plan == "paid"
    assert access_for(staff).tiers == ("1K", "2K", "4K")
    # A less generous group does not take anything away.
    low = AccessPlan.objects.create(name="trial", label="Trial", rank=-5, tiers=[])
    other = Group.objects.create(name="trial")
    GroupPlan.objects.create(group=other, plan=low)
    staff.groups.add(other)
    assert access_for(staff).plan == "paid"


def test_default_plan_is_a_setting(db, staff, settings):
    assert access_for(staff).plan == "free"
    settings.GPTIMAGE = {**settings.GPTIMAGE, "DEFAULT_PLAN": "paid"}
    assert access_for(staff).plan == "paid"


def test_superusers_are_not_silently_paid(db, django_user_model, settings, gptimage_openai):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    assert refused(user=admin, tier="4K", ratio="16:9").code is ErrorCode.ACCESS_DENIED
    settings.GPTIMAGE = {**settings.GPTIMAGE, "SUPERUSER_PLAN": "paid"}
    assert access_for(admin).plan == "paid"
    generation = request_generation(prompt=PROMPT, user=admin, ratio="16:9", tier="4K", quality="low")
    assert generation.status == Status.SUCCEEDED
    # ...and an ordinary user still is not.
    other = django_user_model.objects.create_user("other")
    assert access_for(other).plan == "free"


def test_anonymous_users_get_the_default_plan(db):
    from django.contrib.auth.models import AnonymousUser

    assert access_for(AnonymousUser()).plan == "free"


def test_requests_for_no_user_follow_plan_without_user(db, settings):
    assert access_for(None) is None  # the site's own code: only the site policy applies
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PLAN_WITHOUT_USER": "free"}
    assert refused(tier="2K").code is ErrorCode.ACCESS_DENIED


def test_models_qualities_and_max_n(db, staff):
    plan = AccessPlan.objects.create(
        name="basic", label="Basic", rank=5, tiers=["1K", "2K"], model_names=["gpt-image-2"],
        qualities=["low", "medium"], max_n=2,
    )  # fmt: skip
    AccessPlan.objects.filter(name="paid").update(model_names=None, qualities=None, max_n=None)
    UserPlan.objects.create(user=staff, plan=plan)
    error = refused(user=staff, model="gpt-image-1.5", quality="low")
    assert error.code is ErrorCode.ACCESS_DENIED
    assert error.as_dict() == {
        "model": [
            "gpt-image-1.5 needs the Paid plan; ask a site administrator to upgrade your account "
            "(your plan: Basic)."
        ]
    }
    error = refused(user=staff, quality="high", n=4, tier="4K", ratio="16:9")
    assert error.code is ErrorCode.ACCESS_DENIED
    messages = error.as_dict()
    assert set(messages) == {"quality", "n", "tier"}
    assert messages["quality"][0].startswith("High quality needs the Paid plan")
    assert messages["n"][0].startswith("More than 2 images per request needs the Paid plan")
    assert messages["tier"][0].startswith("4K needs the Paid plan")


def test_a_site_problem_stays_a_site_problem(db, staff, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ALLOWED_QUALITIES": ["low"]}
    error = refused(user=staff, quality="high", tier="2K")
    assert error.code is ErrorCode.INVALID_PARAMETERS  # the quality is the site's rule, not the plan's
    assert error.as_dict()["quality"][0].startswith("Unknown or disallowed quality 'high'")
    assert error.as_dict()["tier"][0].startswith("2K and 4K need the Paid plan")


def test_nothing_unlocks_it_says_so(db, staff):
    AccessPlan.objects.filter(name="paid").update(tiers=["1K", "2K"])
    message = refused(user=staff, tier="4K", ratio="16:9").as_dict()["tier"][0]
    assert message.startswith("2K needs the Paid plan;"), message
    assert message.endswith("4K is not part of any plan on this site.")


def test_a_missing_default_plan_fails_closed(db, staff, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "DEFAULT_PLAN": "gold"}
    error = refused(user=staff, tier="1K")
    assert error.code is ErrorCode.ACCESS_DENIED
    assert "plan 'gold' does not exist" in error.as_dict()["tier"][0]


def test_shipped_plans_apply_even_without_their_rows(db, staff):
    AccessPlan.objects.all().delete()
    assert access_for(staff).tiers == ("1K",)
    assert refused(user=staff, tier="2K").as_dict()["tier"][0].startswith("2K and 4K need the Paid plan")
    plans.assign(staff, "paid")  # creates the shipped row
    assert access_for(staff).plan == "paid"


def test_monthly_quota(db, staff, gptimage_openai):
    plan = AccessPlan.objects.create(name="capped", label="Capped", rank=1, tiers=["1K"], monthly_quota=3)
    UserPlan.objects.create(user=staff, plan=plan)
    assert request_generation(prompt=PROMPT, user=staff, n=2, quality="low").status == Status.SUCCEEDED
    error = refused(user=staff, n=2, quality="low")
    assert error.code is ErrorCode.ACCESS_DENIED
    message = error.as_dict()["n"][0]
    assert "includes 3 images a month; 2 are used this month and this request asks for 2" in message
    assert request_generation(prompt=PROMPT, user=staff, n=1, quality="low").status == Status.SUCCEEDED
    assert len([r for r in gptimage_openai.requests if r.path.startswith("/v1/images/")]) == 2


def test_custom_resolver_returning_access(db, staff, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ACCESS_RESOLVER": "tests.test_access_plans.billing_resolver"}
    from django_gptimage.service import build_request

    error = None
    try:
        check_request(build_request(prompt=PROMPT, tier="1K", quality="high"), user=staff)
    except GenerationRefused as exc:
        error = exc
    assert error is not None and error.code is ErrorCode.ACCESS_DENIED
    assert error.as_dict() == {"quality": ["high quality is not unlocked for your account."]}
    settings.GPTIMAGE = {**settings.GPTIMAGE, "ACCESS_RESOLVER": None}
    assert access_for(staff) is None


def billing_resolver(user):
    return Access(tiers=("1K",), qualities=("low",))


# -- the CLI ---------------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, dict, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("gptimage_generate", *args, "--json", "--sync", stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    return status, json.loads(out.getvalue() or "{}"), err.getvalue()


def test_cli_user_on_the_free_plan_exits_2(db, staff, gptimage_openai):
    status, payload, _ = run("--prompt", PROMPT, "--tier", "2K", "--user", "editor")
    assert status == 2
    assert payload["error_code"] == "access_denied"
    assert payload["problems"]["tier"][0].startswith("2K and 4K need the Paid plan")
    assert_nothing_sent(gptimage_openai)
    plans.assign(staff, "paid")
    status, payload, _ = run("--prompt", PROMPT, "--tier", "2K", "--quality", "low", "--user", "editor")
    assert status == 0, payload
    assert ImageGeneration.objects.get(pk=payload["id"]).requested_by == staff


def test_cli_unknown_user(db):
    with pytest.raises(CommandError, match="No user 'nobody'") as info:
        call_command("gptimage_generate", "--prompt", PROMPT, "--user", "nobody")
    assert info.value.returncode == 2


# -- the admin -------------------------------------------------------------------------------------


def test_admin_plan_pages(admin_client, staff):
    plans.assign(staff, "paid")
    response = admin_client.get("/admin/django_gptimage/accessplan/")
    assert response.status_code == 200
    assert b"Paid" in response.content and b"Free" in response.content
    for path in ("/admin/django_gptimage/userplan/", "/admin/django_gptimage/groupplan/"):
        assert admin_client.get(path).status_code == 200
    response = admin_client.post(
        "/admin/django_gptimage/accessplan/add/",
        {
            "name": "pro", "label": "Pro", "rank": "20", "tiers": ["2K", "1K"], "model_names": "gpt-image-2",
            "qualities": ["low", "high"], "max_n": "4", "monthly_quota": "", "description": "",
            "group_plans-TOTAL_FORMS": "0", "group_plans-INITIAL_FORMS": "0",
            "user_plans-TOTAL_FORMS": "0", "user_plans-INITIAL_FORMS": "0",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    pro = AccessPlan.objects.get(name="pro")
    assert (pro.tiers, pro.model_names, pro.qualities, pro.max_n, pro.monthly_quota) == (
        ["1K", "2K"], ["gpt-image-2"], ["low", "high"], 4, None,
    )  # fmt: skip
    response = admin_client.post(
        f"/admin/django_gptimage/accessplan/{pro.pk}/change/",
        {
            "name": "pro", "label": "Pro", "rank": "20", "tiers": ["1K"], "model_names": "gpt-image-9x",
            "group_plans-TOTAL_FORMS": "0", "group_plans-INITIAL_FORMS": "0",
            "user_plans-TOTAL_FORMS": "0", "user_plans-INITIAL_FORMS": "0",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert "Unknown model(s) &#x27;gpt-image-9x&#x27;" in response.content.decode()
