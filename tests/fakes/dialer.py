"""Stand-ins for FreeSWITCH and the floor, for tests and demos of the dialer: a switch
honouring `CallControl` whose per-number outcomes the caller chooses, and a floor of bot
slots that implements `CapacityProbe` and `AnswerHandler`. They replace the outside world
only; the dialer logic under test is the real one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from datetime import datetime, timezone

import redis.asyncio as aioredis

from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.leads import Lead
from telephony.call_control import CallControlError, OriginateRequest, OriginateResult

# a Wednesday, 16:00 UTC: 11:00 or 12:00 in New York, inside every default window
WEDNESDAY_AFTERNOON = datetime(2026, 3, 4, 16, 0, tzinfo=timezone.utc).timestamp()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _always_answered(number: str) -> tuple[bool, str]:
    return True, "SUCCESS"


class Clock:
    """Wall clock the test moves by hand."""

    def __init__(self, at: float = WEDNESDAY_AFTERNOON):
        self.now = at

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSwitch:
    """A CallControl: `outcome(number)` says (answered, cause); every dial is logged."""

    def __init__(self, outcome: Callable[[str], tuple[bool, str]] | None = None,
                 ring_s: float = 0.0, log_url: str | None = None,
                 log_key: str = "test:dialled"):
        self.outcome = outcome or _always_answered
        self.ring_s = ring_s
        self.dialled: list[OriginateRequest] = []
        self.hung_up: list[str] = []
        # also log each dialled number to a Redis list: the switch may live in another
        # process (the dialer actor) and die with it
        self._log = aioredis.from_url(log_url) if log_url else None
        self.log_key = log_key

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        self.dialled.append(request)
        if self._log is not None:
            await self._log.rpush(self.log_key, request.destination)
        if self.ring_s:
            await asyncio.sleep(self.ring_s)
        answered, cause = self.outcome(request.destination)
        if cause == "RAISE":
            raise CallControlError("event socket not connected")
        return OriginateResult(call_uuid=request.call_uuid, answered=answered, cause=cause,
                               gateway=request.gateways[0])

    async def transfer(self, call_uuid: str, extension: str, context: str = "default") -> None:
        pass

    async def bridge(self, call_uuid: str, other_uuid: str) -> None:
        pass

    async def hangup(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        self.hung_up.append(call_uuid)


class FakeFloor:
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
