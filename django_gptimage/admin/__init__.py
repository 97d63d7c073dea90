"""Admin registrations, one module per area (each registers its own ModelAdmins)."""

from __future__ import annotations

from . import access, generations, presets  # noqa: F401
from .targets import GenerationsPanelMixin, generate_images_action

__all__ = ["GenerationsPanelMixin", "generate_images_action"]
