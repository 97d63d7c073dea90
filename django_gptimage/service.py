"""The service API every entry point uses: admin, widget, save hooks, CLI and your own code.

    generation = request_generation(prompt="…", ratio="16:9", tier="2K", user=request.user)

validates the whole request before anything is sent (raising :class:`GenerationRefused` with
every problem), records it, keeps its input images in storage, and dispatches it: as an RQ job
after the surrounding transaction commits (``RUN_MODE = "queue"``), or in the calling process
(``RUN_MODE = "sync"``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.module_loading import import_string

from django_gptimage.access import admission, credits
from django_gptimage.access.resolver import Access, as_access
from django_gptimage.access.rules import access_problems
from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.arguments import argument_problems, request_argument_problems
from django_gptimage.domain.errors import ErrorCode, RetryRule, error_info
from django_gptimage.domain.fingerprint import fingerprint
from django_gptimage.domain.presets import Preset, PresetOutput
from django_gptimage.domain.validation import GenerationRequest, Problem, ValidatedRequest, validate
from django_gptimage.hooks import HookSpec, autogenerate, hook_events_for
from django_gptimage.inputs import InspectedUpload, as_upload_list, spool_upload, upload_argument_problems
from django_gptimage.jobs.queue import QueueUnavailable
from django_gptimage.jobs.reaper import ReapReport, reap
from django_gptimage.jobs.runner import RunOutcome, run_generation
from django_gptimage.messages import error_text
from django_gptimage.models import GeneratedImage, GenerationInput, ImageGeneration, Phase, Status
from django_gptimage.permissions import check_permission
from django_gptimage.presets import UnknownPreset, get_preset, list_presets
from django_gptimage.prompts import (
    PromptTemplateError,
    alt_text_from_prompt,
    render_prompt,
    template_problems,
)
from django_gptimage.storage import input_name, save_file
from django_gptimage.targets import (
    AppliedResult,
    ApplyRefused,
    Target,
    apply_result,
    bind_target,
    check_candidate,
    generations_for,
    lock_target,
    target_of,
    target_problems,
)
from django_gptimage.upload_paths import ensure_templates

logger = logging.getLogger("django_gptimage")

__all__ = [
    "AppliedResult",
    "ApplyRefused",
    "BatchPlan",
    "BatchProgress",
    "BatchRun",
    "GenerationNotRetryable",
    "GenerationRefused",
    "HookSpec",
    "NamedUpload",
    "PermissionDenied",
    "Preset",
    "PresetOutput",
    "PromptTemplateError",
    "QueueUnavailable",
    "ReapReport",
    "RunOutcome",
    "Target",
    "UnknownPreset",
    "access_for",
    "allowed_tiers_for",
    "apply_candidate",
    "apply_result",
    "autogenerate",
    "batch_progress",
    "bind_generations",
    "bind_target",
    "build_request",
    "cancel_generation",
    "check_candidate",
    "check_generation",
    "check_permission",
    "check_request",
    "credit_quote",
    "usage_report",
    "credit_balance",
    "estimate",
    "estimate_for",
    "field_prompt",
    "generation_status",
    "option_matrix",
    "plan_batch",
    "provider_bills",
    "preset_output_for",
    "dispatch",
    "why_waiting",
    "generate_for",
    "generations_for",
    "get_preset",
    "hook_events_for",
    "list_presets",
    "reap",
    "render_prompt",
    "request_generation",
    "retry_generation",
    "run_batch",
    "run_sync",
    "target_of",
    "template_problems",
    "workers_listening",
]

Upload = str | os.PathLike[str] | IO[bytes]


class GenerationRefused(Exception):
    """Refused before sending: nothing was sent and nothing billed. ``problems`` says why."""

    def __init__(self, problems: Sequence[Problem], code: ErrorCode = ErrorCode.INVALID_PARAMETERS) -> None:
        self.problems = list(problems)
        self.code = code
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))

    def as_dict(self) -> dict[str, list[str]]:
        """Field -> messages, the shape Django forms and JSON views use."""
        out: dict[str, list[str]] = {}
        for p in self.problems:
            out.setdefault(p.field, []).append(p.message)
        return out


class GenerationNotRetryable(Exception):
    pass


@dataclass(frozen=True)
class NamedUpload:
    """An input image with the name to show editors (``name``) and its bytes (``source``)."""

    name: str
    source: Upload


def _as_named(upload: Upload | NamedUpload, index: int, role: str) -> NamedUpload:
    if isinstance(upload, NamedUpload):
        return upload
    if isinstance(upload, str | os.PathLike):
        return NamedUpload(os.path.basename(os.fspath(upload)), upload)
    return NamedUpload(os.path.basename(getattr(upload, "name", "") or f"{role}-{index}"), upload)


def refuse_bad_arguments(**arguments: Any) -> None:
    """Raise :class:`GenerationRefused` for arguments of the wrong type or with control characters."""
    problems = argument_problems(**arguments)
    if problems:
        raise GenerationRefused(problems)


def access_for(user: Any) -> Access | None:
    """What ``user`` has unlocked, from ``GPTIMAGE["ACCESS_RESOLVER"]`` (None = no limit)."""
    path = gptimage_settings.ACCESS_RESOLVER
    if not path:
        return None
    resolver = import_string(path) if isinstance(path, str) else path
    return as_access(resolver(user))


def credit_balance(user: Any) -> credits.Balance:
    """``user``'s credits: ``available`` (can be reserved) and ``reserved`` (held by generations in flight)."""
    return credits.balance(user)


def allowed_tiers_for(user: Any) -> tuple[str, ...] | None:
    """Tiers ``user`` has unlocked (None = no limit beyond the site policy)."""
    access = access_for(user)
    return None if access is None else access.tiers


def build_request(
    *,
    prompt: str,
    model: str | None = None,
    mode: str | None = None,
    ratio: str | None = None,
    tier: str | None = None,
    size: str | None = None,
    quality: str | None = None,
    output_format: str | None = None,
    background: str | None = None,
    output_compression: int | None = None,
    n: int = 1,
    images: Sequence[InspectedUpload] = (),
    mask: InspectedUpload | None = None,
) -> GenerationRequest:
    # Before any default replaces a falsy value (model=0) or a wrong type reaches the rules.
    refuse_bad_arguments(
        prompt=prompt, n=n, output_compression=output_compression, model=model, mode=mode, ratio=ratio,
        tier=tier, size=size, quality=quality, output_format=output_format, background=background,
    )  # fmt: skip
    s = gptimage_settings
    return GenerationRequest(
        prompt=prompt,
        model=model or s.MODEL,
        mode=mode or ("image-to-image" if images else "text-to-image"),
        ratio=None if size else (ratio or s.DEFAULT_RATIO),
        tier=None if size else (tier or s.DEFAULT_TIER),
        size=size,
        quality=quality or s.DEFAULT_QUALITY,
        output_format=output_format or s.DEFAULT_FORMAT,
        background=background or s.DEFAULT_BACKGROUND,
        output_compression=output_compression,
        n=n,
        images=tuple(i.info for i in images),
        mask=mask.info if mask else None,
    )


def check_request(request: GenerationRequest, *, user: Any = None) -> ValidatedRequest:
    """Validate against the model, the site's policy and the user's access; raise if refused.

    Also refuses (before anything is recorded) what the user's plan quota, the spend caps or
    the user's credits cannot cover; the reservation itself is made by request_generation().
    """
    problems = request_argument_problems(request)  # a request built by hand: types before access rules
    if problems:
        raise GenerationRefused(problems)
    site = gptimage_settings.policy
    access = access_for(user)
    result = validate(request, site if access is None else access.narrow(site))
    problems = result.problems if access is None else access_problems(request, result.problems, access, site)
    if problems or result.validated is None:
        code = ErrorCode.INVALID_PARAMETERS
        if all(p.code == "access_denied" for p in problems):
            code = ErrorCode.ACCESS_DENIED
        raise GenerationRefused(problems, code)
    admission.check(result.validated, user=user, access=access)
    return result.validated


def check_generation(
    *,
    prompt: str,
    user: Any = None,
    images: Iterable[Upload | NamedUpload] = (),
    mask: Upload | NamedUpload | None = None,
    **params: Any,
) -> ValidatedRequest:
    """Validate like ``request_generation`` (uploads included) without recording or sending.

    For forms: raises ``GenerationRefused`` with every problem; leaves file objects rewound.
    """
    scratch = tempfile.mkdtemp(prefix="gptimage-check-")
    try:
        named = [_as_named(u, i, "image") for i, u in enumerate(images)]
        inspected = [spool_upload(u.name, u.source, scratch, f"image-{i}") for i, u in enumerate(named)]
        inspected_mask = None
        if mask is not None:
            m = _as_named(mask, 0, "mask")
            inspected_mask = spool_upload(m.name, m.source, scratch, "mask")
        for upload in [*named, *([m] if mask is not None else [])]:
            if hasattr(upload.source, "seek"):
                upload.source.seek(0)
        request = build_request(prompt=prompt, images=inspected, mask=inspected_mask, **params)
        return check_request(request, user=user)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def request_generation(
    *,
    prompt: str,
    user: Any = None,
    source: str = "api",
    model: str | None = None,
    mode: str | None = None,
    ratio: str | None = None,
    tier: str | None = None,
    size: str | None = None,
    quality: str | None = None,
    output_format: str | None = None,
    background: str | None = None,
    output_compression: int | None = None,
    n: int = 1,
    images: Iterable[Upload | NamedUpload] = (),
    mask: Upload | NamedUpload | None = None,
    metadata: dict[str, Any] | None = None,
    run_mode: str | None = None,
    target: Target | None = None,
    parent_image: GeneratedImage | None = None,
    preset: str = "",
    preset_output: str = "",
    alt_text: str = "",
    reuse: bool = False,
) -> ImageGeneration:
    """Validate, record and dispatch one generation. Raises GenerationRefused before sending.

    ``target`` aims it at an object's image field (its images become candidates for
    :func:`apply_result`); ``reuse=True`` returns an in-flight or succeeded generation with the
    same fingerprint and target instead of paying for a new one.
    """
    if user is not None:
        check_permission(user, "generate")
    prepared = _prepare(
        prompt=prompt, user=user, model=model, mode=mode, ratio=ratio, tier=tier, size=size, quality=quality,
        output_format=output_format, background=background, output_compression=output_compression, n=n,
        images=images, mask=mask, target=target, parent_image=parent_image,
    )  # fmt: skip
    try:
        if prepared.problems:
            raise GenerationRefused(prepared.problems, prepared.code)
        _ensure_queue_reachable(run_mode)  # before anything is saved: a clear error, no stranded record
        ensure_templates()  # a path template that cannot name a file must not cost a paid call
        with transaction.atomic():
            generation = _record(
                prepared, user=user, source=source, metadata=metadata, run_mode=run_mode, preset=preset,
                preset_output=preset_output, alt_text=alt_text, reuse=reuse,
            )  # fmt: skip
    finally:
        prepared.cleanup()
    if (run_mode or gptimage_settings.RUN_MODE) == "sync":
        generation.refresh_from_db()
    return generation


@dataclass
class _Prepared:
    """A request read and checked, not yet recorded (inputs spooled in ``scratch``, if any)."""

    scratch: str
    problems: list[Problem]
    code: ErrorCode = ErrorCode.INVALID_PARAMETERS
    validated: ValidatedRequest | None = None
    inputs: list[InspectedUpload] = field(default_factory=list)
    mask: InspectedUpload | None = None
    target: Target | None = None
    parent_image: GeneratedImage | None = None
    fingerprint: str = ""

    def cleanup(self) -> None:
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _prepare(
    *,
    prompt: str,
    user: Any,
    images: Iterable[Upload | NamedUpload],
    mask: Upload | NamedUpload | None,
    target: Target | None,
    parent_image: GeneratedImage | None,
    **params: Any,
) -> _Prepared:
    """Spool and inspect the inputs, validate everything; problems are collected, not raised."""
    # Types first: nothing is read or spooled for arguments that cannot be right.
    images = as_upload_list(images)
    type_problems = upload_argument_problems(images, mask) + argument_problems(prompt=prompt, **params)
    prepared = _Prepared("", [], target=target, parent_image=parent_image)
    if type_problems:
        prepared.problems = type_problems
        return prepared
    try:
        uploads = [_as_named(u, i, "image") for i, u in enumerate(images)]
        if uploads or mask is not None or parent_image is not None:  # a text prompt needs no directory
            prepared.scratch = tempfile.mkdtemp(prefix="gptimage-upload-")
        dirs = prepared.scratch
        if not uploads and parent_image is not None and params.get("mode") == "image-to-image":
            # A variation of a result starts from that result's bytes.
            with parent_image.file.open("rb") as handle:
                name = os.path.basename(parent_image.file.name)
                prepared.inputs = [spool_upload(name, handle, dirs, "image-0")]
        else:
            prepared.inputs = [
                spool_upload(u.name, u.source, dirs, f"image-{i}") for i, u in enumerate(uploads)
            ]
        if mask is not None:
            named = _as_named(mask, 0, "mask")
            prepared.mask = spool_upload(named.name, named.source, dirs, "mask")
        request = build_request(prompt=prompt, images=prepared.inputs, mask=prepared.mask, **params)
        if target is not None:
            prepared.problems += target_problems(target)
        try:
            prepared.validated = check_request(request, user=user)
        except GenerationRefused as refused:
            prepared.problems += refused.problems
            prepared.code = refused.code
        if prepared.validated is not None:
            prepared.fingerprint = _fingerprint(prepared)
    except BaseException:
        prepared.cleanup()
        raise
    return prepared


def _fingerprint(prepared: _Prepared) -> str:
    v = prepared.validated
    assert v is not None
    r = v.request
    params = {
        "provider": gptimage_settings.PROVIDER, "model": r.model, "mode": r.mode, "ratio": v.ratio,
        "tier": v.tier, "size": v.size, "quality": r.quality, "output_format": r.output_format,
        "output_compression": r.output_compression, "background": r.background, "n": r.n,
    }  # fmt: skip
    inputs = [u.sha256 for u in prepared.inputs] + ([f"mask:{prepared.mask.sha256}"] if prepared.mask else [])
    return fingerprint(params, r.prompt, inputs)


def _record(
    prepared: _Prepared,
    *,
    user: Any,
    source: str,
    metadata: dict[str, Any] | None,
    run_mode: str | None,
    preset: str,
    preset_output: str,
    alt_text: str,
    reuse: bool,
) -> ImageGeneration:
    """Create (or, with ``reuse``, find) the record, keep its inputs, dispatch on commit."""
    assert prepared.validated is not None
    target = prepared.target
    if reuse:
        existing = _reusable(prepared, user)
        if existing is not None:
            return existing
    meta = dict(metadata or {})
    meta["alt_text"] = (alt_text or alt_text_from_prompt(prepared.validated.request.prompt))[:500]
    if target is not None:
        meta["target"] = {
            "app_label": target.model._meta.app_label, "model": target.model._meta.model_name,
            "field": target.field, "object_id": target.object_id or "",
        }  # fmt: skip
    generation = _create_record(
        prepared.validated, user=user, source=source, metadata=meta,
        target_content_type=target.content_type if target else None,
        target_object_id=(target.object_id or "") if target else "",
        target_field=target.field if target else "",
        fingerprint=prepared.fingerprint, preset=preset, preset_output=preset_output,
        parent_image=prepared.parent_image,
    )  # fmt: skip
    # Caps again and the credit reservation, under the user's row lock: no reservation, no job.
    admission.check_recorded(generation, user)
    for index, upload in enumerate(prepared.inputs):
        _save_input(generation, upload, GenerationInput.ROLE_IMAGE, index)
    if prepared.mask is not None:
        _save_input(generation, prepared.mask, GenerationInput.ROLE_MASK, 0)
    dispatch(generation, run_mode=run_mode)
    return generation


_REUSABLE = (Status.QUEUED, Status.RUNNING, Status.SUCCEEDED)


def _reusable(prepared: _Prepared, user: Any) -> ImageGeneration | None:
    """The newest in-flight or succeeded generation with the same fingerprint and target."""
    target = prepared.target
    qs = ImageGeneration.objects.filter(fingerprint=prepared.fingerprint, status__in=_REUSABLE)
    if target is None:
        qs = qs.filter(target_content_type=None)
    else:
        if target.object_id:
            lock_target(target)  # two hooks for one object: the second sees the first's record
        qs = qs.filter(
            target_content_type=target.content_type, target_object_id=target.object_id or "",
            target_field=target.field,
        )  # fmt: skip
        if not target.object_id:  # add forms: another editor's unsaved object is not this one
            qs = qs.filter(requested_by=user if getattr(user, "is_authenticated", False) else None)
    return qs.order_by("-created_at").first()


_OVERRIDES = frozenset({
    "model", "mode", "ratio", "tier", "size", "quality", "output_format", "background",
    "output_compression", "n", "prompt", "images", "mask", "metadata", "alt_text", "parent_image",
})  # fmt: skip
_OUTPUT_PARAMS = ("model", "mode", "ratio", "tier", "quality", "output_format", "background", "n")


def generate_for(
    obj_or_target: Model | type[Model] | Target,
    field: str | None = None,
    *,
    preset: str | Preset | None = None,
    template: str | None = None,
    user: Any = None,
    reuse: bool = False,
    values: Mapping[str, Any] | None = None,
    source: str = "api",
    run_mode: str | None = None,
    **overrides: Any,
) -> list[ImageGeneration]:
    """Generate into an object's image field: one targeted generation per preset output.

    ``obj_or_target`` is a model instance (saved or not), a model class (an add form: ``field``
    is required and the records get their object id from :func:`bind_target`), or a Target.
    The prompt comes from ``template`` (or each preset output's template) rendered over the
    object and ``values``, or from ``prompt=``. Every output is rendered and validated before
    anything is recorded: one problem anywhere raises GenerationRefused and sends nothing.
    Problems of a preset with several outputs are keyed ``"<output key>.<field>"``.
    ``overrides`` (ratio, tier, quality, n, images, ...) apply to every output.
    """
    unknown = sorted(set(overrides) - _OVERRIDES)
    if unknown:
        raise TypeError(f"generate_for() got unknown arguments {unknown}; use {sorted(_OVERRIDES)}.")
    if user is not None:
        check_permission(user, "generate")
    obj, model, object_id = _resolve_target(obj_or_target)
    chosen, outputs = _outputs_for(preset, template, overrides)
    wrong_model = _preset_model_problem(chosen, model)
    if wrong_model is not None:
        raise GenerationRefused([wrong_model])
    prepared: list[tuple[PresetOutput, _Prepared]] = []
    opened: list[Any] = []
    try:
        prepared, problems = _prepare_outputs(
            outputs, obj=obj, model=model, object_id=object_id, field=field, values=values, user=user,
            overrides=overrides, opened=opened,
        )  # fmt: skip
        if problems:
            denied = all(p.code == "access_denied" for p in problems)
            raise GenerationRefused(
                problems, ErrorCode.ACCESS_DENIED if denied else ErrorCode.INVALID_PARAMETERS
            )
        _ensure_queue_reachable(run_mode)
        with transaction.atomic():
            generations = [
                _record(
                    p,
                    user=user,
                    source=source,
                    metadata=overrides.get("metadata"),
                    run_mode=run_mode,
                    preset=chosen.name if chosen else "",
                    preset_output=output.key if chosen else "",
                    alt_text=overrides.get("alt_text", ""),
                    reuse=reuse,
                )  # fmt: skip
                for output, p in prepared
            ]
    finally:
        for _, p in prepared:
            p.cleanup()
        for handle in opened:
            handle.close()
    if (run_mode or gptimage_settings.RUN_MODE) == "sync":
        for generation in generations:
            generation.refresh_from_db()
    return generations


def _preset_model_problem(chosen: Preset | None, model: type[Model]) -> Problem | None:
    if chosen is None or not chosen.models or model._meta.label_lower in {m.lower() for m in chosen.models}:
        return None
    return Problem(
        "preset", f"The preset {chosen.name!r} is for {', '.join(chosen.models)}, not {model._meta.label}."
    )


def _prepare_outputs(
    outputs: Sequence[PresetOutput],
    *,
    obj: Model | None,
    model: type[Model],
    object_id: str | None,
    field: str | None,
    values: Mapping[str, Any] | None,
    user: Any,
    overrides: Mapping[str, Any],
    opened: list[Any],
) -> tuple[list[tuple[PresetOutput, _Prepared]], list[Problem]]:
    """Every output read and checked (nothing recorded); the caller cleans up what is prepared."""
    multi = len(outputs) > 1
    prepared: list[tuple[PresetOutput, _Prepared]] = []
    problems: list[Problem] = []
    for output in outputs:
        prefix = f"{output.key}." if multi else ""
        found = _prepare_output(
            output, obj=obj, model=model, object_id=object_id, field=field, values=values,
            user=user, overrides=overrides, opened=opened,
        )  # fmt: skip
        if isinstance(found, list):
            problems += [Problem(prefix + p.field, p.message, p.code) for p in found]
            continue
        prepared.append((output, found))
        problems += [Problem(prefix + p.field, p.message, p.code) for p in found.problems]
    return prepared, problems


def _resolve_target(obj_or_target: Any) -> tuple[Model | None, type[Model], str | None]:
    if isinstance(obj_or_target, Target):
        return None, obj_or_target.model, obj_or_target.object_id
    if isinstance(obj_or_target, type) and issubclass(obj_or_target, Model):
        return None, obj_or_target, None
    if isinstance(obj_or_target, Model):
        obj = obj_or_target
        concrete = type(obj)._meta.concrete_model or type(obj)
        return obj, concrete, None if obj.pk is None else str(obj.pk)
    raise TypeError(
        f"generate_for() needs a model instance, a model class or a Target, not {obj_or_target!r}."
    )


def _outputs_for(
    preset: str | Preset | None, template: str | None, overrides: Mapping[str, Any]
) -> tuple[Preset | None, tuple[PresetOutput, ...]]:
    if isinstance(preset, Preset):  # already looked up (batches look it up once)
        chosen = preset
    elif preset:
        try:
            chosen = get_preset(preset)
        except UnknownPreset as exc:
            raise GenerationRefused([Problem("preset", str(exc))]) from None
    if preset:
        outputs = chosen.outputs
        if template is not None:
            outputs = tuple(dataclasses.replace(o, prompt_template=template) for o in outputs)
        return chosen, outputs
    if template is None and not overrides.get("prompt"):
        raise GenerationRefused(
            [Problem("prompt", "Give a preset, a prompt template or a prompt.", "required")]
        )
    return None, (PresetOutput(key="", prompt_template=template or ""),)


def _prepare_output(
    output: PresetOutput,
    *,
    obj: Model | None,
    model: type[Model],
    object_id: str | None,
    field: str | None,
    values: Mapping[str, Any] | None,
    user: Any,
    overrides: Mapping[str, Any],
    opened: list[Any],
) -> _Prepared | list[Problem]:
    """One output read and checked; a list of problems when it cannot even be prepared."""
    name = output.field or field
    if not name:
        return [Problem("field", "Say which image field to generate into.", "required")]
    if output.prompt_template:
        problems = [Problem("prompt_template", m) for m in template_problems(output.prompt_template, model)]
        if problems:
            return problems
        try:
            prompt = render_prompt(output.prompt_template, obj, values=values)
        except PromptTemplateError as exc:
            return [Problem("prompt_template", str(exc))]
    else:
        prompt = overrides.get("prompt") or ""
    params: dict[str, Any] = {}
    if output.key or output.field or output.source_field:  # a preset output: its own parameters
        params = {k: getattr(output, k) for k in _OUTPUT_PARAMS if getattr(output, k) not in ("", None)}
    params.update({k: overrides[k] for k in ("model", "mode", "ratio", "tier", "size", "quality",
                   "output_format", "background", "output_compression", "n") if k in overrides})  # fmt: skip
    images = list(overrides.get("images") or ())
    missing: Problem | None = None
    if not images and output.source_field and params.get("mode", "text-to-image") == "image-to-image":
        source = _source_image(output.source_field, obj, model, values, opened)
        if isinstance(source, Problem):
            missing = source
        else:
            images = [source]
    prepared = _prepare(
        prompt=prompt, user=user, images=images, mask=overrides.get("mask"),
        target=Target(model, name, object_id), parent_image=overrides.get("parent_image"), **params,
    )  # fmt: skip
    if missing is not None:  # said better than "image-to-image needs an input image"
        prepared.problems = [missing] + [p for p in prepared.problems if p.field != "images"]
    return prepared


def _source_image(
    name: str, obj: Model | None, model: type[Model], values: Mapping[str, Any] | None, opened: list[Any]
) -> NamedUpload | Problem:
    """The image in the object's ``name`` field (or the form's value), to start image-to-image from."""
    value = (values or {}).get(name) if values and name in values else getattr(obj, name, None)
    if value and hasattr(value, "storage") and getattr(value, "name", ""):  # a FieldFile
        handle = value.storage.open(value.name, "rb")
        opened.append(handle)
        return NamedUpload(os.path.basename(value.name), handle)
    if value and hasattr(value, "read"):  # an upload on the form
        return NamedUpload(os.path.basename(getattr(value, "name", "") or name), value)
    verbose = getattr(model._meta.get_field(name), "verbose_name", name) if _has_field(model, name) else name
    return Problem(
        "source_field",
        f"There is no {verbose} yet: upload one first (this preset starts from the {name!r} image).",
        "required",
    )


def _has_field(model: type[Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def estimate_for(validated: ValidatedRequest) -> Any:
    """The estimated cost (USD, a Decimal) of a validated request, as recorded on the generation."""
    return admission.estimate_for(validated)  # the same figure the caps check and credits reserve


def _create_record(
    validated: ValidatedRequest, *, user: Any, source: str, metadata: dict[str, Any], **fields: Any
) -> ImageGeneration:
    r = validated.request
    return ImageGeneration.objects.create(
        requested_by=user if getattr(user, "is_authenticated", False) else None,
        source=source,
        provider=gptimage_settings.PROVIDER,
        model=r.model,
        mode=r.mode,
        ratio=validated.ratio,
        tier=validated.tier,
        size=validated.size,
        width=validated.width,
        height=validated.height,
        quality=r.quality,
        output_format=r.output_format,
        output_compression=r.output_compression,
        background=r.background,
        n=r.n,
        prompt=r.prompt,
        estimated_cost=estimate_for(validated),
        metadata=metadata,
        **fields,
    )


def _save_input(generation: ImageGeneration, upload: InspectedUpload, role: str, index: int) -> None:
    info = upload.info
    name = save_file(
        upload.path,
        input_name(generation, role=role, index=index, fmt=info.format or ""),
        info.format or "png",
    )
    GenerationInput.objects.create(
        generation=generation, role=role, index=index, file=name, original_name=info.name[:255],
        format=info.format or "", width=info.width, height=info.height, size_bytes=info.size_bytes,
        sha256=upload.sha256,
    )  # fmt: skip


def _ensure_queue_reachable(run_mode: str | None) -> None:
    """In queue mode, raise QueueUnavailable unless Redis answers (sync mode needs no queue)."""
    if (run_mode or gptimage_settings.RUN_MODE) != "sync":
        from django_gptimage import jobs

        jobs.ensure_reachable()


def provider_bills() -> bool:
    """Whether the configured provider charges for images: False for the offline placeholders,
    so faces can say an estimate will not be billed. A broken setting counts as billing (E001)."""
    from django.core.exceptions import ImproperlyConfigured

    from django_gptimage.providers import get_provider_class

    try:
        return bool(getattr(get_provider_class(gptimage_settings.PROVIDER), "billable", True))
    except ImproperlyConfigured:
        return True


def workers_listening() -> bool | None:
    """Whether any RQ worker listens on the generation queue (None: Redis did not answer)."""
    from redis.exceptions import RedisError
    from rq import Worker

    from django_gptimage import jobs

    try:
        queue = jobs.get_queue()
        return bool(Worker.all(queue=queue))  # the queue's own worker set (rq:workers:<queue>)
    except RedisError:
        return None


# A queued generation nobody took this long after it was due gets a diagnosis.
WAITING_GRACE = 5.0


def why_waiting(generation: ImageGeneration) -> str | None:
    """Why a queued generation that is due has not started, and what to start; None if it
    is not due yet, not queued, or nothing is wrong that can be seen from here.

    - no RQ worker listens on the generation queue;
    - its retry waits in RQ's scheduled registry but no RQ scheduler runs for the queue
      (any generation job, the reaper or ``gptimage_worker`` queues it after
      ``jobs.OVERDUE_GRACE`` seconds, but only if one of them runs).
    """
    from redis.exceptions import RedisError
    from rq.registry import ScheduledJobRegistry

    from django_gptimage import jobs

    if generation.status != Status.QUEUED or gptimage_settings.RUN_MODE != "queue":
        return None
    due = generation.next_attempt_at or generation.created_at
    late = (timezone.now() - due).total_seconds() if due else 0.0
    if late < WAITING_GRACE:
        return None
    queue_name = gptimage_settings.QUEUE
    listening = workers_listening()
    if listening is None:
        return (
            f"The queue's Redis does not answer, so nothing can start the generation (queue {queue_name!r})."
        )
    if not listening:
        what = "Its retry was due" if generation.attempts else "It was queued"
        return (
            f"{what} {late:.0f} s ago but no worker is listening on queue {queue_name!r}. Start one with "
            f"`manage.py gptimage_worker` (or `manage.py rqworker {queue_name} --with-scheduler`)."
        )
    try:
        queue = jobs.get_queue()
        scheduled = {jobs.generation_id_of(j) for j in ScheduledJobRegistry(queue=queue).get_job_ids()}
        if str(generation.pk) in scheduled and not jobs.scheduler_running(queue):
            return (
                f"Its retry was due {late:.0f} s ago and waits in RQ's scheduled jobs, but no RQ scheduler "
                f"runs for queue {queue_name!r}: start `manage.py gptimage_worker` or "
                f"`manage.py rqworker {queue_name} --with-scheduler` (or run `manage.py gptimage_reap`)."
            )
    except RedisError:
        return None
    return None


def dispatch(generation: ImageGeneration, *, run_mode: str | None = None) -> None:
    """Start the generation: as a job after commit, or right away in this process."""
    mode = run_mode or gptimage_settings.RUN_MODE
    if mode == "sync":
        transaction.on_commit(lambda: run_sync(generation.pk))
    else:
        from django_gptimage import jobs

        jobs.enqueue_on_commit(generation.pk)


def run_sync(generation_id: Any, *, max_wait: float | None = None) -> RunOutcome:
    """Run in this process, sleeping between retries (for sync mode, scripts and tests)."""
    outcome = run_generation(generation_id)
    while outcome.retry_in is not None:
        if max_wait is not None and outcome.retry_in > max_wait:
            break
        time.sleep(outcome.retry_in)
        outcome = run_generation(generation_id)
    return outcome


def cancel_generation(generation: ImageGeneration) -> ImageGeneration:
    """Cancel: a queued one never runs; a running one finishes its call and keeps or drops the result."""
    now = timezone.now()
    # Flag first, in one statement for both states: a record that moves from running back to
    # queued (a retry being scheduled) in between is still caught, by the claim if not here.
    ImageGeneration.objects.filter(pk=generation.pk, status__in=(Status.QUEUED, Status.RUNNING)).update(
        cancel_requested=True
    )
    ImageGeneration.objects.filter(pk=generation.pk, status=Status.QUEUED).update(
        status=Status.CANCELED, phase=Phase.DONE, error_code=ErrorCode.CANCELED,
        error_detail=[], finished_at=now, next_attempt_at=None,
    )  # fmt: skip
    generation.refresh_from_db()
    if generation.status == Status.CANCELED:
        credits.settle(generation)  # never sent: the reservation comes back (once)
        from django_gptimage.jobs import leftovers

        leftovers.generation_ended(generation.pk)  # previews of an earlier attempt, input copies
    if generation.status == Status.CANCELED and gptimage_settings.RUN_MODE == "queue":
        from django_gptimage import jobs

        jobs.remove_queued(generation.pk)
    return generation


def retry_generation(
    generation: ImageGeneration, *, run_mode: str | None = None, user: Any = None
) -> ImageGeneration:
    """Try a failed generation again on the same record.

    A storage failure only stores the kept bytes again; other failures call the provider again
    when their retry rule allows it (never for moderation, quota, bad keys or bad input).
    Given ``user``, needs the ``django_gptimage.retry`` permission.
    """
    if user is not None:
        check_permission(user, "retry")
    generation.refresh_from_db()
    if generation.status != Status.FAILED:
        raise GenerationNotRetryable(
            f"Only failed generations can be retried (this one is {generation.status})."
        )
    rule = error_info(generation.error_code).retry if generation.error_code else RetryRule.NEVER
    if rule is RetryRule.NEVER:
        raise GenerationNotRetryable(error_text(generation.error_code))  # in the editor's language
    _ensure_queue_reachable(run_mode)
    with transaction.atomic():
        # The last attempt's error stays on its GenerationAttempt row; the record starts afresh.
        updated = ImageGeneration.objects.filter(pk=generation.pk, status=Status.FAILED).update(
            status=Status.QUEUED, phase=Phase.QUEUED, finished_at=None, next_attempt_at=None,
            cancel_requested=False, error_code="", error_detail=[], updated_at=timezone.now(),
        )  # fmt: skip
        if updated:
            if not generation.metadata.get("spooled"):  # a store-only retry was paid for already
                _reserve_again(generation)
            dispatch(generation, run_mode=run_mode)
    generation.refresh_from_db()
    return generation


def _reserve_again(generation: ImageGeneration) -> None:
    """A retry by hand that calls the provider again reserves again (its first one was settled)."""
    owner = generation.requested_by
    if owner is None:
        return
    try:
        credits.reserve(generation, owner, note=f"retry: estimate {generation.estimated_cost} USD")
    except credits.InsufficientCredits as exc:
        raise GenerationRefused(
            [Problem("credits", str(exc), ErrorCode.INSUFFICIENT_CREDITS.value)],
            ErrorCode.INSUFFICIENT_CREDITS,
        ) from None


def apply_candidate(
    image: GeneratedImage,
    obj: Model,
    *,
    user: Any = None,
    alt_field: str | None = None,
    made: Iterable[Any] = (),
) -> AppliedResult:
    """A form's chosen candidate into ``obj`` once the form has saved it (the widget's save step).

    Binds the image's generation (and the form's other generations ``made``, ids of the same
    user's add-form generations for the same model) to ``obj`` when they were requested on an
    add form, then :func:`apply_result`. Raises ApplyRefused.
    """
    bind_generations(made, obj, user=user)
    generation = image.generation
    if not generation.target_object_id:
        bind_target(generation, obj, user=user)
        image.generation.refresh_from_db()
    return apply_result(image, user=user, obj=obj, alt_field=alt_field, generation=generation)


def bind_generations(ids: Iterable[Any], obj: Model, *, user: Any = None) -> int:
    """Bind the add-form generations ``ids`` requested by ``user`` for ``obj``'s model to ``obj``.

    Others (someone else's, another model's, already bound) are skipped; returns how many were bound.
    """
    from django.contrib.contenttypes.models import ContentType

    wanted = [str(i) for i in ids if i]
    if not wanted or obj.pk is None:
        return 0
    qs = ImageGeneration.objects.filter(
        pk__in=_uuids(wanted), target_content_type=ContentType.objects.get_for_model(type(obj)),
        target_object_id="",
    )  # fmt: skip
    if user is not None and not getattr(user, "is_superuser", False):
        qs = qs.filter(requested_by=user if getattr(user, "is_authenticated", False) else None)
    bound = 0
    for generation in qs:
        bind_target(generation, obj, user=user)
        bound += 1
    return bound


def _uuids(values: Iterable[str]) -> list[Any]:
    import uuid

    out = []
    for value in values:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            continue
    return out


def field_prompt(
    model: type[Model],
    field: str,
    *,
    obj: Model | None = None,
    values: Mapping[str, Any] | None = None,
    preset: str | None = None,
    template: str | None = None,
) -> str:
    """The prompt a field's Generate panel starts with: ``template``, or the preset's output for
    ``field`` (else its first), rendered over ``obj`` and the form's current ``values`` by the
    locked-down prompt engine. Empty when there is neither. Raises PromptTemplateError."""
    if template is None and preset:
        output = preset_output_for(preset, field)
        template = output.prompt_template if output is not None else None
    if not template:
        return ""
    problems = template_problems(template, model)
    if problems:
        raise PromptTemplateError(" ".join(problems))
    return render_prompt(template, obj, values=values)


def preset_output_for(preset: str, field: str) -> PresetOutput | None:
    """The output of ``preset`` that fills ``field`` (else its first output); None for an unknown preset."""
    try:
        chosen = get_preset(preset)
    except UnknownPreset:
        return None
    for output in chosen.outputs:
        if output.field == field:
            return output
    return chosen.outputs[0] if chosen.outputs else None


# Faces' helpers, defined in their own modules (they import this one lazily).
from django_gptimage.access.usage import UsageReport, usage_report  # noqa: E402, F401
from django_gptimage.batch import (  # noqa: E402
    BatchPlan,
    BatchProgress,
    BatchRun,
    batch_progress,
    plan_batch,
    run_batch,
)
from django_gptimage.options import credit_quote, estimate, option_matrix  # noqa: E402
from django_gptimage.status import generation_status  # noqa: E402
