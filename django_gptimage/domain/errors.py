"""The closed list of outcomes a generation can fail with.

Each code has one editor-facing message and one retry rule, so the admin, the widget, the CLI
and the job runner all say and do the same thing for the same failure:

- ``never``: retrying cannot help (bad input, refused content, billing quota, bad key).
- ``backoff``: transient; retry with exponential backoff and jitter, honouring Retry-After.
- ``if_configured``: the request may have been billed (the API has no idempotency key), so a
  retry only happens when the site opts in.
- ``store_only``: the provider already returned (and was paid for) the images; a retry only
  writes the kept bytes to storage again and never calls the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_PARAMETERS = "invalid_parameters"
    ACCESS_DENIED = "access_denied"
    INSUFFICIENT_CREDITS = "insufficient_credits"
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


@dataclass(frozen=True)
class ErrorInfo:
    code: ErrorCode
    message: str
    retry: RetryRule
    maybe_billed: bool = False


ERRORS: dict[ErrorCode, ErrorInfo] = {
    info.code: info
    for info in (
        ErrorInfo(
            ErrorCode.INVALID_PARAMETERS,
            "The request was refused because some settings do not fit together. Nothing was sent or billed.",
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.ACCESS_DENIED,
            "This resolution is not unlocked for your account. Choose 1K or ask for an upgrade.",
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.INSUFFICIENT_CREDITS,
            "There are not enough credits left for this generation. Nothing was sent or billed.",
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.AUTH_FAILED,
            "The image service rejected the site's API credentials (wrong key, or the organization "
            "is not verified for this model). An administrator has to fix the configuration.",
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.MODERATION_BLOCKED,
            "The image service's safety system refused this prompt or image. Rephrase it and try again.",
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.RATE_LIMITED,
            "The image service is busy with too many requests from this site.",
            RetryRule.BACKOFF,
        ),
        ErrorInfo(
            ErrorCode.QUOTA_EXCEEDED,
            "The site's OpenAI account has run out of quota or billing credit. An administrator has to "
            "top it up; retrying will not help.",
            RetryRule.NEVER,
        ),
        ErrorInfo(
            ErrorCode.TIMEOUT,
            "The image service did not answer in time, or the connection dropped before it did. "
            "The request may still have been billed.",
            RetryRule.IF_CONFIGURED,
            maybe_billed=True,
        ),
        ErrorInfo(
            ErrorCode.PROVIDER_ERROR,
            "The image service had an internal error or is overloaded.",
            RetryRule.BACKOFF,
        ),
        ErrorInfo(
            ErrorCode.BAD_RESPONSE,
            "The image service sent back something that is not a usable image (cut off, malformed, "
            "or the wrong size).",
            RetryRule.NEVER,
            maybe_billed=True,
        ),
        ErrorInfo(
            ErrorCode.STORAGE_ERROR,
            "The images could not be saved to (or read from) storage. Anything already generated has "
            "been kept; retrying saves it again without generating (or paying) twice.",
            RetryRule.STORE_ONLY,
        ),
        ErrorInfo(
            ErrorCode.CONFIGURATION_ERROR,
            "The site's image generation settings are incomplete or wrong. An administrator has to fix them.",
            RetryRule.NEVER,
        ),
        ErrorInfo(ErrorCode.CANCELED, "The generation was canceled.", RetryRule.NEVER),
        ErrorInfo(
            ErrorCode.ABANDONED,
            "The worker running this generation stopped before it finished (restart or crash).",
            RetryRule.IF_CONFIGURED,
            maybe_billed=True,
        ),
    )
}


def error_info(code: str | ErrorCode) -> ErrorInfo:
    return ERRORS[ErrorCode(code)]
