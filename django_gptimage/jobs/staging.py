"""Paid-for bytes every worker host can read: copies in ``STAGING_STORAGE`` until they are stored.

``SPOOL_DIR`` is local to the host that received the images. A store-only retry (storage was
down, the worker died while storing) may run on another host, where the spool paths do not
exist; without a shared copy the images would be lost and have to be paid for again. With
``GPTIMAGE["STAGING_STORAGE"]`` set, each image is copied there as soon as it has arrived
(before the results are stored, so even the loss of the receiving host keeps them) and the
name is recorded in ``metadata["spooled"][i]["staged"]``; a retry that misses a spool file
fetches it from there, checks its SHA-256 and stores it. The copies are deleted once the
images are stored (or discarded).

Staging is a safeguard, never a reason to fail: a staging write that fails is logged and the
generation goes on from the local spool, exactly as without staging.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage, storages

from django_gptimage.conf import gptimage_settings

logger = logging.getLogger("django_gptimage")

PREFIX = "gptimage-staging"
_BLOCK = 1024 * 1024


def enabled() -> bool:
    return bool(gptimage_settings.STAGING_STORAGE)


def get_staging_storage() -> Storage:
    alias = gptimage_settings.STAGING_STORAGE
    if not alias:
        raise LookupError("GPTIMAGE['STAGING_STORAGE'] is not set")
    return storages[alias]


def staging_dir(generation_id: Any) -> str:
    return f"{PREFIX}/{generation_id}"


def stage(generation_id: Any, attempt_number: int, spooled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy each spooled file not yet staged; the items with ``staged`` names where that worked."""
    if not enabled():
        return spooled
    storage = get_staging_storage()
    staged = []
    for item in spooled:
        if item.get("staged"):
            staged.append(item)
            continue
        name = f"{staging_dir(generation_id)}/attempt-{attempt_number}/result-{item['index']}.bin"
        try:
            with open(item["path"], "rb") as handle:
                stored = storage.save(name, File(handle, os.path.basename(name)))
        except Exception as exc:  # noqa: BLE001 - a safeguard: the local spool still holds the bytes
            logger.warning(
                "gptimage %s: could not stage image %s in STAGING_STORAGE (%s); it is kept only in "
                "this host's SPOOL_DIR",
                generation_id,
                item["index"],
                exc.__class__.__name__,
            )
            staged.append(item)
            continue
        staged.append({**item, "staged": stored})
    return staged


def fetch(generation_id: Any, item: dict[str, Any]) -> str | None:
    """A local copy of a spooled item missing from this host's spool, from the staging storage.

    Returns its path (under this host's ``SPOOL_DIR``), or None when there is no staged copy, it
    cannot be read, or its bytes are not the ones received (SHA-256).
    """
    name = item.get("staged")
    if not name or not enabled():
        return None
    target = os.path.join(
        gptimage_settings.SPOOL_DIR, str(generation_id), "staged", f"result-{item['index']}.bin"
    )
    os.makedirs(os.path.dirname(target), exist_ok=True)
    digest = hashlib.sha256()
    try:
        with get_staging_storage().open(name, "rb") as src, open(target, "wb") as dst:
            while block := src.read(_BLOCK):
                digest.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
    except Exception as exc:  # noqa: BLE001 - any backend error: the copy is unavailable
        logger.warning(
            "gptimage %s: the staged copy %s could not be read (%s)",
            generation_id,
            name,
            exc.__class__.__name__,
        )
        _unlink(target)
        return None
    if digest.hexdigest() != item.get("sha256"):
        logger.error("gptimage %s: the staged copy %s does not match the received bytes", generation_id, name)
        _unlink(target)
        return None
    return target


def discard(generation_id: Any, spooled: list[dict[str, Any]]) -> None:
    """Delete the staged copies of ``spooled`` (best effort: the reaper's sweep retries)."""
    names = [item["staged"] for item in spooled if item.get("staged")]
    if not names or not enabled():
        return
    storage = get_staging_storage()
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # noqa: BLE001 - a leftover is swept later, never a failed generation
            logger.warning(
                "gptimage %s: could not delete the staged copy %s", generation_id, name, exc_info=True
            )


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
