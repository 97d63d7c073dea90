"""The example CMS (example_project/): models, seed data, admin and front page, and `make demo`.

It has its own settings, so everything runs in child processes on a private SQLite database and
media root (sharing the suite's Redis), never touching example_project/db.sqlite3.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"

SCRIPT = """
import json, django
django.setup()
from django.core.management import call_command
from django.test import Client
from django.contrib.auth import get_user_model
from cms.models import Article, Event, Product

call_command("migrate", verbosity=0, interactive=False)
call_command("check", fail_level="ERROR")
call_command("seed_demo", verbosity=0)
first = [Article.objects.count(), Event.objects.count(), Product.objects.count()]
call_command("seed_demo", verbosity=0)  # idempotent
second = [Article.objects.count(), Event.objects.count(), Product.objects.count()]
photos = [bool(p.photo) and p.photo.storage.exists(p.photo.name) for p in Product.objects.all()]

client = Client(HTTP_HOST="127.0.0.1")
front = client.get("/")
admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
client.force_login(admin)
pages = {
    url: client.get(url).status_code
    for url in ("/admin/cms/article/", "/admin/cms/event/", "/admin/cms/product/",
                "/admin/cms/article/add/", "/admin/cms/product/add/",
                f"/admin/cms/product/{Product.objects.first().pk}/change/")
}
edit = client.get(f"/articles/{Article.objects.first().pk}/edit/").content.decode()
pages["edit-widget"] = 200 if ('data-gptimage-token' in edit and 'Generate cover' in edit) else 500
pages["poster-widget"] = 200 if 'name="poster__gptimage_pick"' in client.get("/admin/cms/event/add/").content.decode() else 500
print(json.dumps({"first": first, "second": second, "photos": photos, "front": front.status_code,
                  "front_html": front.content.decode(), "pages": pages}))
"""


def child_env(tmp_path: Path) -> dict[str, str]:
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "DJANGO_SETTINGS_MODULE")}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.slow
def test_seeded_cms_admin_and_front_page(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=EXAMPLE, env=child_env(tmp_path),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"] == [3, 2, 2]
    assert out["second"] == out["first"]
    assert out["photos"] == [True, True]
    assert out["front"] == 200
    for title in ("Urban beekeeping on Paris rooftops", "Jazz on the Quay", "Waxed canvas weekend bag"):
        assert title in out["front_html"]
    assert "no cover yet" in out["front_html"]  # generated fields start empty
    assert set(out["pages"].values()) == {200}, out["pages"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_make_demo_prints_urls_login_and_provider(tmp_path: Path) -> None:
    port = free_port()
    env = {**child_env(tmp_path), "PORT": str(port)}
    env.pop("DJANGO_SETTINGS_MODULE")
    log = tmp_path / "demo.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "run_demo.py")], cwd=ROOT, env=env,
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "stop:" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-4000:]
            time.sleep(0.2)
        text = log.read_text()
        assert "stop:" in text, text[-4000:]
        assert f"admin:     http://127.0.0.1:{port}/admin/" in text
        assert "user:      admin" in text
        password = re.search(r"password:\s+(\S+)", text)
        assert password and len(password.group(1)) >= 12
        assert f"front end: http://127.0.0.1:{port}/" in text
        assert "provider:  offline" in text
        assert "seeding the sample" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            assert response.status == 200
            assert "Jazz on the Quay" in response.read().decode()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-4000:]
