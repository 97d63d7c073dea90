"""Prompt presets in the admin: editors change templates and sizes without a deploy.

Every output is checked when saved, with the size matrix's own reason for an impossible
combination, the site policy, and the template engine (against the models the preset names).
A row with the name of a code preset (shipped or ``GPTIMAGE["PRESETS"]``) replaces it, and the
admin says so.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from django_gptimage.conf import gptimage_settings
from django_gptimage.domain.presets import PresetOutput as OutputSpec
from django_gptimage.domain.presets import output_problems
from django_gptimage.models import PresetOutput, PromptPreset
from django_gptimage.presets import code_presets
from django_gptimage.prompts import template_problems

_SPEC_FIELDS = (
    "key", "prompt_template", "model", "mode", "ratio", "tier", "quality", "output_format",
    "background", "n", "source_field", "field",
)  # fmt: skip


def _models_of(labels: str) -> list[Any]:
    found = []
    for label in (part.strip() for part in (labels or "").split(",")):
        if label:
            with contextlib.suppress(LookupError, ValueError):  # reported by the preset form
                found.append(apps.get_model(label))
    return found


def _image_fields(model: Any) -> list[str]:
    from django.db.models import FileField

    return [f.name for f in model._meta.get_fields() if isinstance(f, FileField)]


class PresetOutputFormSet(forms.BaseInlineFormSet):
    """Checks each output against the matrix, the policy, and the models the preset names."""

    def clean(self) -> None:
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        self._check_outputs(kept)
        super().clean()  # duplicate keys (the unique constraint)
        if not kept:
            raise ValidationError(_("A preset needs at least one output."))

    def _check_outputs(self, kept: list[forms.Form]) -> None:
        models = _models_of(getattr(self.instance, "for_models", ""))
        policy = gptimage_settings.policy
        for form in kept:
            data = form.cleaned_data
            values: dict[str, Any] = {
                name: data.get(name) if data.get(name) is not None else "" for name in _SPEC_FIELDS
            }
            spec = OutputSpec(**values)
            for problem in output_problems(spec, policy, default_model=gptimage_settings.MODEL):
                form.add_error(problem.field if problem.field in form.fields else None, problem.message)
            messages: list[str] = []
            for model in models or [None]:
                messages += [m for m in template_problems(spec.prompt_template, model) if m not in messages]
            for message in messages:
                form.add_error("prompt_template", message)
            for model in models:
                for name in ("source_field", "field"):
                    value = data.get(name)
                    if value and value not in _image_fields(model):
                        form.add_error(
                            name,
                            _("%(model)s has no image field %(name)r; its image fields: %(fields)s.")
                            % {
                                "model": model._meta.label,
                                "name": value,
                                "fields": ", ".join(_image_fields(model)) or "none",
                            },
                        )


class PresetOutputInline(admin.StackedInline):
    model = PresetOutput
    formset = PresetOutputFormSet
    extra = 0
    min_num = 1
    fields = (
        ("key", "position", "field"),
        "prompt_template",
        ("mode", "source_field"),
        ("model", "ratio", "tier"),
        ("quality", "output_format", "background", "n"),
    )


class PromptPresetForm(forms.ModelForm):
    class Meta:
        model = PromptPreset
        fields = ("name", "label", "description", "for_models")

    def clean_for_models(self) -> str:
        value = self.cleaned_data.get("for_models", "")
        unknown = []
        for label in (part.strip() for part in value.split(",")):
            if label:
                try:
                    apps.get_model(label)
                except (LookupError, ValueError):
                    unknown.append(label)
        if unknown:
            raise ValidationError(
                _("Not installed models: %(labels)s. Write app_label.ModelName, comma-separated."),
                params={"labels": ", ".join(repr(u) for u in unknown)},
            )
        return ", ".join(part.strip() for part in value.split(",") if part.strip())


@admin.register(PromptPreset)
class PromptPresetAdmin(admin.ModelAdmin):
    form = PromptPresetForm
    inlines = (PresetOutputInline,)
    list_display = ("name", "label", "output_count", "for_models", "overrides", "updated_at")
    search_fields = ("name", "label", "description", "outputs__prompt_template")
    readonly_fields = ("code_preset",)
    fields = ("name", "label", "description", "for_models", "code_preset")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PromptPreset]:
        return super().get_queryset(request).annotate(_outputs=Count("outputs"))

    @admin.display(description=_("Outputs"), ordering="_outputs")
    def output_count(self, obj: PromptPreset) -> int:
        return obj._outputs  # type: ignore[attr-defined]

    @admin.display(description=_("Overrides a code preset"))
    def overrides(self, obj: PromptPreset) -> str:
        return _code_source(obj.name) or "-"

    @admin.display(description=_("Code preset of this name"))
    def code_preset(self, obj: PromptPreset | None) -> str:
        name = getattr(obj, "name", "")
        source = _code_source(name) if name else ""
        if not source:
            return str(_("None: this preset exists only here."))
        preset = code_presets()[name]
        rows = format_html_join(
            "",
            "<li><code>{}</code>: {} {} {}, {}</li>",
            ((o.key, o.mode, o.ratio, o.tier, o.prompt_template) for o in preset.outputs),
        )
        return format_html(
            '<p class="gptimage-override">{}</p><ul>{}</ul>',
            _("This row replaces the %(source)s preset %(name)r, which is:")
            % {"source": source, "name": name},
            rows,
        )


def _code_source(name: str) -> str:
    try:
        presets = code_presets()
    except ValueError:
        return ""
    if name not in presets:
        return ""
    return "settings" if name in (gptimage_settings.PRESETS or {}) else "shipped"
