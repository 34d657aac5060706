"""The media-fork runner (deployments/gateway/media_ws.py `serve_media_fork`) over an in-process
fork socket, with a real bot script and call session and fake models: what FreeSWITCH's
module sees. A fork that breaks the protocol is closed with a close code and a reason
(and its call record says why), a malformed first frame is refused before any bot runs,
one broken fork leaves the other calls alone, and a bot that ends the call tells the
module what comes next (transfer or disconnect) before closing normally."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bots.script import ScriptBot, load_script_text
from configs.settings import GatewaySettings
from deployments.gateway import media_ws
from deployments.gateway.fork_admission import ForkAdmission
from deployments.gateway.media_server import MediaServer
from deployments.gateway.media_ws import serve_media_fork
from telephony import media_fork
from tests.fakes.call import FakeRecorder, FakeTurnModels
from tests.fakes.directory import FakeCallDirectory
from tests.fakes.fork_socket import FakeForkSocket

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

INTENTS = """
intents:
  affirm: {examples: ["yes", yeah, sure, correct, right]}
  deny: {examples: ["no", nope, no thanks, not really, nah]}
  oos: {examples: [weather, tell me a joke, football, recipe, bank balance]}
"""

SCRIPT = """
bot: front_desk
intents: intents.yaml
start: greet
global:
  - dtmf: "0"
    goto: handover
  - dtmf: "9"
    goto: bye
states:
  greet:
    ask: {prompt: "Hello, this is the front desk. How can I help?"}
    on:
      - intent: affirm
        goto: bye
      - intent: deny
        goto: bye
  handover:
    say: Connecting you now.
    enter: [{transfer: {skill: support, priority: 6, reason: caller pressed zero}}]
  bye:
    say: Goodbye.
    enter: [{hangup: done}]
"""

GREETING = "Hello, this is the front desk. How can I help?"
SILENCE_20MS = b"\x00\x00" * 160  # one 8 kHz L16 frame


class Bots:
    """The bot registry's port: one script for every call, or no usable script at all."""

    def __init__(self, bot: ScriptBot | None) -> None:
        self.bot = bot
        self.asked: list[str] = []

    async def for_call(self, meta: media_fork.ForkMetadata) -> ScriptBot:
        self.asked.append(meta.call_uuid)
        if self.bot is None:
            raise RuntimeError("no bot script is loaded")
        return self.bot


class Floor:
    """Everything one gateway replica shares between its calls."""

    def __init__(self, bots: Bots) -> None:
        self.settings = GatewaySettings()
        self.models = FakeTurnModels()  # no speech is sent here: ASR would fail the turn
        self.records = FakeRecorder()
        self.bots = bots
        # a loopback-only local gateway: forks of calls it has no record of come in
        # without a credential (tests/unit/test_fork_admission.py covers the rest)
        self.admission = ForkAdmission(None, allow_unauthenticated=True,
                                       directory=FakeCallDirectory())

    def run(self, sock: FakeForkSocket, call_uuid: str) -> asyncio.Task[str]:
        return asyncio.create_task(serve_media_fork(
            sock, call_uuid, self.settings, self.models, self.records, self.bots,
            admission=self.admission))


@pytest.fixture
def bot(tmp_path: Path) -> ScriptBot:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    return ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "front_desk.yaml", tmp_path))


@pytest.fixture
def floor(bot: ScriptBot) -> Floor:
    return Floor(Bots(bot))


def metadata(call_uuid: str, **fields: Any) -> str:
    return json.dumps({"callId": call_uuid, "sampleRate": 8000, "direction": "inbound", **fields})


def dtmf(digit: str) -> str:
    return json.dumps({"type": "dtmf", "data": {"digit": digit}})


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def greeted(floor: Floor, call_uuid: str) -> tuple[FakeForkSocket, asyncio.Task[str]]:
    """A fork that has sent its metadata and heard the whole greeting go out."""
    sock = FakeForkSocket()
    sock.feed(metadata(call_uuid))
    task = floor.run(sock, call_uuid)
    await until(lambda: "mark" in sock.command_types())
    return sock, task


# ---- before the call starts ---------------------------------------------------------------


async def test_a_fork_without_the_audio_subprotocol_is_closed_with_the_reason(floor: Floor) -> None:
    sock = FakeForkSocket(offered=["chat"])
    sock.feed(metadata("call-1"))
    assert await floor.run(sock, "call-1") == "wrong subprotocol"
    assert sock.accepted == [None]
    assert sock.closed == (media_fork.CLOSE_PROTOCOL_ERROR, "subprotocol audio.drachtio.org required")
    assert floor.bots.asked == [] and floor.records.started == [] and sock.sent == []


@pytest.mark.parametrize(("first_frame", "code", "reason"), [
    (SILENCE_20MS, media_fork.CLOSE_PROTOCOL_ERROR,
     "binary frame before metadata: the first frame must be the JSON metadata text"),
    ("hello", media_fork.CLOSE_INVALID_PAYLOAD, "metadata is not JSON (Expecting value)"),
    ("[1, 2]", media_fork.CLOSE_INVALID_PAYLOAD, "metadata must be a JSON object"),
    (metadata("call-2"), media_fork.CLOSE_POLICY,
     "bad metadata: callId differs from the URL's call uuid"),
    (metadata("call-1", sampleRate=44100), media_fork.CLOSE_POLICY,
     "bad metadata: sampleRate must be one of [8000, 16000]"),
    (metadata("call-1", note="x" * 9000), media_fork.CLOSE_TOO_BIG,
     "metadata is 9076 bytes; the limit is 8192"),
], ids=["binary", "not-json", "not-an-object", "other-call", "sample-rate", "too-big"])
async def test_a_malformed_first_frame_is_refused_before_any_bot_runs(
        floor: Floor, first_frame: bytes | str, code: int, reason: str) -> None:
    sock = FakeForkSocket()
    sock.feed(first_frame)
    assert await floor.run(sock, "call-1") == reason
    assert sock.accepted == [media_fork.SUBPROTOCOL]
    assert sock.closed == (code, reason)
    assert sock.sent == []  # not a word of greeting
    assert floor.bots.asked == [] and floor.records.started == []


async def test_a_module_that_sends_no_metadata_is_closed_after_the_timeout(
        floor: Floor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_ws, "METADATA_TIMEOUT_S", 0.05)
    silent = FakeForkSocket()
    assert await floor.run(silent, "call-1") == "no metadata"
    assert silent.closed == (media_fork.CLOSE_POLICY, "no metadata received")
    gone = FakeForkSocket()
    gone.hang_up()
    assert await floor.run(gone, "call-2") == "no metadata"
    assert floor.records.started == []


async def test_no_usable_bot_script_ends_the_fork_with_an_internal_error() -> None:
    floor = Floor(Bots(None))
    sock = FakeForkSocket()
    sock.feed(metadata("call-1"))
    assert await floor.run(sock, "call-1") == "no bot"
    assert sock.closed == (media_fork.CLOSE_INTERNAL_ERROR, "no bot script available")
    assert sock.sent == [] and floor.records.started == []


# ---- during the call ------------------------------------------------------------------------


async def test_the_greeting_plays_then_a_key_press_hands_the_call_to_a_person(floor: Floor) -> None:
    sock, task = await greeted(floor, "call-1")
    assert sock.audio == FakeTurnModels.pcm_of(GREETING, 8000)  # 40 ms, as two 20 ms frames
    assert {len(f) for f in sock.sent if isinstance(f, bytes)} == {320}
    sock.feed(*[SILENCE_20MS] * 5)  # the caller's line: accepted, nothing to answer
    sock.feed(json.dumps({"type": "mark", "data": {"name": "seg-1", "event": "playout"}}))
    sock.feed(dtmf("0"))
    assert await asyncio.wait_for(task, 10) == "escalated"

    handover = sock.commands()[-1]
    assert handover.type == "transfer"
    assert handover.data["reason"] == "caller pressed zero"
    assert handover.data["skills"] == ["support"] and handover.data["priority"] == 6
    assert sock.closed == (media_fork.CLOSE_NORMAL, "escalated")
    assert floor.models.spoken == [GREETING, "Connecting you now."]
    assert floor.records.started == ["call-1"] and floor.records.end_reason("call-1") == "escalated"
    assert len(floor.records.turns["call-1"]) == 1  # the key press


async def test_a_goodbye_in_play_audio_mode_disconnects_the_call(floor: Floor) -> None:
    sock = FakeForkSocket()
    sock.feed(metadata("call-1", playback="playAudio"))
    task = floor.run(sock, "call-1")
    await until(lambda: "playAudio" in sock.command_types())
    greeting = sock.commands()[0]
    assert greeting.data["textContent"] == GREETING
    assert greeting.audio() == (FakeTurnModels.pcm_of(GREETING, 8000), 8000)
    sock.feed(dtmf("9"))
    assert await asyncio.wait_for(task, 10) == "bot closed the call"
    assert sock.command_types() == ["playAudio", "playAudio", "disconnect"]
    assert sock.closed == (media_fork.CLOSE_NORMAL, "bot closed the call")
    assert sock.audio == b""  # no binary frames in this mode


@pytest.mark.parametrize(("frame", "code", "reason"), [
    (b"\x00" * 3, media_fork.CLOSE_INVALID_PAYLOAD,
     "odd-length L16 frame (3 bytes): 16-bit PCM needs an even count"),
    (b"\x00" * 16386, media_fork.CLOSE_TOO_BIG, "audio frame of 16386 bytes exceeds 16384"),
    ("not json", media_fork.CLOSE_INVALID_PAYLOAD, "text frame is not JSON"),
], ids=["odd-length", "too-big", "text-not-json"])
async def test_a_protocol_error_mid_call_closes_the_fork_with_the_reason(
        floor: Floor, frame: bytes | str, code: int, reason: str) -> None:
    sock, task = await greeted(floor, "call-1")
    sock.feed(SILENCE_20MS, frame, SILENCE_20MS)
    assert await asyncio.wait_for(task, 10) == f"protocol error: {reason}"
    assert sock.closed == (code, reason)
    assert "transfer" not in sock.command_types() and "disconnect" not in sock.command_types()
    assert floor.records.end_reason("call-1") == f"protocol error: {reason}"


async def test_a_broken_fork_leaves_the_other_calls_running(floor: Floor) -> None:
    good, good_task = await greeted(floor, "call-good")
    bad, bad_task = await greeted(floor, "call-bad")
    bad.feed(b"\x01" * 5)
    assert (await asyncio.wait_for(bad_task, 10)).startswith("protocol error: odd-length")
    assert bad.closed[0] == media_fork.CLOSE_INVALID_PAYLOAD
    assert not good_task.done() and good.closed is None

    good.feed(SILENCE_20MS, dtmf("0"))
    assert await asyncio.wait_for(good_task, 10) == "escalated"
    assert good.closed == (media_fork.CLOSE_NORMAL, "escalated")
    assert floor.records.end_reason("call-good") == "escalated"


async def test_the_caller_hanging_up_ends_the_call_quietly(floor: Floor) -> None:
    sock, task = await greeted(floor, "call-1")
    sock.hang_up()
    assert await asyncio.wait_for(task, 10) == "caller hung up"
    assert sock.closed is None  # nothing to close: the module already did
    assert floor.records.end_reason("call-1") == "caller hung up"


async def test_a_line_lost_while_the_bot_talks_ends_the_call_without_an_error(floor: Floor) -> None:
    sock = FakeForkSocket()
    sock.feed(metadata("call-1"))
    task = floor.run(sock, "call-1")
    await until(lambda: bool(sock.sent))  # the greeting is going out
    sock.drop()
    assert await asyncio.wait_for(task, 10) == "caller hung up"
    assert floor.records.end_reason("call-1") == "caller hung up"


# ---- the same runner behind the media port, over real sockets ----------------------------


@pytest.fixture
async def media_port(floor: Floor) -> AsyncIterator[str]:
    """The gateway's media port on 127.0.0.1 running the real fork runner."""

    async def run_fork(sock, call_uuid: str) -> str:
        return await serve_media_fork(sock, call_uuid, floor.settings, floor.models,
                                      floor.records, floor.bots, admission=floor.admission)

    server = MediaServer("127.0.0.1", 0, run_fork)
    await server.start()
    yield f"ws://127.0.0.1:{server.bound_port}/media"
    await server.drain(5)


async def closed_with(ws) -> tuple[int, str]:
    """Read until the server closes; the close code and reason the module got."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.recv()
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def until_mark(ws) -> list[bytes]:
    """The greeting's audio frames, up to its mark."""
    frames = []
    while isinstance(frame := await ws.recv(), bytes):
        frames.append(frame)
    assert media_fork.parse_server_text(frame).type == "mark"
    return frames


async def test_on_the_media_port_a_bad_fork_is_closed_and_the_others_carry_on(
        floor: Floor, media_port: str) -> None:
    async with connect(f"{media_port}/call-good", subprotocols=[media_fork.SUBPROTOCOL]) as good, \
            connect(f"{media_port}/call-bad", subprotocols=[media_fork.SUBPROTOCOL]) as bad:
        await good.send(metadata("call-good"))
        await bad.send(metadata("call-bad"))
        assert b"".join(await until_mark(good)) == FakeTurnModels.pcm_of(GREETING, 8000)
        await until_mark(bad)

        await bad.send(b"\x00" * 3)
        assert await closed_with(bad) == (
            media_fork.CLOSE_INVALID_PAYLOAD,
            "odd-length L16 frame (3 bytes): 16-bit PCM needs an even count")

        await good.send(SILENCE_20MS)
        await good.send(dtmf("0"))
        frames = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(await good.recv())
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (media_fork.CLOSE_NORMAL,
                                                                     "escalated")
        handover = media_fork.parse_server_text(frames[-1])
        assert handover.type == "transfer" and handover.data["reason"] == "caller pressed zero"
    await until(lambda: {"call-good", "call-bad"} <= floor.records.ended.keys())
    assert floor.records.end_reason("call-bad").startswith("protocol error: odd-length")
    assert floor.records.end_reason("call-good") == "escalated"


async def test_on_the_media_port_a_bad_start_is_refused_with_a_reason(media_port: str) -> None:
    async with connect(f"{media_port}/call-1") as no_subprotocol:
        assert await closed_with(no_subprotocol) == (
            media_fork.CLOSE_PROTOCOL_ERROR, "subprotocol audio.drachtio.org required")
    async with connect(f"{media_port}/call-2", subprotocols=[media_fork.SUBPROTOCOL]) as audio_first:
        await audio_first.send(SILENCE_20MS)
        assert await closed_with(audio_first) == (
            media_fork.CLOSE_PROTOCOL_ERROR,
            "binary frame before metadata: the first frame must be the JSON metadata text")
    async with connect(f"{media_port}/call-3", subprotocols=[media_fork.SUBPROTOCOL]) as wrong_id:
        await wrong_id.send(metadata("call-4"))
        assert await closed_with(wrong_id) == (
            media_fork.CLOSE_POLICY, "bad metadata: callId differs from the URL's call uuid")
