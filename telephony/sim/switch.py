"""A simulated FreeSWITCH: the event socket (`ESLServer`), channels that ring, answer,
fail and hang up as the `ChannelModel` says, and mod_audio_fork on each answered channel
(the `fork_client`, driven by a scripted caller).

The ESL controller connects to it exactly as to FreeSWITCH. What it answers:

- ``originate {vars}sofia/gateway/<gw>/<number> &park()`` — fires ``CHANNEL_CREATE``,
  ``CHANNEL_PROGRESS``, then ``CHANNEL_ANSWER`` (output ``+OK <uuid>``) or
  ``CHANNEL_HANGUP``/``CHANNEL_HANGUP_COMPLETE`` with the cause (output ``-ERR <CAUSE>``);
- ``uuid_audio_fork <uuid> start <url> <mix> <8k|16k> [metadata]`` / ``send_text`` /
  ``stop``; the module's custom events ``mod_audio_fork::connect``, ``connect_failed``,
  ``play_audio`` (with ``file``), ``kill_audio``, ``transfer``, ``disconnect``;
- ``uuid_broadcast``, ``uuid_break``, ``uuid_kill``, ``uuid_transfer``, ``uuid_bridge``,
  ``show channels as json``, ``status``, ``uptime``; ``DTMF`` events when a scripted
  caller presses keys.

A call transferred to an agent extension goes through the dialplan's ``bridge`` as in
FreeSWITCH: a B-leg to the agent's phone (``CHANNEL_CREATE`` with ``Other-Type:
originator``, the A-leg's uuid as ``Other-Leg-Unique-ID`` and ``variable_originator``),
which rings for `agent_ring_s`, answers, and bridges (``CHANNEL_BRIDGE`` on the A-leg);
the agent talks for `agent_talk_s` and hangs up, which unbridges and, with
``hangup_after_bridge``, hangs up the caller. Killing either leg of a bridge ends both.
``uuid_bridge`` joins two existing channels. A channel whose fork the bot closed stays
parked until the controller hangs it up (or the caller gives up after `linger_s`).

``uuid_audio_fork`` and ``uuid_broadcast`` arguments are split as FreeSWITCH splits them
(`fs_args.separate_string`, with the modules' argv sizes), so a command line the real
switch would cut or unescape differently fails here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from telephony import codecs
from telephony.media_fork import ForkMetadata
from telephony.sim.channel_model import ChannelModel, DialOutcome
from telephony.sim.esl_server import ESLServer
from telephony.sim.fork_client import CallReport, ForkControl, SimulatedCall, run_call
from telephony.sim.fs_args import separate_string
from telephony.wav import read_wav, write_wav

__all__ = ["CallerScript", "SimChannel", "SimulatedSwitch"]

logger = logging.getLogger(__name__)

CallerScript = Callable[[str, str, int, str], "SimulatedCall | None | Awaitable[SimulatedCall | None]"]
"""``(destination, call_uuid, sample_rate, kind) -> call`` (or a coroutine giving it);
kind is "person" or "machine". None: a caller who says nothing and hangs up."""

_DIAL = re.compile(r"^(?:\{(?P<vars>.*?)(?<!\\)\})?sofia/gateway/(?P<gw>[^/\s]+)/(?P<num>\S+)$")
FORK = "mod_audio_fork::"


def parse_variables(block: str) -> dict[str, str]:
    """``a=1,b='x y',c=p\\,q`` → dict, honouring FreeSWITCH's escaped commas and quotes."""
    out, key, buf, quoted, i = {}, None, "", False, 0
    while i < len(block):
        ch = block[i]
        if ch == "\\" and i + 1 < len(block):
            buf += block[i + 1]
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        elif ch == "=" and key is None and not quoted:
            key, buf = buf, ""
        elif ch == "," and not quoted:
            if key is not None:
                out[key.strip()] = buf
            key, buf = None, ""
        else:
            buf += ch
        i += 1
    if key is not None:
        out[key.strip()] = buf
    return out


class SimChannel:
    """One call leg; also the fork's `ForkHooks` (module side of mod_audio_fork)."""

    def __init__(self, switch: SimulatedSwitch, call_uuid: str, direction: str,
                 destination: str, variables: dict[str, str]):
        self.switch = switch
        self.uuid = call_uuid
        self.direction = direction
        self.destination = destination
        self.variables = variables
        self.callstate = "RINGING"
        self.hangup_cause: str | None = None
        self.kind = "person"
        self.report: CallReport | None = None
        self.transferred_to: str | None = None
        self.bridged_to: str | None = None
        self.other_leg: SimChannel | None = None
        self.originator: SimChannel | None = None  # set on a B-leg: the call it serves
        self.fork_events: list[str] = []
        self.broadcasts: list[str] = []  # files played with uuid_broadcast
        self.control: ForkControl | None = None
        self.fork_rate = 8000
        self._fork: asyncio.Task | None = None
        self._after: asyncio.Task | None = None
        self.done = asyncio.Event()

    @property
    def call_uuid(self) -> str:
        """FreeSWITCH's call uuid: a B-leg's is its A-leg's."""
        return self.originator.uuid if self.originator is not None else self.uuid

    def headers(self, event: str, **extra: str) -> dict[str, str]:
        head = {
            "Event-Name": event,
            "Unique-ID": self.uuid,
            "Channel-Call-UUID": self.call_uuid,
            "Call-Direction": self.direction,
            "Caller-Destination-Number": self.destination,
            "Caller-Caller-ID-Number": self.variables.get("origination_caller_id_number", ""),
            "Channel-Call-State": self.callstate,
        }
        if self.originator is not None:
            head.update({"Other-Type": "originator", "Other-Leg-Unique-ID": self.originator.uuid})
        elif self.other_leg is not None:
            head.update({"Other-Type": "originatee", "Other-Leg-Unique-ID": self.other_leg.uuid})
        head.update({f"variable_{k}": v for k, v in self.variables.items()})
        head.update(extra)
        return head

    async def fire(self, event: str, **extra: str) -> None:
        await self.switch.esl.fire_event(self.headers(event, **extra))

    async def fire_fork(self, kind: str, **extra: str) -> None:
        self.fork_events.append(kind)
        await self.fire("CUSTOM", **{"Event-Subclass": FORK + kind, **extra})

    # -- ForkHooks --------------------------------------------------------------------

    def connected(self, control: ForkControl) -> None:
        self.control = control
        self.report = control.report
        self.switch.spawn(self.fire_fork("connect"))

    def connect_failed(self, reason: str) -> None:
        self.switch.spawn(self.fire_fork("connect_failed", reason=reason))

    def play_audio(self, pcm: bytes, sample_rate: int) -> None:
        self.switch.spawn(self._play_audio(pcm, sample_rate))

    async def _play_audio(self, pcm: bytes, sample_rate: int) -> None:
        path = self.switch.tmp / f"{self.uuid}-{uuid.uuid4().hex[:8]}.wav"
        samples = np.frombuffer(pcm, dtype="<i2")
        await asyncio.to_thread(write_wav, path, samples, sample_rate)
        await self.fire_fork("play_audio", file=str(path))

    def kill_audio(self) -> None:
        self.switch.spawn(self.fire_fork("kill_audio"))

    def server_event(self, kind: str, data: Any) -> None:
        self.switch.spawn(self.fire_fork(kind, data=json.dumps(data or {})))

    def dtmf(self, digit: str) -> None:
        self.switch.spawn(self.fire("DTMF", **{"DTMF-Digit": digit, "DTMF-Duration": "2000",
                                               "DTMF-Source": "RTP"}))

    # -- life -------------------------------------------------------------------------

    async def answer(self) -> None:
        self.callstate = "ACTIVE"
        await self.fire("CHANNEL_ANSWER", **{"Answer-State": "answered"})

    async def hangup(self, cause: str) -> None:
        if self.hangup_cause is not None:
            return
        self.hangup_cause = cause
        self.callstate = "HANGUP"
        current = asyncio.current_task()
        for task in (self._fork, self._after):
            if task is not None and task is not current and not task.done():
                task.cancel()
        await self.fire("CHANNEL_HANGUP", **{"Hangup-Cause": cause, "Answer-State": "hangup"})
        await self.fire("CHANNEL_HANGUP_COMPLETE", **{"Hangup-Cause": cause,
                                                      "Answer-State": "hangup"})
        self.switch.hung_up(self)
        self.done.set()
        other = self.other_leg
        if other is not None and other.hangup_cause is None:
            # the bridge ends; hangup_after_bridge (configs/freeswitch/dialplan) ends the
            # other leg too, with the same cause
            await other.fire("CHANNEL_UNBRIDGE", **{"Other-Leg-Unique-ID": self.uuid})
            await other.hangup(cause)

    def start_fork(self, url: str, rate: int, metadata: str | None) -> None:
        self.fork_rate = rate
        self._fork = self.switch.spawn(self._run_fork(url, rate, metadata))

    async def _run_fork(self, url: str, rate: int, metadata: str | None) -> None:
        call = self.switch.callers(self.destination, self.uuid, rate, self.kind)
        if inspect.isawaitable(call):
            call = await call
        if call is None:
            call = SimulatedCall(ForkMetadata(self.uuid, rate), turns=[], hangup_after_s=3.0)
        call.raw_metadata = metadata or ForkMetadata(self.uuid, rate).to_json()
        self.report = await run_call(url, call, hooks=self)
        if self.hangup_cause is not None or self.transferred_to or self.bridged_to:
            return
        if self.report.hung_up_by == "caller" and not self.report.error:
            await self.hangup("NORMAL_CLEARING")
        else:  # the bot closed the fork, or it never connected (connect_failed): the
            # channel stays parked until the controller acts or the caller gives up
            self._after = self.switch.spawn(self._linger(self.switch.linger_s, "NORMAL_CLEARING"))

    async def _linger(self, seconds: float, cause: str) -> None:
        await asyncio.sleep(seconds)
        await self.hangup(cause)

    def transfer(self, extension: str) -> None:
        self.transferred_to = extension
        if self._fork is not None:
            self._fork.cancel()
        self._after = self.switch.spawn(self.switch.dial_agent(self, extension))

    async def bridge(self, other: SimChannel) -> None:
        self.other_leg, other.other_leg = other, self
        self.bridged_to = other.uuid
        if self._fork is not None:
            self._fork.cancel()
        await self.fire("CHANNEL_BRIDGE", **{"Bridge-A-Unique-ID": self.uuid,
                                             "Bridge-B-Unique-ID": other.uuid})


class SimulatedSwitch:
    """FreeSWITCH as the controller sees it, on 127.0.0.1 (port 0: any free port)."""

    def __init__(self, password: str, model: ChannelModel | None = None,
                 callers: CallerScript | None = None, host: str = "127.0.0.1",
                 port: int = 0, linger_s: float = 5.0, agent_talk_s: float = 2.0,
                 agent_ring_s: float = 0.3):
        self.model = model or ChannelModel()
        self.callers: CallerScript = callers or (lambda *_: None)
        self.esl = ESLServer(password, host, port, api_handler=self._api)
        self.channels: dict[str, SimChannel] = {}
        self.finished: list[SimChannel] = []
        self.linger_s = linger_s
        self.agent_talk_s = agent_talk_s
        self.agent_ring_s = agent_ring_s
        self._rng = self.model.rng()
        self._tasks: set[asyncio.Task] = set()
        self.tmp = Path(tempfile.mkdtemp(prefix="callfleet-fs-"))
        self.sessions_total = 0

    @property
    def port(self) -> int:
        return self.esl.port

    async def start(self) -> None:
        await self.esl.start()

    async def stop(self) -> None:
        for channel in list(self.channels.values()):
            await channel.hangup("SYSTEM_SHUTDOWN")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.esl.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def hung_up(self, channel: SimChannel) -> None:
        self.channels.pop(channel.uuid, None)
        self.finished.append(channel)

    async def dial_agent(self, a_leg: SimChannel, extension: str) -> None:
        """The dialplan's ``bridge user/<extension>``: a B-leg rings the agent's phone, the
        agent answers, the legs are bridged, and the agent hangs up after talking."""
        b_leg = SimChannel(self, str(uuid.uuid4()), "outbound", extension,
                           {"originator": a_leg.uuid, "originating_leg_uuid": a_leg.uuid})
        b_leg.originator = a_leg
        self.channels[b_leg.uuid] = b_leg
        self.sessions_total += 1
        await b_leg.fire("CHANNEL_CREATE", **{"Answer-State": "ringing"})
        try:
            await asyncio.sleep(self.agent_ring_s)
        finally:
            if a_leg.hangup_cause is not None:  # the caller hung up while the agent's phone rang
                await b_leg.hangup("ORIGINATOR_CANCEL")
        if b_leg.hangup_cause is not None:
            return
        await b_leg.answer()
        await a_leg.bridge(b_leg)
        await asyncio.sleep(self.agent_talk_s)
        await b_leg.hangup("NORMAL_CLEARING")

    async def inbound_call(self, destination: str, caller: SimulatedCall,
                           bot: str = "inbound_shop", caller_id: str = "+15550100999") -> SimChannel:
        """A call arrives for a bot number. The dialplan (configs/freeswitch/dialplan)
        marks it ``callfleet_bot``, answers and parks it; the ESL controller then starts
        its media fork, and `caller` talks on it."""
        call_uuid = caller.meta.call_uuid
        channel = SimChannel(self, call_uuid, "inbound", destination,
                             {"origination_caller_id_number": caller_id, "callfleet_bot": bot})
        self.channels[call_uuid] = channel
        self.sessions_total += 1
        self.callers = _with_inbound(self.callers, call_uuid, caller)
        await channel.fire("CHANNEL_CREATE", **{"Answer-State": "ringing"})
        await channel.answer()
        return channel

    # -- api ------------------------------------------------------------------------

    async def _api(self, name: str, args: str) -> str | None:
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            return None
        return await handler(args.strip())

    async def _cmd_status(self, args: str) -> str:
        return (f"UP 0 years, 0 days\nFreeSWITCH (Version 1.10.11-release CallFleet simulator)"
                f" is ready\n{self.sessions_total} session(s) since startup\n"
                f"{len(self.channels)} session(s) - peak 0, last 5min 0\n")

    async def _cmd_show(self, args: str) -> str:
        if args not in ("channels as json", "calls as json"):
            return "-ERR only 'show channels as json' is simulated\n"
        rows = [{"uuid": c.uuid, "direction": c.direction, "callstate": c.callstate,
                 "dest": c.destination, "call_uuid": c.call_uuid}
                for c in self.channels.values()]
        return json.dumps({"row_count": len(rows), "rows": rows})

    async def _cmd_originate(self, args: str) -> str:
        dial = _dial_string(args)
        match = _DIAL.match(dial)
        if match is None:
            return "-ERR INVALID_GATEWAY\n" if "sofia/" in dial else "-ERR CHAN_NOT_IMPLEMENTED\n"
        variables = parse_variables(match["vars"] or "")
        call_uuid = variables.get("origination_uuid") or str(uuid.uuid4())
        if call_uuid in self.channels:
            return "-ERR DESTINATION_OUT_OF_ORDER\n"
        timeout = float(variables.get("originate_timeout", "60"))
        outcome: DialOutcome = self.model.draw(self._rng, match["gw"], timeout)
        if outcome.kind == "NO_ROUTE_DESTINATION":
            return "-ERR NO_ROUTE_DESTINATION\n"
        channel = SimChannel(self, call_uuid, "outbound", match["num"], variables)
        self.channels[call_uuid] = channel
        self.sessions_total += 1
        await channel.fire("CHANNEL_CREATE", **{"Answer-State": "ringing"})
        if outcome.after_s > 0.2 or outcome.answered:
            await channel.fire("CHANNEL_PROGRESS", **{"Answer-State": "ringing"})
        await asyncio.sleep(outcome.after_s)
        if channel.hangup_cause is not None:  # killed while ringing
            return f"-ERR {channel.hangup_cause}\n"
        if not outcome.answered:
            await channel.hangup(outcome.kind)
            return f"-ERR {outcome.kind}\n"
        channel.kind = "machine" if outcome.kind == "MACHINE" else "person"
        await channel.answer()
        return f"+OK {call_uuid}\n"

    async def _cmd_uuid_audio_fork(self, args: str) -> str:
        # mod_audio_fork (drachtio): char *argv[6], so the metadata is the sixth argument
        # and keeps the rest of the line; send_text sends argv[2] only
        parts = separate_string(args, " ", 6)
        channel = self.channels.get(parts[0]) if parts else None
        if channel is None:
            return "-ERR Invalid uuid\n"
        action = parts[1] if len(parts) > 1 else ""
        if action == "start":
            if len(parts) < 5 or parts[4] not in ("8k", "16k"):
                return "-USAGE: <uuid> start <wss-url> <mono|mixed|stereo> <8k|16k> [metadata]\n"
            channel.start_fork(parts[2], 8000 if parts[4] == "8k" else 16000,
                               parts[5] if len(parts) > 5 else None)
            return "+OK Success\n"
        if action == "send_text" and channel.control is not None:
            if len(parts) < 3:
                return "-ERR Operation Failed\n"
            try:
                await channel.control.send_text(parts[2])
            except Exception:  # the websocket has gone
                return "-ERR Operation Failed\n"
            return "+OK Success\n"
        if action == "stop" and channel._fork is not None:
            channel._fork.cancel()
            return "+OK Success\n"
        return "-ERR Operation Failed\n"

    async def _cmd_uuid_broadcast(self, args: str) -> str:
        parts = separate_string(args, " ", 4)  # mod_commands: char *argv[4]
        channel = self.channels.get(parts[0]) if parts else None
        if channel is None or len(parts) < 2:
            return "-USAGE: <uuid> <path> [aleg|bleg|both]\n"
        try:
            samples, rate = await asyncio.to_thread(read_wav, parts[1])
        except (OSError, ValueError):
            return "-ERR Operation Failed\n"
        channel.broadcasts.append(parts[1])
        if channel.control is None:  # no fork: the callee hears it, nobody records it
            return "+OK Message queued\n"
        if rate != channel.fork_rate:  # FreeSWITCH resamples a file to the channel's rate
            samples = codecs.resample(samples, rate, channel.fork_rate)
        channel.control.play(samples.astype("<i2").tobytes())
        return "+OK Message queued\n"

    async def _cmd_uuid_break(self, args: str) -> str:
        channel = self.channels.get(args.split(" ")[0])
        if channel is None:
            return "-ERR No such channel!\n"
        if channel.control is not None:
            channel.control.kill()
        return "+OK\n"

    async def _cmd_uuid_kill(self, args: str) -> str:
        parts = args.split()
        channel = self.channels.get(parts[0]) if parts else None
        if channel is None:
            return "-ERR No such channel!\n"
        await channel.hangup(parts[1] if len(parts) > 1 else "NORMAL_CLEARING")
        return "+OK\n"

    async def _cmd_uuid_transfer(self, args: str) -> str:
        parts = args.split()
        channel = self.channels.get(parts[0]) if parts else None
        if channel is None or len(parts) < 2:
            return "-ERR No such channel!\n"
        extension = parts[2] if parts[1] in ("-bleg", "-both") and len(parts) > 2 else parts[1]
        channel.transfer(extension)
        await channel.fire("CHANNEL_EXECUTE", Application="transfer",
                           **{"Application-Data": extension})
        return "+OK\n"

    async def _cmd_uuid_bridge(self, args: str) -> str:
        parts = args.split()
        if len(parts) != 2:
            return "-USAGE: <uuid> <other_uuid>\n"
        channel, other = self.channels.get(parts[0]), self.channels.get(parts[1])
        if channel is None or other is None:
            return "-ERR Invalid uuid\n"
        await channel.bridge(other)
        return f"+OK {parts[0]}\n"


def _dial_string(args: str) -> str:
    """The first argument of originate: a ``{…}`` variable block (which may hold quoted
    spaces) glued to the endpoint, up to the next space."""
    start = 0
    if args.startswith("{"):
        i, quoted = 1, False
        while i < len(args):
            ch = args[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "'":
                quoted = not quoted
            elif ch == "}" and not quoted:
                break
            i += 1
        start = i
    end = args.find(" ", start)
    return args if end == -1 else args[:end]


def _with_inbound(callers: CallerScript, call_uuid: str, call: SimulatedCall) -> CallerScript:
    def script(destination: str, uid: str, rate: int, kind: str) -> SimulatedCall | None:
        return call if uid == call_uuid else callers(destination, uid, rate, kind)

    return script


@contextlib.asynccontextmanager
async def running_switch(password: str, **kwargs):
    switch = SimulatedSwitch(password, **kwargs)
    await switch.start()
    try:
        yield switch
    finally:
        await switch.stop()
