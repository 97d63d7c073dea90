"""Who may generate, retry and apply: ``Meta.permissions`` on ImageGeneration, plus change
permission on the object an image is applied to."""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import PermissionDenied
from django.db.models import Model

Action = Literal["generate", "retry", "apply"]
ACTIONS: dict[str, str] = {
    "generate": "You may not generate images: ask for the “Can generate images” permission.",
    "retry": "You may not retry generations: ask for the “Can retry failed generations” permission.",
    "apply": "You may not apply generated images: ask for the “Can apply generated images to objects” permission.",
}


def _has(user: Any, perm: str, obj: Model | None = None) -> bool:
    # Model-level first (ModelBackend answers False for any obj), then object-level backends.
    return bool(user.has_perm(perm) or (obj is not None and user.has_perm(perm, obj)))


def check_permission(user: Any, perm: Action, obj: Model | None = None) -> None:
    """Raise PermissionDenied (with a message an editor understands) unless ``user`` may ``perm``.

    ``apply`` also needs change permission on ``obj`` (the object the image goes into).
    """
    if perm not in ACTIONS:
        raise ValueError(f"Unknown permission {perm!r}; use one of {', '.join(ACTIONS)}.")
    if user is None or not getattr(user, "is_active", False) or not hasattr(user, "has_perm"):
        raise PermissionDenied(ACTIONS[perm])
    if not _has(user, f"django_gptimage.{perm}"):
        raise PermissionDenied(ACTIONS[perm])
    if perm == "apply" and obj is not None:
        opts = obj._meta
        if not _has(user, f"{opts.app_label}.change_{opts.model_name}", obj):
            raise PermissionDenied(
                f"You may not change this {opts.verbose_name} ({obj}), so you cannot apply an image to it."
            )
