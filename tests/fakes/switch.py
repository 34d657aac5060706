"""The one stand-in for FreeSWITCH behind the `CallControl` protocol, shared by every test
of the floor (dialer, skill router, agent API).

It is a `CallControl` (subclassed, so a changed protocol shows up here), answers each
originate from a per-number outcome the test chooses, records every request in order,
and can be told to fail or to be slow. It replaces the switch only; the dialer and router
logic under test are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import redis.asyncio as aioredis

from telephony.call_control import (
    CallControl,
    CallControlError,
    OriginateRequest,
    OriginateResult,
)

__all__ = ["RAISE", "FakeSwitch", "Outcome"]

#: an outcome cause that makes `originate` raise CallControlError (the event socket
#: dropped mid-request) instead of returning a result
RAISE = "RAISE"

#: per dialled number: (answered, cause). A mapping gives the cause per number (numbers
#: not in it answer); "SUCCESS" means answered.
Outcome = Callable[[str], tuple[bool, str]] | Mapping[str, str]


def _always_answered(number: str) -> tuple[bool, str]:
    return True, "SUCCESS"


def _by_number(causes: dict[str, str]) -> Callable[[str], tuple[bool, str]]:
    def outcome(number: str) -> tuple[bool, str]:
        cause = causes.get(number, "SUCCESS")
        return cause == "SUCCESS", cause

    return outcome


class FakeSwitch(CallControl):
    """A switch whose calls go exactly as the test says.

    * `outcome`: how each dialled number ends (see `Outcome`; default: every call answers);
    * `ring_s`: how long an originate rings before it ends;
    * `transfer_s`: how long a transfer takes (a real switch is not instant);
    * `fail`: while set, every request raises it (a switch that is down or refuses);
    * `while_transferring`: a coroutine function awaited in the middle of a transfer (to
      race something against it);
    * `log_url`: also push each dialled number onto a Redis list (`log_key`), for a switch
      that lives in another process (a dialer actor) and dies with it.

    Requests are recorded in order: `dialled` (OriginateRequest), `transfers` (call uuid,
    extension, context), `bridges` (call uuid, other uuid), `hangups` (call uuid, cause).
    """

    def __init__(self, outcome: Outcome | None = None, *, ring_s: float = 0.0,
                 transfer_s: float = 0.0, log_url: str | None = None,
                 log_key: str = "test:dialled"):
        if outcome is None:
            outcome = _always_answered
        elif isinstance(outcome, Mapping):
            outcome = _by_number(dict(outcome))
        self.outcome: Callable[[str], tuple[bool, str]] = outcome
        self.ring_s = ring_s
        self.transfer_s = transfer_s
        self.fail: CallControlError | None = None
        self.while_transferring: Callable[[], Awaitable[object]] | None = None
        self.dialled: list[OriginateRequest] = []
        self.transfers: list[tuple[str, str, str]] = []
        self.bridges: list[tuple[str, str]] = []
        self.hangups: list[tuple[str, str]] = []
        self._log = aioredis.from_url(log_url) if log_url else None
        self.log_key = log_key

    @property
    def hung_up(self) -> list[str]:
        """The call uuids hung up, in order."""
        return [call_uuid for call_uuid, _ in self.hangups]

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        self.dialled.append(request)
        if self._log is not None:
            await self._log.rpush(self.log_key, request.destination)
        self._check()
        if self.ring_s:
            await asyncio.sleep(self.ring_s)
        answered, cause = self.outcome(request.destination)
        if cause == RAISE:
            raise CallControlError("event socket not connected")
        return OriginateResult(call_uuid=request.call_uuid, answered=answered, cause=cause,
                               gateway=request.gateways[0],
                               attempts=[(request.gateways[0], cause)])

    async def transfer(self, call_uuid: str, extension: str, context: str = "default") -> None:
        self._check()
        if self.transfer_s:
            await asyncio.sleep(self.transfer_s)
        if self.while_transferring is not None:
            await self.while_transferring()
        self.transfers.append((call_uuid, extension, context))

    async def bridge(self, call_uuid: str, other_uuid: str) -> None:
        self._check()
        self.bridges.append((call_uuid, other_uuid))

    async def hangup(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        self._check()
        self.hangups.append((call_uuid, cause))

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail
