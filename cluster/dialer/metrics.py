"""What the dialer shows operators: each running campaign's pacing ratio and its
abandonment rate over the last 24 hours and 30 days, against its cap.

The pacing ratio (lines ringing or dialled in a round per free bot slot) is set every
pacing round, without I/O. Abandonment comes from the daily
counts the store keeps per UTC day (`DialerStore.abandonment`), read at most every
`interval_s` per campaign. The 24-hour figure is a sliding estimate from those days:
today's counts plus the share of yesterday's that falls inside the last 24 hours.
"""

from __future__ import annotations

from datetime import datetime, timezone

from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.pacing import AbandonmentBudget
from cluster.dialer.store import DialerStore
from telephony.metrics import (
    DIALER_ABANDONMENT,
    DIALER_ABANDONMENT_CAP,
    DIALER_PACING_RATIO,
    NO_METRICS,
    Metrics,
)

__all__ = ["CampaignMeter", "last_24h", "pacing_ratio"]

DAY_S = 86_400.0


def pacing_ratio(ringing: int, free_slots: int) -> float:
    """Lines in flight per free bot slot (a floor with no free slot counts as one: the
    ratio then says how many calls ring with nowhere certain to go)."""
    return max(0, ringing) / max(1, free_slots)


def last_24h(today: AbandonmentBudget, yesterday: AbandonmentBudget, now: float) -> float:
    """Abandonment rate over the last 24 hours, estimated from two UTC days' counts:
    yesterday's weighted by the share of it still inside the window."""
    midnight = datetime.fromtimestamp(now, timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0).timestamp()
    share = max(0.0, 1.0 - (now - midnight) / DAY_S)
    answered = today.answered + yesterday.answered * share
    abandoned = today.abandoned + yesterday.abandoned * share
    return abandoned / answered if answered > 0 else 0.0


class CampaignMeter:
    """Records a campaign's pacing and abandonment gauges to `metrics`."""

    def __init__(self, store: DialerStore, metrics: Metrics = NO_METRICS, interval_s: float = 5.0):
        self.store = store
        self.metrics = metrics
        self.interval_s = interval_s
        self._read_at: dict[str, float] = {}  # campaign id -> when abandonment was last read

    async def report(self, config: CampaignConfig, free_slots: int, ringing: int,
                     now: float) -> None:
        """After a pacing round: `ringing` lines (ringing before it, plus its dials) for
        `free_slots` free bot slots."""
        if self.metrics is NO_METRICS:
            return
        self.metrics.set(DIALER_PACING_RATIO, pacing_ratio(ringing, free_slots), campaign=config.id)
        last = self._read_at.get(config.id)
        if last is not None and 0 <= now - last < self.interval_s:
            return
        self._read_at[config.id] = now
        today = await self.store.abandonment(config.id, now, 1)
        two_days = await self.store.abandonment(config.id, now, 2)
        month = await self.store.abandonment(config.id, now, 30)
        yesterday = AbandonmentBudget(two_days.answered - today.answered,
                                      two_days.abandoned - today.abandoned)
        self.metrics.set(DIALER_ABANDONMENT, last_24h(today, yesterday, now),
                         campaign=config.id, window="24h")
        self.metrics.set(DIALER_ABANDONMENT, month.rate, campaign=config.id, window="30d")
        self.metrics.set(DIALER_ABANDONMENT_CAP, config.compliance.abandon_cap, campaign=config.id)
