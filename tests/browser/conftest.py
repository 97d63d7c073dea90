"""Browser tests: Playwright's Python client driving Debian's headless Chromium.

Fixtures (every browser test module under tests/browser/ gets them):

- ``browser``: one headless Chromium for tests/browser/ (``/usr/bin/chromium``, or
  ``GPTIMAGE_CHROMIUM``), launched with no network side channels (no sync, updates, etc.).
- ``page``: a fresh browser context and page per test, pointed at pytest-django's
  ``live_server`` (a real HTTP server in a thread of this process, transactional database).
- ``admin_page``: ``page`` signed in as a superuser (``admin_page.user`` is that user).
- ``shot(page, "step")``: a full-page screenshot saved as
  ``test-artifacts/browser/<test>/<NN>-<step>.png``; a failing test saves ``failure.png`` too.
  ``shot(page, "step", docs="name")`` is also a screenshot of the documentation: with
  ``GPTIMAGE_DOCS_SCREENSHOTS=1`` (``make screenshots``) it is copied to
  ``docs/images/screenshots/name.png``.
- ``axe_scan(page, selector)``: axe-core's violations (serious and critical by default) inside
  ``selector``.
- Generations: use ``thread_worker`` (tests/conftest.py: queue mode, gptimage_worker's pool in a
  thread of this process, seeing this test's settings) and the offline provider (the default
  of tests/settings.py) or ``gptimage_openai`` (the loopback OpenAI server, faults scripted with
  ``gptimage_openai.add_fault(...)``). Without a worker, jobs stay queued: the "no worker" state.

Without Chromium or Playwright the tests are skipped locally and fail under CI (``CI=true``):
.ci/run installs both.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("GPTIMAGE_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "browser"
CHROMIUM = os.environ.get("GPTIMAGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
DEFAULT_TIMEOUT_MS = 20_000  # generous: 2 cores shared by several test runs
VIEWPORT = {"width": 1366, "height": 900}


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (.ci/run installs it)", pytrace=False)
    pytest.skip(what)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[test]')")
    # Playwright's sync API keeps an asyncio loop running in this thread while it is started;
    # Django would then refuse the plain synchronous ORM calls of the tests and fixtures. Package
    # scope: the loop is gone again before the rest of the suite runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            yield playwright
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(playwright_instance: Any) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK)):
        _missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid.split("::", 1)[-1]).strip("-")
    module = Path(str(request.node.fspath)).stem
    path = ARTIFACTS / f"{module}--{name}"[:150]
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


# The screenshots in docs/ are taken by these tests: ``shot(page, "step", docs="name")`` also
# writes docs/images/screenshots/<name>.png when GPTIMAGE_DOCS_SCREENSHOTS=1 (make screenshots).
DOCS_SCREENSHOTS = ROOT / "docs" / "images" / "screenshots"


@pytest.fixture
def shot(artifacts_dir: Path) -> Callable[..., Path]:
    counter = iter(range(1, 1000))

    def take(
        page: Any, step: str, *, full_page: bool = True, locator: Any = None, docs: str | None = None
    ) -> Path:
        path = artifacts_dir / f"{next(counter):02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', step)}.png"
        (locator or page).screenshot(path=str(path), **({} if locator else {"full_page": full_page}))
        if docs and os.environ.get("GPTIMAGE_DOCS_SCREENSHOTS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_SCREENSHOTS / f"{docs}.png")
        return path

    return take


class LivePage:
    """A Playwright page plus the live server's URL helpers (everything else is delegated)."""

    def __init__(self, page: Any, base_url: str) -> None:
        self._page = page
        self.base_url = base_url
        self.user: Any = None
        # Script errors, and responses >= 400 except the favicon (tests may expect others).
        self.console_errors: list[str] = []
        self.failed_responses: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.on("response", self._on_response)

    def _on_console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console_errors.append(message.text)

    def _on_response(self, response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.failed_responses.append(f"{response.status} {response.request.method} {response.url}")

    def visit(self, path: str) -> Any:
        """Open ``path`` (a URL path such as ``/admin/``) and wait for the page to load."""
        return self._page.goto(self.base_url + path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._page, name)


@pytest.fixture
def page(
    browser: Any,
    live_server: Any,
    request: pytest.FixtureRequest,
    artifacts_dir: Path,
    settings: Any,
    tmp_path: Path,
) -> Iterator[Any]:
    # Each page test gets its own media directory: the offline provider draws the same bytes for
    # the same prompt, so a file left by an earlier test would make storage add a suffix.
    settings.MEDIA_ROOT = str(tmp_path / "media")
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url, locale="en-US")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    raw = context.new_page()
    live = LivePage(raw, live_server.url)
    yield live
    if request.node.stash.get(_FAILED, False):
        # A crashed page must not hide the test's own failure.
        with contextlib.suppress(Exception):
            raw.screenshot(path=str(artifacts_dir / "failure.png"), full_page=True)
    context.close()


def sign_in(page: Any, user: Any) -> None:
    """Give the browser a session for ``user`` without going through the login form."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": page.base_url}]
    )
    page.user = user


@pytest.fixture
def admin_page(page: Any, django_user_model: Any) -> Any:
    user = django_user_model.objects.create_superuser("editor", "editor@example.com", "pw-editor-1")
    sign_in(page, user)
    return page


@pytest.fixture
def axe_scan() -> Callable[..., list[dict[str, Any]]]:
    """``axe_scan(page, "#panel")`` -> axe-core violations of impact serious/critical there."""

    def scan(
        page: Any, selector: str | None = None, impacts: tuple[str, ...] = ("serious", "critical")
    ) -> Any:
        try:
            from axe_playwright_python.sync_playwright import Axe
        except ImportError:
            _missing("axe-playwright-python is not installed (pip install -e '.[test]')")
        options = {"include": [[selector]]} if selector else None
        results = Axe().run(getattr(page, "_page", page), context=options)
        return [v for v in results.response["violations"] if v.get("impact") in impacts]

    return scan
