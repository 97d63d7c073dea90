"""What a save hook adds to a model save, and what planning a large batch costs.

    .venv/bin/python benchmarks/bench_hooks.py [--saves 1000] [--objects 10000]

Saves: ``--saves`` new articles are created with no hook, and as many with a hook
(``when="created"``: the hook fires on every one of them, so each save queues the hook's RQ job
on an embedded Redis after its commit), in alternating blocks of 50 within the same run; then
as many saves of an article whose hook does not fire (``when="empty"``, the cover is set).
Prints the median and p95 per save in milliseconds and the difference to no hook. Target:
under 2 ms added.

Planning: ``--objects`` articles, ``plan_batch()`` over all of them with a one-output preset;
prints the wall time, the pages and the SQL queries (target: under 5 s at 10,000 objects, a
constant number of queries per page).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

QUEUE = f"bench-hooks-{uuid.uuid4().hex[:8]}"


def configure(workdir: str, redis_url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-secret",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_rq",
            "django_gptimage",
            "tests.testapp",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(workdir, "db.sqlite3")}
        },
        MEDIA_ROOT=os.path.join(workdir, "media"),
        RQ_QUEUES={QUEUE: {"URL": redis_url, "DEFAULT_TIMEOUT": 900}},
        GPTIMAGE={
            "PROVIDER": "offline",
            "RUN_MODE": "queue",
            "QUEUE": QUEUE,
            "SPOOL_DIR": os.path.join(workdir, "spool"),
            "PRESETS": {"bench": {"prompt_template": "Cover for {{ object.title }}", "ratio": "16:9"}},
        },  # fmt: skip
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def set_hooks(*entries: dict[str, Any]) -> None:
    from django.conf import settings
    from django.core.signals import setting_changed

    settings.GPTIMAGE = {**settings.GPTIMAGE, "AUTOGENERATE": list(entries)}
    setting_changed.send(sender=None, setting="GPTIMAGE", value=settings.GPTIMAGE, enter=True)


def ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def bench_saves(saves: int) -> None:
    from django_gptimage import jobs
    from tests.testapp.models import Article

    hook = {"model": "testapp.Article", "field": "cover", "preset": "bench", "when": "created"}
    idle = {"model": "testapp.Article", "field": "cover", "preset": "bench", "when": "empty"}
    timings: dict[str, list[float]] = {"no hook": [], "hook fires": [], "hook, condition false": []}
    block = 50
    for _ in range(10):  # warm up both paths
        set_hooks()
        Article.objects.create(title="warm-up")
        set_hooks(hook)
        Article.objects.create(title="warm-up")
    for start in range(0, saves, block):
        for name, entries in (("no hook", ()), ("hook fires", (hook,))):
            set_hooks(*entries)
            for i in range(start, min(start + block, saves)):
                began = time.perf_counter()
                Article.objects.create(title=f"Article {i}")
                timings[name].append(time.perf_counter() - began)
    set_hooks(idle)
    article = Article.objects.create(title="Has a cover", cover="covers/set.png")
    for i in range(saves):
        article.title = f"Has a cover {i}"
        began = time.perf_counter()
        article.save()
        timings["hook, condition false"].append(time.perf_counter() - began)
    queued = jobs.get_queue().count
    base = ms(timings["no hook"])
    print(f"{saves} saves each (SQLite, RUN_MODE queue, embedded Redis; {queued} hook jobs queued)")
    for name, samples in timings.items():
        p50, p95 = ms(samples)
        extra = (
            "" if name == "no hook" else f"   added: p50 {p50 - base[0]:+.3f} ms  p95 {p95 - base[1]:+.3f} ms"
        )
        print(f"  {name:<24} p50 {p50:7.3f} ms   p95 {p95:7.3f} ms{extra}")
    jobs.get_queue().empty()


def bench_plan(objects: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_gptimage.batch import PAGE_SIZE
    from django_gptimage.service import plan_batch
    from tests.testapp.models import Article

    set_hooks()
    Article.objects.all().delete()
    Article.objects.bulk_create(
        [Article(title=f"Product launch {i}") for i in range(objects)], batch_size=1000
    )
    with CaptureQueriesContext(connection) as queries:
        began = time.perf_counter()
        plan = plan_batch(Article.objects.all(), field="cover", preset="bench")
        took = time.perf_counter() - began
    pages = -(-objects // PAGE_SIZE)
    print(
        f"plan_batch over {objects} objects: {took:.2f} s, {plan.to_send} to send, estimated "
        f"{plan.estimated_cost:.2f} {plan.currency}; {len(queries)} queries for {pages} pages of {PAGE_SIZE} "
        f"({len(queries) / pages:.2f} per page)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=10000)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="gptimage-bench-hooks-")
    try:
        from django_gptimage.testing import embedded_redis

        url = os.environ.get("REDIS_URL") or embedded_redis.start(stop_at_exit=True)
        configure(workdir, url)
        bench_saves(args.saves)
        bench_plan(args.objects)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
