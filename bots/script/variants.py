"""A/B variants: split calls between script variants and count conversions per variant.

The split is deterministic: the same call id always gets the same variant (a replica that
resumes the call, or a retry, cannot switch wording mid-call), and over many calls the
shares follow the weights. Variants can be in-script (``variants:`` overriding variables,
for wording tests) or whole scripts; `choose_variant` serves both.

Counting is behind the `ConversionCounter` protocol: `InMemoryConversionCounter` here for
`bot chat` and tests; the Redis one (shared by all replicas) is
`cluster.records.conversations.RedisConversionCounter`. Both count each call once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ConversionCounter", "InMemoryConversionCounter", "VariantStats", "choose_variant"]


def choose_variant(call_uuid: str, weights: Mapping[str, float], salt: str = "") -> str:
    """The variant for `call_uuid`: sha256(salt, call uuid) mapped onto the cumulative weights
    (names sorted, so the order they are written in does not matter)."""
    items = sorted((name, float(w)) for name, w in weights.items() if w > 0)
    if not items:
        raise ValueError("choose_variant needs at least one variant with a positive weight")
    digest = hashlib.sha256(f"{salt}\x00{call_uuid}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(w for _, w in items)
    for name, weight in items:
        if point < weight:
            return name
        point -= weight
    return items[-1][0]


@dataclass(frozen=True)
class VariantStats:
    calls: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.calls if self.calls else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"calls": self.calls, "conversions": self.conversions, "rate": round(self.rate, 4)}


class ConversionCounter(Protocol):
    """Per-campaign, per-variant call and conversion counts; each call counts once."""

    async def record_call(self, campaign: str, variant: str, call_uuid: str) -> bool: ...
    async def record_conversion(self, campaign: str, variant: str, call_uuid: str) -> bool: ...
    async def report(self, campaign: str) -> dict[str, VariantStats]: ...


class InMemoryConversionCounter:
    """One process's counts (chat sessions, tests)."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], set[str]] = {}
        self._conversions: dict[tuple[str, str], set[str]] = {}

    @staticmethod
    def _add(table: dict[tuple[str, str], set[str]], key: tuple[str, str], call_uuid: str) -> bool:
        seen = table.setdefault(key, set())
        if call_uuid in seen:
            return False
        seen.add(call_uuid)
        return True

    async def record_call(self, campaign: str, variant: str, call_uuid: str) -> bool:
        return self._add(self._calls, (campaign, variant), call_uuid)

    async def record_conversion(self, campaign: str, variant: str, call_uuid: str) -> bool:
        return self._add(self._conversions, (campaign, variant), call_uuid)

    async def report(self, campaign: str) -> dict[str, VariantStats]:
        variants = {v for c, v in self._calls | self._conversions if c == campaign}
        return {v: VariantStats(len(self._calls.get((campaign, v), ())),
                                len(self._conversions.get((campaign, v), ())))
                for v in sorted(variants)}
