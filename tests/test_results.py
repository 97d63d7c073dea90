"""Paid-for results are never lost, and broken answers end as ``bad_response``.

The runner keeps the decoded bytes in ``SPOOL_DIR`` and records them (``metadata["spooled"]``)
before it touches storage. A storage failure ends as ``storage_error`` with the bytes kept; a
retry stores them without calling the provider again. Generations run against the fake OpenAI
server (``gptimage_openai``), in this process (``RUN_MODE = "sync"``).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, ClassVar

import pytest
from django.core.files.storage import FileSystemStorage

from django_gptimage.models import GeneratedImage, ImageGeneration, Status, get_storage
from django_gptimage.service import GenerationNotRetryable, request_generation, retry_generation

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyStorage(FileSystemStorage):
    """A FileSystemStorage whose writes fail after ``allowed`` successful ones, while ``broken``.

    On every write it also records what the database says about the generation at that
    moment, to prove the bytes were recorded before storage was tried.
    """

    broken: ClassVar[bool] = True
    allowed: ClassVar[int] = 0
    writes: ClassVar[int] = 0
    seen_before_write: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def reset(cls, *, broken: bool = True, allowed: int = 0) -> None:
        cls.broken, cls.allowed, cls.writes = broken, allowed, 0
        cls.seen_before_write = []

    def _save(self, name: str, content: Any) -> str:
        for generation in ImageGeneration.objects.all():
            FlakyStorage.seen_before_write.append(
                {
                    "spooled": generation.metadata.get("spooled"),
                    "files_exist": all(
                        os.path.exists(s["path"]) for s in generation.metadata.get("spooled", [])
                    ),
                    "spool_dir": generation.spool_dir,
                }
            )
        if FlakyStorage.broken and FlakyStorage.writes >= FlakyStorage.allowed:
            raise OSError(28, "No space left on device")
        FlakyStorage.writes += 1
        return super()._save(name, content)


@pytest.fixture
def openai(gptimage_openai, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.GPTIMAGE = {**settings.GPTIMAGE, "SPOOL_DIR": str(tmp_path / "spool")}
    return gptimage_openai


@pytest.fixture
def flaky(settings, openai):
    settings.STORAGES = {**settings.STORAGES, "flaky": {"BACKEND": f"{__name__}.FlakyStorage"}}
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "flaky", "MAX_ATTEMPTS": 3}
    FlakyStorage.reset()
    yield FlakyStorage
    FlakyStorage.reset()


def image_requests(server: Any) -> int:
    return sum(1 for r in server.requests if r.path.startswith("/v1/images/"))


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def stored_sha256(name: str) -> str:
    with get_storage().open(name, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def test_storage_failure_keeps_the_paid_bytes_and_retry_does_not_pay_twice(openai, flaky):
    generation = request_generation(prompt="A lighthouse in fog", n=2, ratio="16:9")
    generation.refresh_from_db()

    assert generation.status == Status.FAILED
    assert generation.error_code == "storage_error"
    assert "No space left on device" in generation.error_message
    assert "has been kept" in generation.editor_message
    spooled = generation.metadata["spooled"]
    assert [s["index"] for s in spooled] == [0, 1]
    for item in spooled:
        assert os.path.isfile(item["path"])
        assert item["path"].startswith(generation.spool_dir)
        assert sha256_of(item["path"]) == item["sha256"]
        assert os.path.getsize(item["path"]) == item["size_bytes"]
    # Recorded before the first write was even tried, with the files already on disk.
    assert flaky.seen_before_write
    first = flaky.seen_before_write[0]
    assert first["spooled"] == spooled and first["files_exist"] and first["spool_dir"]
    # The automatic store-only retries (MAX_ATTEMPTS = 3) never called the provider.
    attempts = list(generation.attempt_log.order_by("number"))
    assert [a.outcome for a in attempts] == ["storage_error"] * 3
    assert image_requests(openai) == 1
    assert not generation.images.exists()
    # The usage was paid and recorded even though nothing is stored yet.
    assert generation.usage and generation.usage["output_tokens"] > 0

    flaky.reset(broken=False)
    generation = retry_generation(generation)

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert image_requests(openai) == 1
    images = list(generation.images.order_by("index"))
    assert [(i.index, i.sha256, i.size_bytes) for i in images] == [
        (s["index"], s["sha256"], s["size_bytes"]) for s in spooled
    ]
    for image in images:
        assert stored_sha256(image.file.name) == image.sha256
    assert generation.attempt_log.count() == 4
    assert generation.spool_dir == "" and "spooled" not in generation.metadata
    assert not any(os.path.exists(s["path"]) for s in spooled)


def test_retry_after_a_partial_store_only_writes_what_is_missing(openai, flaky):
    flaky.reset(allowed=1)  # the first image is stored, the second fails
    generation = request_generation(prompt="Three pears on a plate", n=2)
    generation.refresh_from_db()

    assert generation.error_code == "storage_error"
    assert list(generation.images.values_list("index", flat=True)) == [0]
    first_name = generation.images.get().file.name

    flaky.reset(broken=False)
    generation = retry_generation(generation)

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert image_requests(openai) == 1
    assert flaky.writes == 1  # only the missing image
    assert list(generation.images.order_by("index").values_list("index", flat=True)) == [0, 1]
    assert generation.images.get(index=0).file.name == first_name
    for image in generation.images.all():
        assert stored_sha256(image.file.name) == image.sha256


def test_a_kept_file_that_is_gone_is_a_storage_error_and_the_others_stay(openai, flaky):
    generation = request_generation(prompt="A kite", n=2)
    generation.refresh_from_db()
    assert generation.error_code == "storage_error"
    gone, other = generation.metadata["spooled"]
    os.unlink(gone["path"])

    flaky.reset(broken=False)
    generation = retry_generation(generation)

    # Not "bad_response": the provider's answer was fine, the kept copy went missing. And the
    # other paid-for image is still kept.
    assert generation.status == Status.FAILED
    assert generation.error_code == "storage_error"
    assert "gone" in generation.error_message
    assert sha256_of(other["path"]) == other["sha256"]
    assert generation.metadata["spooled"] == [gone, other]
    assert image_requests(openai) == 1


def test_happy_path_stores_and_empties_the_spool(openai):
    generation = request_generation(prompt="A quiet harbour", n=3, ratio="3:2")
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert generation.images.count() == 3
    for image in generation.images.all():
        assert stored_sha256(image.file.name) == image.sha256
        assert (image.width, image.height) == (1024, 688)
    attempt = generation.attempt_log.get()
    assert attempt.maybe_billed and attempt.provider_request_id.startswith("req_")
    assert not os.path.exists(openai_spool(generation))


def openai_spool(generation: ImageGeneration) -> str:
    from django_gptimage.conf import gptimage_settings

    return os.path.join(gptimage_settings.SPOOL_DIR, str(generation.pk))


def test_wrong_size_keeps_the_paid_images_but_fails_as_bad_response(openai):
    openai.add_fault("wrong_size")
    generation = request_generation(prompt="A tram at night", ratio="16:9", n=2)
    generation.refresh_from_db()

    assert generation.status == Status.FAILED
    assert generation.error_code == "bad_response"
    assert "1088x608" in generation.error_message and "544x304" in generation.error_message
    images = list(generation.images.order_by("index"))
    assert len(images) == 2
    for image in images:
        assert (image.width, image.height) == (544, 304)
        assert stored_sha256(image.file.name) == image.sha256
    assert generation.attempt_log.get().maybe_billed
    assert not os.path.exists(openai_spool(generation))
    assert image_requests(openai) == 1
    with pytest.raises(GenerationNotRetryable):
        retry_generation(generation)


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ("not_image", "not a readable image"),
        ("truncated", "cut off"),
        ("not_json", "not JSON"),
    ],
)
def test_unusable_answers_fail_as_bad_response_and_leave_nothing(openai, fault, detail):
    openai.add_fault(fault)
    generation = request_generation(prompt="A tram at night", n=2)
    generation.refresh_from_db()

    assert generation.status == Status.FAILED
    assert generation.error_code == "bad_response"
    assert detail in generation.error_message
    assert "not a usable image" in generation.editor_message
    assert not GeneratedImage.objects.filter(generation=generation).exists()
    assert generation.attempt_log.get().maybe_billed
    assert "spooled" not in generation.metadata
    assert not os.path.exists(openai_spool(generation)) or not any(
        files for _, _, files in os.walk(openai_spool(generation))
    )
    assert image_requests(openai) == 1  # bad_response is never retried automatically
    with pytest.raises(GenerationNotRetryable):
        retry_generation(generation)


class ReapedWhileSavingStorage(FileSystemStorage):
    """Saves the image, then the reaper judges this worker dead (a stall right after the write):
    everything the worker does next happens after its claim is gone."""

    def _save(self, name: str, content: Any) -> str:
        from django_gptimage.jobs.reaper import reap

        stored = super()._save(name, content)
        reap(stale_after=-1)  # every running record counts as stale: this one goes back, store-only
        return stored


@pytest.fixture
def reaped_while_saving(settings, openai):
    settings.STORAGES = {
        **settings.STORAGES,
        "reaped": {
            "BACKEND": f"{__name__}.ReapedWhileSavingStorage",
            "OPTIONS": {"location": settings.MEDIA_ROOT},
        },
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "reaped"}
    return openai


def first_attempt_taken_over(settings) -> ImageGeneration:
    generation = request_generation(prompt="A lighthouse at dusk")
    generation.refresh_from_db()
    # The reaper took it back while the image was being stored: queued for a store-only retry.
    assert generation.status == Status.QUEUED, generation.error_message
    assert "without generating (or paying) twice" in generation.error_message
    assert generation.images.count() == 1  # the late worker's write of the same paid bytes
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "default"}
    return generation


def test_a_worker_that_lost_its_claim_leaves_the_kept_bytes_to_the_retry(reaped_while_saving, settings):
    """Load test finding: the spool was removed before the record let go of it, so a worker
    killed (or taken over) in between left a store-only retry that failed with "the kept image
    file is gone", its image stored all along. The record forgets the spool first now."""
    from django_gptimage.jobs.runner import run_generation

    generation = first_attempt_taken_over(settings)
    [item] = generation.metadata["spooled"]
    assert os.path.isfile(item["path"])  # not removed by the worker that lost its claim

    run_generation(generation.pk)  # the store-only retry
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert [a.outcome for a in generation.attempt_log.order_by("number")] == ["abandoned", "succeeded"]
    [image] = generation.images.all()
    assert image.sha256 == item["sha256"] and stored_sha256(image.file.name) == item["sha256"]
    assert image_requests(reaped_while_saving) == 1
    assert generation.spool_dir == "" and not os.path.exists(item["path"])


def test_a_store_only_retry_needs_no_kept_file_for_an_image_already_stored(reaped_while_saving, settings):
    """The retry runs where the kept file is not (another host, a wiped temporary directory): an
    image an earlier attempt already stored is judged by its row, not failed as gone."""
    from django_gptimage.jobs.runner import run_generation

    generation = first_attempt_taken_over(settings)
    [item] = generation.metadata["spooled"]
    os.unlink(item["path"])

    run_generation(generation.pk)
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert generation.images.get().sha256 == item["sha256"]
    assert image_requests(reaped_while_saving) == 1


class AnswerLostStorage(FileSystemStorage):
    """Writes the file, then fails as if the upload's answer never came (a dropped connection
    after the bytes arrived), once per test."""

    failed: ClassVar[bool] = False

    def _save(self, name: str, content: Any) -> str:
        stored = super()._save(name, content)
        if not AnswerLostStorage.failed:
            AnswerLostStorage.failed = True
            raise OSError(104, "Connection reset by peer")
        return stored


def test_a_store_only_retry_keeps_the_file_an_interrupted_attempt_wrote(settings, openai):
    """Load test finding: a worker killed between writing an image and recording it left that
    file behind, and the retry wrote the same bytes again under a "-1" name."""
    settings.STORAGES = {
        **settings.STORAGES,
        "lost": {"BACKEND": f"{__name__}.AnswerLostStorage", "OPTIONS": {"location": settings.MEDIA_ROOT}},
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "lost", "MAX_ATTEMPTS": 3}
    AnswerLostStorage.failed = False
    generation = request_generation(prompt="A lighthouse at dusk")  # sync: the retry runs at once
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert [a.outcome for a in generation.attempt_log.order_by("number")] == ["storage_error", "succeeded"]
    [image] = generation.images.all()
    folder = os.path.dirname(get_storage().path(image.file.name))
    assert os.listdir(folder) == [os.path.basename(image.file.name)]  # one file, not two
    assert "-1." not in image.file.name and stored_sha256(image.file.name) == image.sha256
    assert image_requests(openai) == 1


def test_a_different_file_under_the_name_is_not_taken_for_the_image(settings, openai):
    """A file under the name with other bytes (cut off mid-write) is never reused."""
    settings.STORAGES = {
        **settings.STORAGES,
        "lost": {"BACKEND": f"{__name__}.AnswerLostStorage", "OPTIONS": {"location": settings.MEDIA_ROOT}},
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "lost", "MAX_ATTEMPTS": 1}
    AnswerLostStorage.failed = False
    generation = request_generation(prompt="A lighthouse at noon")
    generation.refresh_from_db()
    assert generation.error_code == "storage_error"
    [left] = [os.path.join(d, f) for d, _, files in os.walk(settings.MEDIA_ROOT) for f in files]
    with open(left, "r+b") as handle:
        handle.truncate(100)  # what a worker killed mid-write leaves

    generation = retry_generation(generation)
    assert generation.status == Status.SUCCEEDED, generation.error_message
    image = generation.images.get()
    assert image.file.name.endswith("-1.png") and stored_sha256(image.file.name) == image.sha256
