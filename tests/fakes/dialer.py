"""Stand-ins for the floor around the dialer: a floor of bot slots that implements
`CapacityProbe` and `AnswerHandler`, a clock the test moves, and a free local port. The
switch is `tests.fakes.switch.FakeSwitch`. They replace the outside world only; the
dialer logic under test is the real one."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timezone

from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.engine import AnswerHandler, CapacityProbe
from cluster.dialer.leads import Lead

# a Wednesday, 16:00 UTC: 11:00 or 12:00 in New York, inside every default window
WEDNESDAY_AFTERNOON = datetime(2026, 3, 4, 16, 0, tzinfo=timezone.utc).timestamp()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Clock:
    """Wall clock the test moves by hand."""

    def __init__(self, at: float = WEDNESDAY_AFTERNOON):
        self.now = at

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeFloor(CapacityProbe, AnswerHandler):
    """Bot slots: a capacity probe and an answer handler in one."""

    def __init__(self, slots: int, agents: int | None = None, hold_s: float | None = None):
        self.slots = slots
        self.agents = agents
        self.hold_s = hold_s  # None: calls stay until the test ends them
        self.connected: dict[str, str] = {}  # call uuid -> lead id
        self.messages: list[str] = []  # call uuids that heard the information message

    async def free_bot_slots(self) -> int:
        return self.slots - len(self.connected)

    async def free_agents(self) -> int | None:
        return self.agents

    async def connect(self, call_uuid: str, lead: Lead, campaign: CampaignConfig) -> None:
        self.connected[call_uuid] = lead.id
        if self.hold_s is not None:
            asyncio.get_running_loop().call_later(self.hold_s, self.connected.pop, call_uuid, None)

    async def play_info_message(self, call_uuid: str, campaign: CampaignConfig) -> None:
        self.messages.append(call_uuid)
