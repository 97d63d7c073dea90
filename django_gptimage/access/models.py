"""Access plans and who has them (imported by django_gptimage.models)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
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


class CreditAccount(models.Model):
    """A user's credits: the balance and the reservations, cached from the ledger.

    Kept in step with :class:`CreditEntry` inside the same transaction, under a row lock (see
    ``access.credits``); ``balance`` is what can still be reserved, ``reserved`` what queued and
    running generations hold. Both are the sums of the ledger's ``amount`` and ``held``.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gptimage_credits"
    )
    balance = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    reserved = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "django_gptimage"
        verbose_name = _("credit balance")
        verbose_name_plural = _("credit balances")
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="gptimage_credit_balance_gte_0"),
            models.CheckConstraint(
                condition=models.Q(reserved__gte=0), name="gptimage_credit_reserved_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.balance}"


class ImmutableEntry(Exception):
    pass


class CreditEntry(models.Model):
    """One immutable line of the ledger: who, when, why, for which generation, and its effect.

    ``amount`` is the change of the balance (what can be reserved), ``held`` the change of the
    reservations: a reserve of 5 is (-5, +5); capturing it at a cost of 3 is (+2, -5); a refund
    is (+5, -5); a grant of 100 is (+100, 0).
    """

    class Kind(models.TextChoices):
        GRANT = "grant", _("Grant")
        RESERVE = "reserve", _("Reserve")
        CAPTURE = "capture", _("Capture")
        REFUND = "refund", _("Refund")
        ADJUST = "adjust", _("Adjust")

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(max_digits=16, decimal_places=4, help_text=_("Change of the balance."))
    held = models.DecimalField(
        max_digits=16, decimal_places=4, default=0, help_text=_("Change of the reserved credits.")
    )
    balance_after = models.DecimalField(max_digits=16, decimal_places=4)
    reserved_after = models.DecimalField(max_digits=16, decimal_places=4)
    charged = models.DecimalField(
        max_digits=16, decimal_places=4, default=0, help_text=_("Credits spent (captures only).")
    )
    generation = models.ForeignKey(
        "django_gptimage.ImageGeneration", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="credit_entries",
    )  # fmt: skip
    generation_ref = models.CharField(
        max_length=36, blank=True, db_index=True, help_text=_("The generation's id (kept if it is deleted).")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("Who made the entry (empty: the system, for a generation)."),
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        app_label = "django_gptimage"
        ordering = ("-created_at", "-pk")
        verbose_name = _("credit ledger entry")
        verbose_name_plural = _("credit ledger")
        indexes = [models.Index(fields=["account", "generation_ref"], name="gptimage_credit_account_gen")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+} ({self.note or self.generation_ref})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ImmutableEntry("Credit ledger entries are immutable; add an adjust entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableEntry("Credit ledger entries are immutable; add an adjust entry instead.")
