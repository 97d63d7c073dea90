"""``manage.py gptimage_generate`` in queue mode: --wait with a real worker, --json, exit codes."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from PIL import Image

from django_gptimage.models import ImageGeneration, get_storage
from django_gptimage.providers import reset_providers

pytestmark = pytest.mark.django_db(transaction=True)

JSON_KEYS = {
    "id",
    "status",
    "error_code",
    "error_message",
    "width",
    "height",
    "files",
    "provider_request_id",
    "cost",
}


@pytest.fixture
def media(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def worker(thread_worker: Any) -> Any:
    """gptimage_worker's pool running in a thread of this process (shares this test's settings)."""
    return thread_worker(concurrency=2)


def generate(*args: str) -> tuple[int, dict[str, Any], str]:
    """Run the command; returns (exit status, the --json object, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("gptimage_generate", *args, "--json", stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    text = out.getvalue().strip()
    return status, (json.loads(text) if text else {}), err.getvalue()


def image_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.startswith("/v1/images/")]


def check_png(name: str, size: tuple[int, int]) -> None:
    with get_storage().open(name) as fh, Image.open(fh) as image:
        assert image.format == "PNG"
        assert image.size == size


def test_wait_prints_the_final_record_offline(worker: Any, media: Any) -> None:
    status, record, err = generate(
        "--prompt", "A harbour at dawn", "--ratio", "16:9", "--tier", "2K", "--wait"
    )
    assert status == 0, err
    assert set(record) >= JSON_KEYS
    assert (
        record["status"] == "succeeded" and record["error_code"] is None and record["error_message"] is None
    )
    assert (record["width"], record["height"]) == (2048, 1152)
    assert record["provider_request_id"].startswith("offline-")
    assert Decimal(record["cost"]) == 0  # the offline provider bills nothing
    [name] = record["files"]
    check_png(name, (2048, 1152))
    assert ImageGeneration.objects.get(pk=record["id"]).source == "cli"


def test_wait_with_the_openai_provider_configured_by_environment(
    worker: Any, queue_mode: Any, fake_openai: Any, settings: Any, monkeypatch: Any, media: Any
) -> None:
    key = "sk-env-only-test-key"
    fake_openai.api_key = key
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    gptimage = {k: v for k, v in settings.GPTIMAGE.items() if k not in ("PROVIDER", "API_KEY", "BASE_URL")}
    settings.GPTIMAGE = gptimage  # no provider named: a key in the environment means openai
    reset_providers()

    status, record, err = generate(
        "--prompt", "A harbour at dawn", "--ratio", "16:9", "--tier", "2K", "--quality", "low", "--wait"
    )
    assert status == 0, err
    assert record["status"] == "succeeded"
    [sent] = image_requests(fake_openai)
    assert sent.json["size"] == "2048x1152" and sent.json["output_format"] == "png"
    assert sent.headers["authorization"] == "Bearer ***"  # it was sent (and checked by the server)
    assert record["provider_request_id"].startswith("req_")
    assert record["cost"] is not None and float(record["cost"]) > 0
    [name] = record["files"]
    check_png(name, (2048, 1152))
    reset_providers()


def test_a_failed_generation_exits_1(worker: Any, gptimage_openai: Any, media: Any) -> None:
    gptimage_openai.add_fault("moderation_blocked")
    status, record, err = generate(
        "--prompt", "Something the safety system refuses", "--quality", "low", "--wait"
    )
    assert status == 1, err
    assert record["status"] == "failed" and record["error_code"] == "moderation_blocked"
    assert "safety system" in record["error_message"]
    assert record["files"] == [] and record["provider_request_id"].startswith("req_")
    assert len(image_requests(gptimage_openai)) == 1


def test_a_refused_request_exits_2_with_nothing_enqueued_or_sent(
    queue_mode: Any, gptimage_openai: Any, media: Any
) -> None:
    status, record, _ = generate("--prompt", "Too many", "--n", "99", "--wait")
    assert status == 2
    assert record["status"] == "refused" and record["id"] is None
    assert record["error_code"] == "invalid_parameters" and "n" in record["problems"]
    assert ImageGeneration.objects.count() == 0
    assert queue_mode.count == 0
    assert image_requests(gptimage_openai) == []


def test_without_wait_it_exits_0_with_the_record_queued(queue_mode: Any, media: Any) -> None:
    status, record, _ = generate("--prompt", "Later")
    assert status == 0
    assert record["status"] == "queued"
    assert queue_mode.count == 1


def test_redis_down_exits_1_with_one_json_object(queue_mode: Any, settings: Any, media: Any) -> None:
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, queue_mode.name: {"URL": "redis://127.0.0.1:1/0"}}
    status, record, _ = generate("--prompt", "While Redis is down", "--wait")
    assert status == 1
    assert set(record) >= JSON_KEYS
    assert record["status"] == "failed" and record["error_code"] == "queue_unavailable"
    assert "not reachable" in record["error_message"]
    assert ImageGeneration.objects.count() == 0


def test_image_to_image_with_a_mask_from_the_command_line(
    worker: Any, gptimage_openai: Any, media: Any, tmp_path: Any
) -> None:
    source, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.new("RGB", (1024, 1536), "teal").save(source)
    Image.new("RGBA", (1024, 1536), (0, 0, 0, 0)).save(mask)
    status, record, err = generate(
        "--prompt", "Put a red umbrella in it", "--image", str(source), "--mask", str(mask),
        "--ratio", "2:3", "--format", "webp", "--compression", "80", "--background", "opaque",
        "--quality", "low", "--wait",
    )  # fmt: skip
    assert status == 0, err
    [sent] = image_requests(gptimage_openai)
    assert sent.path == "/v1/images/edits"
    assert sent.form["output_format"] == "webp" and sent.form["output_compression"] == "80"
    assert sent.form["background"] == "opaque" and sent.form["size"] == "688x1024"  # 2:3 at 1K
    assert {f.field for f in sent.files} == {"image", "mask"}
    [name] = record["files"]
    with get_storage().open(name) as fh, Image.open(fh) as image:
        assert image.format == "WEBP" and image.size == (688, 1024)


@pytest.mark.parametrize("flag", ["--image", "--mask"])
def test_a_missing_input_file_is_a_field_level_refusal(
    queue_mode: Any, gptimage_openai: Any, media: Any, tmp_path: Any, flag: str
) -> None:
    present = tmp_path / "photo.png"
    Image.new("RGB", (1024, 1024), "teal").save(present)
    args = ["--image", str(present), "--mask", str(tmp_path / "nope.png")]
    if flag == "--image":
        args = ["--image", str(tmp_path / "nope.png")]
    status, record, _ = generate("--prompt", "Edit it", "--ratio", "1:1", *args, "--wait")
    assert status == 2
    field = "images" if flag == "--image" else "mask"
    assert "cannot be read" in " ".join(record["problems"][field])
    assert image_requests(gptimage_openai) == [] and ImageGeneration.objects.count() == 0


def test_sync_runs_in_this_process_without_a_worker(queue_mode: Any, media: Any) -> None:
    status, record, err = generate("--prompt", "Right here", "--ratio", "3:2", "--sync")
    assert status == 0, err
    assert record["status"] == "succeeded" and (record["width"], record["height"]) == (1024, 688)
    assert queue_mode.count == 0
