"""The history changelist and its actions: badges, filters, constant queries, honest messages."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_gptimage.access.plans import assign
from django_gptimage.models import GeneratedImage, ImageGeneration, Status, get_storage
from django_gptimage.service import request_generation

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:django_gptimage_imagegeneration_changelist"


@pytest.fixture
def editor(admin_user: Any, client: Any) -> Any:
    assign(admin_user, "paid")
    client.force_login(admin_user)
    return client


def act(client: Any, action: str, generations: list[ImageGeneration], **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [str(g.pk) for g in generations], **extra}
    return client.post(reverse(CHANGELIST), data, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def failed(fake: Any, prompt: str = "Fails") -> ImageGeneration:
    fake.add_fault("server_error")  # callers set MAX_ATTEMPTS = 1
    generation = request_generation(prompt=prompt, quality="low", run_mode="sync")
    assert generation.status == Status.FAILED
    return generation


def test_the_history_shows_thumbnails_badges_and_sizes(
    editor: Any, gptimage_openai: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    ok = request_generation(prompt="A long prompt " + "with many words " * 40, quality="low", ratio="16:9")
    bad = failed(gptimage_openai)
    html = editor.get(reverse(CHANGELIST)).content.decode()
    assert ok.images.get().file.url in html and 'class="gptimage-thumb"' in html
    assert '<span class="gptimage-badge gptimage-badge-succeeded"' in html and ">Succeeded</span>" in html
    assert '<span class="gptimage-badge gptimage-badge-failed"' in html and ">Failed</span>" in html
    assert '<code class="gptimage-code">provider_error</code>' in html
    assert f"{ok.width}×{ok.height}" in html and "16:9 · 1K" in html
    assert "USD" in html
    assert "with many words " * 40 not in html  # the long prompt is cut in the column
    assert "column-provider_request_id" not in html and "column-id" not in html  # no hashes in columns
    assert bad.provider_request_id not in html
    assert "Generate images" in html  # the add button says what it does


def test_filters_active_status_error_code_tier_and_mine(
    editor: Any, admin_user: Any, gptimage_openai: Any, settings: Any, queue_mode: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    queued = request_generation(prompt="Waiting", user=admin_user)
    done = request_generation(prompt="Done", quality="low", run_mode="sync", tier="2K", ratio="16:9")
    bad = failed(gptimage_openai)

    def shown(query: str) -> set[Any]:
        return {g.pk for g in editor.get(reverse(CHANGELIST) + query).context["cl"].result_list}

    assert shown("?status=active") == {queued.pk}
    assert shown("?status=succeeded") == {done.pk}
    assert shown("?error_code=provider_error") == {bad.pk}
    assert shown("?tier=2K") == {done.pk}
    assert shown("?requested_by=me") == {queued.pk}
    assert shown(f"?q={done.pk}") == {done.pk}
    assert shown(f"?q={bad.provider_request_id}") == {bad.pk}
    assert shown("?q=waiting") == {queued.pk}


def make_rows(count: int) -> None:
    for i in range(count):
        request_generation(prompt=f"Row {i}", quality="low", n=2 if i % 2 else 1)


def queries_for(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_constant_queries_at_5_and_100_rows(editor: Any, settings: Any) -> None:
    make_rows(5)
    editor.get(reverse(CHANGELIST))
    five = queries_for(editor, reverse(CHANGELIST))
    make_rows(95)
    assert ImageGeneration.objects.count() == 100
    from django_gptimage.admin.generations import ImageGenerationAdmin

    old = ImageGenerationAdmin.list_per_page
    ImageGenerationAdmin.list_per_page = 100
    try:
        hundred = queries_for(editor, reverse(CHANGELIST))
        assert len(editor.get(reverse(CHANGELIST)).context["cl"].result_list) == 100
    finally:
        ImageGenerationAdmin.list_per_page = old
    assert five == hundred, (five, hundred)


def test_retry_says_what_it_did_and_why_not(
    editor: Any, gptimage_openai: Any, settings: Any, queue_mode: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    retryable = [failed(gptimage_openai, "A"), failed(gptimage_openai, "B")]
    gptimage_openai.add_fault("moderation_blocked")
    refused = request_generation(prompt="Refused", quality="low", run_mode="sync")
    ok = request_generation(prompt="Fine", quality="low", run_mode="sync")
    response = act(editor, "retry_selected", [*retryable, refused, ok])
    (message,) = messages_of(response)
    assert message.startswith("2 queued again. 1 was not failed, so not retried. 1 cannot be retried: ")
    assert "safety system" in message
    assert queue_mode.count == 2


def test_retry_with_nothing_failed_says_so(editor: Any) -> None:
    ok = [request_generation(prompt=f"Fine {i}", quality="low") for i in range(3)]
    assert messages_of(act(editor, "retry_selected", ok)) == ["3 were not failed, so not retried."]


def test_cancel_says_what_it_did(editor: Any, queue_mode: Any) -> None:
    queued = request_generation(prompt="Not needed")
    done = request_generation(prompt="Done", quality="low", run_mode="sync")
    (message,) = messages_of(act(editor, "cancel_selected", [queued, done]))
    assert message == "1 canceled before it was sent. 1 had already finished, so nothing to cancel."
    queued.refresh_from_db()
    assert queued.status == Status.CANCELED and queue_mode.count == 0


def test_duplicate_and_compare_actions(editor: Any) -> None:
    a = request_generation(prompt="First", quality="low")
    b = request_generation(prompt="Second", quality="low")
    assert messages_of(act(editor, "duplicate_selected", [a, b])) == ["2 duplicates queued."]
    assert ImageGeneration.objects.filter(prompt="First").count() == 2
    response = editor.post(
        reverse(CHANGELIST), {"action": "compare_selected", "_selected_action": [a.pk, b.pk]}
    )
    assert response.status_code == 302 and "compare/?ids=" in response["Location"]
    (message,) = messages_of(act(editor, "compare_selected", [a]))
    assert message == "Select 2 to 4 generations to compare; 1 selected."


def test_download_originals_streams_a_zip(editor: Any, queue_mode: Any) -> None:
    a = request_generation(prompt="One", quality="low", n=2, run_mode="sync")
    b = request_generation(prompt="Two", quality="low", run_mode="sync")
    empty = request_generation(prompt="Nothing yet")
    response = editor.post(
        reverse(CHANGELIST), {"action": "download_originals", "_selected_action": [a.pk, b.pk, empty.pk]}
    )
    assert response.streaming and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert len(archive.namelist()) == 3
    assert archive.testzip() is None
    (message,) = messages_of(act(editor, "download_originals", [empty]))
    assert message == "Nothing to download: the selected generation has no images."


def test_delete_removes_the_stored_files(editor: Any) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    buffer.seek(0)
    generation = request_generation(prompt="Delete me", quality="low", images=[buffer], n=2)
    names = [i.file.name for i in generation.images.all()] + [i.file.name for i in generation.inputs.all()]
    assert len(names) == 3 and all(get_storage().exists(n) for n in names)
    response = act(editor, "delete_selected", [generation], post="yes")
    assert response.status_code == 200
    assert not ImageGeneration.objects.exists() and not GeneratedImage.objects.exists()
    assert not any(get_storage().exists(n) for n in names)


def test_delete_keeps_files_when_the_setting_says_so(editor: Any, settings: Any) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "KEEP_FILES_ON_DELETE": True}
    generation = request_generation(prompt="Keep my files", quality="low")
    name = generation.images.get().file.name
    editor.post(
        reverse("admin:django_gptimage_imagegeneration_delete", args=[generation.pk]), {"post": "yes"}
    )
    assert not ImageGeneration.objects.exists()
    assert get_storage().exists(name)


def test_a_view_only_editor_cannot_spend_money(
    client: Any, django_user_model: Any, gptimage_openai: Any, settings: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_imagegeneration"))
    client.force_login(viewer)
    bad = failed(gptimage_openai)
    changelist = client.get(reverse(CHANGELIST))
    actions = [value for value, _ in changelist.context["action_form"].fields["action"].choices]
    assert "retry_selected" not in actions and "duplicate_selected" not in actions
    assert "compare_selected" in actions and "download_originals" in actions
    assert "Generate images" not in changelist.content.decode()
    assert client.get(reverse("admin:django_gptimage_imagegeneration_add")).status_code == 403
    before = len(gptimage_openai.requests)
    response = client.post(reverse("admin:django_gptimage_imagegeneration_retry", args=[bad.pk]), follow=True)
    assert "You may not retry generations" in response.content.decode()
    client.post(reverse("admin:django_gptimage_imagegeneration_duplicate", args=[bad.pk]), follow=True)
    page = client.get(reverse("admin:django_gptimage_imagegeneration_change", args=[bad.pk])).content.decode()
    assert reverse("admin:django_gptimage_imagegeneration_retry", args=[bad.pk]) not in page
    assert "Continue editing" not in page
    upscale = client.get(reverse("admin:django_gptimage_imagegeneration_upscale", args=[1]))
    assert upscale.status_code in (403, 404)
    bad.refresh_from_db()
    assert bad.status == Status.FAILED and ImageGeneration.objects.count() == 1
    assert len(gptimage_openai.requests) == before


def test_the_count_stops_at_the_cap_and_the_page_says_so(
    editor: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django_gptimage.admin.generations import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "count_cap", 4)
    make_rows(6)
    response = editor.get(reverse(CHANGELIST), {"q": "Row"})
    cl = response.context["cl"]
    assert cl.result_count == 4 and cl.paginator.capped
    assert "Counted up to 4: more generations match." in response.content.decode()
    # Under the cap the count is exact and nothing is said.
    response = editor.get(reverse(CHANGELIST), {"q": "Row 1"})
    assert response.context["cl"].result_count == 1 and not response.context["cl"].paginator.capped
    assert "Counted up to" not in response.content.decode()


def test_prompt_search_has_its_trigram_index_on_postgresql_only() -> None:
    from django.core.checks import run_checks

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'gptimage_prompt_trgm'")
            assert "gin_trgm_ops" in cursor.fetchone()[0]
            assert not [m for m in run_checks(databases=["default"]) if m.id == "django_gptimage.W008"]
            cursor.execute("DROP INDEX gptimage_prompt_trgm")
            try:
                warnings = [m for m in run_checks(databases=["default"]) if m.id == "django_gptimage.W008"]
                assert len(warnings) == 1 and "CREATE INDEX gptimage_prompt_trgm" in warnings[0].hint
            finally:
                cursor.execute(
                    "CREATE INDEX gptimage_prompt_trgm ON django_gptimage_imagegeneration "
                    "USING gin (UPPER(prompt) gin_trgm_ops)"
                )
        else:  # the migration leaves other databases alone, and the check has nothing to say
            names = connection.introspection.get_constraints(cursor, "django_gptimage_imagegeneration")
            assert "gptimage_prompt_trgm" not in names
            assert not [m for m in run_checks(databases=["default"]) if m.id == "django_gptimage.W008"]


def test_offline_placeholders_are_not_billed_in_the_history(editor: Any) -> None:
    generation = request_generation(prompt="A placeholder", quality="low")
    assert generation.provider == "offline"
    html = editor.get(reverse(CHANGELIST)).content.decode()
    assert 'title="not billed (offline provider)">not billed</span>' in html and "0.0000 USD" not in html
