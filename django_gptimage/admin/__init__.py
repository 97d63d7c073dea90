"""Admin registrations, one module per area (each registers its own ModelAdmins)."""

from __future__ import annotations

from . import access, generations, presets  # noqa: F401
