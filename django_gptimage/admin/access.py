"""Access plans, who has which, credit balances and the read-only credit ledger."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from django_gptimage.access.models import AccessPlan, GroupPlan, UserPlan
from django_gptimage.domain.capabilities import QUALITIES, get_capabilities
from django_gptimage.domain.sizes import TIERS


class AccessPlanForm(forms.ModelForm):
    tiers = forms.MultipleChoiceField(
        choices=[(t, t) for t in TIERS], widget=forms.CheckboxSelectMultiple, required=False,
        help_text=_("None ticked: the plan unlocks no resolution at all (a suspended account)."),
    )  # fmt: skip
    qualities = forms.MultipleChoiceField(
        choices=[(q, q) for q in QUALITIES], widget=forms.CheckboxSelectMultiple, required=False,
        help_text=_("None ticked: every quality the site allows."),
    )  # fmt: skip
    model_names = forms.CharField(
        required=False, label=_("Models"),
        help_text=_("Comma-separated model ids, e.g. gpt-image-2; empty: every model the site allows."),
    )  # fmt: skip

    class Meta:
        model = AccessPlan
        fields = ("name", "label", "rank", "tiers", "model_names", "qualities", "max_n", "monthly_quota",
                  "description")  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.model_names:
            self.initial["model_names"] = ", ".join(self.instance.model_names)

    def clean_model_names(self) -> list[str] | None:
        names = [n.strip() for n in (self.cleaned_data.get("model_names") or "").split(",") if n.strip()]
        unknown = [n for n in names if get_capabilities(n) is None]
        if unknown:
            raise forms.ValidationError(
                _("Unknown model(s) %(names)s; use GPT image model ids such as gpt-image-2."),
                params={"names": ", ".join(repr(n) for n in unknown)},
            )
        return names or None

    def clean_qualities(self) -> list[str] | None:
        return list(self.cleaned_data.get("qualities") or ()) or None

    def clean_tiers(self) -> list[str]:
        chosen = set(self.cleaned_data.get("tiers") or ())
        return [t for t in TIERS if t in chosen]


class UserPlanInline(admin.TabularInline):
    model = UserPlan
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "note", "assigned_at")
    readonly_fields = ("assigned_at",)


class GroupPlanInline(admin.TabularInline):
    model = GroupPlan
    extra = 0
    fields = ("group", "note", "assigned_at")
    readonly_fields = ("assigned_at",)


@admin.register(AccessPlan)
class AccessPlanAdmin(admin.ModelAdmin):
    form = AccessPlanForm
    list_display = ("label", "name", "rank", "tiers_display", "models_display", "qualities_display", "max_n",
                    "monthly_quota", "users", "groups")  # fmt: skip
    search_fields = ("name", "label")
    prepopulated_fields = {"name": ("label",)}
    inlines = (GroupPlanInline, UserPlanInline)

    @admin.display(description=_("Tiers"))
    def tiers_display(self, obj: AccessPlan) -> str:
        return ", ".join(obj.tiers or ()) or "-"

    @admin.display(description=_("Models"))
    def models_display(self, obj: AccessPlan) -> str:
        return ", ".join(obj.model_names or ()) or str(_("all"))

    @admin.display(description=_("Qualities"))
    def qualities_display(self, obj: AccessPlan) -> str:
        return ", ".join(obj.qualities or ()) or str(_("all"))

    @admin.display(description=_("Users"))
    def users(self, obj: AccessPlan) -> int:
        return obj.user_plans.count()

    @admin.display(description=_("Groups"))
    def groups(self, obj: AccessPlan) -> int:
        return obj.group_plans.count()


@admin.register(UserPlan)
class UserPlanAdmin(admin.ModelAdmin):
    list_display = ("user", "plan", "note", "assigned_at")
    list_filter = ("plan",)
    list_select_related = ("user", "plan")
    raw_id_fields = ("user",)
    search_fields = ("note",)


@admin.register(GroupPlan)
class GroupPlanAdmin(admin.ModelAdmin):
    list_display = ("group", "plan", "note", "assigned_at")
    list_filter = ("plan",)
    list_select_related = ("group", "plan")
