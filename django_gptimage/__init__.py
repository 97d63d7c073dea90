"""django-gptimage: generate images with OpenAI's GPT Image models inside the Django admin.

The service API is importable from here once Django is set up::

    from django_gptimage import request_generation, GenerationRefused
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "ApplyRefused",
    "GenerationNotRetryable",
    "GenerationRefused",
    "NamedUpload",
    "Target",
    "apply_result",
    "autogenerate",
    "bind_target",
    "cancel_generation",
    "check_permission",
    "generate_for",
    "generations_for",
    "get_preset",
    "list_presets",
    "plan_batch",
    "request_generation",
    "retry_generation",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    # Lazy, so importing the package (settings, apps.py) never touches the app registry.
    if name in __all__:
        from django_gptimage import service

        return getattr(service, name)
    raise AttributeError(f"module 'django_gptimage' has no attribute {name!r}")
