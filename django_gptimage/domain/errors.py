"""The closed list of outcomes a generation can fail with.

Each code has one editor-facing message and one retry rule, so the admin, the widget, the CLI
and the job runner all say and do the same thing for the same failure:

- ``never``: retrying cannot help (bad input, refused content, billing quota, bad key).
- ``backoff``: transient; retry with exponential backoff and jitter, honouring Retry-After.
- ``if_configured``: the request may have been billed (the API has no idempotency key), so a
  retry only happens when the site opts in.
- ``store_only``: the provider already returned (and was paid for) the images; a retry only
  writes the kept bytes to storage again and never calls the provider.

Each code also has one refund rule, saying what happens to the credits reserved for a
generation that ends with it (see :func:`settlement` and docs/access.md):

- ``not_reserved``: refused before anything was reserved or sent; nothing to give back.
- ``refund``: the provider did not bill it (or refused it): the whole reservation comes back.
- ``if_configured``: the provider may have billed it without giving usable images; refunded
  unless the site charges such failures (``CHARGE_MAYBE_BILLED``).
- ``if_delivered``: charged (the actual cost) when paid-for images were delivered or are kept
  for a store-only retry, which then costs nothing more; refunded otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .i18n import gettext_noop


class ErrorCode(StrEnum):
    INVALID_PARAMETERS = "invalid_parameters"
    ACCESS_DENIED = "access_denied"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    SPEND_CAP_REACHED = "spend_cap_reached"
    AUTH_FAILED = "auth_failed"
    MODERATION_BLOCKED = "moderation_blocked"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    TIMEOUT = "timeout"
    PROVIDER_ERROR = "provider_error"
    BAD_RESPONSE = "bad_response"
    STORAGE_ERROR = "storage_error"
    CONFIGURATION_ERROR = "configuration_error"
    CANCELED = "canceled"
    ABANDONED = "abandoned"


class RetryRule(StrEnum):
    NEVER = "never"
    BACKOFF = "backoff"
    IF_CONFIGURED = "if_configured"
    STORE_ONLY = "store_only"


class RefundRule(StrEnum):
    NOT_RESERVED = "not_reserved"
    REFUND = "refund"
    IF_CONFIGURED = "if_configured"
    IF_DELIVERED = "if_delivered"


class Settlement(StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"


@dataclass(frozen=True)
class ErrorInfo:
    code: ErrorCode
    message: str
    retry: RetryRule
    maybe_billed: bool = False
    refund: RefundRule = RefundRule.REFUND


ERRORS: dict[ErrorCode, ErrorInfo] = {
    info.code: info
    for info in (
        ErrorInfo(
            ErrorCode.INVALID_PARAMETERS,
            gettext_noop(
                "The request was refused because some settings do not fit together. Nothing was sent or billed."
            ),
            RetryRule.NEVER,
            refund=RefundRule.NOT_RESERVED,
        ),
        ErrorInfo(
            ErrorCode.ACCESS_DENIED,
            gettext_noop("This is not unlocked for your account's plan. Nothing was sent or billed."),
            RetryRule.NEVER,
            refund=RefundRule.NOT_RESERVED,
        ),
        ErrorInfo(
            ErrorCode.INSUFFICIENT_CREDITS,
            gettext_noop(
                "There are not enough credits left for this generation. Nothing was sent or billed."
            ),
            RetryRule.NEVER,
            refund=RefundRule.NOT_RESERVED,
        ),
        ErrorInfo(
            ErrorCode.SPEND_CAP_REACHED,
            gettext_noop(
                "This generation would go over the daily or monthly spending limit set for this site. "
                "Nothing was sent or billed."
            ),
            RetryRule.NEVER,
            refund=RefundRule.NOT_RESERVED,
        ),
        ErrorInfo(
            ErrorCode.AUTH_FAILED,
            gettext_noop(
                "The image service rejected the site's API credentials (wrong key, or the organization "
                "is not verified for this model). An administrator has to fix the configuration."
            ),
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.MODERATION_BLOCKED,
            gettext_noop(
                "The image service's safety system refused this prompt or image. Rephrase it and try again."
            ),
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.RATE_LIMITED,
            gettext_noop("The image service is busy with too many requests from this site."),
            RetryRule.BACKOFF,
        ),
        ErrorInfo(
            ErrorCode.QUOTA_EXCEEDED,
            gettext_noop(
                "The site's OpenAI account has run out of quota or billing credit. An administrator has to "
                "top it up; retrying will not help."
            ),
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.TIMEOUT,
            gettext_noop(
                "The image service did not answer in time, or the connection dropped before it did. "
                "The request may still have been billed."
            ),
            RetryRule.IF_CONFIGURED,
            maybe_billed=True,
            refund=RefundRule.IF_CONFIGURED,
        ),
        ErrorInfo(
            ErrorCode.PROVIDER_ERROR,
            gettext_noop("The image service had an internal error or is overloaded."),
            RetryRule.BACKOFF,
        ),
        ErrorInfo(
            ErrorCode.BAD_RESPONSE,
            gettext_noop(
                "The image service sent back something that is not a usable image (cut off, malformed, "
                "or the wrong size)."
            ),
            RetryRule.NEVER,
            maybe_billed=True,
            refund=RefundRule.IF_CONFIGURED,
        ),
        ErrorInfo(
            ErrorCode.STORAGE_ERROR,
            gettext_noop(
                "The images could not be saved to (or read from) storage. Anything already generated has "
                "been kept; retrying saves it again without generating (or paying) twice."
            ),
            RetryRule.STORE_ONLY,
            refund=RefundRule.IF_DELIVERED,
        ),
        ErrorInfo(
            ErrorCode.CONFIGURATION_ERROR,
            gettext_noop(
                "The site's image generation settings are incomplete or wrong. An administrator has to fix them."
            ),
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.CANCELED,
            gettext_noop("The generation was canceled."),
            RetryRule.NEVER,
            refund=RefundRule.IF_DELIVERED,
        ),
        ErrorInfo(
            ErrorCode.ABANDONED,
            gettext_noop("The worker running this generation stopped before it finished (restart or crash)."),
            RetryRule.IF_CONFIGURED,
            maybe_billed=True,
            refund=RefundRule.IF_CONFIGURED,
        ),
    )
}


def error_info(code: str | ErrorCode) -> ErrorInfo:
    return ERRORS[ErrorCode(code)]


def settlement(code: str | ErrorCode | None, *, delivered: bool, charge_maybe_billed: bool) -> Settlement:
    """What to do with a finished generation's reservation: capture its cost, or refund it.

    ``code`` is None for a success; ``delivered`` says whether images were stored (or are kept
    for a store-only retry); ``charge_maybe_billed`` is the site's ``CHARGE_MAYBE_BILLED``.
    """
    if code is None or code == "":
        return Settlement.CAPTURE
    rule = error_info(code).refund
    if rule is RefundRule.IF_DELIVERED:
        return Settlement.CAPTURE if delivered else Settlement.REFUND
    if rule is RefundRule.IF_CONFIGURED:
        return Settlement.CAPTURE if charge_maybe_billed else Settlement.REFUND
    return Settlement.REFUND
