"""The Generate widget's JSON endpoints. Thin callers of the service API.

- ``POST widget/generate/``: the panel's values (``GenerationForm`` fields without a prefix,
  ``images`` uploads, ``use_current=1`` for the field's saved image, ``parent_image`` to edit a
  candidate) and the widget's signed ``token`` (model, field, object, preset). Answers 202
  ``{"generations": [{"id", "status_url", "status"}], "workers_listening", "job_timeout"}``.
- ``POST widget/prompt/``: ``token`` and the form's current values; answers ``{"prompt"}``
  rendered from the field's preset or template (an add form's prefill).
- ``GET widget/history/?token=…``: the field's generations, newest first, each with its
  candidates (``{"generations": [...]}``).

Every endpoint needs a signed-in user with the ``django_gptimage.generate`` permission and
change (or, on an add form, add) permission on the model; POSTs need the CSRF token. Bad input
is a 400 ``{"message", "errors": {field: [messages]}}``, nothing recorded or sent; more than
``WIDGET_RATE_LIMIT`` generate requests a minute is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.apps import apps
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db.models import Model
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from django_gptimage.conf import gptimage_settings
from django_gptimage.forms import GenerationForm
from django_gptimage.models import GeneratedImage
from django_gptimage.service import (
    GenerationRefused,
    PromptTemplateError,
    QueueUnavailable,
    Target,
    field_prompt,
    generation_status,
    generations_for,
    request_generation,
    workers_listening,
)
from django_gptimage.widgets import widget_config

__all__ = ["widget_generate_view", "widget_history_view", "widget_prompt_view"]

HISTORY_LIMIT = 30
MAX_VALUES = 200  # form values read for a prompt


def _json(data: dict[str, Any], status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    return response


class _Refused(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status, self.message, self.extra = status, message, extra


def _target(request: HttpRequest, token: str) -> tuple[dict[str, Any], type[Model], Model | None]:
    """The widget's config, model and object, after the sign-in and permission checks."""
    user = request.user
    if not user.is_authenticated:
        raise _Refused(401, _("Sign in to generate images."))
    if not (user.is_active and user.has_perm("django_gptimage.generate")):
        raise _Refused(403, _("You may not generate images: ask for the “Can generate images” permission."))
    try:
        config = widget_config(token or "")
        model = apps.get_model(config["model"])
    except (signing.BadSignature, LookupError, KeyError, ValueError, TypeError):
        raise _Refused(400, _("This form's Generate panel is out of date: reload the page.")) from None
    opts = model._meta
    object_id = config.get("object_id")
    action = "change" if object_id else "add"
    if not user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}"):
        raise _Refused(
            403, _("You may not %(action)s this %(model)s.") % {"action": action, "model": opts.verbose_name}
        )
    obj = None
    if object_id:
        obj = model._default_manager.filter(pk=object_id).first()
        if obj is None:
            raise _Refused(404, _("This %(model)s has been deleted.") % {"model": opts.verbose_name})
    return config, model, obj


def _guarded(view: Any) -> Any:
    def wrapped(request: HttpRequest) -> JsonResponse:
        try:
            return view(request)
        except _Refused as refused:
            return _json({"message": refused.message, **refused.extra}, refused.status)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _rate_limited(user: Any) -> int | None:
    """Seconds to wait when ``user`` has used up this minute's generate requests, else None."""
    limit = gptimage_settings.WIDGET_RATE_LIMIT
    if limit is None:
        return None
    window = int(time.time() // 60)
    key = f"gptimage:widget-rate:{user.pk}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted in between
        cache.set(key, 1, timeout=120)
        count = 1
    if count > limit:
        return max(1, 60 - int(time.time() % 60))
    return None


def _errors(form: GenerationForm) -> dict[str, list[str]]:
    return {
        (field if field != "__all__" else "non_field"): [e["message"] for e in errors]
        for field, errors in form.errors.get_json_data().items()
    }


def _status_url(generation: Any) -> str:
    return reverse("gptimage:generation-status", args=[generation.pk])


@require_POST
@_guarded
def widget_generate_view(request: HttpRequest) -> JsonResponse:
    """Validate the panel's values like the admin's generate page and queue the generation."""
    config, model, obj = _target(request, request.POST.get("token", ""))
    wait = _rate_limited(request.user)
    if wait is not None:
        return _json(
            {
                "message": _("Too many generate requests: wait %(s)d s and try again.") % {"s": wait},
                "retry_after": wait,
            },
            429,
            Retry_After=str(wait),
        )
    field = config["field"]
    data = request.POST.copy()
    data["target_model"], data["target_field"] = config["model"], field
    data["target_object_id"] = config.get("object_id") or ""
    data["preset"] = config.get("preset") or ""
    files = request.FILES.copy()
    opened: list[Any] = []
    parent = None
    try:
        if data.get("parent_image"):
            parent = _parent_image(
                request, data.get("parent_image", ""), model, field, config.get("object_id")
            )
            if parent is None:
                return _json({"message": _("Nothing was sent."), "errors": {"parent_image": [
                    _("That image is not one of this field's candidates.")]}}, 400)  # fmt: skip
            if not files.getlist("images"):
                opened.append(File(parent.file.open("rb"), name=parent.file.name.rsplit("/", 1)[-1]))
        elif data.get("use_current") and not files.getlist("images"):
            current = getattr(obj, field, None) if obj is not None else None
            if not current:
                return _json({"message": _("Nothing was sent."), "errors": {"images": [
                    _("There is no current image to start from: upload one, or save the form first.")]}}, 400)  # fmt: skip
            opened.append(
                File(current.storage.open(current.name, "rb"), name=current.name.rsplit("/", 1)[-1])
            )
        if opened:
            files.setlist("images", opened)
        form = GenerationForm(data, files, user=request.user)
        if not form.is_valid():
            return _json(
                {"message": _("Nothing was sent: correct the settings below."), "errors": _errors(form)}, 400
            )
        kwargs = form.request_kwargs()
        try:
            generation = request_generation(
                **kwargs, user=request.user, source="widget", parent_image=parent,
                metadata={"widget": {"field": field}},
            )  # fmt: skip
        except GenerationRefused as refused:
            return _json({"message": _("Nothing was sent."), "errors": refused.as_dict()}, 400)
        except PermissionDenied as exc:
            return _json({"message": str(exc)}, 403)
        except QueueUnavailable as exc:
            return _json(
                {"message": str(exc) or _("The job queue is not reachable; try again shortly.")}, 503
            )
    finally:
        for handle in opened:
            handle.close()
    generation = type(generation).objects.prefetch_related("images").get(pk=generation.pk)
    return _json(
        {
            "generations": [
                {
                    "id": str(generation.pk),
                    "status_url": _status_url(generation),
                    "status": generation_status(generation),
                }
            ],
            "workers_listening": workers_listening() if gptimage_settings.RUN_MODE == "queue" else True,
            "job_timeout": gptimage_settings.JOB_TIMEOUT,
        },
        202,
    )


def _parent_image(request: HttpRequest, value: str, model: type[Model], field: str, object_id: Any) -> Any:
    """A candidate of this field the user may see, to send back as the input ("edit this image")."""
    if not str(value).isdigit():
        return None
    image = GeneratedImage.objects.select_related("generation").filter(pk=int(value)).first()
    if image is None:
        return None
    gen = image.generation
    from django.contrib.contenttypes.models import ContentType

    if gen.target_content_type_id != ContentType.objects.get_for_model(model).pk or gen.target_field != field:
        return None
    if object_id and gen.target_object_id == str(object_id):
        return image
    if not gen.target_object_id and gen.requested_by_id == request.user.pk:
        return image
    return None


def _values(request: HttpRequest, model: type[Model]) -> dict[str, Any]:
    """The add form's current values the client sent, as the model's own field types."""
    raw = request.POST.get("values") or "{}"
    try:
        sent = json.loads(raw)
    except ValueError:
        raise _Refused(400, _("The form's values could not be read.")) from None
    if not isinstance(sent, dict):
        raise _Refused(400, _("The form's values could not be read."))
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.is_relation or field.name not in sent or len(values) >= MAX_VALUES:
            continue
        value = sent[field.name]
        if not isinstance(value, str):
            continue
        try:
            values[field.name] = field.to_python(value) if value != "" else value
        except ValidationError:
            values[field.name] = value
    return values


@require_POST
@_guarded
def widget_prompt_view(request: HttpRequest) -> JsonResponse:
    """The field's prompt template rendered over the object and the form's current values."""
    config, model, obj = _target(request, request.POST.get("token", ""))
    try:
        prompt = field_prompt(
            model, config["field"], obj=obj, values=_values(request, model), preset=config.get("preset") or None,
            template=config.get("template"),
        )  # fmt: skip
    except PromptTemplateError as exc:
        return _json({"message": str(exc), "errors": {"prompt": [str(exc)]}}, 400)
    return _json({"prompt": prompt})


@require_GET
@_guarded
def widget_history_view(request: HttpRequest) -> JsonResponse:
    """The field's generations (its history), newest first, with their candidates and lineage."""
    config, model, obj = _target(request, request.GET.get("token", ""))
    field = config["field"]
    if obj is not None:
        qs = generations_for(Target(model, field, str(obj.pk)))
    else:  # an add form: this user's generations not bound to an object yet
        from django.contrib.contenttypes.models import ContentType

        from django_gptimage.models import ImageGeneration

        qs = (
            ImageGeneration.objects.filter(
                target_content_type=ContentType.objects.get_for_model(model),
                target_field=field,
                target_object_id="",
                requested_by_id=request.user.pk,
            )  # fmt: skip
            .select_related("requested_by")
            .prefetch_related("images")
            .order_by("-created_at")
        )
    rows = []
    for generation in qs[:HISTORY_LIMIT]:
        status = generation_status(generation)
        who = generation.requested_by
        rows.append(
            {
                "id": str(generation.pk),
                "status_url": _status_url(generation),
                "status": status,
                "prompt": generation.prompt,
                "requested_by": (who.get_username() if who is not None else ""),
                "parent_image": generation.parent_image_id,
            }
        )
    return _json({"generations": rows})
