"""Batch runs over a queryset: a plan first (what is sent, skipped, refused, and the cost), then
the run, resumable: what is done or in flight is never sent again (fingerprints).

    plan = plan_batch(Article.objects.filter(cover=""), field="cover", preset="cover")
    print(plan.to_send, plan.estimated_cost, plan.currency)
    run = run_batch(plan)

The ``gptimage_batch`` command and the admin's ``generate_images_action`` are thin callers of
these two functions. Objects are read in pages of :data:`PAGE_SIZE`, in primary key order, with
a constant number of queries per page.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet
from django.utils import timezone

from django_gptimage.domain.validation import Problem
from django_gptimage.models import ImageGeneration, Status

__all__ = ["PAGE_SIZE", "BatchPlan", "BatchProgress", "BatchRun", "batch_progress", "plan_batch", "run_batch"]

PAGE_SIZE = 200
CURRENCY = "USD"  # estimates are in OpenAI's prices (domain/pricing.py)
SKIPPED = (Status.QUEUED, Status.RUNNING, Status.SUCCEEDED)  # what reuse=True would return
MAX_NAMED_REFUSALS = 50


@dataclass
class BatchPlan:
    """What a run would do. Counts of generations unless they say objects."""

    queryset: QuerySet[Any]
    field: str | None
    preset: Any  # a Preset, or None for a template
    template: str | None
    user: Any
    source: str
    overrides: dict[str, Any]
    limit: int | None = None
    objects: int = 0  # objects looked at
    outputs_per_object: int = 1
    to_send: int = 0
    done: int = 0  # succeeded with the same fingerprint: skipped
    in_flight: int = 0  # queued or running with the same fingerprint: skipped
    refused_objects: int = 0
    refused: Counter[str] = dataclasses.field(default_factory=Counter)  # reason -> objects
    refused_named: list[tuple[str, str]] = dataclasses.field(
        default_factory=list
    )  # (object, reason), the first ones
    estimated_cost: Decimal = Decimal("0")
    currency: str = CURRENCY
    pending: list[Any] = dataclasses.field(default_factory=list)  # pks of the objects with something to send
    existing_ids: list[str] = dataclasses.field(
        default_factory=list
    )  # generations skipped (done or in flight)
    beyond_limit: int = 0  # objects with something to send left for a later run by ``limit``

    @property
    def model(self) -> type[Model]:
        return self.queryset.model

    @property
    def sendable_objects(self) -> int:
        return len(self.pending)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model._meta.label,
            "field": self.field,
            "preset": getattr(self.preset, "name", None),
            "objects": self.objects,
            "outputs_per_object": self.outputs_per_object,
            "objects_to_send": len(self.pending),
            "to_send": self.to_send,
            "done": self.done,
            "in_flight": self.in_flight,
            "refused_objects": self.refused_objects,
            "refused": dict(self.refused),
            "estimated_cost": str(self.estimated_cost),
            "currency": self.currency,
            "left_by_limit": self.beyond_limit,
        }


@dataclass
class BatchRun:
    plan: BatchPlan
    sent_ids: list[str] = dataclasses.field(default_factory=list)  # generations recorded by this run
    reused_ids: list[str] = dataclasses.field(default_factory=list)  # found done or in flight meanwhile
    objects_done: int = 0
    refused: Counter[str] = dataclasses.field(
        default_factory=Counter
    )  # reason -> objects (changed since the plan)
    refused_named: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    stopped: bool = False  # should_stop() said so: the rest is for the next run
    error: str = ""  # the queue went away (or permission): the rest was not sent

    @property
    def remaining(self) -> int:
        return len(self.plan.pending) - self.objects_done

    @property
    def generation_ids(self) -> list[str]:
        """Every generation of the batch's objects so far: skipped ones and this run's."""
        return [*self.plan.existing_ids, *self.sent_ids, *self.reused_ids]

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects_done": self.objects_done,
            "sent": len(self.sent_ids),
            "reused": len(self.reused_ids),
            "refused": dict(self.refused),
            "stopped": self.stopped,
            "remaining_objects": self.remaining,
            "error": self.error or None,
        }


def _pages(queryset: QuerySet[Any], size: int = PAGE_SIZE) -> Iterator[list[Any]]:
    """Keyset pages in primary key order: one query per page, however deep."""
    qs = queryset.order_by("pk")
    last = None
    while True:
        page = list((qs if last is None else qs.filter(pk__gt=last))[:size])
        if not page:
            return
        yield page
        last = page[-1].pk
        if len(page) < size:
            return


def _reason(problems: list[Problem]) -> str:
    return " ".join(dict.fromkeys(p.message for p in problems))


def plan_batch(
    queryset: QuerySet[Any] | type[Model],
    *,
    field: str | None = None,
    preset: str | None = None,
    template: str | None = None,
    user: Any = None,
    limit: int | None = None,
    source: str = "batch",
    **overrides: Any,
) -> BatchPlan:
    """Look at every object: what would be sent, skipped (same fingerprint, done or in flight)
    or refused (and why), and the estimated cost. Sends nothing, records nothing.

    ``limit``: at most that many objects with something to send (the next run takes the next
    ones). Objects beyond what ``user``'s monthly quota still allows, all together, are refused
    (each alone may fit: the run would refuse them one by one). Raises GenerationRefused when the batch cannot run at all (an unknown preset, a
    preset for another model), PermissionDenied when ``user`` may not generate.
    """
    from django_gptimage import service

    if isinstance(queryset, type):
        queryset = queryset._default_manager.all()
    unknown = sorted(set(overrides) - service._OVERRIDES)
    if unknown:
        raise TypeError(f"plan_batch() got unknown arguments {unknown}; use {sorted(service._OVERRIDES)}.")
    if user is not None:
        service.check_permission(user, "generate")
    model = queryset.model._meta.concrete_model or queryset.model
    chosen, outputs = service._outputs_for(preset, template, overrides)  # looked up once
    wrong_model = service._preset_model_problem(chosen, model)
    if wrong_model is not None:
        raise service.GenerationRefused([wrong_model])
    plan = BatchPlan(
        queryset=queryset, field=field, preset=chosen, template=template, user=user, source=source,
        overrides=dict(overrides), limit=limit, outputs_per_object=len(outputs),
    )  # fmt: skip
    ct = ContentType.objects.get_for_model(model)
    allowance = _allowance(service, user)  # (images left this month, why not more) or None
    planned_images = 0
    for page in _pages(queryset):
        planned: list[tuple[Any, list[tuple[str, str, Decimal, int]] | None, str]] = []
        for obj in page:
            opened: list[Any] = []
            prepared: list[Any] = []
            try:
                prepared, problems = service._prepare_outputs(
                    outputs, obj=obj, model=model, object_id=str(obj.pk), field=field, values=None,
                    user=user, overrides=overrides, opened=opened,
                )  # fmt: skip
                if problems:
                    planned.append((obj, None, _reason(problems)))
                else:
                    found = [_entry(service, p) for _, p in prepared]
                    planned.append((obj, found, ""))
            finally:
                for _, p in prepared:
                    p.cleanup()
                for handle in opened:
                    handle.close()
        existing = _existing(ct, planned)
        for obj, entries, reason in planned:
            plan.objects += 1
            if entries is None:
                plan.refused_objects += 1
                plan.refused[reason] += 1
                if len(plan.refused_named) < MAX_NAMED_REFUSALS:
                    plan.refused_named.append((str(obj), reason))
                continue
            to_send = Decimal("0")
            count = images = 0
            for target_field, fp, cost, n in entries:
                hit = existing.get((str(obj.pk), target_field, fp))
                if hit is None:
                    count += 1
                    images += n
                    to_send += cost
                    continue
                generation_id, status = hit
                plan.existing_ids.append(generation_id)
                if status == Status.SUCCEEDED:
                    plan.done += 1
                else:
                    plan.in_flight += 1
            if count:
                if limit is not None and len(plan.pending) >= limit:
                    plan.beyond_limit += 1
                    continue
                if allowance is not None and planned_images + images > allowance[0]:
                    plan.refused_objects += 1  # each fits the quota alone; not all of them together
                    plan.refused[allowance[1]] += 1
                    if len(plan.refused_named) < MAX_NAMED_REFUSALS:
                        plan.refused_named.append((str(obj), allowance[1]))
                    continue
                planned_images += images
                plan.pending.append(obj.pk)
                plan.to_send += count
                plan.estimated_cost += to_send
    return plan


def _entry(service: Any, prepared: Any) -> tuple[str, str, Decimal, int]:
    """(field, fingerprint, estimated cost, images) of one prepared output."""
    assert prepared.target is not None and prepared.validated is not None
    validated = prepared.validated
    return prepared.target.field, prepared.fingerprint, service.estimate_for(validated), validated.request.n


def _allowance(service: Any, user: Any) -> tuple[int, str] | None:
    """Images ``user``'s plan still allows this month, for the whole batch (None: no quota)."""
    from django_gptimage.access.admission import images_this_month

    access = service.access_for(user) if user is not None else None
    if access is None or access.monthly_quota is None or not getattr(user, "is_authenticated", False):
        return None
    used = images_this_month(user)
    left = max(0, access.monthly_quota - used)
    plan = access.plan_label or access.plan or "your plan"
    return left, (
        f"Over the monthly quota: {plan} includes {access.monthly_quota} images a month ({used} used so far), "
        f"so this batch can send {left} more."
    )


def _existing(
    ct: ContentType, planned: list[tuple[Any, Any, str]]
) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(object id, field, fingerprint) -> (generation id, status) for one page: one query."""
    ids = [str(obj.pk) for obj, found, _ in planned if found]
    fingerprints = {fp for _, found, _ in planned if found for _, fp, _, _ in found}
    if not ids:
        return {}
    rows = (
        ImageGeneration.objects.filter(
            target_content_type=ct, target_object_id__in=ids, fingerprint__in=fingerprints, status__in=SKIPPED
        )
        .order_by("created_at")
        .values_list("target_object_id", "target_field", "fingerprint", "pk", "status")
    )
    out: dict[tuple[str, str, str], tuple[str, str]] = {}
    for object_id, target_field, fp, pk, status in rows:
        out[(object_id, target_field, fp)] = (str(pk), status)  # the newest wins, as reuse picks it
    return out


def run_batch(
    plan: BatchPlan,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[BatchRun], None] | None = None,
    run_mode: str | None = None,
) -> BatchRun:
    """Send what the plan says, object by object, with ``reuse=True`` (so a generation that
    became done or in flight since the plan is not sent again).

    ``should_stop`` is asked before each object (Ctrl-C: stop cleanly, the next run resumes);
    ``on_progress`` is told after each. A refusal of one object (its content changed since the
    plan) is counted and the run goes on; the queue going away, or a permission refusal, stops
    it with ``error`` set.
    """
    from django.core.exceptions import PermissionDenied

    from django_gptimage import service

    run = BatchRun(plan)
    known = set(plan.existing_ids)
    pending = list(plan.pending)
    for start in range(0, len(pending), PAGE_SIZE):
        chunk = pending[start : start + PAGE_SIZE]
        objects = {obj.pk: obj for obj in plan.queryset.order_by().filter(pk__in=chunk)}
        for pk in chunk:
            if should_stop is not None and should_stop():
                run.stopped = True
                return run
            obj = objects.get(pk)
            if obj is not None:  # deleted (or filtered out) since the plan: nothing to do
                before = timezone.now()
                try:
                    made = service.generate_for(
                        obj, plan.field, preset=plan.preset, template=plan.template, user=plan.user,
                        reuse=True, source=plan.source, run_mode=run_mode, **plan.overrides,
                    )  # fmt: skip
                except service.GenerationRefused as exc:
                    reason = _reason(exc.problems)
                    run.refused[reason] += 1
                    if len(run.refused_named) < MAX_NAMED_REFUSALS:
                        run.refused_named.append((str(obj), reason))
                except (service.QueueUnavailable, PermissionDenied) as exc:
                    run.error = str(exc)
                    return run
                else:
                    for generation in made:
                        gid = str(generation.pk)
                        if gid not in known:
                            known.add(gid)
                            new = generation.created_at is not None and generation.created_at >= before
                            (run.sent_ids if new else run.reused_ids).append(gid)
            run.objects_done += 1
            if on_progress is not None:
                on_progress(run)
    return run


@dataclass
class BatchProgress:
    succeeded: int = 0
    failed: Counter[str] = dataclasses.field(default_factory=Counter)  # error code -> generations
    canceled: int = 0
    in_flight: int = 0
    cost: Decimal = Decimal("0")  # actual where known, else the estimate, of finished generations

    @property
    def finished(self) -> bool:
        return self.in_flight == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded, "failed": dict(self.failed), "canceled": self.canceled,
            "in_flight": self.in_flight, "cost": str(self.cost),
        }  # fmt: skip


def batch_progress(generation_ids: list[str]) -> BatchProgress:
    """Where the batch's generations are: one query per page of ids."""
    progress = BatchProgress()
    for start in range(0, len(generation_ids), 500):
        rows = ImageGeneration.objects.filter(pk__in=generation_ids[start : start + 500]).values_list(
            "status", "error_code", "actual_cost", "estimated_cost"
        )
        for status, code, actual, estimated in rows:
            if status == Status.SUCCEEDED:
                progress.succeeded += 1
            elif status == Status.FAILED:
                progress.failed[code or "unknown"] += 1
            elif status == Status.CANCELED:
                progress.canceled += 1
            else:
                progress.in_flight += 1
            if status in (Status.SUCCEEDED, Status.FAILED) and (
                actual is not None or status == Status.SUCCEEDED
            ):
                progress.cost += actual if actual is not None else (estimated or Decimal("0"))
    return progress


def summary_lines(plan: BatchPlan) -> list[str]:
    """The plan as the command prints it."""
    lines = [
        f"{plan.objects} {plan.model._meta.verbose_name_plural} looked at, "
        f"{plan.outputs_per_object} output(s) each"
        + (f" (preset {plan.preset.name!r})" if plan.preset is not None else ""),
        f"  to send:   {plan.to_send} generation(s) for {len(plan.pending)} object(s)",
        f"  skipped:   {plan.done} already done, {plan.in_flight} in flight (same prompt and settings)",
    ]
    if plan.beyond_limit:
        lines.append(f"  left for a later run by --limit: {plan.beyond_limit} object(s)")
    if plan.refused_objects:
        lines.append(f"  refused:   {plan.refused_objects} object(s), nothing sent for them:")
        for reason, count in plan.refused.most_common():
            lines.append(f"    {count} × {reason}")
    lines.append(f"  estimated cost: {plan.estimated_cost.quantize(Decimal('0.01'))} {plan.currency}")
    return lines
