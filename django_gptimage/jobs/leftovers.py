"""What generations leave behind: spool directories, staged copies, partial previews.

- :func:`generation_ended` runs when a generation ends for good (after the transaction that
  ended it commits): its partial previews go (the editor sees them only while it runs), and so
  does this host's spool directory unless it still holds images kept for a store-only retry.
- :func:`sweep` is the reaper's periodic pass for what a killed worker (or another host) left:
  spool directories of this host, staged copies in ``STAGING_STORAGE`` and partial previews
  that belong to no generation, or to one that ended more than ``CLEANUP_AFTER`` seconds ago.
  A generation that is queued or running, and images kept for a retry (``metadata["spooled"]``),
  are never touched.

Everything here is best effort: a leftover that cannot be removed now is logged and tried again
at the next sweep; it never fails a generation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.core.files.storage import Storage
from django.utils import timezone

from django_gptimage.conf import gptimage_settings
from django_gptimage.jobs import staging
from django_gptimage.models import FINISHED_STATUSES, ImageGeneration, get_storage

logger = logging.getLogger("django_gptimage")

PREVIEWS = "gptimage/previews"


def preview_name(generation_id: Any, index: int, ext: str) -> str:
    return f"{PREVIEWS}/{generation_id}/partial-{index}.{ext}"


def generation_ended(generation_id: Any) -> None:
    """A generation ended for good: drop its previews, and its spool unless images are kept."""
    found = ImageGeneration.objects.filter(pk=generation_id).values("status", "preview", "metadata").first()
    if found is None or found["status"] not in FINISHED_STATUSES:
        return  # deleted (the delete signal cleans), or already running again (a retry)
    if found["preview"]:
        ImageGeneration.objects.filter(pk=generation_id, status__in=FINISHED_STATUSES).update(preview="")
    remove_previews(generation_id, extra=found["preview"])
    if not (found["metadata"] or {}).get("spooled"):
        shutil.rmtree(local_spool(generation_id), ignore_errors=True)


def local_spool(generation_id: Any) -> str:
    return os.path.join(gptimage_settings.SPOOL_DIR, str(generation_id))


def remove_previews(generation_id: Any, *, extra: str = "") -> int:
    """Delete the partial previews of a generation (every attempt's); returns how many."""
    storage = get_storage()
    names = set(_files(storage, f"{PREVIEWS}/{generation_id}"))
    if extra:
        names.add(extra)
    return _delete(storage, names)


def remove_staged(generation_id: Any) -> int:
    """Delete every staged copy of a generation; returns how many."""
    if not staging.enabled():
        return 0
    storage = staging.get_staging_storage()
    return _delete(storage, set(_files(storage, staging.staging_dir(generation_id))))


def sweep(*, older_than: float | None = None, dry_run: bool = False) -> list[str]:
    """Remove leftovers of ended or deleted generations; returns what was (or would be) removed.

    ``older_than`` (seconds, default ``CLEANUP_AFTER``, never less than two job timeouts so an
    attempt still waiting on its answer keeps its spool) is how long a generation must have been
    ended, or a directory untouched, before its leftovers go.
    """
    age = gptimage_settings.CLEANUP_AFTER if older_than is None else older_than
    if older_than is None:
        age = max(age, 2 * gptimage_settings.JOB_TIMEOUT)
    cutoff = timezone.now() - timedelta(seconds=age)
    removed: list[str] = []
    removed += _sweep_spool(time.time() - age, cutoff, dry_run)
    if staging.enabled():
        removed += _sweep_storage(
            staging.get_staging_storage(), staging.PREFIX, cutoff, dry_run, keep_spooled=True
        )
    removed += _sweep_storage(get_storage(), PREVIEWS, cutoff, dry_run, keep_spooled=False)
    if removed:
        logger.info("gptimage cleanup: %s", ", ".join(removed))
    return removed


def _removable(ids: list[str], cutoff: Any, *, keep_spooled: bool) -> set[str]:
    """Those of ``ids`` whose generation is gone, or ended before ``cutoff`` (and, with
    ``keep_spooled``, keeps no images for a store-only retry)."""
    known = {
        str(row["pk"]): row
        for row in ImageGeneration.objects.filter(pk__in=ids).values(
            "pk", "status", "finished_at", "metadata"
        )
    }
    removable = set()
    for pk in ids:
        row = known.get(pk)
        if row is None or (
            row["status"] in FINISHED_STATUSES
            and row["finished_at"] is not None
            and row["finished_at"] < cutoff
            and not (keep_spooled and (row["metadata"] or {}).get("spooled"))
        ):
            removable.add(pk)
    return removable


def _generation_ids(names: list[str]) -> list[str]:
    ids = []
    for name in names:
        with contextlib.suppress(ValueError):
            ids.append(str(uuid.UUID(name)))
    return ids


def _sweep_spool(mtime_cutoff: float, cutoff: Any, dry_run: bool) -> list[str]:
    root = gptimage_settings.SPOOL_DIR
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    ids = [pk for pk in _generation_ids(names) if _newest_mtime(os.path.join(root, pk)) < mtime_cutoff]
    removed = []
    for pk in sorted(_removable(ids, cutoff, keep_spooled=True)):
        if not dry_run:
            shutil.rmtree(os.path.join(root, pk), ignore_errors=True)
        removed.append(f"spool {pk}")
    return removed


def _newest_mtime(path: str) -> float:
    """The newest modification time in a directory tree (an attempt writing there is recent)."""
    newest = 0.0
    for dirpath, _dirs, files in os.walk(path):
        for name in (dirpath, *(os.path.join(dirpath, f) for f in files)):
            with contextlib.suppress(OSError):
                newest = max(newest, os.stat(name).st_mtime)
    return newest


def _sweep_storage(
    storage: Storage, prefix: str, cutoff: Any, dry_run: bool, *, keep_spooled: bool
) -> list[str]:
    try:
        dirs, _files_ = storage.listdir(prefix)
    except FileNotFoundError:
        return []
    except Exception as exc:  # noqa: BLE001 - a backend without listdir, or one that is down
        logger.info("gptimage cleanup: cannot list %s (%s)", prefix, exc.__class__.__name__)
        return []
    removed = []
    kind = "staged" if prefix == staging.PREFIX else "previews"
    for pk in sorted(_removable(_generation_ids(list(dirs)), cutoff, keep_spooled=keep_spooled)):
        names = set(_files(storage, f"{prefix}/{pk}"))
        if not names:
            continue
        if not dry_run:
            _delete(storage, names)
            if kind == "previews":
                ImageGeneration.objects.filter(pk=pk, status__in=FINISHED_STATUSES).update(preview="")
        removed.append(f"{kind} {pk}")
    return removed


def _files(storage: Storage, path: str) -> Iterator[str]:
    """Every file name under ``path`` in ``storage`` (nothing when it cannot be listed)."""
    try:
        dirs, files = storage.listdir(path)
    except Exception:  # noqa: BLE001 - missing, or a backend without listdir
        return
    for name in files:
        yield f"{path}/{name}"
    for sub in dirs:
        yield from _files(storage, f"{path}/{sub}")


def _delete(storage: Storage, names: set[str]) -> int:
    deleted = 0
    for name in sorted(names):
        try:
            storage.delete(name)
            deleted += 1
        except Exception:  # noqa: BLE001 - tried again at the next sweep
            logger.warning("gptimage cleanup: could not delete %s", name, exc_info=True)
    return deleted
