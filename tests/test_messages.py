"""Error messages are rendered when shown: from the stored code and facts, through gettext.

A record keeps ``error_code`` and ``error_detail`` (facts, no sentences); every face renders them
with ``django_gptimage.messages``. So a translated (or corrected) sentence reaches old rows too:
the German catalog shipped in ``django_gptimage/locale`` is checked on a row written before
details were structured (migrated by 0009) and on a new one, in the admin and in the JSON.
"""

from __future__ import annotations

import gettext as pygettext
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import translation
from django.utils.translation import trans_real

from django_gptimage.domain.errors import ERRORS, ErrorCode, error_info
from django_gptimage.domain.messages import LEGACY, SAID, TEMPLATES, Place, parse_legacy, part, render, said
from django_gptimage.domain.next_steps import _STEPS
from django_gptimage.messages import error_text
from django_gptimage.models import GenerationAttempt, ImageGeneration, Status
from django_gptimage.service import generate_for, generation_status
from tests.testapp.models import Article

LOCALE = Path(__file__).resolve().parent.parent / "django_gptimage" / "locale"
PLACEHOLDER = re.compile(r"%\((\w+)\)([sd])")


def sample_facts(key: str) -> dict[str, Any]:
    facts: dict[str, Any] = {
        name: 7 if kind == "d" else f"<{name}>" for name, kind in PLACEHOLDER.findall(TEMPLATES[key].text)
    }
    if "about" in facts:  # "about 40 s" is worked out from the wait, in the reader's language
        del facts["about"]
        facts["wait"] = 40
    return facts


# -- rendering (pure, no Django) -----------------------------------------------------------------


@pytest.mark.parametrize("key", [k for k in TEMPLATES if k not in (SAID, LEGACY)])
def test_every_template_renders_with_its_facts(key: str) -> None:
    text = render(ErrorCode.PROVIDER_ERROR, [part(key, **sample_facts(key))]).text
    assert "%(" not in text and "?" not in text.replace("?)", ""), text
    for name, value in sample_facts(key).items():
        assert str(value) in text or name == "wait", (name, text)


def test_facts_go_in_brackets_sentences_after_and_a_headline_replaces_the_message() -> None:
    detail = [
        part("unreachable", host="api.example.com:8443"),
        part("connection_refused"),
        part("gave_up", count=3),
        part("next_attempt", seconds=8),
    ]
    rendered = render(ErrorCode.PROVIDER_ERROR, detail)
    assert (
        rendered.message
        == "Could not reach the image service at api.example.com:8443. Nothing was sent or billed."
    )
    assert rendered.detail == "the connection was refused; gave up after 3 attempt(s) Next attempt in 8 s."
    assert rendered.text == (
        "Could not reach the image service at api.example.com:8443. Nothing was sent or billed. "
        "(the connection was refused; gave up after 3 attempt(s)) Next attempt in 8 s."
    )
    assert render(ErrorCode.CANCELED, []).text == error_info(ErrorCode.CANCELED).message


def test_the_image_services_words_are_kept_verbatim() -> None:
    words = "Billing hard limit has been reached (100%)."
    assert render(ErrorCode.QUOTA_EXCEEDED, [said(words, status=400)]).detail == words
    assert (
        render(ErrorCode.QUOTA_EXCEEDED, [said(words)], gettext=lambda m: m if "%" in m else m.upper()).detail
        == words
    )


def test_a_part_this_release_does_not_know_does_not_break_the_message() -> None:
    rendered = render(ErrorCode.TIMEOUT, [{"key": "from_a_newer_release", "text": "later words"}, {"x": 1}])
    assert rendered.text == f"{error_info(ErrorCode.TIMEOUT).message} (later words)"
    with pytest.raises(KeyError):
        part("no_such_template")


# -- messages stored by older releases ----------------------------------------------------------


@pytest.mark.parametrize("key", [k for k in TEMPLATES if k not in (SAID, LEGACY)])
@pytest.mark.parametrize("code", [ErrorCode.PROVIDER_ERROR, ErrorCode.RATE_LIMITED])
def test_an_old_english_message_parses_back_into_its_facts(code: ErrorCode, key: str) -> None:
    detail = [part(key, **sample_facts(key))]
    if TEMPLATES[key].place is Place.FACT:
        detail.append(part("gave_up", count=2))
    text = render(code, detail).text
    parsed = parse_legacy(code, text)
    assert all(p["key"] != LEGACY for p in parsed), (text, parsed)
    assert render(code, parsed).text == text
    if "wait" not in detail[0]:
        assert parsed == detail


@pytest.mark.parametrize(
    ("code", "message", "detail"),
    [
        # As the runner of the previous release wrote them.
        (
            "provider_error",
            "The image service had an internal error or is overloaded. (HTTP 503; gave up after 4 attempts)",
            [part("http_status", status=503), part("gave_up", count=4)],
        ),
        (
            "rate_limited",
            "The image service is busy with too many requests from this site. (Rate limit reached for "
            "images per minute; please slow down) Next attempt in 8 s.",
            [
                said("Rate limit reached for images per minute; please slow down"),
                part("next_attempt", seconds=8),
            ],
        ),
        (
            "timeout",
            "The image service did not answer in time, or the connection dropped before it did. The request "
            "may still have been billed. (the job ran longer than JOB_TIMEOUT (300 s))",
            [part("job_timeout", seconds=300)],
        ),
        (
            "provider_error",
            "Could not reach the image service at api.example.com:8443. Nothing was sent or billed. "
            "(the host name could not be resolved)",
            [part("unreachable", host="api.example.com:8443"), part("host_unknown")],
        ),
        (
            "abandoned",
            "The worker running this generation stopped before it finished (restart or crash). It will be "
            "tried again (this may be billed twice).",
            [part("abandoned_requeued")],
        ),
        ("canceled", "The generation was canceled.", []),
        (
            "storage_error",
            "Something a site wrote by hand.",
            [{"key": LEGACY, "text": "Something a site wrote by hand."}],
        ),
        ("", "", []),
    ],
)
def test_messages_of_the_previous_release(code: str, message: str, detail: list[dict[str, Any]]) -> None:
    assert parse_legacy(code, message) == detail
    if code:
        assert render(code, detail).text.replace("attempt(s)", "attempts") == message


# -- the German catalog -------------------------------------------------------------------------


def domain_msgids() -> list[str]:
    ids = [info.message for info in ERRORS.values()]
    ids += [t.text for k, t in TEMPLATES.items() if k not in (SAID, LEGACY)]
    ids += [step.text for step in _STEPS.values()]
    return ids


def test_every_domain_sentence_is_translated_into_german() -> None:
    catalog = trans_real.translation("de")._catalog
    missing = [msgid for msgid in domain_msgids() if not catalog.get(msgid)]
    assert not missing, (
        f"django_gptimage/locale/de lacks (run make messages, translate, make compilemessages): {missing}"
    )


def test_german_keeps_every_placeholder() -> None:
    with translation.override("de"):
        for msgid in domain_msgids():
            assert sorted(PLACEHOLDER.findall(translation.gettext(msgid))) == sorted(
                PLACEHOLDER.findall(msgid)
            ), msgid


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs GNU gettext's msgfmt")
def test_the_committed_mo_file_is_compiled_from_the_po_file(tmp_path: Path) -> None:
    for po in LOCALE.glob("*/LC_MESSAGES/django.po"):
        compiled = tmp_path / f"{po.parent.parent.name}.mo"
        subprocess.run(["msgfmt", "--check-format", "-o", str(compiled), str(po)], check=True)
        with compiled.open("rb") as fresh, po.with_suffix(".mo").open("rb") as committed:
            assert (
                pygettext.GNUTranslations(committed)._catalog == pygettext.GNUTranslations(fresh)._catalog
            ), f"{po.with_suffix('.mo')} is stale: run make compilemessages"


# -- old and new rows, in German, in the admin and the JSON -------------------------------------

GERMAN_PROVIDER_ERROR = "Der Bilddienst hatte einen internen Fehler oder ist überlastet."
OLD_MESSAGE = "The image service had an internal error or is overloaded. (HTTP 503; gave up after 4 attempts)"


def old_row(article: Article) -> str:
    """A failed record (and its attempt) written as the release before 0009 wrote them: the
    message stored as English text. Migrated forward like a site's database, it returns its id."""
    executor = MigrationExecutor(connection)
    before = [("django_gptimage", "0008_credits")]
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        content_type = apps.get_model("contenttypes", "ContentType").objects.get(
            app_label="testapp", model="article"
        )
        old = apps.get_model("django_gptimage", "ImageGeneration").objects.create(
            provider="openai", model="gpt-image-1", ratio="1:1", tier="1K", size="1024x1024", quality="low",
            output_format="png", background="auto", prompt="Old row", status="failed", phase="done",
            error_code="provider_error", error_message=OLD_MESSAGE, attempts=4,
            target_content_type=content_type, target_object_id=str(article.pk), target_field="cover",
        )  # fmt: skip
        apps.get_model("django_gptimage", "GenerationAttempt").objects.create(
            generation=old, number=4, started_at=old.created_at, finished_at=old.created_at,
            outcome="provider_error", error_message=OLD_MESSAGE, http_status=503,
        )  # fmt: skip
        return str(old.pk)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def german(settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]
    settings.LANGUAGES = [("en", "English"), ("de", "German")]


@pytest.mark.django_db(transaction=True)
def test_old_and_new_rows_speak_german(
    admin_client: Any, admin_user: Any, gptimage_openai: Any, settings: Any, german: None
) -> None:
    settings.GPTIMAGE = {**settings.GPTIMAGE, "MAX_ATTEMPTS": 1}
    article = Article.objects.create(title="Harbour festival")
    old = ImageGeneration.objects.get(pk=old_row(article))
    gptimage_openai.add_fault("server_error", times=5)
    [new] = generate_for(article, "cover", template="New row", user=admin_user, ratio="1:1", tier="1K")
    new.refresh_from_db()
    assert new.status == Status.FAILED and new.error_code == "provider_error"

    # Stored: the code and the facts, no sentence.
    assert old.error_detail == [part("http_status", status=503), part("gave_up", count=4)]
    assert new.error_detail[-1] == part("gave_up", count=1) and new.error_detail[0]["key"] == SAID
    assert GenerationAttempt.objects.get(generation=old).error_detail == old.error_detail
    with translation.override("en"):  # the old row reads as it did
        assert error_text(old.error_code, old.error_detail) == OLD_MESSAGE.replace("attempts", "attempt(s)")

    de = {"HTTP_ACCEPT_LANGUAGE": "de"}
    for generation, facts in (
        (old, "HTTP 503; nach 4 Versuch(en) aufgegeben"),
        (new, "nach 1 Versuch(en) aufgegeben"),
    ):
        body = admin_client.get(reverse("gptimage:generation-status", args=[generation.pk]), **de).json()
        assert body["error"]["message"] == GERMAN_PROVIDER_ERROR
        assert facts in body["error"]["detail"]
        assert body["error"]["next_step"] == "Versuchen Sie es in ein paar Minuten erneut."
        assert body["line"] == f"Fehlgeschlagen: {GERMAN_PROVIDER_ERROR}"
        assert (
            body["message"] == body["error"]["text"] == f"{GERMAN_PROVIDER_ERROR} ({body['error']['detail']})"
        )

        page = admin_client.get(
            reverse("admin:django_gptimage_imagegeneration_change", args=[generation.pk]), **de
        ).content.decode()
        assert GERMAN_PROVIDER_ERROR in page and facts in page
        assert "internal error" not in page

    # The widget's history of the field: both rows, in German.
    change = admin_client.get(
        reverse("admin:testapp_article_change", args=[article.pk]), **de
    ).content.decode()
    token = re.search(r'data-gptimage-token="([^"]+)" data-gptimage-field="cover"', change)
    assert token
    rows = admin_client.get("/gptimage/widget/history/", {"token": token.group(1)}, **de).json()[
        "generations"
    ]
    errors = {row["id"]: row["status"]["error"] for row in rows}
    assert errors[str(old.pk)]["message"] == errors[str(new.pk)]["message"] == GERMAN_PROVIDER_ERROR

    # The same rows in English, from the same stored facts.
    with translation.override("en"):
        assert generation_status(new)["error"]["message"] == error_info(ErrorCode.PROVIDER_ERROR).message


DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
TEMPLATE_ROW = re.compile(
    r"^\| `(?P<key>[a-z0-9_]+)` \| (?P<place>headline|fact|sentence) \| (?P<text>.+) \|$", re.M
)


def test_every_fact_template_is_documented_as_in_the_code() -> None:
    rows = {m["key"]: m for m in TEMPLATE_ROW.finditer(DOCS.read_text(encoding="utf-8"))}
    keys = {k for k in TEMPLATES if k not in (SAID, LEGACY)}
    assert set(rows) == keys, f"docs/errors.md: missing {keys - set(rows)}, extra {set(rows) - keys}"
    for key in keys:
        assert (rows[key]["place"], rows[key]["text"]) == (TEMPLATES[key].place.value, TEMPLATES[key].text), (
            key
        )
