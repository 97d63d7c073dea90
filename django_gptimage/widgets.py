"""The Generate panel on an image field: a file input that can also generate its image.

    class ArticleAdmin(GenerateImageAdminMixin, admin.ModelAdmin):      # every image field
        gptimage_widgets = {"cover": {"preset": "cover", "alt_field": "cover_alt"}}

    class ArticleForm(GenerateImageFormMixin, forms.ModelForm):         # a front-end form
        cover = GenerateImageField(preset="cover", required=False)

    ArticleForm(request.POST or None, request.FILES or None, instance=article, user=request.user)

The widget keeps the normal upload input and adds the panel (prompt prefilled from the field's
preset or template, ratio and tier pickers, mode, quality, format, n, the estimate). "Generate"
posts to the widget's JSON endpoint (``widget_views``); the candidates appear as thumbnails and
the one the editor picks travels with the form as ``<name>__gptimage_pick``. Nothing changes
on the object until the form is saved: then :class:`GenerateImageFormMixin` hands the pick to
``service.apply_candidate()`` (bound to the new object on an add form, stored through the
field's own storage, recorded as an ``AppliedImage``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django import forms
from django.core import signing
from django.db import models
from django.db.models import Model
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from django_gptimage.conf import gptimage_settings

__all__ = [
    "GenerateImageField",
    "GenerateImageFormMixin",
    "GenerateImageWidget",
    "gptimage_formfield_overrides",
    "widget_config",
]

PICK_SUFFIX = "__gptimage_pick"
MADE_SUFFIX = "__gptimage_made"
TOKEN_SALT = "django_gptimage.widget"
ADMIN_INPUT_TEMPLATE = "admin/widgets/clearable_file_input.html"
# A form id no element has: the panel's own inputs belong to no form, so saving the page's form
# never submits them (the panel's script sends them to the generate endpoint instead).
DETACHED_FORM = "gptimage-detached"


def sign_config(config: dict[str, Any]) -> str:
    return signing.dumps(config, salt=TOKEN_SALT, compress=True)


def widget_config(token: str) -> dict[str, Any]:
    """The widget's target and options from its signed token (``signing.BadSignature`` if forged)."""
    value = signing.loads(token, salt=TOKEN_SALT)
    if not isinstance(value, dict):
        raise signing.BadSignature("not a widget token")
    return value


class GenerateImageWidget(forms.ClearableFileInput):
    """A ``ClearableFileInput`` plus the Generate panel.

    Options: ``preset`` (its output for this field gives the starting ratio, tier, quality, ... and
    the prompt template), ``template`` (a prompt template over the object; wins over the
    preset's), ``alt_field`` (the model's alt-text field the picked candidate's suggested alt
    text goes into), ``renditions`` (``[("card", "4:3"), ...]``: frames to preview a candidate in),
    ``input_template_name`` (the upload input's own template; the admin mixin uses the admin's).

    The panel needs to know the model, the field, the object and the user: the admin mixin and
    :class:`GenerateImageFormMixin` call :meth:`bind`. Unbound, or for a user without the
    ``generate`` permission, only the upload input is shown.
    """

    template_name = "django_gptimage/widgets/generate_image.html"

    class Media:
        css = {"all": ["django_gptimage/css/options.css", "django_gptimage/css/widget.css"]}
        js = ["django_gptimage/js/options.js", "django_gptimage/js/status.js", "django_gptimage/js/widget.js"]

    def __init__(
        self,
        attrs: dict[str, Any] | None = None,
        *,
        preset: str | None = None,
        template: str | None = None,
        alt_field: str | None = None,
        renditions: Sequence[tuple[str, str]] = (),
        input_template_name: str | None = None,
    ) -> None:
        super().__init__(attrs)
        self.preset = preset
        self.template = template
        self.alt_field = alt_field
        self.renditions = [(str(label), str(ratio)) for label, ratio in renditions]
        self.input_template_name = input_template_name or forms.ClearableFileInput.template_name
        self.model: type[Model] | None = None
        self.field_name: str | None = None
        self.instance: Model | None = None
        self.user: Any = None

    def __deepcopy__(self, memo: dict[int, Any]) -> GenerateImageWidget:
        result = super().__deepcopy__(memo)
        result.renditions = list(self.renditions)
        result.instance = self.instance  # a form's own object, not a copy of it
        result.user = self.user
        return result

    def bind(
        self,
        *,
        model: type[Model] | None = None,
        field_name: str | None = None,
        instance: Model | None = None,
        user: Any = None,
    ) -> GenerateImageWidget:
        """Say which model field this widget fills, on which object, for whom (None keeps a value)."""
        if model is not None:
            self.model = model
        if field_name is not None:
            self.field_name = field_name
        if instance is not None:
            self.instance = instance
        if user is not None:
            self.user = user
        return self

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        value = super().value_from_datadict(data, files, name)
        if value in (None, False) and data.get(name + PICK_SUFFIX):
            # Not None, so the form (an inline row with nothing else typed in) counts as changed
            # and is saved; falsy, so the field keeps its value until the pick is applied.
            return ""
        return value

    # -- rendering ---------------------------------------------------------------------------

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["input_template_name"] = self.input_template_name
        context["panel"] = self.panel_context(name, value)
        return context

    def _target(self, value: Any) -> tuple[type[Model] | None, str | None, Model | None]:
        model, field, instance = self.model, self.field_name, self.instance
        if hasattr(value, "instance") and hasattr(value, "field"):  # a FieldFile knows its object
            instance = instance if instance is not None else value.instance
            field = field or value.field.name
            model = model or type(value.instance)
        if instance is not None and model is None:
            model = type(instance)
        return model, field, instance

    def panel_context(self, name: str, value: Any) -> dict[str, Any] | None:
        """What the panel template needs; None when no panel is shown (no user or no permission)."""
        from django_gptimage.forms import GenerationForm
        from django_gptimage.service import PromptTemplateError, field_prompt, provider_bills

        model, field, instance = self._target(value)
        user = self.user
        if model is None or field is None or user is None:
            return None
        if not (getattr(user, "is_active", False) and user.has_perm("django_gptimage.generate")):
            return None
        object_id = None if instance is None or instance.pk is None else str(instance.pk)
        prefix = f"{name}-gptimage"
        prompt, prompt_error = "", ""
        try:
            prompt = field_prompt(
                model, field, obj=instance if object_id else None, preset=self.preset, template=self.template
            )
        except PromptTemplateError as exc:
            prompt_error = str(exc)
        initial: dict[str, Any] = {"prompt": prompt}
        if self.preset:
            initial["preset"] = self.preset
        form = GenerationForm(prefix=prefix, initial=initial, user=user)
        self._prefill_from_preset_output(form, field)
        matrix = form.option_matrix()
        tier_note = self._fit_tier(form, matrix)
        for bound in form.fields.values():
            bound.widget.attrs["form"] = DETACHED_FORM
        config = {
            "model": model._meta.label_lower,
            "field": field,
            "object_id": object_id,
            "preset": self.preset or "",
            "template": self.template,
            "alt_field": self.alt_field or "",
        }
        current = value if value and getattr(value, "url", None) and getattr(value, "name", "") else None
        return {
            "id": f"gptimage-{name}",
            "prefix": prefix,
            "form": form,
            "matrix": matrix,
            "tier_note": tier_note,
            "matrix_id": f"gptimage-matrix-{name}",
            "token": sign_config(config),
            "pick_name": name + PICK_SUFFIX,
            "made_name": name + MADE_SUFFIX,
            "field": field,
            "field_label": _field_label(model, field),
            "alt_field": self.alt_field or "",
            "add_form": object_id is None,
            "prompt_error": prompt_error,
            "billable": provider_bills(),
            "has_template": bool(self.template or self.preset),
            "current_url": _url(current),
            "renditions_json": json.dumps(
                [{"label": label, "ratio": ratio} for label, ratio in self.renditions]
            ),
            "urls": _urls(),
            "job_timeout": gptimage_settings.JOB_TIMEOUT,
        }

    def _prefill_from_preset_output(self, form: Any, field: str) -> None:
        """The preset's output for this very field (not just its first) sets the starting values."""
        if not self.preset:
            return
        from django_gptimage.service import preset_output_for

        output = preset_output_for(self.preset, field)
        if output is None:
            return
        for name in ("mode", "ratio", "tier", "quality", "output_format", "background", "n"):
            value = getattr(output, name, None)
            if value not in (None, ""):
                form.initial[name] = value
        if output.model:
            form.initial["model"] = output.model

    @staticmethod
    def _fit_tier(form: Any, matrix: dict[str, Any]) -> str:
        """A starting tier the user has not unlocked becomes the largest one they have (and says so)."""

        def start(name: str) -> Any:
            return form.initial.get(name, form.fields[name].initial)

        model = matrix["models"].get(start("model")) or next(iter(matrix["models"].values()), None)
        if model is None:
            return ""
        by_ratio = model["cells"].get(start("mode") or "text-to-image", {}).get(start("ratio"), {})
        tier = start("tier")
        cell = by_ratio.get(tier)
        if not cell or cell["allowed"] or not cell["locked"]:
            return ""
        usable = [t for t in matrix["tiers"] if by_ratio.get(t, {}).get("allowed")]
        if not usable:
            return ""
        form.initial["tier"] = usable[-1]
        return str(
            _(
                "This field's preset asks for %(tier)s, which your access has not unlocked; %(chosen)s is chosen instead."
            )
            % {"tier": tier, "chosen": usable[-1]}
        )


def _field_label(model: type[Model], field: str) -> str:
    try:
        return str(getattr(model._meta.get_field(field), "verbose_name", field))
    except Exception:  # noqa: BLE001 - a name the model does not have still gets a label
        return field


def _url(value: Any) -> str | None:
    try:
        return value.url if value else None
    except ValueError:
        return None


def _urls() -> dict[str, str]:
    try:
        return {
            "generate": reverse("gptimage:widget-generate"),
            "prompt": reverse("gptimage:widget-prompt"),
            "history": reverse("gptimage:widget-history"),
            "status": reverse("gptimage:generation-status", args=["00000000-0000-0000-0000-000000000000"]),
        }
    except NoReverseMatch as exc:  # the site did not include django_gptimage.urls
        raise NoReverseMatch(
            'The Generate widget needs the gptimage URLs: path("gptimage/", include("django_gptimage.urls")).'
        ) from exc


class GenerateImageField(forms.ImageField):
    """An image form field whose widget is :class:`GenerateImageWidget` (options as the widget's)."""

    def __init__(
        self,
        *,
        preset: str | None = None,
        template: str | None = None,
        alt_field: str | None = None,
        renditions: Sequence[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        widget = kwargs.pop("widget", None)
        if widget is None or isinstance(widget, type):
            widget = GenerateImageWidget(
                preset=preset, template=template, alt_field=alt_field, renditions=renditions
            )
        super().__init__(widget=widget, **kwargs)


def gptimage_formfield_overrides(**options: Any) -> dict[type[models.Field[Any, Any]], dict[str, Any]]:
    """``formfield_overrides`` for a ModelAdmin using :class:`GenerateImageAdminMixin`: every
    ``ImageField`` and ``FileField`` gets the widget with ``options`` (preset, template, ...)."""
    widget = GenerateImageWidget(input_template_name=ADMIN_INPUT_TEMPLATE, **options)
    return {
        models.ImageField: {"widget": widget},
        models.FileField: {"widget": copy.deepcopy(widget)},
    }


def gptimage_widgets(form: forms.BaseForm) -> Iterator[tuple[str, GenerateImageWidget]]:
    for name, field in form.fields.items():
        if isinstance(field.widget, GenerateImageWidget):
            yield name, field.widget


class GenerateImageFormMixin:
    """For ModelForms with Generate widgets: binds them, checks the pick, applies it on save.

    Pass ``user=`` (whose permissions and access apply), or set ``gptimage_user`` on the class.
    ``clean()`` refuses a pick that is not a candidate of this field (another object's, another
    user's add-form generation, unfinished, no ``apply`` permission) as an error on the field.
    ``save()`` (or ``save_m2m()`` after ``save(commit=False)``) applies it.
    """

    gptimage_user: Any = None

    # Declared for type checkers; ModelForm provides them.
    fields: dict[str, forms.Field]
    data: Any
    files: Any
    instance: Model
    _meta: Any
    add_error: Callable[..., None]
    add_prefix: Callable[[str], str]

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            self.gptimage_user = user
        self.gptimage_picks: dict[str, Any] = {}
        self.gptimage_made: dict[str, list[str]] = {}
        for name, widget in gptimage_widgets(self):  # type: ignore[arg-type]
            widget.bind(
                model=self._meta.model, field_name=widget.field_name or name, instance=self.instance,
                user=self.gptimage_user,
            )  # fmt: skip

    def clean(self) -> dict[str, Any]:
        from django_gptimage.service import ApplyRefused, Target, check_candidate

        data: dict[str, Any] = super().clean()  # type: ignore[misc]
        self.gptimage_picks, self.gptimage_made = {}, {}
        instance = self.instance
        for name, widget in gptimage_widgets(self):  # type: ignore[arg-type]
            html_name = self.add_prefix(name)
            made = [m for m in str(self.data.get(html_name + MADE_SUFFIX, "")).split(",") if m.strip()]
            self.gptimage_made[name] = made[:100]
            pick = str(self.data.get(html_name + PICK_SUFFIX, "") or "").strip()
            if not pick or self.files.get(html_name):  # an upload chosen after the pick wins
                continue
            field = widget.field_name or name
            target = Target(self._meta.model, field, None if instance.pk is None else str(instance.pk))
            try:
                self.gptimage_picks[name] = check_candidate(pick, target, user=self.gptimage_user)
            except ApplyRefused as refused:
                self.add_error(name, forms.ValidationError(refused.message, code=refused.code))
        return data

    def save(self, commit: bool = True) -> Any:
        obj = super().save(commit=commit)  # type: ignore[misc]
        if commit:
            self.apply_gptimage_picks(obj)
        else:
            save_m2m = self.save_m2m  # type: ignore[has-type]

            def save_m2m_and_picks() -> None:
                save_m2m()
                self.apply_gptimage_picks(obj)

            self.save_m2m = save_m2m_and_picks
        return obj

    def apply_gptimage_picks(self, obj: Model) -> list[Any]:
        """Bind the form's add-form generations to ``obj`` and apply the picked candidates."""
        from django_gptimage.service import apply_candidate, bind_generations

        results = []
        widgets = dict(gptimage_widgets(self))  # type: ignore[arg-type]
        for name, made in self.gptimage_made.items():
            if name not in self.gptimage_picks:
                bind_generations(made, obj, user=self.gptimage_user)
        for name, image in self.gptimage_picks.items():
            widget = widgets[name]
            alt_field = widget.alt_field if widget.alt_field and widget.alt_field not in self.fields else None
            result = apply_candidate(
                image,
                obj,
                user=self.gptimage_user,
                alt_field=alt_field,
                made=self.gptimage_made.get(name, ()),
            )
            setattr(obj, result.field, result.name)
            if alt_field and image.alt_text:
                setattr(obj, alt_field, image.alt_text)
            results.append(result)
        return results
