"""JSON endpoints the admin pages and the widget poll. Thin callers of the service API.

Include them once in the site's URLconf (namespace ``gptimage``)::

    path("gptimage/", include("django_gptimage.urls")),
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from django_gptimage.models import ImageGeneration
from django_gptimage.service import generation_status

__all__ = ["can_view_generation", "generation_status_view", "visible_generations"]

VIEW_PERMISSION = "django_gptimage.view_imagegeneration"

# Only what generation_status() reads: the large text and JSON columns stay in the database.
STATUS_FIELDS = (
    "id", "status", "phase", "error_code", "error_detail", "attempts", "next_attempt_at", "created_at",
    "started_at", "finished_at", "preview", "cancel_requested", "estimated_cost", "actual_cost", "model",
    "mode", "ratio", "tier", "size", "width", "height", "quality", "output_format", "background", "n",
    "requested_by_id", "provider",
)  # fmt: skip


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def visible_generations(user: Any) -> Any:
    """The generations ``user`` may watch: staff with the view permission see all, others their own."""
    queryset = ImageGeneration.objects.all()
    if not (user.is_staff or user.is_superuser):
        queryset = queryset.filter(requested_by=user)
    return queryset


def can_view_generation(user: Any, generation: ImageGeneration) -> bool:
    if not (user.is_authenticated and user.is_active and user.has_perm(VIEW_PERMISSION)):
        return False
    return bool(user.is_staff or user.is_superuser or generation.requested_by_id == user.pk)


@require_GET
def generation_status_view(request: HttpRequest, pk: Any) -> JsonResponse:
    """``GET``: ``generation_status()`` of one generation, as JSON (never cached)."""
    user = request.user
    if not user.is_authenticated:
        return _error(401, "Sign in to follow this generation.")
    if not user.has_perm(VIEW_PERMISSION):
        return _error(403, "You do not have permission to view image generations.")
    generation = (
        visible_generations(user).filter(pk=pk).only(*STATUS_FIELDS).prefetch_related("images").first()
    )
    if generation is None:  # someone else's generation looks the same as a missing one
        return _error(404, "No such generation (or it is not yours).")
    response = JsonResponse(generation_status(generation))
    response["Cache-Control"] = "no-store"
    return response
