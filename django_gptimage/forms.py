"""The one form behind every "generate" face: the admin's generate page and the widget.

Field names are the service's own, so ``form.request_kwargs()`` goes straight into
``request_generation(**form.request_kwargs(), user=request.user)`` (``service_kwargs()`` is the
same without the target and preset, for ``check_generation``). ``clean()`` runs the same
validation as the service (model, policy, the user's unlocked tiers, the uploads' headers) and
turns every problem into an error on its field: nothing is recorded or sent for an invalid form.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.capabilities import BACKGROUNDS, MODES, QUALITIES
from django_gptimage.domain.sizes import RATIOS, TIERS
from django_gptimage.options import available_models, option_matrix
from django_gptimage.pickers import RatioSelect, TierSelect

__all__ = ["GenerationForm", "MultipleImageField", "MultipleImageInput"]

MODE_LABELS = {"text-to-image": _("Text to image"), "image-to-image": _("Image to image (edit)")}
QUALITY_LABELS = {
    "low": _("Low (draft)"),
    "medium": _("Medium"),
    "high": _("High"),
    "xhigh": _("Extra high"),
    "max": _("Maximum"),
    "auto": _("Auto"),
}
BACKGROUND_LABELS = {"auto": _("Auto"), "opaque": _("Opaque"), "transparent": _("Transparent")}
FORMAT_LABELS = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """Several uploads in one field (``request.FILES.getlist``); each a plain file, checked later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleImageInput(attrs={"accept": "image/png,image/jpeg,image/webp"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data if d]
        return [single(data, initial)] if data else []


class GenerationForm(forms.Form):
    """Prompt and parameters of one generation; pass ``user`` so locked tiers are refused.

    Validation messages come from the service (``GenerationRefused.as_dict()``); problems about
    values the form has no field for (``size``, ``output_compression``) become non-field errors.
    """

    prompt = forms.CharField(
        label=_("Prompt"),
        required=False,  # the service says what is wrong with an empty prompt, in its own words
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "gptimage-prompt"}),
        help_text=_("Describe the image: subject, setting, style, light, colours, text to include."),
    )
    model = forms.ChoiceField(label=_("Model"), choices=())
    mode = forms.ChoiceField(
        label=_("Mode"), choices=[(m, MODE_LABELS[m]) for m in MODES], initial="text-to-image"
    )
    ratio = forms.ChoiceField(label=_("Aspect ratio"), choices=[(r, r) for r in RATIOS], widget=RatioSelect)
    tier = forms.ChoiceField(label=_("Resolution"), choices=[(t, t) for t in TIERS], widget=TierSelect)
    quality = forms.ChoiceField(label=_("Quality"), choices=[(q, QUALITY_LABELS[q]) for q in QUALITIES])
    output_format = forms.ChoiceField(label=_("Format"), choices=list(FORMAT_LABELS.items()))
    background = forms.ChoiceField(
        label=_("Background"), choices=[(b, BACKGROUND_LABELS[b]) for b in BACKGROUNDS]
    )
    n = forms.IntegerField(label=_("Number of images"), min_value=1, initial=1)
    images = MultipleImageField(
        label=_("Reference images"),
        required=False,
        help_text=_("Image to image: the pictures to edit or combine (PNG, JPEG or WebP)."),
    )
    mask = forms.FileField(
        label=_("Mask"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png"}),
        help_text=_("Optional: a PNG the size of the first image; its transparent areas are edited."),
    )
    preset = forms.ChoiceField(
        label=_("Preset"),
        required=False,
        choices=(),
        help_text=_("Recorded on the generation; its settings are the form's starting values."),
    )
    # The optional target: an object's image field ("app_label.model", pk, field), or on an add
    # form only the model and field (the generation is bound to the object once it is saved).
    target_model = forms.CharField(required=False, widget=forms.HiddenInput)
    target_object_id = forms.CharField(required=False, widget=forms.HiddenInput)
    target_field = forms.CharField(required=False, widget=forms.HiddenInput)

    class Media:
        css = {"all": ["django_gptimage/css/options.css"]}
        js = ["django_gptimage/js/options.js", "django_gptimage/js/status.js"]

    service_fields = (
        "prompt",
        "model",
        "mode",
        "ratio",
        "tier",
        "quality",
        "output_format",
        "background",
        "n",
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        s = gptimage_settings
        models = available_models()
        cast(forms.ChoiceField, self.fields["model"]).choices = [(m, m) for m in models]
        for name, default in (
            ("model", models[0] if models else s.MODEL),
            ("ratio", s.DEFAULT_RATIO),
            ("tier", s.DEFAULT_TIER),
            ("quality", s.DEFAULT_QUALITY),
            ("output_format", s.DEFAULT_FORMAT),
            ("background", s.DEFAULT_BACKGROUND),
        ):
            self.fields[name].initial = default
        cast(
            forms.IntegerField, self.fields["n"]
        ).max_value = None  # the service checks n against the model and MAX_N
        self.target: Any = None
        self._set_presets()
        if len(models) == 1:
            self.fields["model"].widget = forms.HiddenInput()

    def _set_presets(self) -> None:
        from django_gptimage.presets import list_presets

        presets = list_presets()
        cast(forms.ChoiceField, self.fields["preset"]).choices = [
            ("", _("None")),
            *((p.name, p.label or p.name) for p in presets),
        ]
        name = self.initial.get("preset") if not self.is_bound else None
        chosen = next((p for p in presets if p.name == name), None)
        if chosen is not None and chosen.outputs:
            output = chosen.outputs[0]
            for field in ("mode", "ratio", "tier", "quality", "output_format", "background", "n"):
                self.initial.setdefault(field, getattr(output, field))
            if output.model:
                self.initial.setdefault("model", output.model)

    def _clean_target(self) -> None:
        from django.apps import apps

        from django_gptimage.targets import Target, target_problems

        label = (self.cleaned_data.get("target_model") or "").strip()
        field = (self.cleaned_data.get("target_field") or "").strip()
        object_id = (self.cleaned_data.get("target_object_id") or "").strip() or None
        if not (label or field or object_id):
            return
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            self.add_error(
                None, ValidationError(f"Unknown target model {label!r}; use app_label.model.", code="target")
            )
            return
        target = Target(model, field, object_id)
        for problem in target_problems(target):
            self.add_error(None, ValidationError(problem.message, code="target"))
        if object_id is not None and not model._default_manager.filter(pk=object_id).exists():
            self.add_error(
                None,
                ValidationError(
                    f"The {model._meta.verbose_name} {object_id!r} does not exist.", code="target"
                ),
            )
        if not self.errors:
            self.target = target

    def option_matrix(self) -> dict[str, Any]:
        """The matrix for this form's user, for ``{{ form.option_matrix|json_script:"…" }}``."""
        return option_matrix(self.user)

    def clean(self) -> dict[str, Any]:
        from django_gptimage.service import GenerationRefused, check_generation

        data = super().clean() or {}
        self._clean_target()
        if any(name in self.errors for name in self.service_fields):
            return data  # a value the form could not even read; the service would repeat it
        try:
            check_generation(user=self.user, **self.service_kwargs())
        except GenerationRefused as refused:
            for field, messages in refused.as_dict().items():
                target = field if field in self.fields else None
                for message in messages:
                    self.add_error(target, ValidationError(message, code="refused"))
        return data

    def request_kwargs(self) -> dict[str, Any]:
        """``service_kwargs()`` plus the target and preset, for ``request_generation``."""
        return {
            **self.service_kwargs(),
            "target": self.target,
            "preset": self.cleaned_data.get("preset") or "",
        }

    def service_kwargs(self) -> dict[str, Any]:
        """The cleaned values as ``request_generation``/``check_generation`` keyword arguments."""
        data = self.cleaned_data
        kwargs: dict[str, Any] = {name: data.get(name) for name in self.service_fields}
        kwargs["prompt"] = kwargs["prompt"] or ""
        kwargs["n"] = kwargs["n"] or 1
        kwargs["images"] = list(data.get("images") or [])
        kwargs["mask"] = data.get("mask") or None
        return kwargs
