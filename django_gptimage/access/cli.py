"""Helpers the management commands share."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def find_user(username: str) -> Any:
    """The user whose USERNAME_FIELD is ``username``; CommandError (exit 2) when there is none."""
    model = get_user_model()
    try:
        return model._default_manager.get_by_natural_key(username)
    except model.DoesNotExist:
        raise CommandError(
            f"No user {username!r} (looked up by {model.USERNAME_FIELD}).", returncode=2
        ) from None
