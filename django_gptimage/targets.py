"""Targets and candidates: a generation aimed at an object's image field, applied only when chosen.

The outputs of a targeted generation are candidates. :func:`apply_result` copies one into the
target field through that field's own storage and ``upload_to``, saves only that field, and
records who applied what, where and when (:class:`~django_gptimage.models.AppliedImage`).
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models, router, transaction
from django.db.models import F, Model, QuerySet
from django.utils import timezone

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.validation import Problem
from django_gptimage.inputs import FORMAT_TO_CONTENT_TYPE, FORMAT_TO_EXT
from django_gptimage.models import FINISHED_STATUSES, AppliedImage, GeneratedImage, ImageGeneration
from django_gptimage.permissions import check_permission
from django_gptimage.storage import _NamedFile

logger = logging.getLogger("django_gptimage")

# True while apply_result() saves the target: save hooks ignore that save (no loops).
APPLYING: ContextVar[bool] = ContextVar("gptimage_applying", default=False)

__all__ = [
    "AppliedResult",
    "ApplyRefused",
    "Target",
    "apply_result",
    "bind_target",
    "check_candidate",
    "generations_for",
    "lock_target",
    "target_of",
    "target_problems",
]


@dataclass(frozen=True)
class Target:
    """An object's file/image field, or (on an add form) a model's field with no object yet."""

    model: type[Model]
    field: str
    object_id: str | None = None

    @classmethod
    def of(cls, obj: Model, field: str) -> Target:
        return cls(type(obj), field, None if obj.pk is None else str(obj.pk))

    @property
    def content_type(self) -> ContentType:
        return ContentType.objects.get_for_model(self.model)

    @property
    def label(self) -> str:
        where = f":{self.object_id}" if self.object_id else " (not saved yet)"
        return f"{self.model._meta.label}.{self.field}{where}"


class ApplyRefused(Exception):
    """Apply (or bind) refused; ``code`` says why, ``str()`` is for the editor.

    Codes: object_gone, field_gone, not_a_candidate, unbound, target_mismatch,
    permission_denied, not_succeeded.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)

    def as_dict(self) -> dict[str, list[str]]:
        return {"image": [self.message]}


@dataclass(frozen=True)
class AppliedResult:
    image: GeneratedImage
    obj: Model
    field: str
    name: str  # the file's name in the field's storage
    application: AppliedImage
    written: bool  # False when this image was already the field's value (nothing written)
    previous_name: str = ""
    previous_deleted: bool = False


def _file_field(model: type[Model], name: str) -> models.FileField | None:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.FileField) else None


def target_problems(target: Target) -> list[Problem]:
    """Why ``target`` cannot receive images (empty when it can)."""
    if _file_field(target.model, target.field) is None:
        names = [f.name for f in target.model._meta.get_fields() if isinstance(f, models.FileField)]
        allowed = ", ".join(names) if names else "none"
        return [
            Problem(
                "target",
                f"{target.model._meta.label} has no file or image field {target.field!r}; its image fields: {allowed}.",
            )
        ]
    return []


def target_of(generation: ImageGeneration) -> Target | None:
    """The generation's target, or None (untargeted, or its model no longer exists)."""
    if generation.target_content_type_id is None:
        return None
    content_type = generation.target_content_type
    model = content_type.model_class() if content_type is not None else None
    if model is None:
        return None
    return Target(model, generation.target_field, generation.target_object_id or None)


def generations_for(obj: Model | Target, field: str | None = None) -> QuerySet[ImageGeneration]:
    """An object's generations (only those for ``field`` if given), newest first, images prefetched.

    One query for the records (with who asked) plus one for all their images.
    """
    if isinstance(obj, Target):
        model, object_id, field = obj.model, obj.object_id, field or obj.field
    else:
        model, object_id = type(obj), None if obj.pk is None else str(obj.pk)
    if object_id is None:
        return ImageGeneration.objects.none()
    qs = ImageGeneration.objects.filter(
        target_content_type=ContentType.objects.get_for_model(model), target_object_id=object_id
    )
    if field:
        qs = qs.filter(target_field=field)
    return (
        qs.select_related("requested_by", "target_content_type")
        .prefetch_related("images")
        .order_by("-created_at")
    )


def bind_target(generation: ImageGeneration, obj: Model, *, user: Any = None) -> ImageGeneration:
    """Bind a generation requested on an add form (model + field only) to the saved ``obj``.

    Idempotent; refuses another model's object, an object other than the one it is bound to,
    and (given ``user``) a generation someone else requested.
    """
    if obj.pk is None:
        raise ApplyRefused("unbound", "Save the object first: it has no id to bind the generation to.")
    ct = ContentType.objects.get_for_model(type(obj))
    if generation.target_content_type_id != ct.pk:
        raise ApplyRefused(
            "target_mismatch", f"This generation was not requested for a {obj._meta.verbose_name}."
        )
    if user is not None and generation.requested_by_id not in (None, user.pk) and not user.is_superuser:
        raise ApplyRefused("permission_denied", "This generation was requested by someone else.")
    object_id = str(obj.pk)
    metadata = dict(generation.metadata or {})
    metadata["target"] = {**metadata.get("target", {}), "object_id": object_id}
    ImageGeneration.objects.filter(pk=generation.pk, target_object_id="").update(
        target_object_id=object_id, metadata=metadata, updated_at=timezone.now()
    )
    generation.refresh_from_db()
    if generation.target_object_id != object_id:
        raise ApplyRefused("target_mismatch", "This generation is already bound to another object.")
    return generation


def lock_target(target: Target) -> Model | None:
    """Lock the target's row until the transaction ends; the object, or None when it is gone."""
    field = _file_field(target.model, target.field)
    if field is None or not target.object_id:
        return None
    return _lock(target.model, target.object_id, field, router.db_for_write(target.model))


def _lock(model: type[Model], object_id: str, field: models.FileField, using: str) -> Model | None:
    """The target row, locked until the transaction ends (None when it is gone)."""
    qs = model._base_manager.using(using).filter(pk=object_id)
    if transaction.get_connection(using).vendor == "sqlite":
        # SQLite has no row locks: a no-op write takes the database's write lock up front, so
        # two applies queue instead of deadlocking when both upgrade from a read.
        qs.update(**{field.attname: F(field.attname)})
    return qs.select_for_update().first()


def _check_image(image: GeneratedImage, generation: ImageGeneration | None, obj: Model | None) -> Target:
    gen = image.generation
    if generation is not None and image.generation_id != generation.pk:
        raise ApplyRefused("not_a_candidate", "This image is not one of this generation's results.")
    if gen.target_content_type_id is None:
        raise ApplyRefused("not_a_candidate", "This image was not generated for an object's field.")
    if gen.status not in FINISHED_STATUSES:
        raise ApplyRefused("not_succeeded", "This generation has not finished yet.")
    target = target_of(gen)
    if target is None:
        raise ApplyRefused("object_gone", "The kind of object this image was generated for no longer exists.")
    if not target.object_id:
        raise ApplyRefused("unbound", "Save the object first: this image is not bound to an object yet.")
    if obj is not None and (
        type(obj)._meta.concrete_model is not target.model or str(obj.pk) != target.object_id
    ):
        raise ApplyRefused(
            "not_a_candidate", f"This image was generated for another object ({target.label})."
        )
    return target


def _stored_name(field: models.FileField, obj: Model, image: GeneratedImage) -> str:
    ext = FORMAT_TO_EXT.get(image.format, os.path.splitext(image.file.name)[1].lstrip(".") or "png")
    name = field.generate_filename(obj, f"{field.name}-{image.sha256[:12]}.{ext}")
    storage, candidate, n = field.storage, name, 0
    while storage.exists(candidate):  # some backends (S3) overwrite silently
        n += 1
        root, extension = os.path.splitext(name)
        candidate = f"{root}-{n}{extension}"
    return candidate


def apply_result(
    image: GeneratedImage,
    *,
    user: Any = None,
    delete_previous: bool | None = None,
    alt_field: str | None = None,
    generation: ImageGeneration | None = None,
    obj: Model | None = None,
) -> AppliedResult:
    """Copy ``image`` into its generation's target field and save only that field.

    Idempotent: if the field already holds this image's application, nothing is written.
    ``delete_previous`` (default ``GPTIMAGE["APPLY_DELETE_PREVIOUS"]``) deletes the file the
    field held before, once the transaction commits. ``alt_field`` also sets that field to the
    image's suggested alt text. ``generation``/``obj``, when given, must match the image's.
    Raises :class:`ApplyRefused`.
    """
    target = _check_image(image, generation, obj)
    field = _file_field(target.model, target.field)
    if field is None:
        raise ApplyRefused(
            "field_gone", f"{target.model._meta.verbose_name} no longer has an image field {target.field!r}."
        )
    if alt_field is not None and alt_field not in {f.name for f in target.model._meta.concrete_fields}:
        raise ApplyRefused(
            "field_gone", f"{target.model._meta.verbose_name} has no field {alt_field!r} for the alt text."
        )
    if delete_previous is None:
        delete_previous = bool(gptimage_settings.APPLY_DELETE_PREVIOUS)
    using = router.db_for_write(target.model)
    with transaction.atomic(using=using):
        locked = _lock(target.model, target.object_id or "", field, using)
        if locked is None:
            raise ApplyRefused(
                "object_gone",
                f"The {target.model._meta.verbose_name} this image was made for has been deleted.",
            )
        if user is not None:
            try:
                check_permission(user, "apply", locked)
            except PermissionDenied as exc:
                raise ApplyRefused("permission_denied", str(exc)) from None
        return _write(image, locked, field, target, user, delete_previous, alt_field)


def _write(
    image: GeneratedImage,
    obj: Model,
    field: models.FileField,
    target: Target,
    user: Any,
    delete_previous: bool,
    alt_field: str | None,
) -> AppliedResult:
    ct = ContentType.objects.get_for_model(target.model)
    current = getattr(obj, field.attname).name or ""
    applied_by = user if getattr(user, "is_authenticated", False) else None
    existing = AppliedImage.objects.filter(
        image=image, content_type=ct, object_id=target.object_id, field=field.name, stored_name=current
    ).first()
    if current and existing is not None:
        return AppliedResult(image, obj, field.name, current, existing, written=False)

    name = _stored_name(field, obj, image)
    with image.file.open("rb") as source:
        content = _NamedFile(
            source, os.path.basename(name), FORMAT_TO_CONTENT_TYPE.get(image.format, "image/png")
        )
        stored = field.storage.save(name, content, max_length=field.max_length)
    try:
        setattr(obj, field.attname, stored)
        update_fields = [field.name]
        if isinstance(field, models.ImageField):
            field.update_dimension_fields(obj, force=True)
            dimensions = (getattr(field, "width_field", None), getattr(field, "height_field", None))
            update_fields += [f for f in dimensions if f]
        if alt_field and image.alt_text:
            setattr(obj, alt_field, image.alt_text)
            update_fields.append(alt_field)
        token = APPLYING.set(True)
        try:
            obj.save(update_fields=update_fields)
        finally:
            APPLYING.reset(token)
        previous_deleted = bool(delete_previous and current and current != stored)
        application = AppliedImage.objects.create(
            image=image, content_type=ct, object_id=target.object_id, field=field.name, stored_name=stored,  # type: ignore[misc]  # set: the object was loaded by it
            applied_by=applied_by, previous_name=current, previous_deleted=previous_deleted,
        )  # fmt: skip
    except BaseException:
        field.storage.delete(stored)  # the row was not changed: do not leave the copy behind
        raise
    if previous_deleted:
        transaction.on_commit(lambda: _delete_quietly(field, current))
    return AppliedResult(image, obj, field.name, stored, application, True, current, previous_deleted)


def _delete_quietly(field: models.FileField, name: str) -> None:
    try:
        field.storage.delete(name)
    except Exception as exc:  # noqa: BLE001 - the new image is applied; a stale file is not fatal
        logger.warning("gptimage could not delete the previous file %r: %s", name, exc.__class__.__name__)


def check_candidate(image_id: Any, target: Target, *, user: Any = None) -> GeneratedImage:
    """The generated image ``image_id`` if it may go into ``target`` (a form's field), else ApplyRefused.

    For a saved object: an image generated for that object's field (by anyone: the object's
    history). For an add form (``target.object_id`` None): an image generated for that model's
    field on an add form (not bound to an object yet) by ``user`` themselves. The generation must
    have finished; given ``user``, they need the ``apply`` permission (and change permission on
    the object, checked again when it is applied).
    """
    image = None
    if isinstance(image_id, int) or (isinstance(image_id, str) and image_id.isdigit()):
        image = GeneratedImage.objects.select_related("generation").filter(pk=int(image_id)).first()
    if image is None:
        raise ApplyRefused("not_a_candidate", "This generated image does not exist (any more).")
    gen = image.generation
    if gen.target_content_type_id != target.content_type.pk or gen.target_field != target.field:
        raise ApplyRefused("not_a_candidate", "This image was generated for another field.")
    if target.object_id is not None:
        if gen.target_object_id != target.object_id:
            raise ApplyRefused("not_a_candidate", "This image was generated for another object.")
    else:
        mine = user is not None and gen.requested_by_id is not None and gen.requested_by_id == user.pk
        if gen.target_object_id or not mine:
            raise ApplyRefused(
                "not_a_candidate",
                "This image was not generated on this form: pick one of your own candidates.",
            )
    if gen.status not in FINISHED_STATUSES:
        raise ApplyRefused("not_succeeded", "This generation has not finished yet.")
    if user is not None:
        try:
            check_permission(user, "apply")
        except PermissionDenied as exc:
            raise ApplyRefused("permission_denied", str(exc)) from None
    return image
