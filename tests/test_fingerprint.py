"""Never pay twice: fingerprints, and reuse of an in-flight or succeeded generation."""

from __future__ import annotations

import datetime

import pytest

from django_gptimage.domain.fingerprint import fingerprint
from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import generate_for, request_generation
from tests.test_targets import grant
from tests.testapp.models import Article

PARAMS = {"model": "gpt-image-2", "size": "1024x1024", "quality": "low", "n": 1}


def test_fingerprint_is_canonical_and_covers_everything():
    base = fingerprint(PARAMS, "A lighthouse", ["aa", "bb"])
    assert len(base) == 64
    assert fingerprint(dict(reversed(list(PARAMS.items()))), "A lighthouse", ("aa", "bb")) == base
    assert fingerprint({**PARAMS, "quality": "high"}, "A lighthouse", ["aa", "bb"]) != base
    assert fingerprint({**PARAMS, "background": "auto"}, "A lighthouse", ["aa", "bb"]) != base
    assert fingerprint(PARAMS, "A lighthouse.", ["aa", "bb"]) != base
    assert fingerprint(PARAMS, "A lighthouse", ["bb", "aa"]) != base  # input order matters
    assert fingerprint(PARAMS, "A lighthouse", ["aa"]) != base


@pytest.fixture
def article(db):
    return Article.objects.create(title="Jazz night", venue="Blue Hall", date=datetime.date(2026, 5, 1))


@pytest.fixture
def editor(django_user_model):
    return grant(django_user_model.objects.create_user("editor"), "django_gptimage.generate")


@pytest.mark.django_db(transaction=True)
def test_same_request_same_fingerprint_reuse_returns_the_succeeded_one(gptimage_openai, article, editor):
    [first] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", user=editor, quality="low"
    )
    assert first.status == Status.SUCCEEDED
    plain = request_generation(prompt="Cover for Jazz night", quality="low", ratio="1:1", tier="1K")
    assert plain.fingerprint == first.fingerprint  # same paid work, whoever asked and how

    [again] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", user=editor, quality="low", reuse=True
    )
    assert again.pk == first.pk
    assert len(gptimage_openai.requests) == 2  # the plain one and the first; none for the reuse

    # Without reuse, or with another target, field, prompt or parameter: a new generation.
    [fresh] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", user=editor, quality="low"
    )
    assert fresh.pk != first.pk
    other = Article.objects.create(title="Jazz night")
    [elsewhere] = generate_for(
        other, "cover", template="Cover for {{ object.title }}", quality="low", reuse=True
    )
    assert elsewhere.pk not in (first.pk, fresh.pk) and elsewhere.fingerprint == first.fingerprint
    [higher] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", quality="medium", reuse=True
    )
    assert higher.fingerprint != first.fingerprint
    article.title = "Jazz night II"
    [edited] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", quality="low", reuse=True
    )
    assert edited.fingerprint != first.fingerprint


@pytest.mark.django_db(transaction=True)
def test_reuse_skips_failed_generations(gptimage_openai, article, settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    gptimage_openai.add_fault("server_error")
    [failed] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", quality="low", reuse=True
    )
    assert failed.status == Status.FAILED
    [retried] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", quality="low", reuse=True
    )
    assert retried.pk != failed.pk and retried.status == Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_reuse_returns_the_in_flight_generation_then_a_real_worker_runs_it_once(
    gptimage_openai, article, queue_mode, run_worker
):
    [queued] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", quality="low", reuse=True
    )
    assert queued.status == Status.QUEUED
    [same] = generate_for(
        article, "cover", template="Cover for {{ object.title }}", quality="low", reuse=True
    )
    assert same.pk == queued.pk
    assert ImageGeneration.objects.count() == 1 and queue_mode.count == 1

    report = run_worker(timeout=60)
    assert report.succeeded == 1
    assert ImageGeneration.objects.get(pk=queued.pk).status == Status.SUCCEEDED
    assert len(gptimage_openai.requests) == 1
