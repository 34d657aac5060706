"""The ESL controller: CallFleet's hands on one FreeSWITCH server.

It keeps one authenticated event-socket connection (greenswitch, via `GreenswitchLink`),
turns channel events into a `CallRecord` per call, and implements `CallControl`:
originate with gateway failover, transfer, bridge, hangup. On answer it starts the media
fork that brings the call's audio to the media gateway; it plays the drachtio module's
``playAudio`` files with ``uuid_broadcast``, stops them on ``killAudio``, and passes
DTMF on to the call session through the fork (``send_text``).

A call survives losing its media fork: when mod_audio_fork reports that the websocket
dropped (``disconnect`` without a body, or ``error``) while the channel is still with the
bot, the fork is started again at once (``stop`` to clear the module's bug, then
``start`` with a fresh credential) to the same media URL, where a load balancer or the
Serve route finds a healthy replica that resumes the call from Redis. Starts are bounded
(`fork_recovery`: attempts with backoff, a cap per call); after the last the call goes
to people or is hung up with a clear cause, never left in silence. A normal end of the
fork (the bot's ``disconnect`` with its data, or a handover) is never re-forked.

On every connect, first or after a lost connection, it resyncs: channels FreeSWITCH no
longer has are closed in our records, channels we did not know are adopted (or taken
back from the `CallRecordSink` when a restarted controller finds them there), and a
live call with the bot whose fork is not open is forked again. Records go to the sink
(Redis in the cluster) on every change, so they outlive this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from configs.settings import FreeswitchSettings
from telephony import esl_commands as cmd
from telephony import media_fork
from telephony.call_control import (
    CARRIER_CAUSES,
    EAVESDROP_MODES,
    CallControlError,
    CallGoneError,
    OriginateRequest,
    OriginateResult,
)
from telephony.call_fsm import CallPhase, CallRecord, TransitionRefused
from telephony.esl import ESLCommandError
from telephony.esl_bridge import ESLLinkError, GreenswitchLink, LinkSettings
from telephony.fork_auth import CREDENTIAL_FIELD, ForkCredentials
from telephony.media_fork import ForkMetadata

__all__ = ["CallRecordSink", "ESLController"]

logger = logging.getLogger(__name__)

FORK = "mod_audio_fork::"
EVENTS = (
    "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB", "DTMF", "CUSTOM",
    f"{FORK}connect", f"{FORK}connect_failed", f"{FORK}play_audio", f"{FORK}kill_audio",
    f"{FORK}transfer", f"{FORK}disconnect", f"{FORK}error",
)
#: phases in which the call is the bot's, so a lost fork is started again
_BOT_PHASES = frozenset({CallPhase.ANSWERED, CallPhase.BOT})


class CallRecordSink(Protocol):
    """Where call records go (`cluster.actors.esl.RedisCallRecordSink`). Optional, for
    a resync after a restart: ``live_records()`` (the records of calls not ended) and
    ``fork_open(call_uuid)`` (whether a gateway holds the call's fork lease)."""

    async def save(self, record: CallRecord) -> None: ...


Listener = Callable[[CallRecord, str], Awaitable[None] | None]


class ESLController:
    """Implements `telephony.call_control.CallControl` over one FreeSWITCH server."""

    def __init__(self, settings: FreeswitchSettings, sink: CallRecordSink | None = None) -> None:
        self.settings = settings
        self.calls: dict[str, CallRecord] = {}
        self._sink = sink
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._dialling: set[str] = set()
        self.supervisor_legs: dict[str, str] = {}  # eavesdropping leg -> the call it joined
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task] = set()
        self._connected = asyncio.Event()
        self.resyncs = 0
        self.reforks = 0  # forks started again after one dropped
        self._fork_waiters: dict[str, asyncio.Future[bool]] = {}  # a start awaiting connect
        self._keeping: set[str] = set()  # calls whose fork is being (re)started
        # each fork carries a short-lived credential for its call (telephony/fork_auth.py)
        self._credentials = ForkCredentials.from_settings(settings.fork_auth)
        if self._credentials is None:
            logger.warning("freeswitch.fork_auth.secret is not set: media forks carry no "
                           "credential, and only a loopback-only local gateway takes them")
        self._link = GreenswitchLink(
            LinkSettings(settings.host, settings.port, settings.password.get_secret_value(), EVENTS,
                         settings.connect_timeout_s, settings.command_timeout_s),
            on_event=self._on_event, on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
        )

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, wait_s: float | None = None) -> None:
        """Start connecting; with `wait_s`, return once connected (or raise)."""
        self._link.start()
        if wait_s is not None:
            await self.wait_connected(wait_s)

    async def stop(self) -> None:
        await self._link.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except asyncio.TimeoutError:
            raise CallControlError(
                f"FreeSWITCH event socket {self.settings.host}:{self.settings.port} "
                f"not reachable within {timeout_s:g} s") from None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def add_listener(self, listener: Listener) -> None:
        """`listener(record, what)` after each change (what: an event name or phase)."""
        self._listeners.append(listener)

    # -- CallControl ----------------------------------------------------------------

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        record = CallRecord(request.call_uuid, "outbound", destination=request.destination,
                            caller_id=request.caller_id_number, variables=dict(request.variables))
        self.calls[request.call_uuid] = record
        attempts: list[tuple[str, str]] = []
        # while dialling, a failed attempt's hangup events belong to that attempt (its
        # BACKGROUND_JOB says how it ended): they must not end the call's record
        self._dialling.add(request.call_uuid)
        try:
            for gateway in request.gateways:
                record.gateway = gateway
                try:
                    answered, cause = await self._originate_once(request, gateway)
                except cmd.CommandArgumentError as exc:
                    raise CallControlError(f"originate refused: {exc}", retryable=False) from None
                attempts.append((gateway, cause))
                if answered or cause not in CARRIER_CAUSES:
                    break
                logger.info("gateway %s failed with %s; trying the next one", gateway, cause)
        finally:
            self._dialling.discard(request.call_uuid)
        if not answered:
            record.hangup_cause = attempts[-1][1]
            self._move(record, CallPhase.ENDED, "originate_failed")
        return OriginateResult(call_uuid=request.call_uuid, answered=answered,
                               cause=attempts[-1][1], gateway=record.gateway, attempts=attempts)

    async def _originate_once(self, request: OriginateRequest, gateway: str) -> tuple[bool, str]:
        job = str(uuid.uuid4())
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._jobs[job] = waiter
        try:
            reply = await self._send(f"bgapi {cmd.originate(request, gateway)}",
                                     headers={"Job-UUID": job})
            if not reply.startswith("+OK"):
                return False, "ORIGINATE_REFUSED"
            wait = request.ring_timeout_s + self.settings.originate_slack_s
            body = await asyncio.wait_for(waiter, wait)
        except asyncio.TimeoutError:
            return False, "RECOVERY_ON_TIMER_EXPIRE"
        finally:
            self._jobs.pop(job, None)
        return cmd.parse_job_result(body)

    async def transfer(self, call_uuid: str, extension: str, context: str | None = None) -> None:
        self._live(call_uuid)
        await self._api_ok(cmd.uuid_transfer(call_uuid, extension,
                                             context or self.settings.agent_context))
        record = self.calls.get(call_uuid)
        if record is not None:
            self._move(record, CallPhase.AGENT, "transfer")

    async def bridge(self, call_uuid: str, other_uuid: str) -> None:
        self._live(call_uuid)
        await self._api_ok(cmd.uuid_bridge(call_uuid, other_uuid))

    async def eavesdrop(self, call_uuid: str, extension: str, mode: str = "listen",
                        context: str | None = None) -> str:
        """Ring a supervisor's `extension` and, on answer, join the call in `mode`
        (listen, whisper to the agent, or barge in); returns the supervisor's leg uuid,
        which `eavesdrop_mode` switches and `hangup` ends. Returns once FreeSWITCH took
        the request; the phone rings in the background."""
        if mode not in EAVESDROP_MODES:
            raise CallControlError(f"unknown eavesdrop mode {mode!r}", retryable=False)
        self._live(call_uuid)
        leg = str(uuid.uuid4())
        try:
            line = cmd.eavesdrop(leg, call_uuid, extension,
                                 context or self.settings.agent_context, mode)
        except cmd.CommandArgumentError as exc:
            raise CallControlError(f"eavesdrop refused: {exc}", retryable=False) from None
        self.supervisor_legs[leg] = call_uuid
        reply = await self._send(f"bgapi {line}", headers={"Job-UUID": str(uuid.uuid4())})
        if not reply.startswith("+OK"):
            self.supervisor_legs.pop(leg, None)
            raise CallControlError(f"eavesdrop failed: {reply.strip()[:200]}", retryable=False)
        return leg

    async def eavesdrop_mode(self, leg_uuid: str, mode: str) -> None:
        """Switch a supervisor's live eavesdrop between listen, whisper and barge."""
        if leg_uuid not in self.supervisor_legs:
            raise CallGoneError("no such supervisor leg")
        try:
            await self._api_ok(cmd.eavesdrop_mode(leg_uuid, mode))
        except cmd.CommandArgumentError as exc:
            raise CallControlError(str(exc), retryable=False) from None

    async def hangup(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        await self._api_ok(cmd.uuid_kill(call_uuid, cause))

    async def escalate(self, call_uuid: str) -> None:
        """Mark a call as waiting for a person (the skill router takes it from here)."""
        record = self.calls.get(call_uuid)
        if record is not None:
            self._move(record, CallPhase.ESCALATED, "escalate")

    async def connect_bot(self, call_uuid: str) -> None:
        """Start the media fork of an answered call (the dialer's choice to connect it)."""
        record = self.calls.get(call_uuid)
        if record is None or record.ended:
            raise CallControlError("no such live call", retryable=False)
        await self._keep_forked(record)

    async def play_and_hangup(self, call_uuid: str, file_name: str, duration_s: float) -> None:
        """Play a recorded message (e.g. the abandonment information message) and hang up
        once it has played. `file_name` is a base name in ``freeswitch.sounds_dir``; a
        path, ``..`` or an unsafe character is refused (CallControlError)."""
        await self._api_ok(cmd.uuid_broadcast(
            call_uuid, cmd.sound_path(self.settings.sounds_dir, file_name)))
        await asyncio.sleep(duration_s + 0.3)
        try:
            await self.hangup(call_uuid, "NORMAL_CLEARING")
        except CallControlError:
            pass  # the callee hung up first

    async def start_media_fork(self, call_uuid: str, metadata: dict | None = None,
                               fork_rate: str | None = None) -> None:
        if not self.settings.media_url:
            raise CallControlError("freeswitch.media_url is not set", retryable=False)
        url = f"{self.settings.media_url.rstrip('/')}/{call_uuid}"
        fork_rate = fork_rate if fork_rate in ("8k", "16k") else self.settings.fork_rate
        rate = 16000 if fork_rate == "16k" else 8000
        meta = ForkMetadata(call_uuid, rate, playback=self.settings.playback,
                            extra={**(metadata or {}), **self._fork_credential(call_uuid)})
        await self._api_ok(cmd.audio_fork_start(call_uuid, url, fork_rate, metadata=meta))

    # -- plumbing -------------------------------------------------------------------

    async def _send(self, line: str, headers: dict[str, str] | None = None) -> str:
        try:
            return await self._link.command(line, self.settings.command_timeout_s, headers)
        except ESLLinkError as exc:
            raise CallControlError(str(exc), retryable=True) from None
        except ESLCommandError as exc:
            raise CallControlError(str(exc), retryable=False) from None

    def _live(self, call_uuid: str) -> None:
        """Refuse at once a request for a call whose channel we saw end."""
        record = self.calls.get(call_uuid)
        if record is not None and record.ended:
            raise CallGoneError()

    async def _api_ok(self, command: str) -> str:
        try:
            out = await self._send(f"api {command}")
        except cmd.CommandArgumentError as exc:
            raise CallControlError(str(exc), retryable=False) from None
        if out.startswith("-ERR"):
            verb = command.split(" ", 1)[0]
            if "No such channel" in out or "Invalid uuid" in out:
                raise CallGoneError(f"{verb} failed: the channel no longer exists")
            raise CallControlError(f"{verb} failed: {out.strip()[:200]}", retryable=False)
        return out

    def _spawn(self, coro: Awaitable) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _move(self, record: CallRecord, to: CallPhase, what: str) -> None:
        try:
            record.move(to)
        except TransitionRefused as exc:
            logger.debug("ignored %s for a call: %s", what, exc)
            return
        self._changed(record, what)

    def _changed(self, record: CallRecord, what: str) -> None:
        if self._sink is not None:
            self._spawn(self._sink.save(record))
        for listener in self._listeners:
            try:
                result = listener(record, what)
                if asyncio.iscoroutine(result):
                    self._spawn(result)
            except Exception:
                logger.exception("call listener failed")
        if record.ended:  # keep ended calls briefly for late readers, then forget them
            asyncio.get_running_loop().call_later(60, self.calls.pop, record.call_uuid, None)

    # -- events (run on the event loop) ---------------------------------------------

    def _on_connected(self) -> None:
        self._connected.set()
        self._spawn(self._resync())  # every connect: this process may be new, or missed events

    def _on_disconnected(self, reason: str) -> None:
        self._connected.clear()
        logger.warning("lost FreeSWITCH event socket: %s", reason)

    def _on_event(self, headers: dict[str, str], body: str) -> None:
        name = headers.get("Event-Name", "")
        if name == "BACKGROUND_JOB":
            waiter = self._jobs.get(headers.get("Job-UUID", ""))
            if waiter is not None and not waiter.done():
                waiter.set_result(body)
            return
        call_uuid = headers.get("Unique-ID", "")
        if name == "CUSTOM":
            self._on_fork_event(headers.get("Event-Subclass", ""), call_uuid, headers, body)
            return
        record = self.calls.get(call_uuid)
        if call_uuid in self.supervisor_legs or headers.get("variable_callfleet_role") == "supervisor":
            if name == "CHANNEL_HANGUP_COMPLETE":  # a supervisor left (or never answered)
                self.supervisor_legs.pop(call_uuid, None)
            return  # an eavesdropping supervisor: not a call of its own, never a bot's
        if name == "CHANNEL_CREATE" and record is None:
            if _is_b_leg(headers):  # FreeSWITCH dialling an agent for one of our calls
                self._note_agent_leg(headers)
                return
            record = self._adopt(headers)
        if record is None:
            return
        if name == "CHANNEL_ANSWER":
            self._move(record, CallPhase.ANSWERED, name)
            # ours to fork: calls we originated, and inbound calls the dialplan marked
            # for a bot (configs/freeswitch/dialplan/callfleet.xml)
            # (a dialer's call waits: the dialer decides between bot and info message)
            if record.direction == "outbound":
                wanted = "callfleet_campaign" not in record.variables
            else:
                wanted = "callfleet_bot" in record.variables
            if wanted and not record.variables.get("callfleet_no_fork"):
                self._spawn(self._keep_forked(record))
        elif name == "CHANNEL_BRIDGE":
            record.agent_leg = headers.get("Other-Leg-Unique-ID") or record.agent_leg
            self._move(record, CallPhase.AGENT, name)
        elif name == "DTMF":
            digit = headers.get("DTMF-Digit", "")[:1]
            if digit and digit in "0123456789*#ABCD":
                record.dtmf += digit
                self._changed(record, name)
                self._spawn(self._forward(cmd.audio_fork_send_text,
                                          call_uuid, {"type": "dtmf", "data": {"digit": digit}}))
        elif name == "CHANNEL_HANGUP_COMPLETE":
            if call_uuid in self._dialling and record.phase is CallPhase.RINGING:
                return
            record.hangup_cause = headers.get("Hangup-Cause", "NORMAL_CLEARING")
            self._move(record, CallPhase.ENDED, name)

    def _on_fork_event(self, subclass: str, call_uuid: str, headers: dict[str, str],
                       body: str = "") -> None:
        record = self.calls.get(call_uuid)
        if record is None or not subclass.startswith(FORK):
            return
        kind = subclass[len(FORK):]
        if kind == "connect":
            self._fork_settled(call_uuid, True)
            self._move(record, CallPhase.BOT, subclass)
        elif kind == "connect_failed":
            logger.warning("media fork could not reach the gateway for a call")
            if not self._fork_settled(call_uuid, False):  # nobody is waiting on that start
                self._fork_lost(record, subclass)
        elif kind == "error" or (kind == "disconnect" and not _has_data(headers, body)):
            # the websocket dropped (the module's CONNECTION_DROPPED fires ``disconnect``
            # without a body), or the gateway said it cannot serve the fork: the channel
            # is still up, so the fork starts again on a healthy replica
            self._fork_settled(call_uuid, False)
            self._fork_lost(record, subclass)
        elif kind == "play_audio" and headers.get("file"):
            self._spawn(self._forward(cmd.uuid_broadcast, call_uuid, headers["file"]))
        elif kind == "kill_audio":
            self._spawn(self._forward(cmd.uuid_break, call_uuid))
        elif kind == "transfer":
            # the bot's handover: reason, skills, priority, brief, the conversation so far
            record.escalation = media_fork.parse_transfer(headers.get("data"))
            self._move(record, CallPhase.ESCALATED, subclass)
        elif kind == "disconnect" and record.phase is CallPhase.BOT:
            # the bot has said goodbye and closed its side: end the call
            self._spawn(self._forward(cmd.uuid_kill, call_uuid, "NORMAL_CLEARING"))

    def _note_agent_leg(self, headers: dict[str, str]) -> None:
        """A B-leg is part of its A-leg's call, not a call of its own: never adopted (it
        would be forked to a bot on answer) nor counted; its A-leg's record names it."""
        a_leg = self.calls.get(headers.get("Other-Leg-Unique-ID") or
                               headers.get("variable_originator", ""))
        if a_leg is not None and not a_leg.ended:
            a_leg.agent_leg = headers.get("Unique-ID")
            self._changed(a_leg, "agent leg")

    def _adopt(self, headers: dict[str, str]) -> CallRecord:
        record = CallRecord(
            headers["Unique-ID"], headers.get("Call-Direction", "inbound"),
            destination=headers.get("Caller-Destination-Number", ""),
            caller_id=headers.get("Caller-Caller-ID-Number", ""),
            variables={k[len("variable_"):]: v for k, v in headers.items()
                       if k.startswith("variable_callfleet_")},
        )
        self.calls[record.call_uuid] = record
        self._changed(record, "CHANNEL_CREATE")
        return record

    async def _forward(self, build: Callable[..., str], *args: Any) -> None:
        """Build a command from event data (checked like any other) and send it; a
        failure is logged, never raised into the event loop."""
        try:
            await self._api_ok(build(*args))
        except CallControlError as exc:
            logger.warning("%s failed: %s", build.__name__, exc)

    def _fork_credential(self, call_uuid: str) -> dict[str, str]:
        """The metadata entry that lets this call's fork in (none without a secret)."""
        if self._credentials is None:
            return {}
        return {CREDENTIAL_FIELD: self._credentials.issue(call_uuid)}

    def _fork_settled(self, call_uuid: str, connected: bool) -> bool:
        """Tell a start waiting for its fork how it went; False when none was waiting."""
        waiter = self._fork_waiters.get(call_uuid)
        if waiter is None or waiter.done():
            return False
        waiter.set_result(connected)
        return True

    def _fork_lost(self, record: CallRecord, what: str) -> None:
        if record.ended or record.phase not in _BOT_PHASES:
            return  # handed over, with an agent, or gone: nothing to resume
        logger.warning("media fork of a call lost (%s); starting it again", what,
                       extra={"call_uuid": record.call_uuid})
        self.reforks += 1
        self._spawn(self._keep_forked(record))

    def _wants_bot(self, record: CallRecord) -> bool:
        return not record.ended and record.phase in (*_BOT_PHASES, CallPhase.ESCALATED)

    async def _keep_forked(self, record: CallRecord) -> None:
        """Start the call's media fork (again): at most `fork_recovery.attempts` starts,
        waiting `backoff_s`, then twice as long, … between them, each with a fresh
        credential; a call that has had `max_forks` already, or whose starts all failed,
        is rescued (people, or a hang-up with a clear cause)."""
        policy, call_uuid = self.settings.fork_recovery, record.call_uuid
        if call_uuid in self._keeping:
            return  # a start is under way; it sees this failure through its waiter
        self._keeping.add(call_uuid)
        try:
            for attempt in range(policy.attempts):
                if attempt:
                    await asyncio.sleep(policy.backoff_s * 2 ** (attempt - 1))
                if not self._wants_bot(record):
                    return
                if record.forks >= policy.max_forks:
                    logger.warning("call has had %d media forks; no more", record.forks,
                                   extra={"call_uuid": call_uuid})
                    break
                try:
                    if await self._start_fork(record):
                        return
                except CallGoneError:
                    return
                except CallControlError as exc:
                    logger.warning("could not start the media fork: %s", exc)
                    if not self.settings.media_url:
                        break  # a configuration problem: trying again cannot help
            if self._wants_bot(record):
                await self._rescue(record)
        finally:
            self._keeping.discard(call_uuid)

    async def _start_fork(self, record: CallRecord) -> bool:
        """One ``uuid_audio_fork … start``; True once the module reports ``connect``."""
        call_uuid, again = record.call_uuid, record.forks > 0
        record.bot_requested = True
        record.forks += 1  # the gateway lets this fork take over an older fork's lease
        if self._sink is not None:
            # the gateway admits the fork by this record (live? which bot, campaign,
            # lead? which fork?): it is stored before FreeSWITCH connects
            await self._sink.save(record)
        if again:  # the module keeps its bug on the channel after a drop until ``stop``
            try:
                await self._api_ok(cmd.audio_fork_stop(call_uuid))
            except CallGoneError:
                raise
            except CallControlError:
                pass  # no bug left (it never connected): start will say
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._fork_waiters[call_uuid] = waiter
        # the fork carries the audio parameters only; what the call is (bot, campaign,
        # lead, customer) the gateway reads from the record, never from the fork
        playback = record.variables.get("callfleet_playback")
        try:
            await self.start_media_fork(call_uuid, {"playback": playback} if playback else {},
                                        record.variables.get("callfleet_fork_rate"))
            return await asyncio.wait_for(waiter, self.settings.fork_recovery.connect_wait_s)
        except asyncio.TimeoutError:
            logger.warning("media fork did not connect in time", extra={"call_uuid": call_uuid})
            return False
        finally:
            if self._fork_waiters.get(call_uuid) is waiter:
                del self._fork_waiters[call_uuid]

    async def _rescue(self, record: CallRecord) -> None:
        """The bot cannot hear this call: hand it to people, or end it with
        `fork_recovery.rescue_cause`."""
        try:
            if self.settings.fallback_extension:
                logger.warning("no media fork for a call: sent to the fallback extension",
                               extra={"call_uuid": record.call_uuid})
                await self.transfer(record.call_uuid, self.settings.fallback_extension)
            else:
                logger.warning("no media fork for a call: hung up (%s)",
                               self.settings.fork_recovery.rescue_cause,
                               extra={"call_uuid": record.call_uuid})
                await self.hangup(record.call_uuid, self.settings.fork_recovery.rescue_cause)
        except CallControlError as exc:
            logger.warning("could not rescue a call without media: %s", exc)

    async def _resync(self) -> None:
        """On every connect FreeSWITCH's channel list is the truth, reconciled with our
        records (and, in a new process, with the sink's): records of channels that are
        gone are closed, unknown channels adopted, and a call with the bot whose fork is
        not open (its gateway lease is free) is forked again."""
        await self._load_stored()
        # only records that existed before the channel list was asked for can be judged
        # by it: a call originated meanwhile is not in it yet
        known = {uuid_ for uuid_, record in self.calls.items() if not record.ended}
        try:
            out = await self._send("api show channels as json")
            rows = json.loads(out).get("rows") or []
        except (CallControlError, ValueError, AttributeError) as exc:
            logger.warning("channel resync failed: %s", exc)
            return
        self.resyncs += 1
        # a bridge's B-leg carries its A-leg's uuid as call_uuid: part of that call
        live = {row.get("uuid"): row for row in rows if isinstance(row, dict)
                and row.get("call_uuid") in (None, "", row.get("uuid"))}
        now = time.time()
        for record in [self.calls[u] for u in known if u in self.calls]:
            if (not record.ended and record.call_uuid not in live
                    and record.call_uuid not in self._dialling):
                record.hangup_cause = record.hangup_cause or "LOST_WHILE_DISCONNECTED"
                record.move(CallPhase.ENDED, now)
                self._changed(record, "resync")
        for call_uuid, row in live.items():
            if call_uuid and call_uuid not in self.calls and call_uuid not in self.supervisor_legs:
                record = self._adopt({"Unique-ID": call_uuid,
                                      "Call-Direction": row.get("direction", "inbound")})
                if row.get("callstate") in ("ACTIVE", "HELD", "BRIDGED"):
                    self._move(record, CallPhase.ANSWERED, "resync")
            elif call_uuid in known:
                await self._refork_if_unattached(self.calls[call_uuid])

    async def _load_stored(self) -> None:
        """Records of live calls this process does not hold (it was restarted)."""
        load = getattr(self._sink, "live_records", None)
        if load is None:
            return
        try:
            stored = await load()
        except Exception as exc:  # Redis down: the channel list alone still resyncs
            logger.warning("stored call records unavailable for the resync (%s)",
                           type(exc).__name__)
            return
        for record in stored:
            if record.call_uuid not in self.calls and record.call_uuid not in self.supervisor_legs:
                self.calls[record.call_uuid] = record

    async def _refork_if_unattached(self, record: CallRecord) -> None:
        """A live call with the bot whose fork no gateway holds (its drop happened while
        we could not hear it) gets its fork again."""
        fork_open = getattr(self._sink, "fork_open", None)
        if (fork_open is None or not record.bot_requested or record.phase not in _BOT_PHASES
                or record.call_uuid in self._keeping):
            return
        try:
            if await fork_open(record.call_uuid):
                return
        except Exception as exc:
            logger.warning("fork lease unreadable in the resync (%s)", type(exc).__name__)
            return
        self._fork_lost(record, "resync")


def _has_data(headers: dict[str, str], body: str) -> bool:
    """Whether a fork event carries the gateway's ``data`` (a header here, the event's
    body from the real module): the bot's own ``disconnect`` does; a dropped socket's
    does not."""
    return bool(headers.get("data") or (body or "").strip())


def _is_b_leg(headers: dict[str, str]) -> bool:
    """The channel FreeSWITCH originates to bridge an existing call (the dialplan's
    ``bridge user/…`` to an agent): its events name the A-leg as the originator."""
    return headers.get("Other-Type") == "originator" or "variable_originator" in headers
