"""Settings for the test suite.

Defaults need nothing but Python: SQLite and an embedded Redis. ``DATABASE_URL`` and
``REDIS_URL`` switch to real servers (CI runs the suite both ways).
"""

from __future__ import annotations

import os
import tempfile

import dj_database_url

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "django_gptimage",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
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
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL")
        or f"sqlite:///{os.path.join(tempfile.gettempdir(), 'gptimage-tests.sqlite3')}"
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so worker processes started by tests see the same test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("GPTIMAGE_TEST_SQLITE")
        or os.path.join(tempfile.gettempdir(), f"gptimage-test-{os.getpid()}.sqlite3")
    }
    # Worker processes write to it while the test polls it: wait for SQLite's write lock (5 s
    # by default, too short on a loaded machine) and take it when a transaction begins, so two
    # read-then-write transactions never fail at once with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}

MEDIA_ROOT = tempfile.mkdtemp(prefix="gptimage-test-media-")
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if not os.environ.get("REDIS_URL"):
    # Started once by the process that imports settings first (the pytest session); worker
    # processes spawned by tests inherit REDIS_URL and join it.
    from django_gptimage.testing import embedded_redis

    os.environ["REDIS_URL"] = embedded_redis.start(stop_at_exit=True)
REDIS_URL = os.environ["REDIS_URL"]
RQ_QUEUES = {
    "gptimage": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 900},
    "default": {"URL": REDIS_URL},
}

GPTIMAGE = {
    "PROVIDER": "offline",
    # Most tests run generations in-process; the job tests switch to "queue" with real workers.
    "RUN_MODE": "sync",
    "RETRY_BACKOFF_BASE": 0.05,
    "RETRY_BACKOFF_MAX": 2.0,
    "SPOOL_DIR": tempfile.mkdtemp(prefix="gptimage-test-spool-"),
}
SILENCED_SYSTEM_CHECKS = ["django_gptimage.W002"]  # test spools live in the temp dir on purpose
