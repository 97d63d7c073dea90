from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_gptimage.domain.error_docs import BEGIN, END, error_codes_markdown
from django_gptimage.domain.errors import ERRORS, ErrorCode, ErrorInfo, RetryRule, error_info
from django_gptimage.domain.next_steps import next_step
from django_gptimage.management.commands.gptimage_errors import REGENERATE_COMMAND, render_docs


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_has_an_error_info(code):
    info = ERRORS[code]
    assert isinstance(info, ErrorInfo)
    assert info.code is code
    assert isinstance(info.retry, RetryRule)
    assert info.message.endswith(".")
    assert error_info(code) is info
    assert error_info(code.value) is info


def test_no_error_info_without_a_code():
    assert set(ERRORS) == set(ErrorCode)


def test_unknown_code_is_refused():
    with pytest.raises(ValueError):
        error_info("exploded")


@pytest.mark.parametrize(
    "code",
    [
        # Bad input, refused content, billing quota, bad key: retrying cannot help.
        ErrorCode.INVALID_PARAMETERS,
        ErrorCode.ACCESS_DENIED,
        ErrorCode.INSUFFICIENT_CREDITS,
        ErrorCode.MODERATION_BLOCKED,
        ErrorCode.QUOTA_EXCEEDED,
        ErrorCode.AUTH_FAILED,
        ErrorCode.CONFIGURATION_ERROR,
        ErrorCode.CANCELED,
    ],
)
def test_never_retried(code):
    assert error_info(code).retry is RetryRule.NEVER


@pytest.mark.parametrize("code", [ErrorCode.RATE_LIMITED, ErrorCode.PROVIDER_ERROR])
def test_transient_errors_back_off(code):
    assert error_info(code).retry is RetryRule.BACKOFF


def test_backoff_is_only_for_requests_that_were_not_billed():
    # An automatic retry must never pay twice.
    for info in ERRORS.values():
        if info.retry is RetryRule.BACKOFF:
            assert not info.maybe_billed, info.code


@pytest.mark.parametrize("code", [ErrorCode.TIMEOUT, ErrorCode.ABANDONED])
def test_maybe_billed_failures_retry_only_when_configured(code):
    info = error_info(code)
    assert info.retry is RetryRule.IF_CONFIGURED
    assert info.maybe_billed
    assert "billed" in info.message or "stopped" in info.message


def test_if_configured_implies_maybe_billed():
    for info in ERRORS.values():
        if info.retry is RetryRule.IF_CONFIGURED:
            assert info.maybe_billed, info.code


def test_storage_error_is_stored_again_not_regenerated():
    info = error_info(ErrorCode.STORAGE_ERROR)
    assert info.retry is RetryRule.STORE_ONLY
    assert "twice" in info.message
    assert [i.code for i in ERRORS.values() if i.retry is RetryRule.STORE_ONLY] == [ErrorCode.STORAGE_ERROR]


def test_free_failures_say_nothing_was_billed():
    for code in (ErrorCode.INVALID_PARAMETERS, ErrorCode.INSUFFICIENT_CREDITS):
        info = error_info(code)
        assert not info.maybe_billed
        assert "Nothing was sent or billed" in info.message


def test_messages_are_for_editors_not_developers():
    for info in ERRORS.values():
        assert "Traceback" not in info.message
        assert "HTTP" not in info.message
        assert "_" not in info.message  # no snake_case codes or identifiers


DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
ROW = re.compile(
    r"^\| `(?P<code>[a-z_]+)` \| (?P<message>.+?) \| (?P<step>.+?) \| `(?P<retry>[a-z_]+)` \| "
    r"(?P<billed>yes|no) \| `(?P<refund>[a-z_]+)` \|$",
    re.M,
)


def test_every_code_is_documented_as_in_the_code():
    rows = {m["code"]: m for m in ROW.finditer(DOCS.read_text(encoding="utf-8"))}
    missing = [code.value for code in ErrorCode if code.value not in rows]
    assert not missing, f"docs/errors.md has no row for {missing}: run {REGENERATE_COMMAND}"
    for code in ErrorCode:
        info, row = error_info(code), rows[code.value]
        assert row["message"] == info.message, code
        assert row["step"] == (next_step(code).text or "-"), code
        assert row["retry"] == info.retry.value, code
        assert row["billed"] == ("yes" if info.maybe_billed else "no"), code
        assert row["refund"] == info.refund.value, code
    assert set(rows) == {c.value for c in ErrorCode}, "docs/errors.md documents a code that does not exist"


def test_the_error_codes_block_is_current():
    text = DOCS.read_text(encoding="utf-8")
    assert render_docs(text) == text, f"docs/errors.md is stale: run {REGENERATE_COMMAND}"


def test_the_command_prints_and_rewrites_the_table(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("gptimage_errors", stdout=out)
    assert out.getvalue() == error_codes_markdown()
    stale = tmp_path / "errors.md"
    stale.write_text(f"# Codes\n\n{BEGIN}| old |\n{END}\n", encoding="utf-8")
    call_command("gptimage_errors", "--write-docs", str(stale), stdout=io.StringIO())
    assert stale.read_text(encoding="utf-8") == f"# Codes\n\n{BEGIN}{error_codes_markdown()}{END}\n"
    without = tmp_path / "plain.md"
    without.write_text("# Codes\n", encoding="utf-8")
    with pytest.raises(CommandError, match="no <!-- BEGIN GENERATED: error-codes -->"):
        call_command("gptimage_errors", "--write-docs", str(without))


def test_every_retry_rule_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for rule in RetryRule:
        assert f"| `{rule.value}` |" in text
