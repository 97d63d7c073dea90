"""Stored files leave with their records: a deleted generation's images, inputs and previews,
and its spool directory (this host's) and staged copies.

Connected in ``AppConfig.ready()``. Runs for every way a row is deleted through the ORM (the
admin's delete view and action, ``queryset.delete()``, a cascade from a deleted user's...) and
deletes the files only after the transaction commits, so a rolled-back delete keeps them.
``GPTIMAGE["KEEP_FILES_ON_DELETE"] = True`` turns it off.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete

from django_gptimage.conf import gptimage_settings
from django_gptimage.models import GeneratedImage, GenerationInput, ImageGeneration, get_storage

logger = logging.getLogger("django_gptimage")


def _delete_later(name: str) -> None:
    if not name or gptimage_settings.KEEP_FILES_ON_DELETE:
        return

    def delete() -> None:
        try:
            get_storage().delete(name)
        except Exception:  # noqa: BLE001 - a file that cannot be deleted must not undo the delete
            logger.warning("gptimage: could not delete %s from storage", name, exc_info=True)

    transaction.on_commit(delete)


def _file_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    _delete_later(instance.file.name)


def _generation_deleted(sender: Any, instance: ImageGeneration, **kwargs: Any) -> None:
    _delete_later(instance.preview)
    pk = instance.pk

    def leftovers_later() -> None:
        # Not stored files of the record but its working copies: they go whatever
        # KEEP_FILES_ON_DELETE says (the previews only with the record's files).
        from django_gptimage.jobs import leftovers

        try:
            if not gptimage_settings.KEEP_FILES_ON_DELETE:
                leftovers.remove_previews(pk)
            leftovers.remove_staged(pk)
            shutil.rmtree(leftovers.local_spool(pk), ignore_errors=True)
        except Exception:  # noqa: BLE001 - the reaper's sweep removes what is left
            logger.warning("gptimage: could not clean up after deleting %s", pk, exc_info=True)

    transaction.on_commit(leftovers_later)


def register_signal_handlers() -> None:
    for model in (GeneratedImage, GenerationInput):
        post_delete.connect(_file_deleted, sender=model, dispatch_uid=f"gptimage-files-{model.__name__}")
    post_delete.connect(_generation_deleted, sender=ImageGeneration, dispatch_uid="gptimage-preview")
