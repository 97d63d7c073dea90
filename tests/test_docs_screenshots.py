"""The documentation's screenshots are the browser tests' own (``shot(..., docs="name")``).

``make screenshots`` retakes them. Here: every screenshot a browser test names exists in
docs/images/screenshots/, every file there is named by a test and shown on a docs page.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "images" / "screenshots"


def named_by_tests() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests" / "browser").glob("test_*.py"):
        names |= set(re.findall(r'docs="([A-Za-z0-9_-]+)"', path.read_text()))
    return names


def test_every_docs_screenshot_is_taken_by_a_browser_test_and_shown() -> None:
    files = {p.stem for p in SCREENSHOTS.glob("*.png")}
    named = named_by_tests()
    assert named, "no browser test takes a documentation screenshot"
    assert named - files == set(), f"run `make screenshots`: missing {sorted(named - files)}"
    assert files - named == set(), f"no browser test takes {sorted(files - named)}: remove them"
    pages = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    shown = set(re.findall(r"images/screenshots/([A-Za-z0-9_-]+)\.png", pages))
    assert files - shown == set(), f"not shown on any docs page: {sorted(files - shown)}"
