"""The ratio x tier x mode matrix for a model, as rows, JSON-ready dicts or a Markdown table."""

from __future__ import annotations

from .capabilities import MODES, ModelCapabilities, get_capabilities
from .policy import Policy
from .sizes import RATIOS, TIERS, SizeChoice, resolve_size


def matrix(model: str, policy: Policy | None = None) -> list[SizeChoice]:
    """Every combination with its size or refusal; policy refusals are reported as such."""
    caps = get_capabilities(model)
    if caps is None:
        raise ValueError(f"Unknown model {model!r}")
    policy = policy or Policy()
    rows = []
    for mode in MODES:
        for ratio in RATIOS:
            for tier in TIERS:
                choice = resolve_size(ratio, tier, mode, caps)
                if choice.allowed:
                    reason = _policy_reason(policy, caps, model, mode, ratio, tier)
                    if reason:
                        choice = SizeChoice(ratio, tier, mode, choice.width, choice.height, False, reason)
                rows.append(choice)
    return rows


def _policy_reason(
    policy: Policy, caps: ModelCapabilities, model: str, mode: str, ratio: str, tier: str
) -> str:
    if not policy.allows_model(model):
        return f"Site policy does not allow {model}."
    if mode not in policy.effective_modes(caps):
        return f"Site policy does not allow {mode}."
    if ratio not in policy.effective_ratios():
        return f"Site policy does not allow {ratio}."
    if tier not in policy.effective_tiers():
        return f"Site policy does not allow {tier}."
    return ""


def as_dicts(rows: list[SizeChoice]) -> list[dict[str, object]]:
    return [
        {
            "ratio": r.ratio,
            "tier": r.tier,
            "mode": r.mode,
            "width": r.width,
            "height": r.height,
            "allowed": r.allowed,
            "reason": r.reason,
        }
        for r in rows
    ]


def as_markdown(rows: list[SizeChoice], model: str) -> str:
    """One table per mode; sizes for allowed cells, the refusal reason otherwise."""
    out = [f"### {model}", ""]
    for mode in MODES:
        mode_rows = [r for r in rows if r.mode == mode]
        if not mode_rows:
            continue
        out += [
            f"#### {mode}",
            "",
            "| ratio | tier | mode | width | height | allowed | reason |",
            "|---|---|---|---:|---:|---|---|",
        ]
        for r in mode_rows:
            # A refused cell still shows the size it would have had (the reason refers to it).
            width, height = (r.width or "-", r.height or "-")
            if r.ratio == "auto" and r.allowed:
                width, height = "auto", "auto"  # the model picks
            allowed = "yes" if r.allowed else "no"
            out.append(f"| {r.ratio} | {r.tier} | {r.mode} | {width} | {height} | {allowed} | {r.reason} |")
        out.append("")
    return "\n".join(out)
