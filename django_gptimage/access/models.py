"""Access plans and who has them (imported by django_gptimage.models)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AccessPlan(models.Model):
    """What a plan unlocks. ``None`` (empty) for a list means "whatever the site policy allows"."""

    name = models.SlugField(max_length=50, unique=True, help_text=_("Used in settings and commands."))
    label = models.CharField(max_length=100, help_text=_("Shown to editors."))
    rank = models.IntegerField(
        default=0,
        help_text=_("Higher is more generous: a user with several plans (own, groups) gets the highest."),
    )
    tiers = models.JSONField(default=list, blank=True, help_text=_('Resolution tiers, e.g. ["1K", "2K"].'))
    model_names = models.JSONField(
        null=True, blank=True, help_text=_("Models; empty for every model the site allows.")
    )
    qualities = models.JSONField(
        null=True, blank=True, help_text=_("Qualities; empty for every quality the site allows.")
    )
    max_n = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text=_("Most images per request; empty for the site's limit.")
    )
    monthly_quota = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Images per calendar month; empty for no quota.")
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "django_gptimage"
        ordering = ("rank", "name")
        verbose_name = _("access plan")
        verbose_name_plural = _("access plans")

    def __str__(self) -> str:
        return self.label or self.name


class UserPlan(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gptimage_plan"
    )
    plan = models.ForeignKey(AccessPlan, on_delete=models.PROTECT, related_name="user_plans")
    note = models.CharField(max_length=255, blank=True)
    assigned_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "django_gptimage"
        verbose_name = _("user plan")
        verbose_name_plural = _("user plans")

    def __str__(self) -> str:
        return f"{self.user}: {self.plan}"


class GroupPlan(models.Model):
    group = models.OneToOneField("auth.Group", on_delete=models.CASCADE, related_name="gptimage_plan")
    plan = models.ForeignKey(AccessPlan, on_delete=models.PROTECT, related_name="group_plans")
    note = models.CharField(max_length=255, blank=True)
    assigned_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "django_gptimage"
        verbose_name = _("group plan")
        verbose_name_plural = _("group plans")

    def __str__(self) -> str:
        return f"{self.group}: {self.plan}"
