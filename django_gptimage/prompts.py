"""Prompt templates: Django's template language over an object, in a locked-down engine.

    render_prompt("Poster for {{ object.title }}, {{ object.date|date:'F Y' }}", article)

The engine has a fixed set of harmless tags and filters (no ``{% load %}``, ``{% include %}``,
``{% extends %}``, ``{% debug %}``), no loaders, no context processors (so no ``settings``,
``request`` or ``user``), and the object is seen through a read-only view: its fields,
``pk``, ``get_<field>_display`` and properties, never its methods (``delete``, ``save``...).
Files show as their names, related objects through the same view. Names starting with ``_``
are a syntax error in Django's template language already.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterator, Mapping
from datetime import date, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any
from uuid import UUID

from django.core.exceptions import FieldDoesNotExist
from django.core.files import File
from django.db.models import Model, QuerySet
from django.db.models.fields.files import FieldFile
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, NodeList, Variable
from django.utils.functional import Promise

from django_gptimage.conf import gptimage_settings

__all__ = [
    "ALLOWED_FILTERS",
    "ALLOWED_TAGS",
    "PromptTemplateError",
    "alt_text_from_prompt",
    "render_prompt",
    "template_problems",
]

ALLOWED_TAGS = (
    "autoescape", "comment", "cycle", "filter", "firstof", "for", "if", "ifchanged", "now",
    "spaceless", "templatetag", "verbatim", "widthratio", "with",
)  # fmt: skip
# Deterministic, side-effect-free filters (no random: the same object must give the same prompt).
ALLOWED_FILTERS = (
    "add", "capfirst", "center", "cut", "date", "default", "default_if_none", "divisibleby",
    "filesizeformat", "first", "floatformat", "join", "last", "length", "ljust", "lower",
    "make_list", "pluralize", "rjust", "safe", "slice", "slugify", "stringformat", "striptags",
    "time", "title", "truncatechars", "truncatewords", "upper", "wordcount", "wordwrap", "yesno",
)  # fmt: skip
MAX_ITEMS = 100  # items of a to-many relation or list a template can see
MAX_DEPTH = 4  # related objects seen through related objects


class PromptTemplateError(ValueError):
    """A template that cannot be compiled or rendered, or renders too long a prompt."""


_library = Library()
for _name in ALLOWED_TAGS:
    _library.tags[_name] = defaulttags.register.tags[_name]
for _name in ALLOWED_FILTERS:
    _library.filters[_name] = defaultfilters.register.filters[_name]

_engine = Engine(dirs=[], app_dirs=False, loaders=[], libraries={}, autoescape=False, string_if_invalid="")
_engine.template_builtins = [_library]  # replaces defaulttags/defaultfilters/loader_tags
# Every public attribute of a Context is shadowed by an empty value: ``{{ template.engine }}``,
# ``{{ dicts }}`` or ``{{ render_context }}`` would otherwise resolve on the Context itself.
_SHADOWED = {name: "" for name in dir(Context()) if not name.startswith("_")} | {"template": ""}


def _view(value: Any, depth: int) -> Any:
    """What a template may see of ``value``: plain data, or a read-only view of an object."""
    if value is None or isinstance(
        value, str | bool | int | float | Decimal | date | time | timedelta | UUID
    ):
        return value
    if isinstance(value, FieldFile | File):
        return value.name or ""
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, Model):
        return ObjectView(value, depth=depth + 1) if depth < MAX_DEPTH else str(value)
    if isinstance(value, Mapping):
        return {
            str(k): _view(v, depth + 1)
            for k, v in list(value.items())[:MAX_ITEMS]
            if not str(k).startswith("_")
        }
    if isinstance(value, list | tuple | QuerySet):  # a form's many-to-many value is a QuerySet
        return [_view(v, depth + 1) for v in value[:MAX_ITEMS]]
    return ""


def _attribute_kind(model: type[Model], name: str) -> tuple[str, Any]:
    """("field", field) / ("display", field) / ("pk", None) / ("property", None) / ("method", None)
    / ("missing", None) for ``object.<name>`` on ``model``."""
    if name.startswith("_"):
        return "missing", None
    if name == "pk":
        return "pk", None
    try:
        return "field", model._meta.get_field(name)
    except FieldDoesNotExist:
        pass
    for field in model._meta.concrete_fields:
        if field.attname == name:  # article.author_id
            return "field", field
    match = re.fullmatch(r"get_(\w+)_display", name)
    if match:
        display: Any
        try:
            display = model._meta.get_field(match.group(1))
        except FieldDoesNotExist:
            display = None
        if display is not None and getattr(display, "choices", None):
            return "display", display
    try:
        attr = inspect.getattr_static(model, name)
    except AttributeError:
        return "missing", None
    if isinstance(attr, property | cached_property):
        return "property", None
    return "method", None


class ObjectView:
    """A model instance as a template sees it (``values``, a form's current data, win over it)."""

    __slots__ = ("__obj", "__values", "__depth")

    def __init__(self, obj: Model | None, values: Mapping[str, Any] | None = None, *, depth: int = 0) -> None:
        self.__obj = obj
        self.__values = dict(values or {})
        self.__depth = depth

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str) or name.startswith("_"):
            raise KeyError(name)
        if name in self.__values:
            return _view(self.__values[name], self.__depth)
        obj = self.__obj
        if obj is None:
            raise KeyError(name)
        kind, field = _attribute_kind(type(obj), name)
        if kind == "pk":
            return _view(obj.pk, self.__depth)
        if kind == "display":
            return str(dict(field.flatchoices).get(getattr(obj, field.attname), getattr(obj, field.attname)))
        if kind == "property":
            return _view(getattr(obj, name), self.__depth)
        if kind != "field":
            raise KeyError(name)
        if field.many_to_many or field.one_to_many:
            if obj.pk is None:
                return []
            accessor = field.get_accessor_name() if field.auto_created and not field.concrete else field.name
            return [_view(o, self.__depth) for o in getattr(obj, accessor).all()[:MAX_ITEMS]]
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: BLE001 - a missing related row (DoesNotExist) shows as empty
            return ""
        return _view(value, self.__depth)

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __str__(self) -> str:
        if self.__obj is not None:
            return str(self.__obj)
        for key in ("title", "name", "label"):
            if self.__values.get(key):
                return str(self.__values[key])
        return ""

    def __bool__(self) -> bool:
        return self.__obj is not None or bool(self.__values)


def _normalise(text: str) -> str:
    """Tags leave blank lines and runs of spaces behind: collapse them, keep paragraphs."""
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@functools.lru_cache(maxsize=256)  # a batch renders one template for thousands of objects
def _compile(template: str) -> Any:
    try:
        return _engine.from_string(template)
    except TemplateSyntaxError as exc:
        raise PromptTemplateError(_syntax_message(exc)) from None


def _syntax_message(exc: TemplateSyntaxError) -> str:
    message = str(exc)
    match = re.search(r"Invalid block tag on line (\d+): '(\w+)'", message)
    if match and match.group(2) not in ALLOWED_TAGS:
        return (
            f"{{% {match.group(2)} %}} (line {match.group(1)}) is not available in prompt templates; "
            f"use {', '.join(ALLOWED_TAGS)}."
        )
    match = re.search(r"Invalid filter: '(\w+)'", message)
    if match:
        return f"The filter {match.group(1)!r} is not available in prompt templates; use {', '.join(ALLOWED_FILTERS)}."
    return message.replace(" Did you forget to register or load this tag?", "")


def render_prompt(
    template: str,
    obj: Model | None = None,
    *,
    values: Mapping[str, object] | None = None,
    max_length: int | None = None,
) -> str:
    """Render ``template`` with ``object`` = a read-only view of ``obj`` (and ``values``).

    Raises PromptTemplateError for a template that does not compile, fails to render, or
    renders more than ``max_length`` (default ``GPTIMAGE["PROMPT_TEMPLATE_MAX_LENGTH"]``) characters.
    """
    compiled = _compile(template)
    context = Context({**_SHADOWED, "object": ObjectView(obj, values)}, autoescape=False)
    try:
        text = compiled.render(context)
    except Exception as exc:  # noqa: BLE001 - a property or filter that raises
        raise PromptTemplateError(
            f"The prompt template could not be rendered ({exc.__class__.__name__}: {exc})."
        ) from None
    text = _normalise(text)
    limit = gptimage_settings.PROMPT_TEMPLATE_MAX_LENGTH if max_length is None else max_length
    if len(text) > limit:
        raise PromptTemplateError(
            f"The prompt template renders {len(text):,} characters; the limit is {limit:,} "
            "(PROMPT_TEMPLATE_MAX_LENGTH)."
        )
    return text


# -- checking a template before it is used -----------------------------------------------------------


def _walk(node: Any, seen: set[int], found: list[Variable], bound: set[str]) -> None:
    """Collect every variable (also filter arguments) and every name a tag binds."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, FilterExpression):
        if isinstance(node.var, Variable):
            found.append(node.var)
        for _func, args in node.filters:
            found.extend(arg for lookup, arg in args if lookup and isinstance(arg, Variable))
        return
    if isinstance(node, list | tuple | NodeList):
        for item in node:
            _walk(item, seen, found, bound)
        return
    if isinstance(node, dict):
        bound.update(str(k) for k in node)  # {% with name=... %}
        for item in node.values():
            _walk(item, seen, found, bound)
        return
    attrs = getattr(node, "__dict__", None)
    if not attrs:
        return
    bound.update(attrs.get("loopvars") or ())  # {% for name in ... %}
    for key in ("asvar", "variable_name"):  # {% cycle/firstof/now/widthratio ... as name %}
        if isinstance(attrs.get(key), str):
            bound.add(attrs[key])
    for key, value in attrs.items():
        if key not in ("token", "origin") and not isinstance(value, str | int | float | bool | type(None)):
            _walk(value, seen, found, bound)


def _lookup_problem(model: type[Model], lookups: tuple[str, ...]) -> str:
    current: type[Model] | None = model
    for depth, bit in enumerate(lookups[1:], start=1):
        if current is None:
            return ""
        kind, field = _attribute_kind(current, bit)
        shown = ".".join(lookups[: depth + 1])
        if kind == "method":
            return f"{shown!s} is a method: prompt templates can read fields and properties only."
        if kind == "missing":
            names = sorted(f.name for f in current._meta.get_fields() if not f.name.endswith("+"))
            return (
                f"{shown} does not exist: {current._meta.label} has no field {bit!r}; "
                f"fields are {', '.join(names)}."
            )
        if kind == "field" and field.is_relation and not (field.many_to_many or field.one_to_many):
            current = field.related_model
        else:
            return ""  # plain values (dates, strings) and to-many lists: their own attributes
    return ""


def template_problems(template: str, model: type[Model] | None = None) -> list[str]:
    """Everything wrong with ``template`` (syntax, unknown variables, unknown or method
    attributes of ``model``), as editor-facing messages; empty when it can be used."""
    if not isinstance(template, str) or not template.strip():
        return ["The prompt template is empty."]
    try:
        compiled = _compile(template)
    except PromptTemplateError as exc:
        return [str(exc)]
    found: list[Variable] = []
    bound: set[str] = set()
    _walk(compiled.nodelist, set(), found, bound)
    problems: list[str] = []
    for var in found:
        if var.lookups is None:
            continue  # a literal
        root = var.lookups[0]
        if root in bound or root in ("forloop", "block"):
            continue
        if root != "object":
            problem = (
                f"{var.var}: unknown variable {root!r}; the object is {{{{ object }}}} (object.<field>)."
            )
        elif model is not None:
            problem = _lookup_problem(model, var.lookups)
        else:
            problem = ""
        if problem and problem not in problems:
            problems.append(problem)
    return problems


def alt_text_from_prompt(prompt: str, limit: int = 250) -> str:
    """A suggested alt text: the prompt's first sentence, cut at a word near ``limit``."""
    text = " ".join((prompt or "").split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return sentence
