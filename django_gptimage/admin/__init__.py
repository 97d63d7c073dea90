"""Admin registrations, one module per area (each registers its own ModelAdmins)."""

from __future__ import annotations

from . import access, credits, generations, hooks, presets  # noqa: F401
from .targets import GenerationsPanelMixin, generate_images_action
from .widget import GenerateImageAdminMixin

__all__ = ["GenerateImageAdminMixin", "GenerationsPanelMixin", "generate_images_action"]
