"""Save hooks: generate into a model's image field when an object is saved, without a click.

    autogenerate(Article, field="cover", preset="cover", when="empty")

or ``GPTIMAGE["AUTOGENERATE"]`` entries. On ``post_save`` the hook's condition is checked on
the instance (cheap: no query) and, if it holds, the hook starts after the transaction
commits: as a small RQ job (``RUN_MODE = "queue"``) or in this process (``"sync"``). The job
re-reads the committed object, checks again, and calls :func:`~django_gptimage.service.generate_for`
with ``reuse=True`` (an unchanged fingerprint reuses the existing generation).

A hook never breaks the save: a refusal, Redis being down or any error is logged and recorded
as a :class:`~django_gptimage.models.HookEvent`, which the object's generations panel shows.
Raw saves (``loaddata``) and the saves :func:`~django_gptimage.targets.apply_result` makes start
nothing; at most one generation per object and field is in flight (a save meanwhile is looked
at again when it finishes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models.signals import post_save

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.hooks import HookSpec, hook_from_mapping, make_hook, sources_digest
from django_gptimage.models import HookEvent, ImageGeneration, Status
from django_gptimage.targets import APPLYING, Target, lock_target

logger = logging.getLogger("django_gptimage")

__all__ = [
    "HookSpec",
    "autogenerate",
    "configured_hooks",
    "hook_events_for",
    "hooks_for",
    "record_event",
    "run_hook",
    "unregister",
]

_registered: list[HookSpec] = []
_lock = threading.Lock()
_by_model: dict[str, list[HookSpec]] | None = None
IN_FLIGHT = (Status.QUEUED, Status.RUNNING)
HOOK_SOURCE = "hook"


def autogenerate(
    model: type[models.Model] | str,
    *,
    field: str,
    preset: str = "",
    template: str = "",
    when: str = "empty",
    fields: Sequence[str] = (),
    apply: str = "candidates",
    alt_field: str = "",
    name: str = "",
) -> HookSpec:
    """Register a save hook from code (same keys as a ``GPTIMAGE["AUTOGENERATE"]`` entry).

    ``when``: ``"created"``, ``"empty"`` (the field has no file) or ``"changed"`` (one of
    ``fields`` changed since the hook's last generation). ``apply``: ``"candidates"`` (the
    images wait for an editor) or ``"direct"`` (the first image is applied). Registering the
    same name again replaces the earlier hook. Returns the hook.
    """
    label = model if isinstance(model, str) else f"{model._meta.app_label}.{model.__name__}"
    hook = make_hook(
        model=label, field=field, preset=preset, template=template, when=when, fields=tuple(fields),
        apply=apply, alt_field=alt_field, name=name,
    )  # fmt: skip
    with _lock:
        _registered[:] = [h for h in _registered if h.label != hook.label] + [hook]
    _forget()
    return hook


def unregister(hook: HookSpec | str) -> None:
    """Remove a hook registered with :func:`autogenerate` (by the hook or its label)."""
    label = hook if isinstance(hook, str) else hook.label
    with _lock:
        _registered[:] = [h for h in _registered if h.label != label]
    _forget()


def configured_hooks() -> tuple[list[HookSpec], list[str]]:
    """The hooks of ``GPTIMAGE["AUTOGENERATE"]`` and :func:`autogenerate`, and the problems of
    malformed entries (those are left out; system check E030 reports them)."""
    hooks: list[HookSpec] = []
    problems: list[str] = []
    entries = gptimage_settings.AUTOGENERATE
    if not isinstance(entries, list | tuple):
        problems.append(f"GPTIMAGE['AUTOGENERATE'] must be a list of dicts, not {type(entries).__name__}")
        entries = []
    for index, entry in enumerate(entries):
        try:
            hooks.append(hook_from_mapping(entry, index=index))
        except ValueError as exc:
            problems.append(str(exc))
    with _lock:
        hooks += _registered
    return hooks, problems


def _forget(**kwargs: Any) -> None:
    global _by_model
    if kwargs.get("setting") not in (None, "GPTIMAGE"):
        return
    _by_model = None


def _index() -> dict[str, list[HookSpec]]:
    global _by_model
    index = _by_model
    if index is None:
        index = {}
        for hook in configured_hooks()[0]:
            index.setdefault(hook.model.lower(), []).append(hook)
        _by_model = index
    return index


def hooks_for(model: type[models.Model]) -> list[HookSpec]:
    """The hooks registered for ``model`` (or the concrete model of a proxy)."""
    concrete = model._meta.concrete_model or model
    return _index().get(concrete._meta.label_lower, [])


def _fires(hook: HookSpec, instance: models.Model, created: bool, update_fields: Any) -> bool:
    if hook.when == "created":
        return created
    if hook.when == "empty":
        return not getattr(instance, hook.field, None)
    # changed: a save of other fields only cannot have changed the watched ones
    return update_fields is None or not set(hook.fields).isdisjoint(update_fields)


def _post_save(
    sender: type[models.Model],
    instance: models.Model,
    created: bool = False,
    raw: bool = False,
    using: str | None = None,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    if raw or APPLYING.get():
        return
    hooks = hooks_for(sender)
    if not hooks:
        return
    for hook in hooks:
        if _fires(hook, instance, created, update_fields):
            start = partial(_start, hook, sender._meta.concrete_model or sender, str(instance.pk))
            transaction.on_commit(start, using=using)


def connect() -> None:
    """Connected in ``AppConfig.ready()``: one receiver for every model (a dict lookup each save)."""
    post_save.connect(_post_save, dispatch_uid="gptimage-autogenerate")
    setting_changed.connect(_forget, dispatch_uid="gptimage-autogenerate-settings")


def _start(hook: HookSpec, model: type[models.Model], object_id: str) -> None:
    """After the commit: queue the hook's job (or run it here in sync mode). Never raises."""
    try:
        if gptimage_settings.RUN_MODE == "sync":
            run_hook(hook.label, model._meta.label, object_id)
            return
        from redis.exceptions import RedisError

        try:
            _queue().enqueue(
                run_hook_job, hook.label, model._meta.label, object_id,
                job_timeout=300, result_ttl=600, failure_ttl=7 * 86400,
                description=f"gptimage hook {hook.label} {object_id}",
            )  # fmt: skip
        except RedisError as exc:
            _connections.clear()  # the next save connects afresh
            logger.error(
                "gptimage hook %s for %s:%s not started, queue unreachable: %s",
                hook.label, model._meta.label, object_id, exc.__class__.__name__,
            )  # fmt: skip
            record_event(
                hook, model, object_id, HookEvent.Outcome.UNAVAILABLE,
                "The background queue was not reachable after this save, so no image was generated "
                "(nothing was sent). Save again once it is back.",
            )  # fmt: skip
    except Exception:  # noqa: BLE001 - a hook must never break the save it follows
        logger.exception("gptimage hook %s for %s:%s failed", hook.label, model._meta.label, object_id)
        record_event(hook, model, object_id, HookEvent.Outcome.ERROR, "The save hook failed; see the logs.")


_connections: dict[str, Any] = {}


def _queue() -> Any:
    """The generation queue on a Redis connection kept between saves.

    ``django_rq.get_queue()`` opens a new connection pool on every call, so each enqueue would
    connect to Redis again: over a millisecond a save, most of what a hook costs.
    """
    import django_rq
    from django.conf import settings

    name = gptimage_settings.QUEUE
    key = repr((name, sorted((getattr(settings, "RQ_QUEUES", {}).get(name) or {}).items())))
    connection = _connections.get(key)
    if connection is None:
        connection = _connections[key] = django_rq.get_connection(name)
    return django_rq.get_queue(
        name, connection=connection, default_timeout=gptimage_settings.JOB_TIMEOUT, commit_mode="auto"
    )


def record_event(
    hook: HookSpec | str,
    model: type[models.Model],
    object_id: str,
    outcome: str,
    message: str,
    *,
    field: str = "",
    generation: ImageGeneration | None = None,
) -> HookEvent | None:
    """Record what a hook did not do (or did on its own); never raises."""
    label = hook if isinstance(hook, str) else hook.label
    try:
        return HookEvent.objects.create(
            hook=label, content_type=ContentType.objects.get_for_model(model), object_id=object_id,
            field=field or (hook.field if isinstance(hook, HookSpec) else ""), outcome=outcome,
            message=message, generation=generation,
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - the database may be what failed
        logger.exception("gptimage could not record the hook event of %s (%s)", label, outcome)
        return None


def hook_events_for(obj: models.Model, *, limit: int = 5) -> list[HookEvent]:
    """The object's latest save-hook events, newest first (one query)."""
    if obj.pk is None:
        return []
    concrete = type(obj)._meta.concrete_model or type(obj)
    qs = HookEvent.objects.filter(
        content_type=ContentType.objects.get_for_model(concrete), object_id=str(obj.pk)
    )
    return list(qs.order_by("-created_at", "-pk")[:limit])


def run_hook_job(hook_label: str, model_label: str, object_id: str) -> str:
    """The RQ job of a hook (the payload is labels and an id, nothing else)."""
    from django.db import close_old_connections

    close_old_connections()
    return run_hook(hook_label, model_label, object_id)


def _find(hook_label: str) -> HookSpec | None:
    for hook in configured_hooks()[0]:
        if hook.label == hook_label:
            return hook
    return None


def run_hook(hook_label: str, model_label: str, object_id: str) -> str:
    """Check the hook on the committed object and generate; returns what happened.

    ``"started"``, ``"reused"``, ``"unchanged"``, ``"filled"`` (the field got a file meanwhile),
    ``"busy"`` (a generation for the field is in flight: looked at again when it finishes),
    ``"gone"``, ``"refused"``, ``"unavailable"`` or ``"error"``. Never raises.
    """
    from django_gptimage.service import GenerationRefused, QueueUnavailable, generate_for

    try:
        model = apps.get_model(model_label)
    except LookupError:
        logger.error("gptimage hook %s: no model %s", hook_label, model_label)
        return "error"
    hook = _find(hook_label)
    if hook is None:
        record_event(hook_label, model, object_id, HookEvent.Outcome.ERROR,
                     f"The save hook {hook_label!r} is no longer configured.")  # fmt: skip
        return "error"
    try:
        with transaction.atomic():
            obj = lock_target(Target(model, hook.field, object_id))
            if obj is None:
                return "gone"
            if hook.when == "empty" and getattr(obj, hook.field, None):
                return "filled"
            ct = ContentType.objects.get_for_model(model)
            mine = ImageGeneration.objects.filter(
                target_content_type=ct, target_object_id=object_id, source=HOOK_SOURCE
            )
            busy = [g for g in mine.filter(status__in=IN_FLIGHT).only("pk", "metadata").order_by("created_at")
                    if (g.metadata.get("hook") or {}).get("name") == hook.label]  # fmt: skip
            if busy:  # looked at again when it finishes (generation_finished)
                if not HookEvent.objects.filter(
                    generation__in=busy, outcome=HookEvent.Outcome.DEFERRED
                ).exists():
                    record_event(hook, model, object_id, HookEvent.Outcome.DEFERRED,
                                 "Saved while an image for this field was being generated: the object is "
                                 "looked at again when that one finishes.", generation=busy[0])  # fmt: skip
                return "busy"
            meta: dict[str, Any] = {"name": hook.label, "apply": hook.apply}
            if hook.when == "changed":
                digest = sources_digest({f: getattr(obj, f, None) for f in hook.fields})
                last = _last_digest(mine, hook)
                if last == digest:
                    return "unchanged"
                meta["sources"] = digest
            if hook.alt_field:
                meta["alt_field"] = hook.alt_field
            before = set(mine.values_list("pk", flat=True))
            made = generate_for(
                obj, hook.field, preset=hook.preset or None, template=hook.template or None,
                reuse=True, source=HOOK_SOURCE, metadata={"hook": meta},
            )  # fmt: skip
        return "started" if any(g.pk not in before for g in made) else "reused"
    except GenerationRefused as exc:
        # "main: ..." only for a preset with several outputs: the editor needs no field names
        message = " ".join(
            dict.fromkeys(
                f"{p.field.split('.')[0]}: {p.message}" if "." in p.field else p.message for p in exc.problems
            )
        )
        logger.warning("gptimage hook %s for %s:%s refused: %s", hook.label, model_label, object_id, message)
        record_event(hook, model, object_id, HookEvent.Outcome.REFUSED,
                     f"No image was generated on save. {message}")  # fmt: skip
        return "refused"
    except QueueUnavailable as exc:
        record_event(hook, model, object_id, HookEvent.Outcome.UNAVAILABLE, str(exc))
        return "unavailable"
    except Exception:  # noqa: BLE001 - logged and shown; the save has long succeeded
        logger.exception("gptimage hook %s for %s:%s failed", hook.label, model_label, object_id)
        record_event(hook, model, object_id, HookEvent.Outcome.ERROR,
                     "The save hook failed unexpectedly; see the server logs.")  # fmt: skip
        return "error"


def _last_digest(mine: Any, hook: HookSpec) -> str | None:
    """The watched fields' digest at the hook's last generation that did not fail."""
    recent = mine.filter(target_field=hook.field, status__in=(*IN_FLIGHT, Status.SUCCEEDED))
    for metadata in recent.order_by("-created_at").values_list("metadata", flat=True)[:50]:
        hook_meta = (metadata or {}).get("hook") or {}
        if hook_meta.get("name") == hook.label:
            return hook_meta.get("sources")
    return None


def generation_finished(generation: ImageGeneration) -> None:
    """Called by the runner when a hook's generation ends: apply it (``direct``) and look at
    the object again if it was saved while this one was in flight. Never raises."""
    try:
        row = ImageGeneration.objects.filter(pk=generation.pk).values_list("metadata", "status").first()
        if row is None:
            return
        metadata, status = row
        hook_meta = (metadata or {}).get("hook") or {}
        hook = _find(hook_meta.get("name", ""))
        target = _target(generation)
        if hook is None or target is None:
            return
        if status == Status.SUCCEEDED and hook_meta.get("apply") == "direct":
            _apply_first(hook, generation, target, hook_meta.get("alt_field") or None)
        if HookEvent.objects.filter(generation_id=generation.pk, outcome=HookEvent.Outcome.DEFERRED).exists():
            transaction.on_commit(partial(_start, hook, target.model, target.object_id or ""))
    except Exception:  # noqa: BLE001 - the generation itself is finished and kept
        logger.exception("gptimage hook follow-up of %s failed", generation.pk)


def _target(generation: ImageGeneration) -> Target | None:
    from django_gptimage.targets import target_of

    target = target_of(generation)
    return target if target is not None and target.object_id else None


def _apply_first(hook: HookSpec, generation: ImageGeneration, target: Target, alt_field: str | None) -> None:
    from django_gptimage.targets import ApplyRefused, apply_result

    image = generation.images.order_by("index").first()
    if image is None:
        return
    obj = target.model._base_manager.filter(pk=target.object_id).first()
    if obj is None:
        return
    field = generation.target_field
    if hook.when == "empty" and getattr(obj, field, None):
        record_event(hook, target.model, target.object_id or "", HookEvent.Outcome.SKIPPED,
                     f"Not applied: {field} was filled meanwhile; the generated image is a candidate.",
                     field=field, generation=generation)  # fmt: skip
        return
    try:
        result = apply_result(image, alt_field=alt_field, generation=generation)
    except ApplyRefused as exc:
        record_event(hook, target.model, target.object_id or "", HookEvent.Outcome.SKIPPED,
                     f"Not applied: {exc}", field=field, generation=generation)  # fmt: skip
        return
    if result.written:
        record_event(hook, target.model, target.object_id or "", HookEvent.Outcome.APPLIED,
                     f"Applied the generated image to {field} automatically.", field=field,
                     generation=generation)  # fmt: skip
