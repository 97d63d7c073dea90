"""The record: one ImageGeneration per task, with its inputs, outputs and every attempt."""

from __future__ import annotations

import os
import uuid
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import Storage, storages
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import gptimage_settings
from .domain.capabilities import MODES
from .domain.errors import ErrorCode


class ConfiguredStorage(Storage):
    """Delegates every call to ``storages[GPTIMAGE["STORAGE"]]``, looked up at call time.

    A FileField resolves its storage once, when models load; going through this proxy means
    reading a file back (``.open()``, ``.url``) uses the same storage the file was written to
    even when the setting changes at runtime (``override_settings``, multi-site setups).
    """

    @property
    def target(self) -> Storage:
        return storages[gptimage_settings.STORAGE]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)

    def open(self, name: str, mode: str = "rb") -> Any:
        return self.target.open(name, mode)

    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        return self.target.save(name, content, max_length=max_length)

    def get_valid_name(self, name: str) -> str:
        return self.target.get_valid_name(name)

    def get_alternative_name(self, file_root: str, file_ext: str) -> str:
        return self.target.get_alternative_name(file_root, file_ext)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return self.target.get_available_name(name, max_length=max_length)

    def generate_filename(self, filename: str | os.PathLike[str]) -> str:
        return self.target.generate_filename(filename)

    def path(self, name: str) -> str:
        return self.target.path(name)

    def delete(self, name: str) -> None:
        self.target.delete(name)

    def exists(self, name: str) -> bool:
        return self.target.exists(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        return self.target.listdir(path)

    def size(self, name: str) -> int:
        return self.target.size(name)

    def url(self, name: str | None) -> str:
        return self.target.url(name)

    def get_accessed_time(self, name: str) -> Any:
        return self.target.get_accessed_time(name)

    def get_created_time(self, name: str) -> Any:
        return self.target.get_created_time(name)

    def get_modified_time(self, name: str) -> Any:
        return self.target.get_modified_time(name)


_configured_storage = ConfiguredStorage()


def get_storage() -> Storage:
    """The storage for inputs and results (module level so migrations can reference it)."""
    return _configured_storage


class Status(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")


class Phase(models.TextChoices):
    QUEUED = "queued", _("Waiting for a worker")
    THROTTLED = "throttled", _("Waiting for the rate limit")
    SENDING = "sending", _("Sending the request")
    WAITING = "waiting", _("Waiting for the image service")
    RECEIVING = "receiving", _("Receiving the images")
    STORING = "storing", _("Saving the images")
    DONE = "done", _("Done")


# The functional API, which django-stubs does not model.
ErrorCodeChoices = models.TextChoices("ErrorCodeChoices", [(c.name, c.value) for c in ErrorCode])  # type: ignore[call-overload]
ModeChoices = models.TextChoices("ModeChoices", [(m.replace("-", "_").upper(), m) for m in MODES])  # type: ignore[call-overload]

FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)


class ImageGeneration(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="gptimage_generations",
    )
    source = models.CharField(max_length=32, blank=True, help_text=_("admin, widget, hook, cli, api…"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    mode = models.CharField(max_length=20, choices=ModeChoices.choices, default="text-to-image")
    ratio = models.CharField(max_length=10)
    tier = models.CharField(max_length=4)
    size = models.CharField(max_length=20, help_text=_("The size sent: WxH or auto."))
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    quality = models.CharField(max_length=10)
    output_format = models.CharField(max_length=10)
    output_compression = models.PositiveSmallIntegerField(null=True, blank=True)
    background = models.CharField(max_length=12)
    n = models.PositiveSmallIntegerField(default=1)
    prompt = models.TextField()

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=12, choices=Phase.choices, default=Phase.QUEUED)
    error_code = models.CharField(max_length=32, choices=ErrorCodeChoices.choices, blank=True)
    # The facts of the failure, not its words: rendered (and translated) when shown, see
    # ``error_message`` and django_gptimage.messages.
    error_detail = models.JSONField(
        default=list, blank=True, help_text=_("The facts of the error (what the image service said, …).")
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    provider_request_id = models.CharField(max_length=200, blank=True)

    estimated_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    actual_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)

    # Paid-for bytes not yet in storage live here (see "results are never lost" in docs).
    spool_dir = models.CharField(max_length=500, blank=True)
    preview = models.CharField(
        max_length=500, blank=True, help_text=_("Storage name of the latest partial image.")
    )
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    # The object field the outputs are candidates for (no object id yet on an add form).
    target_content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_object_id = models.CharField(max_length=64, blank=True)
    target_field = models.CharField(max_length=100, blank=True)
    target = GenericForeignKey("target_content_type", "target_object_id")
    fingerprint = models.CharField(
        max_length=64, blank=True, db_index=True, help_text=_("sha256 of every parameter, prompt and input.")
    )
    preset = models.CharField(max_length=100, blank=True)
    preset_output = models.CharField(max_length=100, blank=True)
    parent_image = models.ForeignKey(
        "GeneratedImage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="derived_generations",
        help_text=_("The image this one was derived from (a variation or an edit)."),
    )

    class Meta:
        ordering = ("-created_at",)
        verbose_name = _("image generation")
        verbose_name_plural = _("image generations")
        indexes = [
            models.Index(fields=["status", "heartbeat_at"], name="gptimage_status_heartbeat"),
            # The admin finds a generation by the id the image service gave it (support tickets).
            models.Index(fields=["provider_request_id"], name="gptimage_provider_request"),
            models.Index(
                fields=["target_content_type", "target_object_id", "target_field", "created_at"],
                name="gptimage_target_created",
            ),
        ]
        permissions = [
            ("generate", _("Can generate images")),
            ("retry", _("Can retry failed generations")),
            ("apply", _("Can apply generated images to objects")),
        ]

    def __str__(self) -> str:
        return f"{self.prompt[:60]} ({self.ratio} {self.tier}, {self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def error_message(self) -> str:
        """The error in the active language, from the code and the stored facts ("" without one)."""
        from .messages import error_text

        return error_text(self.error_code, self.error_detail) if self.error_code else ""

    @property
    def editor_message(self) -> str:
        """What to tell the editor about the outcome, in one sentence."""
        if self.error_code:
            return self.error_message
        return str(self.get_phase_display()) if not self.is_finished else str(self.get_status_display())


class GenerationInput(models.Model):
    ROLE_IMAGE = "image"
    ROLE_MASK = "mask"

    generation = models.ForeignKey(ImageGeneration, on_delete=models.CASCADE, related_name="inputs")
    role = models.CharField(max_length=8, choices=[(ROLE_IMAGE, _("image")), (ROLE_MASK, _("mask"))])
    index = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(storage=get_storage, max_length=500)
    original_name = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ("generation", "role", "index")
        constraints = [
            models.UniqueConstraint(fields=["generation", "role", "index"], name="gptimage_unique_input"),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.index}: {self.original_name or self.file.name}"


class GeneratedImage(models.Model):
    generation = models.ForeignKey(ImageGeneration, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(storage=get_storage, max_length=500)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    format = models.CharField(max_length=10)
    created_at = models.DateTimeField(auto_now_add=True)
    alt_text = models.CharField(max_length=500, blank=True, help_text=_("Suggested alt text."))

    class Meta:
        ordering = ("generation", "index")
        constraints = [models.UniqueConstraint(fields=["generation", "index"], name="gptimage_unique_output")]

    def __str__(self) -> str:
        return self.file.name


class GenerationAttempt(models.Model):
    generation = models.ForeignKey(ImageGeneration, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True, help_text=_("succeeded, or an error code."))
    error_detail = models.JSONField(default=list, blank=True, help_text=_("The facts of the error."))
    provider_request_id = models.CharField(max_length=200, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    retry_after = models.FloatField(null=True, blank=True)
    will_retry = models.BooleanField(default=False)
    maybe_billed = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("generation", "number")
        constraints = [
            models.UniqueConstraint(fields=["generation", "number"], name="gptimage_unique_attempt")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.outcome or 'running'}"

    @property
    def error_message(self) -> str:
        """This attempt's error in the active language ("" for a success or a running one)."""
        from .messages import error_text

        code = self.outcome if self.outcome in ErrorCode._value2member_map_ else ""
        return error_text(code, self.error_detail) if code or self.error_detail else ""


class AppliedImage(models.Model):
    """One application of a candidate to an object's field: who, when, where, what it replaced."""

    image = models.ForeignKey(GeneratedImage, on_delete=models.CASCADE, related_name="applications")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    field = models.CharField(max_length=100)
    stored_name = models.CharField(max_length=500, help_text=_("The file name in the field's storage."))
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    applied_at = models.DateTimeField(default=timezone.now)
    previous_name = models.CharField(max_length=500, blank=True)
    previous_deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ("-applied_at", "-pk")
        verbose_name = _("applied image")
        verbose_name_plural = _("applied images")
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "field", "applied_at"], name="gptimage_applied_target"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stored_name} -> {self.content_type.app_label}.{self.content_type.model}:{self.object_id}.{self.field}"


class PromptPreset(models.Model):
    """A preset editable in the admin; it wins over a ``GPTIMAGE["PRESETS"]`` entry of the same name."""

    name = models.SlugField(max_length=100, unique=True)
    label = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    for_models = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("Comma-separated app_label.Model labels this preset is for (empty: any model)."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)
        verbose_name = _("prompt preset")
        verbose_name_plural = _("prompt presets")

    def __str__(self) -> str:
        return self.label or self.name


class PresetOutput(models.Model):
    """One output of a preset: size, format and prompt template (and image-to-image source)."""

    preset = models.ForeignKey(PromptPreset, on_delete=models.CASCADE, related_name="outputs")
    key = models.SlugField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0)
    field = models.CharField(
        max_length=100, blank=True, help_text=_("The image field it is for (empty: the field asked for).")
    )
    model = models.CharField(max_length=100, blank=True, help_text=_("Empty: GPTIMAGE['MODEL']."))
    mode = models.CharField(max_length=20, choices=ModeChoices.choices, default="text-to-image")
    ratio = models.CharField(max_length=10, default="1:1")
    tier = models.CharField(max_length=4, default="1K")
    quality = models.CharField(max_length=10, default="auto")
    output_format = models.CharField(max_length=10, default="png")
    background = models.CharField(max_length=12, default="auto")
    n = models.PositiveSmallIntegerField(default=1)
    prompt_template = models.TextField()
    source_field = models.CharField(
        max_length=100, blank=True, help_text=_("Image-to-image: the object's image field to start from.")
    )

    class Meta:
        ordering = ("preset", "position", "pk")
        constraints = [
            models.UniqueConstraint(fields=["preset", "key"], name="gptimage_unique_preset_output")
        ]

    def __str__(self) -> str:
        return f"{self.preset.name}/{self.key}"


class HookEvent(models.Model):
    """What a save hook did not do (refused, queue down, skipped, deferred) or did on its own (applied).

    Shown on the object's generations panel, so an editor whose save did not start a
    generation sees why; the save itself always succeeded.
    """

    class Outcome(models.TextChoices):
        REFUSED = "refused", _("Refused")
        UNAVAILABLE = "unavailable", _("Queue unavailable")
        SKIPPED = "skipped", _("Skipped")
        DEFERRED = "deferred", _("Deferred")
        ERROR = "error", _("Error")
        APPLIED = "applied", _("Applied")

    created_at = models.DateTimeField(default=timezone.now)
    hook = models.CharField(max_length=200)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    field = models.CharField(max_length=100)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    message = models.TextField(blank=True)
    generation = models.ForeignKey(
        ImageGeneration, null=True, blank=True, on_delete=models.SET_NULL, related_name="hook_events"
    )

    class Meta:
        ordering = ("-created_at", "-pk")
        verbose_name = _("save hook event")
        verbose_name_plural = _("save hook events")
        indexes = [
            models.Index(fields=["content_type", "object_id", "created_at"], name="gptimage_hookevent_target")
        ]

    def __str__(self) -> str:
        return f"{self.hook}: {self.outcome} ({self.content_type_id}:{self.object_id})"


from .access import models as access_models  # noqa: E402, F401  (plans, credits: docs/access.md)
