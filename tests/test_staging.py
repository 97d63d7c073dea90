"""Paid bytes across hosts: a store-only retry that runs on another host stores the staged copy.

The "other host" is a second ``SPOOL_DIR`` for the retry, with the first host's spool moved out
of reach (its absolute paths no longer exist). The result storage refuses its first write, as a
bucket briefly unreachable would; the retry is the one the runner scheduled, moved by RQ's scheduler and run by a real RQ worker.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.files.storage import FileSystemStorage

from django_gptimage.models import GeneratedImage, ImageGeneration, Status, get_storage
from django_gptimage.service import request_generation
from tests.conftest import run_burst

pytestmark = pytest.mark.django_db(transaction=True)


class FirstSaveFails(FileSystemStorage):
    """Refuses its first write after ``reset()``, then works."""

    failed: ClassVar[bool] = False

    def _save(self, name: str, content: Any) -> str:
        if not FirstSaveFails.failed:
            FirstSaveFails.failed = True
            raise OSError(5, "Input/output error")
        return super()._save(name, content)


@pytest.fixture
def hosts(
    settings: Any, tmp_path: Path, queue_mode: Any, rq_scheduler: Any, gptimage_openai: Any
) -> dict[str, Path]:
    FirstSaveFails.failed = False
    paths = {name: tmp_path / name for name in ("media", "staging", "host-a", "host-b")}
    settings.MEDIA_ROOT = str(paths["media"])
    settings.STORAGES = {
        **settings.STORAGES,
        "results": {"BACKEND": f"{__name__}.FirstSaveFails", "OPTIONS": {"location": str(paths["media"])}},
        "staging": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(paths["staging"])},
        },
    }
    settings.GPTIMAGE = {
        **settings.GPTIMAGE, "STORAGE": "results", "SPOOL_DIR": str(paths["host-a"]), "MAX_ATTEMPTS": 3,
    }  # fmt: skip
    return paths


def image_requests(server: Any) -> int:
    return sum(1 for r in server.requests if r.path.startswith("/v1/images/"))


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def first_attempt_fails_storing(hosts: dict[str, Path], queue_mode: Any) -> ImageGeneration:
    generation = request_generation(prompt="A lighthouse in fog", n=2)
    run_burst(queue_mode.name)  # the first attempt only: its retry waits in the scheduled registry
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED and generation.error_code == "storage_error"
    assert all(s["path"].startswith(str(hosts["host-a"])) for s in generation.metadata["spooled"])
    return generation


def move_to_another_host(settings: Any, hosts: dict[str, Path]) -> None:
    """The retry runs where host A's disk is not: its spool paths do not exist there (and the
    record names host A, as it would have when a worker there received the images)."""
    hosts["host-a"].rename(hosts["host-a"].with_name("host-a-unreachable"))
    settings.GPTIMAGE = {**settings.GPTIMAGE, "SPOOL_DIR": str(hosts["host-b"])}
    [generation] = ImageGeneration.objects.all()
    ImageGeneration.objects.filter(pk=generation.pk).update(
        metadata={**generation.metadata, "spool_host": "host-a"}
    )


def test_a_store_only_retry_on_another_host_stores_the_staged_copy(
    hosts: dict[str, Path], settings: Any, queue_mode: Any, run_worker: Any, gptimage_openai: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STAGING_STORAGE": "staging"}
    generation = first_attempt_fails_storing(hosts, queue_mode)
    spooled = generation.metadata["spooled"]
    assert all(s["staged"].startswith(f"gptimage-staging/{generation.pk}/") for s in spooled)
    assert len(files_under(hosts["staging"])) == 2

    move_to_another_host(settings, hosts)
    run_worker()

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert image_requests(gptimage_openai) == 1  # paid once, stored by the retry
    images = list(GeneratedImage.objects.filter(generation=generation).order_by("index"))
    assert [(i.index, i.sha256) for i in images] == [(s["index"], s["sha256"]) for s in spooled]
    for image in images:
        with get_storage().open(image.file.name, "rb") as handle:
            assert hashlib.file_digest(handle, "sha256").hexdigest() == image.sha256
    outcomes = list(generation.attempt_log.order_by("number").values_list("outcome", flat=True))
    assert outcomes == ["storage_error", "succeeded"]
    # Nothing left: no staged copy, no spool on host B, nothing recorded as kept.
    assert files_under(hosts["staging"]) == []
    assert files_under(hosts["host-b"]) == []
    assert generation.spool_dir == "" and "spooled" not in generation.metadata


def test_without_staging_the_retry_on_another_host_finds_the_bytes_gone(
    hosts: dict[str, Path], settings: Any, queue_mode: Any, run_worker: Any, gptimage_openai: Any, caplog: Any
) -> None:
    """The fault the staging storage exists for: the same run, without it, loses the images
    (and the log says why, and what to set)."""
    first_attempt_fails_storing(hosts, queue_mode)
    move_to_another_host(settings, hosts)
    caplog.set_level(logging.ERROR, logger="django_gptimage")
    run_worker()
    generation = ImageGeneration.objects.get()
    assert generation.status == Status.FAILED and generation.error_code == "storage_error"
    assert "gone" in generation.error_message
    assert "received on host host-a" in caplog.text and "STAGING_STORAGE" in caplog.text
    assert not generation.images.exists()
    assert image_requests(gptimage_openai) == 1


def test_a_staged_copy_that_does_not_match_is_not_stored(
    hosts: dict[str, Path], settings: Any, queue_mode: Any, run_worker: Any, gptimage_openai: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STAGING_STORAGE": "staging"}
    generation = first_attempt_fails_storing(hosts, queue_mode)
    staged = hosts["staging"] / generation.metadata["spooled"][0]["staged"]
    staged.write_bytes(staged.read_bytes()[:-1] + b"\0")  # corrupted in the staging storage
    move_to_another_host(settings, hosts)
    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "storage_error"
    assert "gone" in generation.error_message
    assert not generation.images.filter(index=0).exists()


def test_staging_that_fails_does_not_fail_the_generation(
    hosts: dict[str, Path], settings: Any, queue_mode: Any, run_worker: Any, gptimage_openai: Any
) -> None:
    """A safeguard, not a requirement: with the staging storage down the spool still serves."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staging": {"BACKEND": f"{__name__}.FirstSaveFails", "OPTIONS": {"location": str(hosts["staging"])}},
        "results": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(hosts["media"])},
        },
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STAGING_STORAGE": "staging"}
    generation = request_generation(prompt="A quiet harbour", n=2)
    run_worker()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert generation.images.count() == 2
    assert files_under(hosts["staging"]) == [] and files_under(hosts["host-a"]) == []
    assert not os.path.exists(os.path.join(str(hosts["host-a"]), str(generation.pk)))


def test_a_worker_says_when_workers_on_other_hosts_share_its_queue_without_staging(
    settings: Any, queue_mode: Any, thread_worker: Any, caplog: Any
) -> None:
    from rq import Worker

    from tests.conftest import wait_for

    other = Worker([queue_mode], connection=queue_mode.connection, name=f"elsewhere-{os.getpid()}")
    other.hostname = "worker-host-2"
    other.register_birth()  # an RQ worker registered by another machine, as RQ records it
    try:
        caplog.set_level(logging.WARNING, logger="django_gptimage")
        thread_worker(concurrency=1)
        wait_for(lambda: "worker-host-2" in caplog.text, 10, what="the warning")
        assert "STAGING_STORAGE" in caplog.text
        settings.GPTIMAGE = {**settings.GPTIMAGE, "STAGING_STORAGE": "default"}
        pool = thread_worker(concurrency=1)
        wait_for(lambda: pool.workers, 10, what="the second pool")
        caplog.clear()
        pool._warn_of_other_hosts()  # what its start said, again, now in this thread
        assert "worker-host-2" not in caplog.text
    finally:
        other.register_death()
