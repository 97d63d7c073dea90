"""Site policy: narrows what the models allow, never widens it."""

from __future__ import annotations

from dataclasses import dataclass

from .capabilities import FORMATS, MODES, QUALITIES, ModelCapabilities
from .sizes import RATIOS, TIERS


@dataclass(frozen=True)
class Policy:
    """``None`` for a field means "whatever the model allows"."""

    models: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    ratios: tuple[str, ...] | None = None
    tiers: tuple[str, ...] | None = None
    qualities: tuple[str, ...] | None = None
    formats: tuple[str, ...] | None = None
    max_n: int | None = None

    def narrowed(self, **fields: tuple[str, ...] | None) -> Policy:
        """A copy further narrowed (for example to the tiers a user has unlocked)."""
        values = {}
        for name, extra in fields.items():
            current = getattr(self, name)
            if extra is None:
                values[name] = current
            elif current is None:
                values[name] = tuple(extra)
            else:
                values[name] = tuple(v for v in current if v in extra)
        return Policy(**{**self.__dict__, **values})

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def effective_modes(self, caps: ModelCapabilities) -> tuple[str, ...]:
        return _intersect(caps.modes, self.modes)

    def effective_ratios(self) -> tuple[str, ...]:
        return _intersect(RATIOS, self.ratios)

    def effective_tiers(self) -> tuple[str, ...]:
        return _intersect(TIERS, self.tiers)

    def effective_qualities(self, caps: ModelCapabilities) -> tuple[str, ...]:
        return _intersect(caps.qualities, self.qualities)

    def effective_formats(self, caps: ModelCapabilities) -> tuple[str, ...]:
        return _intersect(caps.formats, self.formats)

    def effective_max_n(self, caps: ModelCapabilities) -> int:
        return caps.max_n if self.max_n is None else max(0, min(caps.max_n, self.max_n))

    def unknown_values(self) -> dict[str, list[str]]:
        """Policy entries that no model could ever allow (for system checks)."""
        known = {"modes": MODES, "ratios": RATIOS, "tiers": TIERS, "qualities": QUALITIES, "formats": FORMATS}
        bad = {}
        for name, allowed in known.items():
            values = getattr(self, name)
            wrong = [v for v in values or () if v not in allowed]
            if wrong:
                bad[name] = wrong
        return bad


def _intersect(allowed: tuple[str, ...], narrowed: tuple[str, ...] | None) -> tuple[str, ...]:
    return allowed if narrowed is None else tuple(v for v in allowed if v in narrowed)
