"""The admin history's actions go through the service API and tell the editor what happened."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import request_generation

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:django_gptimage_imagegeneration_changelist"


def failed_generation(fake: Any) -> ImageGeneration:
    fake.add_fault("server_error", times=10)
    generation = request_generation(prompt="Fails for now", quality="low", run_mode="sync")
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "provider_error"
    return generation


def post_action(client: Any, action: str, generation: ImageGeneration) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(generation.pk)]},
        follow=True,
    )


def test_retry_action_queues_the_generation_again(
    admin_client: Any, gptimage_openai: Any, queue_mode: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    generation = failed_generation(gptimage_openai)
    response = post_action(admin_client, "retry_selected", generation)
    assert response.status_code == 200
    assert "1 queued again." in response.content.decode()
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.error_code == ""
    assert queue_mode.count == 1


def test_retry_action_with_redis_down_says_so_and_changes_nothing(
    admin_client: Any, gptimage_openai: Any, queue_mode: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    generation = failed_generation(gptimage_openai)
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_mode.name: {"URL": "redis://127.0.0.1:1/0"}}
    response = post_action(admin_client, "retry_selected", generation)
    assert response.status_code == 200  # a message, not a server error
    assert "background queue is not reachable" in response.content.decode()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "provider_error"


def test_cancel_action_cancels_a_queued_generation(admin_client: Any, queue_mode: Any) -> None:
    generation = request_generation(prompt="Not needed after all")
    assert queue_mode.count == 1
    response = post_action(admin_client, "cancel_selected", generation)
    assert "1 canceled before it was sent." in response.content.decode()
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert queue_mode.count == 0


def test_the_history_shows_the_outcome_an_editor_can_read(
    admin_client: Any, gptimage_openai: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    generation = failed_generation(gptimage_openai)
    page = admin_client.get(reverse("admin:django_gptimage_imagegeneration_change", args=[generation.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "The image service had an internal error or is overloaded." in html
    assert generation.provider_request_id in html
    assert gptimage_openai.api_key not in html
