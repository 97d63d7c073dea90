"""Who may generate what, and who pays: plans, credits and spend caps, kept apart from sign-in.

- :mod:`.plans`: a plan per user and per group (tiers, models, qualities, max n, monthly quota);
  a user's plan is the most generous of theirs and their groups', else ``DEFAULT_PLAN``.
- :mod:`.resolver`: the default ``ACCESS_RESOLVER`` (the plans), and the :class:`Access` it returns.
- :mod:`.credits`: an immutable ledger; reserve before dispatch, capture or refund exactly once.
- :mod:`.caps`: per-user and site-wide daily and monthly spend caps.
- :mod:`.admission`: the checks the service runs before sending (plan quota, caps, credits).

The service API is the only caller; faces use ``service.credit_quote()`` and friends.
"""
