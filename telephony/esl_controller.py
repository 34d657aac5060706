"""The ESL controller: CallFleet's hands on one FreeSWITCH server.

It keeps one authenticated event-socket connection (greenswitch, via `GreenswitchLink`),
turns channel events into a `CallRecord` per call, and implements `CallControl`:
originate with gateway failover, transfer, bridge, hangup. On answer it starts the media
fork that brings the call's audio to the media gateway; it plays the drachtio module's
``playAudio`` files with ``uuid_broadcast``, stops them on ``killAudio``, and passes
DTMF on to the call session through the fork (``send_text``).

After a lost connection it reconnects and resyncs: channels FreeSWITCH no longer has are
closed in our records, channels we did not know are adopted. Records go to a
`CallRecordSink` (Redis in the cluster) on every change, so they outlive this process.
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
    CallControlError,
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
    f"{FORK}transfer", f"{FORK}disconnect",
)


class CallRecordSink(Protocol):
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
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task] = set()
        self._connected = asyncio.Event()
        self.resyncs = 0
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
        await self._api_ok(cmd.uuid_transfer(call_uuid, extension,
                                             context or self.settings.agent_context))
        record = self.calls.get(call_uuid)
        if record is not None:
            self._move(record, CallPhase.AGENT, "transfer")

    async def bridge(self, call_uuid: str, other_uuid: str) -> None:
        await self._api_ok(cmd.uuid_bridge(call_uuid, other_uuid))

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
        await self._fork_or_fail(record)

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

    async def _api_ok(self, command: str) -> str:
        try:
            out = await self._send(f"api {command}")
        except cmd.CommandArgumentError as exc:
            raise CallControlError(str(exc), retryable=False) from None
        if out.startswith("-ERR"):
            verb = command.split(" ", 1)[0]
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
        if self._link.connects > 1:
            self._spawn(self._resync())

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
            self._on_fork_event(headers.get("Event-Subclass", ""), call_uuid, headers)
            return
        record = self.calls.get(call_uuid)
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
                self._spawn(self._fork_or_fail(record))
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

    def _on_fork_event(self, subclass: str, call_uuid: str, headers: dict[str, str]) -> None:
        record = self.calls.get(call_uuid)
        if record is None or not subclass.startswith(FORK):
            return
        kind = subclass[len(FORK):]
        if kind == "connect":
            self._move(record, CallPhase.BOT, subclass)
        elif kind == "connect_failed":
            logger.warning("media fork could not reach the gateway for a call")
            self._spawn(self._rescue(record))
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

    async def _fork_or_fail(self, record: CallRecord) -> None:
        record.bot_requested = True
        if self._sink is not None:
            # the gateway admits the fork by this record (live? which bot, campaign,
            # lead?): it is stored before FreeSWITCH connects
            await self._sink.save(record)
        # the fork carries the audio parameters only; what the call is (bot, campaign,
        # lead, customer) the gateway reads from the record, never from the fork
        playback = record.variables.get("callfleet_playback")
        try:
            await self.start_media_fork(record.call_uuid, {"playback": playback} if playback else {},
                                        record.variables.get("callfleet_fork_rate"))
        except CallControlError as exc:
            logger.warning("could not start the media fork: %s", exc)
            await self._rescue(record)

    async def _rescue(self, record: CallRecord) -> None:
        """The bot cannot hear this call: hand it to people, or end it cleanly."""
        try:
            if self.settings.fallback_extension:
                await self.transfer(record.call_uuid, self.settings.fallback_extension)
            else:
                await self.hangup(record.call_uuid, "NORMAL_TEMPORARY_FAILURE")
        except CallControlError as exc:
            logger.warning("could not rescue a call without media: %s", exc)

    async def _resync(self) -> None:
        """After a reconnect: FreeSWITCH's channel list is the truth."""
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
        for record in list(self.calls.values()):
            if not record.ended and record.call_uuid not in live:
                record.hangup_cause = record.hangup_cause or "LOST_WHILE_DISCONNECTED"
                record.move(CallPhase.ENDED, now)
                self._changed(record, "resync")
        for call_uuid, row in live.items():
            if call_uuid and call_uuid not in self.calls:
                record = self._adopt({"Unique-ID": call_uuid,
                                      "Call-Direction": row.get("direction", "inbound")})
                if row.get("callstate") in ("ACTIVE", "HELD", "BRIDGED"):
                    self._move(record, CallPhase.ANSWERED, "resync")


def _is_b_leg(headers: dict[str, str]) -> bool:
    """The channel FreeSWITCH originates to bridge an existing call (the dialplan's
    ``bridge user/…`` to an agent): its events name the A-leg as the originator."""
    return headers.get("Other-Type") == "originator" or "variable_originator" in headers
