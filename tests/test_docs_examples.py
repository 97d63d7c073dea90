"""Every Python example in README.md and docs/*.md runs, so the docs cannot drift from the code.

How a block is run depends on what it is:

- settings (top-level ``UPPER_CASE = ...`` assignments, as in a settings.py): executed; a
  ``GPTIMAGE`` it defines must name only known keys and pass the package's system checks;
- one setting (a ``"KEY": value`` line, as in docs/settings.md): evaluated as a dict entry; the
  key must be a ``GPTIMAGE`` setting;
- tests (``def test_...`` or a ``TestCase``): executed, then each test is run with the real
  pytest fixtures it asks for (the loopback server, ``settings``, ...);
- anything else: executed with a small namespace a view would have (``request``, ``form``, the
  service API), against the test database and the offline provider.

A block preceded by ``<!-- docs-example: not run (why) -->`` is skipped, with its reason in the
test id; use it only for what cannot run here (a real cloud account, a placeholder module).
"""

from __future__ import annotations
import __future__

import ast
import inspect
import os
import re
import sys
import types
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*docs-example:\s*not run\s*\((?P<why>[^)]+)\)\s*-->\s*$")
SETTING_LINE = re.compile(r'^"(?P<key>[A-Z_]+)":')
COMPILE_FLAGS = __future__.annotations.compiler_flag  # annotations in examples stay unevaluated


@dataclass(frozen=True)
class Example:
    path: str
    line: int
    code: str
    not_run: str = ""

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def _examples() -> list[Example]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = []
    for path in files:
        if path.is_symlink():
            continue  # docs/changelog.md is CHANGELOG.md
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip().splitlines()
            why = NOT_RUN.search(before[-1]) if before else None
            body = "\n".join(
                ln[len(match["indent"]) :] if ln.startswith(match["indent"]) else ln
                for ln in match["body"].splitlines()
            )
            found.append(Example(str(path.relative_to(ROOT)), line, body, why["why"] if why else ""))
    return found


EXAMPLES = _examples()


def _kind(code: str) -> str:
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and all(SETTING_LINE.match(ln) or ln[0] in " }]" for ln in lines):
        return "setting"
    tree = ast.parse(code)
    if any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        for node in tree.body
    ) or any(isinstance(node, ast.ClassDef) and node.name.endswith("Tests") for node in tree.body):
        return "tests"
    targets = [
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]
    if targets and all(t.isupper() for t in targets) and len(targets) == len(tree.body):
        return "settings"
    return "code"


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) > 20
    kinds = {_kind(e.code) for e in EXAMPLES if not e.not_run}
    assert kinds == {"setting", "settings", "tests", "code"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id + (" (not run)" if e.not_run else ""))
@pytest.mark.django_db(transaction=True)
def test_example_runs(
    example: Example, request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if example.not_run:
        pytest.skip(f"not run: {example.not_run}")
    # The docs give the key through the environment, as OpenAI's own convention does.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-example")
    kind = _kind(example.code)
    settings.GPTIMAGE = {**settings.GPTIMAGE, "RUN_MODE": "sync", "PROVIDER": "offline"}
    if kind == "setting":
        _run_setting(example)
    elif kind == "settings":
        _run_settings(example, settings)
    elif kind == "tests":
        _run_tests(example, request)
    else:
        exec(compile(example.code, example.id, "exec", COMPILE_FLAGS), _view_namespace())


def _run_setting(example: Example) -> None:
    from django_gptimage.conf import DEFAULTS

    entries = eval(
        compile("{\n" + ",\n".join(_entries(example.code)) + "\n}", example.id, "eval"), {"os": os}
    )
    unknown = set(entries) - set(DEFAULTS)
    assert not unknown, f"{example.id} shows settings that do not exist: {sorted(unknown)}"


def _entries(code: str) -> list[str]:
    """Each top-level ``"KEY": value`` of a block (a value may span lines; comments dropped)."""
    out: list[str] = []
    for line in code.splitlines():
        if SETTING_LINE.match(line):
            out.append(line)
        elif out:
            out[-1] += "\n" + line
    return out


def _run_settings(example: Example, settings: Any) -> None:
    from django.core import checks

    from django_gptimage.conf import DEFAULTS

    namespace: dict[str, Any] = {"os": os}
    exec(compile(example.code, example.id, "exec", COMPILE_FLAGS), namespace)
    gptimage = namespace.get("GPTIMAGE")
    if gptimage is None:
        return
    unknown = set(gptimage) - set(DEFAULTS)
    assert not unknown, f"{example.id} shows settings that do not exist: {sorted(unknown)}"
    if "STORAGES" in namespace:
        settings.STORAGES = namespace["STORAGES"]
    settings.GPTIMAGE = gptimage
    errors = [
        m
        for m in checks.run_checks()
        if m.id
        and m.id.startswith("django_gptimage.")
        and m.level >= checks.ERROR
        # A provider path in an example names the reader's own module, not ours.
        and not (m.id == "django_gptimage.E001" and "myproject" in str(gptimage.get("PROVIDER", "")))
    ]
    assert not errors, f"{example.id}: the documented settings fail the system checks: {errors}"


def _run_tests(example: Example, request: pytest.FixtureRequest) -> None:
    import django_rq
    from django.test import TestCase
    from rq import SimpleWorker

    import django_gptimage

    namespace: dict[str, Any] = {
        "pytest": pytest,
        "TestCase": TestCase,
        "django_rq": django_rq,
        "SimpleWorker": SimpleWorker,
        **{name: getattr(django_gptimage, name) for name in django_gptimage.__all__},
    }
    # A module of its own, importable while it runs, as a test file of the reader's would be:
    # a dotted path to a class it defines ("BACKEND": f"{__name__}.MyStorage") then resolves.
    module = types.ModuleType("docs_example_" + re.sub(r"\W", "_", example.id))
    module.__dict__.update(namespace)
    namespace = module.__dict__
    sys.modules[module.__name__] = module
    request.addfinalizer(lambda: sys.modules.pop(module.__name__, None))
    exec(compile(example.code, example.id, "exec", COMPILE_FLAGS), namespace)
    ran = 0
    for name, obj in list(namespace.items()):
        if name.startswith("test") and inspect.isfunction(obj):
            kwargs = {p: request.getfixturevalue(p) for p in inspect.signature(obj).parameters}
            obj(**kwargs)
            ran += 1
        elif inspect.isclass(obj) and issubclass(obj, unittest.TestCase) and obj is not TestCase:
            for marker in getattr(obj, "pytestmark", []):
                for fixture in marker.kwargs.get("fixturenames", marker.args):
                    request.getfixturevalue(fixture)  # usefixtures(...) on the class
            result = unittest.TestResult()
            unittest.defaultTestLoader.loadTestsFromTestCase(obj).run(result)
            assert result.wasSuccessful(), f"{example.id}: {result.failures + result.errors}"
            ran += result.testsRun
    assert ran, f"{example.id} defines no test that could be run"


def _view_namespace() -> dict[str, Any]:
    """What the code examples assume: a signed-in staff request, a form, the service API."""
    from django import forms
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    import django_gptimage
    from django_gptimage.access.plans import assign

    user = get_user_model().objects.create_superuser("docs-editor", "editor@example.com", "pw")
    assign(user, "paid")  # the examples ask for 2K, which the free plan does not unlock
    request = RequestFactory().post("/")
    request.user = user

    class PromptForm(forms.Form):
        prompt = forms.CharField()

    form = PromptForm({"prompt": "A lighthouse at dusk"})
    assert form.is_valid()
    return {
        "request": request,
        "user": user,
        "form": form,
        **{name: getattr(django_gptimage, name) for name in django_gptimage.__all__},
    }
