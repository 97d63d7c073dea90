"""A marker for translatable domain strings, without Django.

``makemessages`` runs xgettext with ``gettext_noop`` among its keywords, so a msgid wrapped in
this identity function lands in the package's catalog; the display layer translates it with
Django's ``gettext`` when it shows it (see ``django_gptimage.messages``).
"""

from __future__ import annotations


def gettext_noop(message: str) -> str:
    return message
