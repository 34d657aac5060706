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
the agent talks for `agent_talk_s` (None: until someone hangs up) and hangs up, which
unbridges and, with ``hangup_after_bridge``, hangs up the caller. Killing either leg of a
bridge ends both. ``uuid_bridge`` joins two existing channels. A channel whose fork the
bot closed stays parked until the controller hangs it up (or the caller gives up after
`linger_s`). A caller the bot handed over (a ``transfer`` on the fork) waits on hold for
the call's `hold_s` and then hangs up (`SimChannel.abandoned`), as real callers do.

Supervisors: ``originate {vars}loopback/<ext>/<context> &eavesdrop(<uuid>)`` rings the
supervisor's phone and joins the call (`SimChannel.eavesdrop` names the call and the
mode, from ``eavesdrop_whisper_aleg``/``_bleg``: listen, whisper to the agent, or barge);
``uuid_recv_dtmf <leg> 0|1|3`` switches listen / whisper / barge as the eavesdrop
application does on those keys; the eavesdropper is hung up when the call ends.

``uuid_audio_fork`` and ``uuid_broadcast`` arguments are split as FreeSWITCH splits them
(`fs_args.separate_string`, with the modules' argv sizes), so a command line the real
switch would cut or unescape differently fails here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
_LOOPBACK = re.compile(r"^(?:\{(?P<vars>.*?)(?<!\\)\})?loopback/(?P<ext>[^/\s]+)/(?P<ctx>\S+)$")
_EAVESDROP_APP = re.compile(r"^\s*&eavesdrop\((?P<uuid>[A-Za-z0-9-]+)\)\s*$")
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
        self.bug = False  # mod_audio_fork's media bug is on the channel (until stop/hangup)
        self.caller: SimulatedCall | None = None  # who talks on the forks, once chosen
        self.turns_done = 0  # the caller's turns the bot got, over every fork so far
        self.fork_reports: list[CallReport] = []  # one per fork, in order
        self._after: asyncio.Task | None = None
        self._hold: asyncio.Task | None = None
        self.on_hold_since: float | None = None  # the bot handed the call over
        self.abandoned = False  # hung up on hold: nobody took the call in time
        self.eavesdrop: tuple[str, str] | None = None  # a supervisor leg: (call, mode)
        self.eavesdrop_modes: list[str] = []  # every mode the supervisor used, in order
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
        for task in (self._fork, self._after, self._hold):
            if task is not None and task is not current and not task.done():
                task.cancel()
        await self.fire("CHANNEL_HANGUP", **{"Hangup-Cause": cause, "Answer-State": "hangup"})
        await self.fire("CHANNEL_HANGUP_COMPLETE", **{"Hangup-Cause": cause,
                                                      "Answer-State": "hangup"})
        self.switch.hung_up(self)
        self.done.set()
        for listener in self.switch.eavesdroppers(self.uuid):
            await listener.hangup("NORMAL_CLEARING")  # eavesdrop ends with the call
        other = self.other_leg
        if other is not None and other.hangup_cause is None:
            # the bridge ends; hangup_after_bridge (configs/freeswitch/dialplan) ends the
            # other leg too, with the same cause
            await other.fire("CHANNEL_UNBRIDGE", **{"Other-Leg-Unique-ID": self.uuid})
            await other.hangup(cause)

    def start_fork(self, url: str, rate: int, metadata: str | None) -> bool:
        """False when a fork's media bug is still on the channel (the module refuses a
        second ``start``; ``stop`` removes the bug, also after the websocket dropped)."""
        if self.bug:
            return False
        self.bug = True
        self.fork_rate = rate
        if self._after is not None and not self._after.done():
            self._after.cancel()  # forked again: the caller no longer waits to give up
        self._fork = self.switch.spawn(self._run_fork(url, rate, metadata))
        return True

    def stop_fork(self) -> bool:
        if not self.bug:
            return False
        self.bug = False
        self.control = None
        if self._fork is not None and self._fork is not asyncio.current_task():
            self._fork.cancel()
        return True

    async def _run_fork(self, url: str, rate: int, metadata: str | None) -> None:
        if self.caller is None:
            call = self.switch.callers(self.destination, self.uuid, rate, self.kind)
            if inspect.isawaitable(call):
                call = await call
            if call is None:
                call = SimulatedCall(ForkMetadata(self.uuid, rate), turns=[], hangup_after_s=3.0)
            self.caller = call
        # a fork started again (its gateway replica was lost) carries on the same
        # conversation: the caller goes on with what they had not said yet
        call = dataclasses.replace(self.caller, turns=self.caller.turns[self.turns_done:],
                                   raw_metadata=metadata or ForkMetadata(self.uuid, rate).to_json())
        self.report = await run_call(url, call, hooks=self)
        self.fork_reports.append(self.report)
        self.turns_done += self.report.turns_done
        if self.hangup_cause is not None or self.transferred_to or self.bridged_to:
            return
        if self.report.dropped:
            # mod_audio_fork's CONNECTION_DROPPED: ``disconnect`` without a body (the bot's
            # own disconnect message carries one); the bug stays until ``stop``, and the
            # caller hears silence until the controller acts or they give up
            await self.fire_fork("disconnect")
            self._after = self.switch.spawn(self._linger(self.switch.linger_s, "NORMAL_CLEARING"))
            return
        if self.report.escalated:  # on hold for a person, who may never come
            self.on_hold_since = asyncio.get_running_loop().time()
            self._hold = self.switch.spawn(self._wait_on_hold(call.hold_s))
            return
        if self.report.hung_up_by == "caller" and not self.report.error:
            await self.hangup("NORMAL_CLEARING")
        else:  # the bot closed the fork, or it never connected (connect_failed): the
            # channel stays parked until the controller acts or the caller gives up
            self._after = self.switch.spawn(self._linger(self.switch.linger_s, "NORMAL_CLEARING"))

    async def _wait_on_hold(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.transferred_to or self.bridged_to:
            return
        self.abandoned = True
        await self.hangup("NORMAL_CLEARING")

    def _off_hold(self) -> None:
        if self._hold is not None and self._hold is not asyncio.current_task():
            self._hold.cancel()

    async def _linger(self, seconds: float, cause: str) -> None:
        await asyncio.sleep(seconds)
        await self.hangup(cause)

    def transfer(self, extension: str) -> None:
        self.transferred_to = extension
        self._off_hold()
        if self._fork is not None:
            self._fork.cancel()
        self._after = self.switch.spawn(self.switch.dial_agent(self, extension))

    async def bridge(self, other: SimChannel) -> None:
        self.other_leg, other.other_leg = other, self
        self.bridged_to = other.uuid
        self._off_hold()
        if self._fork is not None:
            self._fork.cancel()
        await self.fire("CHANNEL_BRIDGE", **{"Bridge-A-Unique-ID": self.uuid,
                                             "Bridge-B-Unique-ID": other.uuid})


class SimulatedSwitch:
    """FreeSWITCH as the controller sees it, on 127.0.0.1 (port 0: any free port)."""

    def __init__(self, password: str, model: ChannelModel | None = None,
                 callers: CallerScript | None = None, host: str = "127.0.0.1",
                 port: int = 0, linger_s: float = 5.0, agent_talk_s: float | None = 2.0,
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
        if self.agent_talk_s is None:
            return  # the agent stays on until someone hangs up
        await asyncio.sleep(self.agent_talk_s)
        await b_leg.hangup("NORMAL_CLEARING")

    def eavesdroppers(self, call_uuid: str) -> list[SimChannel]:
        return [c for c in self.channels.values()
                if c.eavesdrop is not None and c.eavesdrop[0] == call_uuid]

    async def _eavesdrop(self, args: str, dial: str) -> str:
        """``originate {vars}loopback/<ext>/<context> &eavesdrop(<uuid>)``: the
        supervisor's phone rings, answers, and listens in on the call."""
        match = _LOOPBACK.match(dial)
        app = _EAVESDROP_APP.search(args[len(dial):])
        if match is None or app is None:
            return "-ERR CHAN_NOT_IMPLEMENTED\n"
        variables = parse_variables(match["vars"] or "")
        leg_uuid = variables.get("origination_uuid") or str(uuid.uuid4())
        whisper = (variables.get("eavesdrop_whisper_aleg") == "true",
                   variables.get("eavesdrop_whisper_bleg") == "true")
        mode = {(False, True): "whisper", (True, True): "barge"}.get(whisper, "listen")
        leg = SimChannel(self, leg_uuid, "outbound", match["ext"], variables)
        self.channels[leg_uuid] = leg
        self.sessions_total += 1
        await leg.fire("CHANNEL_CREATE", **{"Answer-State": "ringing"})
        await asyncio.sleep(self.agent_ring_s)
        if leg.hangup_cause is not None:
            return f"-ERR {leg.hangup_cause}\n"
        await leg.answer()
        if app["uuid"] not in self.channels:  # nothing to listen to: the app ends
            await leg.hangup("NORMAL_CLEARING")
            return f"+OK {leg_uuid}\n"
        leg.eavesdrop = (app["uuid"], mode)
        leg.eavesdrop_modes.append(mode)
        await leg.fire("CHANNEL_EXECUTE", Application="eavesdrop",
                       **{"Application-Data": app["uuid"]})
        return f"+OK {leg_uuid}\n"

    async def _cmd_uuid_recv_dtmf(self, args: str) -> str:
        parts = args.split()
        channel = self.channels.get(parts[0]) if parts else None
        if channel is None or len(parts) < 2:
            return "-ERR no such channel\n"
        if channel.eavesdrop is not None:
            mode = {"0": "listen", "1": "whisper", "3": "barge"}.get(parts[1][-1])
            if mode is not None:
                channel.eavesdrop = (channel.eavesdrop[0], mode)
                channel.eavesdrop_modes.append(mode)
        return "+OK\n"

    async def inbound_call(self, destination: str, caller: SimulatedCall,
                           bot: str = "inbound_shop", caller_id: str = "+15550100999",
                           variables: dict[str, str] | None = None) -> SimChannel:
        """A call arrives for a bot number. The dialplan (configs/freeswitch/dialplan)
        marks it ``callfleet_bot``, answers and parks it; the ESL controller then starts
        its media fork, and `caller` talks on it. `variables`: more channel variables
        the dialplan would set (e.g. ``callfleet_customer_tier`` from a CRM lookup)."""
        call_uuid = caller.meta.call_uuid
        channel = SimChannel(self, call_uuid, "inbound", destination,
                             {"origination_caller_id_number": caller_id, "callfleet_bot": bot,
                              **(variables or {})})
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
        if "loopback/" in dial:
            return await self._eavesdrop(args, dial)
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
            if not channel.start_fork(parts[2], 8000 if parts[4] == "8k" else 16000,
                                      parts[5] if len(parts) > 5 else None):
                return "-ERR Operation Failed\n"  # a bug is already attached
            return "+OK Success\n"
        if action == "send_text" and channel.control is not None:
            if len(parts) < 3:
                return "-ERR Operation Failed\n"
            try:
                await channel.control.send_text(parts[2])
            except Exception:  # the websocket has gone
                return "-ERR Operation Failed\n"
            return "+OK Success\n"
        if action == "stop" and channel.stop_fork():
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
