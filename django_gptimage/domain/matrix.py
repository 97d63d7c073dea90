"""The ratio x tier x mode matrix for a model, as rows, JSON-ready dicts or a Markdown table."""

from __future__ import annotations

from collections.abc import Mapping

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


def _sizes_text(caps: ModelCapabilities) -> str:
    auto = ", auto" if caps.supports_auto_size else ""
    if caps.fixed_sizes is not None:
        return ", ".join(f"{w}x{h}" for w, h in caps.fixed_sizes) + auto
    return (
        f"any WxH: multiples of {caps.edge_multiple}, edge ≤ {caps.max_edge}, "
        f"{caps.min_pixels:,}-{caps.max_pixels:,} px, ≤ {caps.max_ratio:g}:1{auto}"
    )


def catalog_markdown(models: Mapping[str, ModelCapabilities]) -> str:
    """The model catalog as one Markdown table (docs/sizes.md#model-catalog is generated from it)."""
    out = [
        "| model | sizes | qualities | formats | transparent | n | edit inputs | input_fidelity "
        "| partial_images | priced as | source |",
        "|---|---|---|---|---|---:|---|---|---:|---|---|",
    ]
    for caps in models.values():
        transparent = ", ".join(caps.transparent_formats) if "transparent" in caps.backgrounds else "no"
        inputs = f"{caps.max_input_images} images" + (", mask" if caps.supports_mask else ", no mask")
        if caps.assumed:
            source = "assumed (like gpt-image-2)"
        elif caps.snapshot_of:
            source = f"contract (snapshot of {caps.snapshot_of})"
        else:
            source = "contract"
        out.append(
            f"| `{caps.model}` | {_sizes_text(caps)} | {', '.join(caps.qualities)} | {', '.join(caps.formats)} "
            f"| {transparent} | 1-{caps.max_n} | {inputs} | {'yes' if caps.input_fidelity else 'no'} "
            f"| 0-{caps.max_partial_images} | `{caps.prices_as}` | {source} |"
        )
    return "\n".join(out) + "\n"
