from __future__ import annotations

from django.apps import AppConfig


class GptImageConfig(AppConfig):
    name = "django_gptimage"
    verbose_name = "GPT Image"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .cleanup import register_signal_handlers

        register_signal_handlers()
        from .hooks import connect

        connect()
