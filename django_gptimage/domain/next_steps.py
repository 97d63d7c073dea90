"""What an editor can do next after each failure, so every face suggests the same step.

Derived from the error code's retry rule where it can be (a code that may be retried by hand
suggests "retry"); the other codes name the step that helps instead of a useless retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import ErrorCode, RetryRule, error_info
from .i18n import gettext_noop


class NextAction(StrEnum):
    RETRY = "retry"  # the same record again (retry_generation)
    REPHRASE = "rephrase"  # a new generation with a changed prompt or input
    SMALLER_TIER = "smaller_tier"  # a new generation at a tier the editor has unlocked
    CHANGE_SETTINGS = "change_settings"  # a new generation with other settings
    REGENERATE = "regenerate"  # a new generation with the same settings
    ASK_ADMIN = "ask_admin"  # nothing the editor can do; an administrator must act
    WAIT = "wait"  # an automatic retry is scheduled
    NONE = "none"


@dataclass(frozen=True)
class NextStep:
    action: NextAction
    text: str  # one sentence for the editor


_STEPS: dict[ErrorCode, NextStep] = {
    ErrorCode.INVALID_PARAMETERS: NextStep(
        NextAction.CHANGE_SETTINGS,
        gettext_noop("Change the settings that do not fit together and generate again."),
    ),
    ErrorCode.ACCESS_DENIED: NextStep(
        NextAction.SMALLER_TIER,
        gettext_noop("Choose a resolution your account has unlocked (1K), or ask for an upgrade."),
    ),
    ErrorCode.INSUFFICIENT_CREDITS: NextStep(
        NextAction.ASK_ADMIN,
        gettext_noop("Ask an administrator for more credits, or choose a smaller or cheaper image."),
    ),
    ErrorCode.SPEND_CAP_REACHED: NextStep(
        NextAction.ASK_ADMIN,
        gettext_noop(
            "Wait until the limit renews, choose a smaller or cheaper image, or ask an administrator."
        ),
    ),
    ErrorCode.AUTH_FAILED: NextStep(
        NextAction.ASK_ADMIN,
        gettext_noop("Ask an administrator to check the site's OpenAI API key and organization."),
    ),
    ErrorCode.MODERATION_BLOCKED: NextStep(
        NextAction.REPHRASE,
        gettext_noop("Rephrase the prompt (or use another input image) and generate again."),
    ),
    ErrorCode.RATE_LIMITED: NextStep(NextAction.RETRY, gettext_noop("Retry in a minute or two.")),
    ErrorCode.QUOTA_EXCEEDED: NextStep(
        NextAction.ASK_ADMIN,
        gettext_noop("Ask an administrator to top up the site's OpenAI quota or billing credit."),
    ),
    ErrorCode.TIMEOUT: NextStep(
        NextAction.RETRY,
        gettext_noop("Retry, or choose a lower quality or a smaller tier, which finish sooner."),
    ),
    ErrorCode.PROVIDER_ERROR: NextStep(NextAction.RETRY, gettext_noop("Retry in a few minutes.")),
    ErrorCode.BAD_RESPONSE: NextStep(
        NextAction.REGENERATE, gettext_noop("Generate again; this result cannot be used.")
    ),
    ErrorCode.STORAGE_ERROR: NextStep(
        NextAction.RETRY,
        gettext_noop("Retry once storage works again: the kept images are saved without paying twice."),
    ),
    ErrorCode.CONFIGURATION_ERROR: NextStep(
        NextAction.ASK_ADMIN,
        gettext_noop("Ask an administrator to fix the site's image generation settings."),
    ),
    ErrorCode.CANCELED: NextStep(NextAction.REGENERATE, gettext_noop("Duplicate it to run it again.")),
    ErrorCode.ABANDONED: NextStep(
        NextAction.RETRY, gettext_noop("Retry; the worker stopped before it finished.")
    ),
}


def next_step(code: str | ErrorCode) -> NextStep:
    """The suggested next step for ``code``; "retry" only where the retry rule allows one by hand."""
    step = _STEPS.get(ErrorCode(code))
    if step is None:
        return NextStep(NextAction.NONE, "")
    if step.action is NextAction.RETRY and error_info(code).retry is RetryRule.NEVER:
        return NextStep(
            NextAction.REGENERATE, gettext_noop("Generate again.")
        )  # guards a table edit gone wrong
    return step
