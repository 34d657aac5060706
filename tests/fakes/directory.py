"""CallFleet's records of live calls, in memory: the `CallDirectory` port the fork
admission (deployments/gateway/fork_admission.py) reads, and the dialer's leads.

`calls` holds what the ESL controller recorded per call (`LiveCall`), `seen` the call ids
a gateway has already served, `leases` the open forks (call id -> owner). Setting
`unavailable` makes every call raise `DirectoryUnavailable`, as when Redis is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cluster.records.call_state import DirectoryUnavailable, LiveCall

__all__ = ["FakeCallDirectory", "FakeLeads", "live_call"]


def live_call(call_uuid: str, phase: str = "bot", *, direction: str = "inbound",
              caller: str = "+15550100111", callee: str = "+15550100999",
              answered_at: float | None = None, forks: int = 0, **variables: str) -> LiveCall:
    """A controller record; `variables` are given without their ``callfleet_`` prefix."""
    return LiveCall(call_uuid, phase, direction, caller, callee,
                    {f"callfleet_{k}": v for k, v in variables.items()}, answered_at, forks)


class FakeCallDirectory:
    def __init__(self, calls: Iterable[LiveCall] = (), seen: Iterable[str] = ()) -> None:
        self.calls = {c.call_uuid: c for c in calls}
        self.seen = set(seen)
        self.leases: dict[str, str] = {}
        self.unavailable = False
        self.refreshed: list[str] = []

    def _check(self) -> None:
        if self.unavailable:
            raise DirectoryUnavailable("call records unavailable (ConnectionError)")

    async def lookup(self, call_uuid: str) -> LiveCall | None:
        self._check()
        return self.calls.get(call_uuid)

    async def fork_seen(self, call_uuid: str) -> bool:
        self._check()
        return call_uuid in self.seen

    async def attach(self, call_uuid: str, owner: str, ttl_s: int, generation: int = 0) -> bool:
        self._check()
        held = self.leases.get(call_uuid)
        if held is not None and int(held.split(".", 1)[0] if "." in held else 0) >= generation:
            return False
        self.leases[call_uuid] = owner
        self.seen.add(call_uuid)  # the gateway stores the call's context once it runs
        return True

    async def refresh(self, call_uuid: str, owner: str, ttl_s: int) -> bool:
        self._check()
        self.refreshed.append(call_uuid)
        return self.leases.get(call_uuid) == owner

    async def detach(self, call_uuid: str, owner: str) -> None:
        self._check()
        if self.leases.get(call_uuid) == owner:
            del self.leases[call_uuid]


class FakeLeads:
    """The dialer's leads by (campaign, lead id)."""

    def __init__(self, leads: Mapping[tuple[str, str], Any] | None = None) -> None:
        self.leads = dict(leads or {})
        self.asked: list[tuple[str, str]] = []

    async def get_lead(self, campaign_id: str, lead_id: str) -> Any:
        self.asked.append((campaign_id, lead_id))
        return self.leads.get((campaign_id, lead_id))
