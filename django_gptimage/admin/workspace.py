"""The pages of the editor's workspace: generate, a generation's page, compare, upscale, edit.

Mixed into ``ImageGenerationAdmin``. Each view checks its permission, calls one service
function and redirects to the generation it made (or back, with a message saying why not).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_gptimage.admin.downloads import zip_response
from django_gptimage.domain.sizes import TIERS
from django_gptimage.forms import GenerationForm
from django_gptimage.models import GeneratedImage, GenerationInput, ImageGeneration, Status
from django_gptimage.service import (
    GenerationNotRetryable,
    GenerationRefused,
    NamedUpload,
    QueueUnavailable,
    cancel_generation,
    credit_quote,
    generation_status,
    option_matrix,
    provider_bills,
    request_generation,
    retry_generation,
)
from django_gptimage.status import image_url
from django_gptimage.targets import ApplyRefused, apply_result, target_of

PERM = "django_gptimage.{}"
TEMPLATES = "admin/django_gptimage/imagegeneration/"
MAX_COMPARE = 4


def may(request: HttpRequest, action: str) -> bool:
    """``generate`` / ``retry`` / ``apply`` (paid or writing actions), or a Django model permission."""
    return bool(request.user.is_active and request.user.has_perm(PERM.format(action)))


def params_of(generation: ImageGeneration) -> dict[str, Any]:
    """The request parameters of a generation, as ``request_generation`` keywords."""
    g = generation
    return {
        "prompt": g.prompt, "model": g.model, "mode": g.mode, "ratio": g.ratio, "tier": g.tier,
        "quality": g.quality, "output_format": g.output_format, "background": g.background, "n": g.n,
        "output_compression": g.output_compression,
    }  # fmt: skip


def stored_inputs(generation: ImageGeneration) -> tuple[list[NamedUpload], NamedUpload | None]:
    """The generation's stored reference images and mask, opened for a new request."""
    images, mask = [], None
    for item in generation.inputs.all():
        upload = NamedUpload(item.original_name or item.file.name, item.file.open("rb"))
        if item.role == GenerationInput.ROLE_MASK:
            mask = upload
        else:
            images.append(upload)
    return images, mask


def with_stored_inputs(files: Any, source: ImageGeneration) -> tuple[Any, list[Any]]:
    """``files`` plus the source's stored inputs as uploads (for "use the original's images")."""
    from django.core.files import File

    files = files.copy()
    opened: list[Any] = []
    images = []
    for item in source.inputs.all():
        handle = File(item.file.storage.open(item.file.name, "rb"), name=item.original_name or item.file.name)
        opened.append(handle)
        if item.role == GenerationInput.ROLE_MASK:
            if not files.get("mask"):
                files["mask"] = handle
        else:
            images.append(handle)
    files.setlist("images", images)
    return files, opened


def _close(uploads: list[NamedUpload | None]) -> None:
    for upload in uploads:
        if upload is not None and hasattr(upload.source, "close"):
            upload.source.close()


def target_text(obj: Any, field: str) -> str:
    """“Harbour festival”'s cover (the object and the field's verbose name)."""
    if obj is None:
        return field
    try:
        label = obj._meta.get_field(field).verbose_name
    except Exception:  # noqa: BLE001 - a field that is gone still gets a name
        label = field
    return _("%(model)s “%(obj)s”'s %(field)s") % {
        "model": obj._meta.verbose_name,
        "obj": obj,
        "field": label,
    }


def admin_url_of(obj: Any) -> str | None:
    from django.urls import NoReverseMatch

    opts = obj._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


def refusal_text(refused: GenerationRefused) -> str:
    return " ".join(p.message for p in refused.problems)


class UpscaleForm(forms.Form):
    tier = forms.ChoiceField(label=gettext_lazy("Larger tier"), widget=forms.RadioSelect)
    mode = forms.ChoiceField(
        label=gettext_lazy("How"),
        widget=forms.RadioSelect,
        choices=[
            ("text-to-image", gettext_lazy("Generate again at the larger size, same prompt and settings")),
            ("image-to-image", gettext_lazy("Redraw this image at the larger size (image to image)")),
        ],
        initial="image-to-image",
    )
    prompt = forms.CharField(
        label=gettext_lazy("Instruction for the redraw"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "gptimage-prompt"}),
        help_text=gettext_lazy("Image to image only; leave empty to keep the original prompt."),
    )

    def __init__(self, *args: Any, generation: ImageGeneration, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cells = option_matrix(user, model=generation.model)["models"][generation.model]["cells"]
        choices, self.refused = [], {}
        for tier in TIERS[TIERS.index(generation.tier) + 1 :] if generation.tier in TIERS else ():
            cell = cells["text-to-image"].get(generation.ratio, {}).get(tier)
            if cell and cell["allowed"]:
                choices.append((tier, f"{tier} ({cell['width']}×{cell['height']})"))
            elif cell:
                self.refused[tier] = cell["reason"]
        cast(forms.ChoiceField, self.fields["tier"]).choices = choices
        if choices:
            self.fields["tier"].initial = choices[0][0]


class ContinueForm(forms.Form):
    prompt = forms.CharField(
        label=gettext_lazy("What to change"),
        widget=forms.Textarea(attrs={"rows": 4, "class": "gptimage-prompt"}),
        help_text=gettext_lazy(
            "Say what to change and what to keep, e.g. “make the sky stormy, keep the boat”."
        ),
        required=False,
        strip=False,
    )
    mask = forms.FileField(
        label=gettext_lazy("Mask"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png"}),
        help_text=gettext_lazy("Optional: a PNG the size of this image; its transparent areas are edited."),
    )


class GenerationWorkspaceMixin:
    """Views of the workspace, for a ModelAdmin of ImageGeneration."""

    admin_site: Any
    opts: Any
    message_user: Any

    # -- permissions -------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may(request, "generate")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record is history: nothing on it is edited by hand

    # -- URLs --------------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        urls = [
            path("compare/", wrap(self.compare_view), name=f"{name}_compare"),
            path("<uuid:pk>/retry/", wrap(self.retry_view), name=f"{name}_retry"),
            path("<uuid:pk>/cancel/", wrap(self.cancel_view), name=f"{name}_cancel"),
            path("<uuid:pk>/duplicate/", wrap(self.duplicate_view), name=f"{name}_duplicate"),
            path("<uuid:pk>/download/", wrap(self.download_view), name=f"{name}_download"),
            path("image/<int:image_id>/upscale/", wrap(self.upscale_view), name=f"{name}_upscale"),
            path("image/<int:image_id>/edit/", wrap(self.continue_view), name=f"{name}_continue"),
            path("image/<int:image_id>/apply/", wrap(self.apply_view), name=f"{name}_apply"),
            path("review/", wrap(self.review_view), name=f"{name}_review"),
        ]
        return urls + super().get_urls()  # type: ignore[misc]

    def url(self, view: str, *args: Any) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}", args=args
        )

    def page_url(self, generation: ImageGeneration) -> str:
        return self.url("change", generation.pk)

    def context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "has_view_permission": True,
            **extra,
        }

    def get_generation(self, request: HttpRequest, pk: Any) -> ImageGeneration:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        try:
            uuid.UUID(str(pk))
        except ValueError:
            raise Http404("No such generation.") from None
        queryset = ImageGeneration.objects.select_related("requested_by").prefetch_related(
            "images", "inputs", "attempt_log"
        )
        return get_object_or_404(queryset, pk=pk)

    # -- the generate page -------------------------------------------------------------------

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        source = None
        if request.GET.get("from"):
            source = self.get_generation(request, request.GET["from"])
        opened: list[Any] = []
        if request.method == "POST":
            files = request.FILES
            if source is not None and request.POST.get("reuse_inputs") and not files.getlist("images"):
                files, opened = with_stored_inputs(files, source)
            form = GenerationForm(request.POST, files, user=request.user)
            try:
                if form.is_valid():
                    generation = self._generate(request, form, source)
                    if generation is not None:
                        return HttpResponseRedirect(self.page_url(generation))
            finally:
                for handle in opened:
                    handle.close()
        else:
            initial: dict[str, Any] = params_of(source) if source else {}
            if source is not None:
                found = target_of(source)
                if found is not None:
                    initial.update(target_model=found.model._meta.label_lower, target_field=found.field,
                                   target_object_id=found.object_id or "", preset=source.preset)  # fmt: skip
            for name in ("preset", "target_model", "target_object_id", "target_field"):
                if request.GET.get(name):
                    initial[name] = request.GET[name]
            form = GenerationForm(initial=initial, user=request.user)
        reuse = list(source.inputs.all()) if source else []
        context = self.context(
            request,
            title=_("Generate images"),
            form=form,
            matrix=form.option_matrix(),
            media=self.media + form.media,  # type: ignore[attr-defined]
            source=source,
            reuse_inputs=reuse,
            changelist_url=self.url("changelist"),
            credit_quote=self.credit_line(request, form),
            billable=provider_bills(),
        )
        return TemplateResponse(request, TEMPLATES + "generate.html", context)

    def credit_line(self, request: HttpRequest, form: Any) -> dict[str, Any] | None:
        """What the form's current choices would reserve, and the balance (None: credits are off)."""
        values: dict[str, Any] = {}
        for name in ("model", "mode", "ratio", "tier", "quality"):
            value = form[name].value() if name in form.fields else None
            if isinstance(value, str) and value:
                values[name] = value
        try:
            values["n"] = max(1, int(form["n"].value() or 1)) if "n" in form.fields else 1
        except (TypeError, ValueError):
            values["n"] = 1
        prompt = form["prompt"].value() if "prompt" in form.fields else ""
        try:
            quote = credit_quote(
                user=request.user, prompt=prompt if isinstance(prompt, str) else "", **values
            )
        except GenerationRefused:  # a combination with no size: the defaults give the balance line
            quote = credit_quote(user=request.user)
        return quote.as_dict() if quote.enabled else None

    def _generate(
        self, request: HttpRequest, form: GenerationForm, source: ImageGeneration | None
    ) -> ImageGeneration | None:
        kwargs = form.request_kwargs()
        metadata = {"regenerated_from": str(source.pk)} if source else {}
        try:
            return request_generation(**kwargs, user=request.user, source="admin", metadata=metadata)
        except GenerationRefused as refused:  # the same rules as clean(): only a race gets here
            for field, problems in refused.as_dict().items():
                for message in problems:
                    form.add_error(field if field in form.fields else None, message)
        except (QueueUnavailable, PermissionDenied) as exc:
            form.add_error(None, str(exc))
        return None

    # -- a generation's page -----------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        generation = self.get_generation(request, object_id)
        status = generation_status(generation)
        images = list(generation.images.all())
        inputs = list(generation.inputs.all())
        target = self._target(request, generation)
        upscaled_from = self._image_of(generation.metadata.get("upscaled_from"))
        edited_from = self._image_of(generation.metadata.get("edited_from"))
        context = self.context(
            request,
            title=_("Generation"),
            subtitle=status["line"],
            generation=generation,
            status=status,
            images=[(image, image_url(image.file.name)) for image in images],
            inputs=[(item, image_url(item.file.name)) for item in inputs],
            attempts=list(generation.attempt_log.all()),
            status_url=reverse("gptimage:generation-status", args=[generation.pk]),
            can_generate=may(request, "generate"),
            can_retry=may(request, "retry") and bool(status["error"] and status["error"]["retryable"]),
            can_cancel=may(request, "generate") and generation.status in (Status.QUEUED, Status.RUNNING),
            upscaled_from=upscaled_from,
            edited_from=edited_from,
            record=self._record(generation),
            media=self.media,  # type: ignore[attr-defined]
            changelist_url=self.url("changelist"),
            original=generation,
            target=target,
        )
        return TemplateResponse(request, TEMPLATES + "generation.html", context)

    def _target(self, request: HttpRequest, generation: ImageGeneration) -> dict[str, Any] | None:
        """What the generation is for: the object (one query), its field, its current image."""
        target = target_of(generation)
        if target is None:
            return None
        obj = None
        if target.object_id:
            obj = target.model._default_manager.filter(pk=target.object_id).first()
        opts = target.model._meta
        value = getattr(obj, target.field, None) if obj is not None else None
        try:
            current = value.url if value else None
        except ValueError:
            current = None
        return {
            "obj": obj,
            "field": target.field,
            "label": target_text(obj, target.field) if obj is not None else
                     _("a new %(model)s (not saved yet)") % {"model": opts.verbose_name},
            "url": admin_url_of(obj) if obj is not None else None,
            "current": current,
            "can_apply": obj is not None and may(request, "apply")
                         and request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"),
            "gone": bool(target.object_id) and obj is None,
        }  # fmt: skip

    def _image_of(self, image_id: Any) -> tuple[GeneratedImage, str | None] | None:
        if not image_id:
            return None
        image = GeneratedImage.objects.select_related("generation").filter(pk=image_id).first()
        return (image, image_url(image.file.name)) if image else None

    def _record(self, generation: ImageGeneration) -> list[tuple[str, Any]]:
        g = generation
        return [
            (_("Our id"), g.pk), (_("Provider request id"), g.provider_request_id or "-"),
            (_("Provider"), g.provider), (_("Source"), g.source or "-"), (_("Created"), g.created_at),
            (_("Started"), g.started_at or "-"), (_("Finished"), g.finished_at or "-"),
            (_("Attempts"), g.attempts), (_("Next attempt"), g.next_attempt_at or "-"),
            (_("Estimated cost"), g.estimated_cost), (_("Actual cost"), g.actual_cost),
            (_("Usage"), g.usage or "-"), (_("Worker"), g.worker or "-"), (_("Heartbeat"), g.heartbeat_at or "-"),
            (_("Spool"), g.spool_dir or "-"), (_("Preview"), g.preview or "-"),
            (_("Cancel requested"), g.cancel_requested), (_("Metadata"), g.metadata or "-"),
        ]  # fmt: skip

    # -- one-record actions (POST) -----------------------------------------------------------

    def _post_only(self, request: HttpRequest) -> None:
        if request.method != "POST":
            raise PermissionDenied("Use the buttons on the generation's page.")

    def retry_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        self._post_only(request)
        generation = self.get_generation(request, pk)
        if not may(request, "retry"):
            self.message_user(
                request, _("You may not retry generations: ask for the “retry” permission."), messages.ERROR
            )
            return HttpResponseRedirect(self.page_url(generation))
        try:
            retry_generation(generation)
        except (GenerationNotRetryable, QueueUnavailable) as exc:
            self.message_user(request, _("Not retried: %(why)s") % {"why": exc}, messages.WARNING)
        else:
            self.message_user(request, _("Queued again."), messages.SUCCESS)
        return HttpResponseRedirect(self.page_url(generation))

    def cancel_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        self._post_only(request)
        generation = self.get_generation(request, pk)
        if not may(request, "generate"):
            self.message_user(
                request,
                _("You may not cancel generations: ask for the “generate” permission."),
                messages.ERROR,
            )
        elif generation.is_finished:
            self.message_user(request, _("Nothing to cancel: it has already finished."), messages.WARNING)
        else:
            generation = cancel_generation(generation)
            if generation.status == Status.CANCELED:
                self.message_user(request, _("Canceled; nothing was sent."), messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    _("Cancel requested: the call in progress finishes first (it may already be billed)."),
                    messages.SUCCESS,
                )
        return HttpResponseRedirect(self.page_url(generation))

    def duplicate_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        self._post_only(request)
        generation = self.get_generation(request, pk)
        new, why = self.duplicate(request, generation)
        if new is None:
            self.message_user(request, _("Not duplicated: %(why)s") % {"why": why}, messages.ERROR)
            return HttpResponseRedirect(self.page_url(generation))
        return HttpResponseRedirect(self.page_url(new))

    def duplicate(
        self, request: HttpRequest, generation: ImageGeneration
    ) -> tuple[ImageGeneration | None, str]:
        """The same request again, as a new generation (its inputs re-read from storage)."""
        if not may(request, "generate"):
            return None, _("you may not generate images (ask for the “generate” permission).")
        images, mask = stored_inputs(generation)
        try:
            new = request_generation(
                **params_of(generation), images=images, mask=mask, user=request.user, source="admin",
                metadata={"regenerated_from": str(generation.pk)},
            )  # fmt: skip
        except GenerationRefused as refused:
            return None, refusal_text(refused)
        except (QueueUnavailable, PermissionDenied) as exc:
            return None, str(exc)
        finally:
            _close([*images, mask])
        return new, ""

    def download_view(self, request: HttpRequest, pk: Any) -> HttpResponseBase:
        generation = self.get_generation(request, pk)
        if not generation.images.all():
            self.message_user(
                request, _("Nothing to download: this generation has no images."), messages.WARNING
            )
            return HttpResponseRedirect(self.page_url(generation))
        return zip_response([generation], filename=f"gptimage-{generation.pk}.zip")

    # -- targets: apply and review --------------------------------------------------------

    def apply_view(self, request: HttpRequest, image_id: int) -> HttpResponse:
        """POST: copy a candidate into its target field (``apply_result``); JSON for fetch()."""
        self._post_only(request)
        image = self._image(request, image_id)
        wants_json = "application/json" in request.headers.get("Accept", "")
        back = request.POST.get("next") or ""
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, require_https=request.is_secure()):
            back = ""
        try:
            result = apply_result(image, user=request.user)
        except ApplyRefused as exc:
            if wants_json:
                return JsonResponse({"ok": False, "code": exc.code, "error": str(exc)}, status=409)
            self.message_user(request, _("Not applied: %(why)s") % {"why": exc}, messages.ERROR)
        else:
            target = target_of(image.generation)
            where = target_text(result.obj, target.field if target else result.field)
            message = _("Applied to %(where)s.") % {"where": where}
            if not result.written:
                message = _("Already applied to %(where)s: nothing written.") % {"where": where}
            if wants_json:
                file = getattr(result.obj, result.field)
                return JsonResponse({"ok": True, "message": message, "url": file.url if file else None})
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(back or self.page_url(image.generation))

    def review_view(self, request: HttpRequest) -> HttpResponse:
        """Candidates of many objects at once: one row per target, accept or reject each."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        try:
            keys = [uuid.UUID(i) for i in request.GET.get("generations", "").split(",") if i]
        except ValueError:
            raise Http404("Not a generation id.") from None
        generations = list(
            ImageGeneration.objects.filter(pk__in=keys[:500])
            .exclude(target_content_type=None)
            .select_related("target_content_type")
            .prefetch_related("images")
            .order_by("created_at")
        )
        rows: dict[tuple[int, str, str], dict[str, Any]] = {}
        for generation in generations:
            ct_id = cast(int, generation.target_content_type_id)  # excluded None above
            key = (ct_id, generation.target_object_id, generation.target_field)
            row = rows.setdefault(key, {"generations": [], "candidates": [], "pending": []})
            row["generations"].append(generation)
            if generation.status in (Status.QUEUED, Status.RUNNING):
                row["pending"].append(
                    (generation, reverse("gptimage:generation-status", args=[generation.pk]))
                )
            elif generation.status == Status.SUCCEEDED:
                row["candidates"] += [
                    (image, image_url(image.file.name)) for image in generation.images.all()
                ]
            else:
                row["failed"] = [*row.get("failed", []), (generation, generation_status(generation))]
        self._attach_objects(rows)
        context = self.context(
            request, title=_("Review candidates"), rows=list(rows.values()), media=self.media,  # type: ignore[attr-defined]
            changelist_url=self.url("changelist"), can_apply=may(request, "apply"),
            pending=any(r["pending"] for r in rows.values()), next=request.get_full_path(),
        )  # fmt: skip
        return TemplateResponse(request, TEMPLATES + "review.html", context)

    def _attach_objects(self, rows: dict[tuple[int, str, str], dict[str, Any]]) -> None:
        """One query per model for the rows' objects (never one per row)."""
        from django.contrib.contenttypes.models import ContentType

        by_type: dict[int, list[str]] = {}
        for ct_id, object_id, _field in rows:
            by_type.setdefault(ct_id, []).append(object_id)
        objects: dict[tuple[int, str], Any] = {}
        for ct_id, ids in by_type.items():
            model = ContentType.objects.get_for_id(ct_id).model_class()
            if model is None:
                continue
            for instance in model._default_manager.filter(pk__in=ids):
                objects[(ct_id, str(instance.pk))] = instance
        for (ct_id, object_id, field), row in rows.items():
            obj = objects.get((ct_id, object_id))
            row["obj"], row["field"] = obj, field
            row["label"] = target_text(obj, field) if obj is not None else _("(deleted)")
            row["obj_url"] = admin_url_of(obj) if obj is not None else None
            value = getattr(obj, field, None) if obj is not None else None
            try:
                row["current"] = value.url if value else None
            except ValueError:
                row["current"] = None

    # -- compare and iterate -----------------------------------------------------------------

    def compare_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        ids = [i for i in request.GET.get("ids", "").split(",") if i]
        try:
            keys = [uuid.UUID(i) for i in ids]
        except ValueError:
            raise Http404("Not a generation id.") from None
        if not 2 <= len(keys) <= MAX_COMPARE:
            self.message_user(
                request, _("Select 2 to %(max)d generations to compare (got %(n)d).") % {"max": MAX_COMPARE, "n": len(keys)},
                messages.WARNING,
            )  # fmt: skip
            return HttpResponseRedirect(self.url("changelist"))
        found = {g.pk: g for g in ImageGeneration.objects.filter(pk__in=keys).prefetch_related("images")}
        generations = [found[k] for k in keys if k in found]
        columns = [
            (g, [(image, image_url(image.file.name)) for image in g.images.all()], generation_status(g))
            for g in generations
        ]
        context = self.context(
            request, title=_("Compare generations"), columns=columns, media=self.media,  # type: ignore[attr-defined]
            changelist_url=self.url("changelist"),
        )  # fmt: skip
        return TemplateResponse(request, TEMPLATES + "compare.html", context)

    def _image(self, request: HttpRequest, image_id: int) -> GeneratedImage:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        return get_object_or_404(GeneratedImage.objects.select_related("generation"), pk=image_id)

    def upscale_view(self, request: HttpRequest, image_id: int) -> HttpResponse:
        image = self._image(request, image_id)
        draft = image.generation
        if not may(request, "generate"):
            raise PermissionDenied(_("You may not generate images: ask for the “generate” permission."))
        form = UpscaleForm(request.POST or None, generation=draft, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            params = {**params_of(draft), "tier": data["tier"], "mode": data["mode"], "n": 1}
            opened: list[NamedUpload | None] = []
            if data["mode"] == "image-to-image":
                upload = NamedUpload(f"draft-{image.index}.{image.format}", image.file.open("rb"))
                opened = [upload]
                params["images"] = [upload]
                params["prompt"] = data["prompt"].strip() or draft.prompt
            try:
                new = request_generation(
                    **params, user=request.user, source="admin",
                    metadata={"upscaled_from": image.pk, "upscale_mode": data["mode"]},
                    parent_image=image, target=target_of(draft),
                )  # fmt: skip
            except GenerationRefused as refused:
                form.add_error(None, refusal_text(refused))
            except (QueueUnavailable, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                return HttpResponseRedirect(self.page_url(new))
            finally:
                _close(opened)
        context = self.context(
            request, title=_("Upscale"), form=form, image=image, image_src=image_url(image.file.name),
            draft=draft, media=self.media, changelist_url=self.url("changelist"),  # type: ignore[attr-defined]
            page_url=self.page_url(draft),
        )  # fmt: skip
        return TemplateResponse(request, TEMPLATES + "upscale.html", context)

    def continue_view(self, request: HttpRequest, image_id: int) -> HttpResponse:
        image = self._image(request, image_id)
        source = image.generation
        if not may(request, "generate"):
            raise PermissionDenied(_("You may not generate images: ask for the “generate” permission."))
        form = ContinueForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = NamedUpload(f"result-{image.index}.{image.format}", image.file.open("rb"))
            mask = form.cleaned_data.get("mask")
            try:
                new = request_generation(
                    **{**params_of(source), "prompt": form.cleaned_data["prompt"], "mode": "image-to-image", "n": 1},
                    images=[upload], mask=mask, user=request.user, source="admin",
                    metadata={"edited_from": image.pk}, parent_image=image, target=target_of(source),
                )  # fmt: skip
            except GenerationRefused as refused:
                for field, problems in refused.as_dict().items():
                    for message in problems:
                        form.add_error(field if field in form.fields else None, message)
            except (QueueUnavailable, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                return HttpResponseRedirect(self.page_url(new))
            finally:
                _close([upload])
        context = self.context(
            request, title=_("Continue editing"), form=form, image=image, image_src=image_url(image.file.name),
            source=source, media=self.media, changelist_url=self.url("changelist"),  # type: ignore[attr-defined]
            page_url=self.page_url(source),
        )  # fmt: skip
        return TemplateResponse(request, TEMPLATES + "continue.html", context)
