"""Leftovers: spools, staged copies and partial previews go when a generation ends, and the
reaper's sweep removes what a killed worker (or another host) left behind; nothing in flight,
and no image kept for a store-only retry, is ever removed.

Generations run against the loopback server (streamed with partial previews) or the offline
provider; the orphans of the sweep tests are files and directories made as a dead worker would
have left them, with their records put in the states the sweep has to tell apart.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_gptimage.jobs import leftovers
from django_gptimage.jobs.reaper import reap
from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import request_generation

pytestmark = pytest.mark.django_db(transaction=True)

HOURS = 3600


@pytest.fixture
def dirs(settings: Any, tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("media", "spool", "staging")}
    settings.MEDIA_ROOT = str(paths["media"])
    settings.STORAGES = {
        **settings.STORAGES,
        "staging": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(paths["staging"])},
        },
    }
    settings.GPTIMAGE = {
        **settings.GPTIMAGE, "SPOOL_DIR": str(paths["spool"]), "STAGING_STORAGE": "staging",
        "CLEANUP_AFTER": 1 * HOURS,
    }  # fmt: skip
    return paths


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def previews_of(dirs: dict[str, Path], pk: Any) -> list[Path]:
    return files_under(dirs["media"] / "gptimage" / "previews" / str(pk))


# -- as a generation ends ------------------------------------------------------------------------


def test_previews_and_spool_go_when_the_generation_succeeds(
    dirs: dict[str, Path], settings: Any, gptimage_openai: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PARTIAL_IMAGES": 2}
    generation = request_generation(prompt="A lighthouse", quality="low")
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert gptimage_openai.last_request.json["partial_images"] == 2  # previews were streamed
    assert generation.preview == ""
    assert previews_of(dirs, generation.pk) == []
    assert files_under(dirs["spool"]) == [] and files_under(dirs["staging"]) == []
    assert generation.images.count() == 1


def test_previews_go_when_the_generation_fails_for_good(
    dirs: dict[str, Path], settings: Any, gptimage_openai: Any
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PARTIAL_IMAGES": 2}
    gptimage_openai.add_fault("stream_cut", after=2)  # both previews arrive, then the stream dies
    generation = request_generation(prompt="A lighthouse", quality="low")
    generation.refresh_from_db()
    assert generation.status == Status.FAILED and generation.error_code == "bad_response"
    assert generation.preview == "" and previews_of(dirs, generation.pk) == []
    assert files_under(dirs["spool"]) == []


# -- the sweep -----------------------------------------------------------------------------------


def old(path: Path, hours: float = 2) -> None:
    """Make a leftover look ``hours`` old: every file and directory in it."""
    stamp = time.time() - hours * HOURS
    for p in [*path.rglob("*"), path]:
        os.utime(p, (stamp, stamp))


def leftover_spool(dirs: dict[str, Path], pk: Any, *, hours: float = 2) -> Path:
    path = dirs["spool"] / str(pk)
    (path / "attempt-1").mkdir(parents=True)
    (path / "attempt-1" / "result-0.bin").write_bytes(b"paid bytes")
    old(path, hours)
    return path


def leftover_in(root: Path, relative: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"bytes")
    return path


def record(status: str, *, ended_hours_ago: float = 2, **fields: Any) -> ImageGeneration:
    generation = request_generation(prompt=f"A {status} record {uuid.uuid4().hex[:6]}")  # offline, sync
    finished = timezone.now() - timedelta(hours=ended_hours_ago) if status != Status.RUNNING else None
    extra = {"heartbeat_at": timezone.now(), "worker": "alive:1:1"} if status == Status.RUNNING else {}
    ImageGeneration.objects.filter(pk=generation.pk).update(
        status=status, finished_at=finished, **extra, **fields
    )
    return ImageGeneration.objects.get(pk=generation.pk)


def test_the_reaper_sweeps_leftovers_and_keeps_what_is_in_flight_or_kept(dirs: dict[str, Path]) -> None:
    deleted = uuid.uuid4()  # a record that is gone
    ended = record(Status.SUCCEEDED)
    ended_lately = record(Status.FAILED, ended_hours_ago=0.1, error_code="provider_error")
    running = record(Status.RUNNING)
    queued = record(Status.QUEUED)
    kept = record(
        Status.FAILED, error_code="storage_error",
        metadata={"spooled": [{"index": 0, "path": "/elsewhere/result-0.bin", "sha256": "0", "size_bytes": 1,
                               "staged": "gptimage-staging/x/attempt-1/result-0.bin"}]},
    )  # fmt: skip

    spools = {name: leftover_spool(dirs, g) for name, g in (
        ("deleted", deleted), ("ended", ended.pk), ("ended_lately", ended_lately.pk), ("running", running.pk),
        ("queued", queued.pk), ("kept", kept.pk),
    )}  # fmt: skip
    young_orphan = leftover_spool(dirs, uuid.uuid4(), hours=0.1)  # a record being created, maybe
    stranger = leftover_in(dirs["spool"], "not-a-generation/file.txt")
    old(stranger.parent)
    staged = {
        name: leftover_in(dirs["staging"], f"gptimage-staging/{pk}/attempt-1/result-0.bin")
        for name, pk in (
            ("deleted", deleted),
            ("ended", ended.pk),
            ("kept", kept.pk),
            ("running", running.pk),
        )
    }
    previews = {
        name: leftover_in(dirs["media"], f"gptimage/previews/{pk}/partial-0.png")
        for name, pk in (
            ("deleted", deleted),
            ("ended", ended.pk),
            ("kept", kept.pk),
            ("running", running.pk),
        )
    }

    report = reap(sweep=True, dry_run=True)
    assert sorted(report.cleaned) == sorted(
        [f"spool {deleted}", f"spool {ended.pk}", f"staged {deleted}", f"staged {ended.pk}",
         f"previews {deleted}", f"previews {ended.pk}", f"previews {kept.pk}"]
    )  # fmt: skip
    assert all(p.exists() for p in [*spools.values(), *staged.values(), *previews.values()])

    report = reap(sweep=True)
    assert len(report.cleaned) == 7
    assert not spools["deleted"].exists() and not spools["ended"].exists()
    for name in ("ended_lately", "running", "queued", "kept"):
        assert files_under(spools[name]), f"the spool of the {name} record was removed"
    assert files_under(young_orphan) and stranger.exists()
    assert not staged["deleted"].exists() and not staged["ended"].exists()
    assert staged["kept"].exists() and staged["running"].exists()
    assert not previews["deleted"].exists() and not previews["ended"].exists()
    assert not previews["kept"].exists()  # kept images stay; a failed record's previews do not
    assert previews["running"].exists()

    assert not reap(sweep=True).cleaned  # nothing left to do


def test_the_sweep_runs_at_most_every_few_minutes_unless_asked(dirs: dict[str, Path]) -> None:
    leftover_spool(dirs, uuid.uuid4())
    reap(sweep=False)
    assert len(files_under(dirs["spool"])) == 1
    reap(sweep=True)
    assert files_under(dirs["spool"]) == []
    leftover_spool(dirs, uuid.uuid4())
    assert not reap().cleaned  # swept a moment ago in this process
    assert len(files_under(dirs["spool"])) == 1


def test_gptimage_reap_sweep_reports_what_it_removed(dirs: dict[str, Path], capsys: Any) -> None:
    orphan = uuid.uuid4()
    leftover_spool(dirs, orphan)
    call_command("gptimage_reap", "--sweep")
    assert f"{orphan}: spool removed" in capsys.readouterr().out
    assert files_under(dirs["spool"]) == []


def test_a_job_timeout_longer_than_cleanup_after_protects_a_waiting_attempt(
    dirs: dict[str, Path], settings: Any
) -> None:
    """An attempt may wait up to JOB_TIMEOUT on its answer without touching its spool: the
    sweep never takes a directory younger than two job timeouts, whatever CLEANUP_AFTER says."""
    settings.GPTIMAGE = {**settings.GPTIMAGE, "CLEANUP_AFTER": 60, "JOB_TIMEOUT": 3 * HOURS}
    ended = record(Status.FAILED, ended_hours_ago=8, error_code="abandoned")
    spool = leftover_spool(dirs, ended.pk, hours=2)  # a late worker may still be receiving here
    assert not leftovers.sweep()
    assert files_under(spool)
    old(spool, hours=7)
    assert leftovers.sweep() == [f"spool {ended.pk}"]


def test_deleting_a_generation_removes_its_spool_staged_copies_and_previews(dirs: dict[str, Path]) -> None:
    generation = record(Status.FAILED, error_code="storage_error")
    spool = leftover_spool(dirs, generation.pk, hours=0)
    staged = leftover_in(dirs["staging"], f"gptimage-staging/{generation.pk}/attempt-1/result-0.bin")
    preview = leftover_in(dirs["media"], f"gptimage/previews/{generation.pk}/partial-1.png")
    generation.delete()
    assert not spool.exists() and not staged.exists() and not preview.exists()
