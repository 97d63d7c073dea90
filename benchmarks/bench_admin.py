"""Admin history and status endpoint response times over a large history.

    .venv/bin/python benchmarks/bench_admin.py [--rows 100000] [--requests 200]
        [--database-url postgres://postgres@127.0.0.1:5432/test]

Fills a fresh database with ``--rows``
generations (a tenth of them with two images, some failed, some running), then times, through
Django's test client as a signed-in staff editor (the whole request: middleware, session, auth,
permissions, the view, templates):

- ``status``: ``GET /gptimage/generations/<id>/status/`` for random records,
- ``history``: the admin changelist (first page, 100 rows), unfiltered, filtered to "active",
  searched by a word almost every prompt has, and by a word one prompt has.

Prints p50 / p95 / max in milliseconds and the number of SQL queries per request. Targets:
status p95 < 20 ms and history p95 < 100 ms at 100,000 rows.

The database is SQLite in a temporary directory by default. With ``--database-url`` (or
``DATABASE_URL``) naming a PostgreSQL server, a fresh database ``gptimage_bench_admin_<pid>`` is
created on that server (the URL's own database is only used to connect) and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def database_settings(workdir: str, url: str | None) -> dict[str, Any]:
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(workdir, "db.sqlite3")}
    import dj_database_url

    database = dj_database_url.parse(url)
    if "postgresql" not in database["ENGINE"]:
        raise SystemExit(f"--database-url: only SQLite (the default) and PostgreSQL are supported, not {url}")
    database["TEST"] = {}
    database["BENCH_ADMIN_SERVER_DB"] = database["NAME"]
    database["NAME"] = f"gptimage_bench_admin_{os.getpid()}"
    return database


def server_command(database: dict[str, Any], sql: str) -> None:
    """CREATE/DROP DATABASE through a connection to the URL's own database (autocommit)."""
    import psycopg

    with psycopg.connect(
        dbname=database["BENCH_ADMIN_SERVER_DB"], user=database.get("USER") or None,
        password=database.get("PASSWORD") or None, host=database.get("HOST") or None,
        port=database.get("PORT") or None, autocommit=True,
    ) as connection:  # fmt: skip
        connection.execute(sql)


def configure(
    workdir: str,
    database: dict[str, Any],
    *,
    apps: tuple[str, ...] = (),
    redis_url: str = "redis://127.0.0.1:1/0",
    gptimage: dict[str, Any] | None = None,
) -> None:
    """A minimal site (also used by bench_widget.py): ``apps`` added, ``gptimage`` merged in."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-secret",
        USE_TZ=True,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.urls",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "django_rq",
            "django_gptimage",
            *apps,
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={"default": {k: v for k, v in database.items() if not k.startswith("BENCH_")}},
        STATIC_URL="/static/",
        MEDIA_URL="/media/",
        MEDIA_ROOT=os.path.join(workdir, "media"),
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        RQ_QUEUES={name: {"URL": redis_url, "DEFAULT_TIMEOUT": 900} for name in ("default", "gptimage")},
        GPTIMAGE={
            "PROVIDER": "offline",
            "RUN_MODE": "sync",
            "SPOOL_DIR": os.path.join(workdir, "spool"),
            **(gptimage or {}),
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(rows: int) -> list[Any]:
    from django.db import transaction
    from django.utils import timezone

    from django_gptimage.models import GeneratedImage, ImageGeneration

    words = ["lighthouse", "harbour", "poster", "festival", "forest", "city", "bicycle", "portrait", "night"]
    now = timezone.now()
    rng = random.Random(7)
    ids: list[Any] = []
    batch: list[ImageGeneration] = []
    images: list[GeneratedImage] = []
    with transaction.atomic():
        for i in range(rows):
            status = rng.choices(["succeeded", "failed", "running", "queued"], [85, 10, 3, 2])[0]
            g = ImageGeneration(
                id=uuid.uuid4(),
                source="admin",
                provider="offline",
                model="gpt-image-2",
                mode="text-to-image",
                ratio="16:9",
                tier="1K",
                size="1344x768",
                width=1344,
                height=768,
                quality="low",
                output_format="png",
                background="auto",
                n=1,
                prompt=" ".join(rng.choice(words) for _ in range(30)) + f" #{i}",
                status=status,
                phase="done" if status in ("succeeded", "failed") else status,
                error_code="provider_error" if status == "failed" else "",
                attempts=1,
                provider_request_id=f"req_{uuid.uuid4().hex}",
                estimated_cost="0.010000",
                actual_cost="0.009000" if status == "succeeded" else None,
                started_at=now - timedelta(seconds=rows - i + 20),
                finished_at=now - timedelta(seconds=rows - i) if status in ("succeeded", "failed") else None,
            )
            batch.append(g)
            ids.append(g.id)
            if status == "succeeded" and i % 10 == 0:
                for index in range(2):
                    images.append(
                        GeneratedImage(
                            generation=g, index=index, file=f"gptimage/bench/{g.id}-{index}.png", width=1344,
                            height=768, size_bytes=100_000, sha256="0" * 64, format="png",
                        )
                    )  # fmt: skip
            if len(batch) >= 5000:
                ImageGeneration.objects.bulk_create(batch)
                GeneratedImage.objects.bulk_create(images)
                batch, images = [], []
        ImageGeneration.objects.bulk_create(batch)
        GeneratedImage.objects.bulk_create(images)
    # created_at is auto_now_add: spread it so the date hierarchy and ordering are realistic.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_gptimage_imagegeneration SET created_at = started_at WHERE started_at IS NOT NULL"
        )
        cursor.execute("ANALYZE")  # both SQLite and PostgreSQL
    return ids


def timed(client: Any, url: str, count: int) -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    queries = 0
    for _ in range(count):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = client.get(url() if callable(url) else url)
            times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (response.status_code, response.content[:300])
        queries = len(ctx.captured_queries)
    return times, queries


def report(name: str, times: list[float], queries: int) -> None:
    times = sorted(times)
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    print(
        f"{name:<34} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   "
        f"max {times[-1]:7.1f} ms   {queries} queries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="gptimage-bench-admin-")
    database = database_settings(workdir, args.database_url)
    if "BENCH_ADMIN_SERVER_DB" in database:
        server_command(database, f'CREATE DATABASE "{database["NAME"]}"')
    try:
        configure(workdir, database, apps=("tests.testapp",))  # tests.urls routes its admin
        from django.contrib.auth.models import Permission, User
        from django.test import Client

        t0 = time.perf_counter()
        ids = fill(args.rows)
        from django.db import connection

        if connection.vendor == "postgresql":
            major, minor = divmod(connection.pg_version, 10000)
            engine = f"PostgreSQL {major}.{minor}"
        else:
            engine = f"SQLite {connection.Database.sqlite_version}"
        print(f"{args.rows:,} generations in {time.perf_counter() - t0:.0f} s ({engine}, {database['NAME']})")
        editor = User.objects.create_user("editor", password="pw", is_staff=True)
        editor.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_gptimage"))
        client = Client()
        client.force_login(editor)
        rng = random.Random(3)

        def status_url() -> str:
            return f"/gptimage/generations/{rng.choice(ids)}/status/"

        timed(client, status_url, 20)  # warm-up
        report("status endpoint", *timed(client, status_url, args.requests))
        history = "/admin/django_gptimage/imagegeneration/"
        timed(client, history, 3)
        report("history (first page)", *timed(client, history, max(20, args.requests // 5)))
        report("history (active)", *timed(client, history + "?status=active", max(20, args.requests // 5)))
        report(
            "history (search 'harbour')", *timed(client, history + "?q=harbour", max(20, args.requests // 5))
        )
        rare = f"#{args.rows - 7}"  # one row's own number: a word almost no prompt has
        report(
            f"history (search '{rare}')",
            *timed(client, history + f"?q=%23{rare[1:]}", max(20, args.requests // 5)),
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if "BENCH_ADMIN_SERVER_DB" in database:
            from django.db import connections

            connections.close_all()
            server_command(database, f'DROP DATABASE IF EXISTS "{database["NAME"]}"')


if __name__ == "__main__":
    main()
