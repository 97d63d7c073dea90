"""The prompt template sandbox: what a template can read, and every way out it must not find."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings

from django_gptimage.prompts import (
    PromptTemplateError,
    alt_text_from_prompt,
    render_prompt,
    template_problems,
)
from tests.testapp.models import Article, Product

SECRET = "sk-sandbox-test-0123"


@pytest.fixture
def article(db):
    return Article.objects.create(
        title="Jazz night",
        venue="Blue Hall",
        date=datetime.date(2026, 5, 1),
        body="Two sets.",
        cover="covers/a.png",
    )


@pytest.fixture
def secret(settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "API_KEY": SECRET}
    return SECRET


def test_renders_fields_filters_and_tags(article):
    text = render_prompt(
        "Poster for {{ object.title }} at {{ object.venue }}, {{ object.date|date:'F Y' }}.\n"
        "{% if object.body %}  About:   {{ object.body|lower }}{% endif %}\n\n\n\n"
        "{% for word in object.title.split %}[{{ word|upper }}]{% endfor %} #{{ object.pk }} {{ object }}",
        article,
    )
    assert text == (
        f"Poster for Jazz night at Blue Hall, May 2026.\nAbout: two sets.\n\n[JAZZ][NIGHT] #{article.pk} Jazz night"
    )
    assert render_prompt("{{ object.cover }}", article) == "covers/a.png"  # a file is its name only
    assert (
        render_prompt("{{ object.title }} & {{ object.venue }}", article) == "Jazz night & Blue Hall"
    )  # no escaping


def test_values_win_over_the_object_and_work_without_one(article):
    assert render_prompt("{{ object.title }}/{{ object.venue }}", article, values={"title": "Edited"}) == (
        "Edited/Blue Hall"
    )
    assert render_prompt("{{ object.title }} ({{ object }})", None, values={"title": "New"}) == "New (New)"
    # A form's many-to-many value is a QuerySet: its objects are seen through the same view.
    listed = render_prompt(
        "{% for a in object.related %}{{ a.title }}{{ a.delete }};{% endfor %}",
        None,
        values={"related": Article.objects.all()},
    )
    assert listed == "Jazz night;" and Article.objects.count() == 1


@pytest.mark.parametrize(
    "template",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ object.settings.SECRET_KEY }}",
        "{{ template.engine }}{{ dicts }}{{ render_context }}",
        "{{ object.delete }}{{ object.save }}{{ object.refresh_from_db }}",
        "{{ object.cover.path }}{{ object.cover.file }}{{ object.cover.storage }}",
        "{{ object.objects }}{{ object.DoesNotExist }}{{ object.full_clean }}",
        "{% with d=object.delete %}{{ d }}{% endwith %}",
        "{% now 'SECRET_KEY' as when %}",
    ],
)
def test_escapes_render_empty_and_change_nothing(article, secret, template):
    text = render_prompt(template, article)
    assert django_settings.SECRET_KEY not in text and secret not in text
    assert "sk-" not in text and "Engine" not in text and "/" not in text
    assert Article.objects.filter(pk=article.pk).exists()  # object.delete was not called
    assert Article.objects.get(pk=article.pk).title == "Jazz night"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ object.__class__ }}", "may not begin with underscores"),
        ("{{ object._meta }}", "may not begin with underscores"),
        ("{{ object.title.__class__.__mro__ }}", "may not begin with underscores"),
        ("{% load static %}", "{% load %} (line 1) is not available"),
        ("{% include 'admin/base.html' %}", "{% include %} (line 1) is not available"),
        ("{% extends 'admin/base.html' %}", "{% extends %} (line 1) is not available"),
        ("{% debug %}", "{% debug %} (line 1) is not available"),
        ("{% csrf_token %}", "{% csrf_token %} (line 1) is not available"),
        ("{{ object.title|pprint }}", "The filter 'pprint' is not available"),
        ("{{ object.title|random }}", "The filter 'random' is not available"),
        ("{% if %}", "Unexpected end of expression"),
    ],
)
def test_refused_when_compiled(template, expected):
    with pytest.raises(PromptTemplateError, match=None) as refused:
        render_prompt(template)
    assert expected in str(refused.value)
    assert any(expected in p for p in template_problems(template, Article))


def test_template_problems_against_a_model():
    assert (
        template_problems("Poster for {{ object.title }}, {{ object.date|date:'Y' }} {{ object }}", Article)
        == []
    )
    assert template_problems("{{ object.name|default:object.pk }}", Product) == []
    assert (
        template_problems(
            "{% for w in object.title.split %}{{ w }}{{ forloop.counter }}{% endfor %}", Article
        )
        == []
    )
    assert template_problems("{% with t=object.title %}{{ t }}{% endwith %}", Article) == []
    [problem] = template_problems("{{ object.titel }}", Article)
    assert problem.startswith(
        "object.titel does not exist: testapp.Article has no field 'titel'; fields are "
    )
    assert "title" in problem
    assert template_problems("{{ object.delete }}", Article) == [
        "object.delete is a method: prompt templates can read fields and properties only."
    ]
    assert template_problems("{{ object.title|default:object.nope }}", Article)  # filter arguments too
    assert template_problems("{{ title }}", Article) == [
        "title: unknown variable 'title'; the object is {{ object }} (object.<field>)."
    ]
    assert template_problems("", Article) == ["The prompt template is empty."]
    assert template_problems("{{ object.anything }}") == []  # no model: syntax only


def test_maximum_rendered_length(article, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROMPT_TEMPLATE_MAX_LENGTH": 50}
    with pytest.raises(PromptTemplateError, match="renders 60 characters; the limit is 50"):
        render_prompt("{% for i in '0123456789' %}{{ object.title|slice:':6' }}{% endfor %}", article)
    assert render_prompt("{{ object.title }}", article) == "Jazz night"


def test_alt_text_from_prompt():
    assert alt_text_from_prompt("A lighthouse at dusk. Oil painting, warm light.") == "A lighthouse at dusk."
    long = "word " * 100
    text = alt_text_from_prompt(long, limit=30)
    assert len(text) <= 31 and text.endswith("…")
