"""The JSON status endpoint: who may watch what, what it says, and that it stays cheap."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_gptimage.models import GeneratedImage, ImageGeneration, Status
from django_gptimage.service import generation_status, request_generation

pytestmark = pytest.mark.django_db(transaction=True)


def url(generation: ImageGeneration) -> str:
    return reverse("gptimage:generation-status", args=[generation.pk])


def user_with_view(django_user_model: Any, name: str, *, staff: bool = False) -> Any:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=staff)
    user.user_permissions.add(Permission.objects.get(codename="view_imagegeneration"))
    return user


def made_by(user: Any, prompt: str) -> ImageGeneration:
    """A finished generation recorded as ``user``'s (who may lack the permission to generate)."""
    generation = request_generation(prompt=prompt, quality="low")
    ImageGeneration.objects.filter(pk=generation.pk).update(requested_by=user)
    generation.refresh_from_db()
    return generation


def test_a_finished_generation_reports_its_images(admin_client: Any) -> None:
    generation = request_generation(prompt="Two lighthouses", quality="low", n=2, ratio="16:9")
    response = admin_client.get(url(generation))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["status"] == "succeeded" and body["is_final"] is True and body["poll_after"] is None
    assert body["attempt"] == 1 and body["error"] is None
    assert [i["index"] for i in body["images"]] == [0, 1]
    image = GeneratedImage.objects.get(generation=generation, index=0)
    assert body["images"][0]["url"] == image.file.url
    assert (body["images"][0]["width"], body["images"][0]["height"]) == (image.width, image.height)
    assert body["line"].startswith(f"Succeeded: 2 images, {generation.width}x{generation.height}, in ")
    assert body["cost"]["currency"] == "USD"
    assert body["params"]["ratio"] == "16:9"


def test_a_failure_says_what_to_do_next(admin_client: Any, gptimage_openai: Any, settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    gptimage_openai.add_fault("server_error", times=5)
    generation = request_generation(prompt="Fails", quality="low")
    body = admin_client.get(url(generation)).json()
    assert body["status"] == "failed" and body["is_final"]
    assert body["error"] == {
        "code": "provider_error",
        "message": "The image service had an internal error or is overloaded.",
        "detail": body["error"]["detail"],
        "text": f"{body['error']['message']} ({body['error']['detail']})",
        "next_action": "retry",
        "next_step": "Retry in a few minutes.",
        "retryable": True,
        "maybe_billed": False,
    }
    assert "gave up after 1 attempt" in body["error"]["detail"]
    assert body["line"] == "Failed: The image service had an internal error or is overloaded."


def test_moderation_suggests_rephrasing_not_retrying(admin_client: Any, gptimage_openai: Any) -> None:
    gptimage_openai.add_fault("moderation_blocked")
    generation = request_generation(prompt="Refused", quality="low")
    error = admin_client.get(url(generation)).json()["error"]
    assert error["code"] == "moderation_blocked"
    assert (error["next_action"], error["retryable"]) == ("rephrase", False)


def test_a_queued_generation_asks_to_be_polled_again(admin_client: Any, queue_mode: Any) -> None:
    generation = request_generation(prompt="Waits for a worker")
    body = admin_client.get(url(generation)).json()
    assert body["status"] == "queued" and body["is_final"] is False and body["poll_after"] == 2.0
    assert body["phase_label"] == "Waiting for a worker"
    assert body["images"] == [] and body["preview_url"] is None


def test_anonymous_gets_401_json(client: Any) -> None:
    generation = request_generation(prompt="Private", quality="low")
    response = client.get(url(generation))
    assert response.status_code == 401
    assert response.json() == {"error": "Sign in to follow this generation."}


def test_without_view_permission_403(client: Any, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    generation = made_by(user, "Private")
    client.force_login(user)
    assert client.get(url(generation)).status_code == 403


def test_non_staff_see_only_their_own(client: Any, django_user_model: Any) -> None:
    alice = user_with_view(django_user_model, "alice")
    bob = user_with_view(django_user_model, "bob")
    mine = made_by(alice, "Alice's")
    theirs = made_by(bob, "Bob's")
    client.force_login(alice)
    assert client.get(url(mine)).status_code == 200
    response = client.get(url(theirs))
    assert response.status_code == 404
    assert "Bob" not in response.content.decode()


def test_staff_with_view_permission_see_everyones(client: Any, django_user_model: Any) -> None:
    editor = user_with_view(django_user_model, "editor", staff=True)
    other = user_with_view(django_user_model, "other")
    generation = made_by(other, "Someone else's")
    client.force_login(editor)
    assert client.get(url(generation)).json()["id"] == str(generation.pk)


def test_post_is_not_allowed(admin_client: Any) -> None:
    generation = request_generation(prompt="Read only", quality="low")
    assert admin_client.post(url(generation)).status_code == 405


def test_unknown_id_is_404(admin_client: Any) -> None:
    response = admin_client.get(
        reverse("gptimage:generation-status", args=["0" * 8 + "-0000-0000-0000-" + "0" * 12])
    )
    assert response.status_code == 404


def test_constant_queries_whatever_the_number_of_images(
    client: Any, django_user_model: Any, django_assert_num_queries: Any
) -> None:
    user = user_with_view(django_user_model, "counter", staff=True)
    one = made_by(user, "One")
    four = request_generation(prompt="Four", quality="low", n=4)
    client.force_login(user)
    client.get(url(one))  # warm the session and the permission cache of this request path
    # session + user + 2 permission lookups + the record + its images
    with django_assert_num_queries(6):
        assert len(client.get(url(one)).json()["images"]) == 1
    with django_assert_num_queries(6):
        assert len(client.get(url(four)).json()["images"]) == 4


def test_generation_status_reads_nothing_but_the_record_and_images(django_assert_num_queries: Any) -> None:
    generation = request_generation(prompt="Counted", quality="low", n=3)
    fetched = ImageGeneration.objects.prefetch_related("images").get(pk=generation.pk)
    with django_assert_num_queries(0):
        status = generation_status(fetched)
    assert status["status"] == Status.SUCCEEDED and len(status["images"]) == 3


def test_offline_placeholders_are_not_billed(admin_client: Any) -> None:
    cost = admin_client.get(url(request_generation(prompt="A placeholder", quality="low"))).json()["cost"]
    assert cost["billing"] == "not_billed" and cost["label"] == "not billed (offline provider)"


def test_cost_says_whether_it_was_billed(admin_client: Any, gptimage_openai: Any, settings: Any) -> None:
    """One label for every face (history, generation page, widget): never an estimate passed
    off as a charge."""
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    billed = request_generation(prompt="Billed", quality="low")
    cost = admin_client.get(url(billed)).json()["cost"]
    assert cost["billing"] == "billed" and cost["label"] == cost["display"] and cost["actual"] is not None

    gptimage_openai.add_fault("server_error", times=1)
    failed = request_generation(prompt="Fails", quality="low")
    cost = admin_client.get(url(failed)).json()["cost"]
    assert cost["billing"] == "not_billed" and cost["actual"] is None
    assert cost["label"] == f"not billed ({cost['display']} estimated)"

    settings.GPTIMAGE = {**settings.GPTIMAGE, "READ_TIMEOUT": 0.5}
    gptimage_openai.add_fault("delay", seconds=3.0)
    timed_out = request_generation(prompt="Too slow", quality="low")
    assert timed_out.error_code == "timeout"
    cost = admin_client.get(url(timed_out)).json()["cost"]
    assert cost["billing"] == "maybe_billed"
    assert cost["label"] == f"{cost['display']} (estimate; may have been billed)"


def test_a_queued_generation_shows_its_estimate(
    admin_client: Any, queue_mode: Any, gptimage_openai: Any
) -> None:
    cost = admin_client.get(url(request_generation(prompt="Waiting", quality="low"))).json()["cost"]
    assert cost["billing"] == "estimate" and cost["label"] == f"{cost['display']} (estimate)"
