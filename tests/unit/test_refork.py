"""A call survives a lost gateway replica (issue 16.5), on one floor in this process: a
real Redis, the FreeSWITCH simulator, the real ESL controller (greenswitch over TCP), two
media gateway replicas (the real fork runner, admission and script bot; models are the
shared fakes) behind a small TCP load balancer that sends each new fork to the first
replica that answers, as `freeswitch.media_url` would point at one.

Replica A dies mid-call the way a process does: its sockets vanish without a close
frame, and it neither gives back its fork lease nor records the call's end. FreeSWITCH
(the simulator, like mod_audio_fork on CONNECTION_DROPPED) fires
``mod_audio_fork::disconnect`` without a body; the controller forks the call again, the
balancer picks replica B, which resumes the dialog from Redis with the apology."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import textwrap
import time
import uuid

import numpy as np
import pytest
from pydantic import SecretStr

from bots.script import ScriptBot, load_script_text
from cluster.actors.esl import RedisCallRecordSink
from cluster.records.call_state import RedisCallDirectory, RedisCallRecorder, fork_lease_key
from configs.settings import FreeswitchSettings, GatewaySettings
from deployments.gateway.fork_admission import ForkAdmission
from deployments.gateway.media_server import MediaServer
from deployments.gateway.media_ws import serve_media_fork
from telephony.esl_controller import ESLController
from telephony.media_fork import ForkMetadata
from telephony.sim.fork_client import CallerTurn, SimulatedCall
from telephony.sim.switch import SimulatedSwitch
from tests.fakes.call import FakeTurnModels, speech
from training.models.outputs import IntentResult

pytestmark = [pytest.mark.unit, pytest.mark.timeout(90)]

SAID = "I want to cancel my order"
APOLOGY = "Sorry about that, the line dropped. Where were we?"
INTENTS = """
intents:
  cancel_order: {examples: [cancel my order, I want to cancel]}
  oos: {examples: [weather, football]}
"""
SCRIPT = """
bot: desk
intents: intents.yaml
start: greet
states:
  greet:
    ask: {prompt: "Hello, this is the shop. How can I help?"}
    on:
      - intent: cancel_order
        goto: confirm
  confirm:
    ask: {prompt: "Press one to confirm the cancellation."}
    on:
      - dtmf: "1"
        goto: done
  done:
    say: Your order is cancelled. Goodbye!
    enter: [{hangup: cancelled}]
"""


class Balancer:
    """A TCP load balancer: each new connection goes to the first backend that accepts
    it; when either side goes, the other is cut off abruptly (no close frame)."""

    def __init__(self, backends: list[int]):
        self.backends = backends
        self.server: asyncio.Server | None = None
        self.chosen: list[int] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader, writer) -> None:
        for port in self.backends:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.chosen.append(port)
            break
        else:
            writer.transport.abort()
            return

        async def copy(src, dst, other) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()
            other.transport.abort()

        await asyncio.gather(copy(reader, up_writer, writer), copy(up_reader, writer, up_writer))


class Replica:
    """One media gateway replica: its own media port, admission and fork runner. `kill()`
    is a process dying: sockets reset, and nothing more written to Redis by it."""

    def __init__(self, redis_url: str, bot: ScriptBot, settings: GatewaySettings):
        self.recorder = RedisCallRecorder(redis_url)
        self.directory = RedisCallDirectory(self.recorder.redis)
        self.admission = ForkAdmission(None, allow_unauthenticated=True, directory=self.directory)
        self.bot, self.settings = bot, settings
        self.models = FakeTurnModels(transcripts=[SAID],
                                     intents={SAID: IntentResult("cancel_order", 0.9)})
        self.media = MediaServer("127.0.0.1", 0, self._run)
        self.dead = False
        self.forks = 0

    async def _run(self, sock, call_uuid: str) -> str:
        self.forks += 1
        return await serve_media_fork(sock, call_uuid, self.settings, self.models,
                                      self.recorder, _OneBot(self.bot), admission=self.admission)

    async def kill(self) -> None:
        self.dead = True
        # a dead process writes nothing more: its lease stays until it expires
        self.recorder._write = _nothing
        self.directory.detach = _nothing
        self.media.server.close(close_connections=False)
        for conn in list(self.media.server.connections):
            conn.transport.abort()

    async def close(self) -> None:
        if not self.dead:
            self.media.server.close()
        await self.recorder.close()


async def _nothing(*_args, **_kw) -> None:
    return None


class _OneBot:
    def __init__(self, bot: ScriptBot):
        self.bot = bot

    async def for_call(self, meta: ForkMetadata) -> ScriptBot:
        return self.bot


async def wait_for(predicate, timeout: float = 15.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state is owned by other tasks
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def floor(redis_server, tmp_path):
    url = redis_server.url
    recorder = RedisCallRecorder(url)
    await recorder.redis.flushdb()
    await recorder.close()
    (tmp_path / "intents.yaml").write_text(INTENTS)
    bot = ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "desk.yaml", tmp_path))
    settings = GatewaySettings(resume_prompt=APOLOGY)
    a, b = Replica(url, bot, settings), Replica(url, bot, settings)
    await a.media.start()
    await b.media.start()
    balancer = Balancer([a.media.bound_port, b.media.bound_port])
    lb_port = await balancer.start()
    password = secrets.token_urlsafe(12)
    switch = SimulatedSwitch(password, linger_s=20)
    await switch.start()
    sink = RedisCallRecordSink(url)
    controller = ESLController(FreeswitchSettings(
        host="127.0.0.1", port=switch.port, password=SecretStr(password),
        media_url=f"ws://127.0.0.1:{lb_port}/media", fork_rate="8k", playback="binary"), sink)
    await controller.start(wait_s=10)
    parts = {"a": a, "b": b, "switch": switch, "controller": controller, "sink": sink,
             "balancer": balancer, "url": url}
    yield parts
    await controller.stop()
    await switch.stop()
    balancer.server.close()
    for replica in (a, b):
        await replica.close()
    await sink.redis.aclose()


def caller_for(call_uuid: str) -> SimulatedCall:
    """Says what they want, then (after the bot asks) presses 1 to confirm."""
    turns = [CallerTurn(np.frombuffer(speech(1.2, 8000), dtype="<i2"), SAID),
             CallerTurn(np.zeros(0, dtype=np.int16), dtmf="1", silence_s=0.8)]
    return SimulatedCall(ForkMetadata(call_uuid, 8000, caller="+15550107788"), turns, pause_s=0.2)


async def test_a_lost_replica_s_call_is_reforked_and_resumes_where_it_was(floor):
    a, b, switch, ctl = floor["a"], floor["b"], floor["switch"], floor["controller"]
    call_uuid = str(uuid.uuid4())
    channel = await switch.inbound_call("+15550199000", caller_for(call_uuid), bot="desk")
    # the first turn is answered on replica A: the dialog is in `confirm`
    await wait_for(lambda: "Press one to confirm the cancellation." in a.models.spoken)
    await wait_for(lambda: channel.turns_done == 1 or channel.report.turns_done == 1)
    assert a.forks == 1 and b.forks == 0
    lease_before = await b.recorder.redis.get(fork_lease_key(call_uuid))

    killed_at = time.monotonic()
    await a.kill()
    # FreeSWITCH reports the drop; the controller forks again; B takes it over
    await wait_for(lambda: channel.fork_events.count("connect") == 2, 5)
    assert time.monotonic() - killed_at < 2.0
    assert "disconnect" in channel.fork_events and "connect_failed" not in channel.fork_events
    assert ctl.reforks == 1
    # the call goes on on B: the apology, then the question where it was, not the greeting
    await wait_for(lambda: channel.hangup_cause is not None, 20)
    assert b.models.spoken[:2] == [APOLOGY, "Press one to confirm the cancellation."]
    assert "Hello, this is the shop. How can I help?" not in b.models.spoken
    assert b.models.spoken[-1] == "Your order is cancelled. Goodbye!"
    assert channel.hangup_cause == "NORMAL_CLEARING"
    record = ctl.calls[call_uuid]
    assert record.forks == 2 and record.ended
    assert [p for p, _ in record.history] == ["ringing", "answered", "bot", "ended"]
    # the dead replica's lease (generation 1) was taken over by the new fork (generation 2)
    assert lease_before is not None and lease_before.startswith(b"1.")
    # one conversation in Redis: A's turn, then B's, the state carried on
    doc = await b.recorder.get_call(call_uuid)
    assert [t.get("caller") or t.get("dtmf") for t in doc["turns"]] == [SAID, "1"]
    assert [t["n"] for t in doc["turns"]] == [1, 2]
    assert doc["state"]["state"] == "done"
    assert json.loads(json.dumps(doc["outcome"]))["reason"] == "bot closed the call"


async def test_a_normal_end_of_the_fork_is_not_reforked(floor):
    a, switch, ctl = floor["a"], floor["switch"], floor["controller"]
    call_uuid = str(uuid.uuid4())
    channel = await switch.inbound_call("+15550199000", caller_for(call_uuid), bot="desk")
    await wait_for(lambda: channel.hangup_cause is not None, 20)
    assert channel.fork_events.count("connect") == 1 and ctl.reforks == 0
    assert ctl.calls[call_uuid].forks == 1 and a.forks == 1


async def test_no_healthy_replica_left_rescues_the_call_with_a_clear_cause(floor):
    a, b, switch, ctl = floor["a"], floor["b"], floor["switch"], floor["controller"]
    ctl.settings.fork_recovery.backoff_s = 0.1
    call_uuid = str(uuid.uuid4())
    channel = await switch.inbound_call("+15550199000", caller_for(call_uuid), bot="desk")
    await wait_for(lambda: "Press one to confirm the cancellation." in a.models.spoken)
    await b.kill()
    await a.kill()
    await wait_for(lambda: channel.hangup_cause is not None, 10)
    assert channel.hangup_cause == "MEDIA_TIMEOUT"  # fork_recovery.rescue_cause
    assert channel.fork_events.count("connect_failed") == 3  # fork_recovery.attempts
    assert ctl.calls[call_uuid].ended


async def test_a_restarted_controller_forks_again_a_call_whose_fork_dropped_meanwhile(floor):
    a, switch, ctl, sink = floor["a"], floor["switch"], floor["controller"], floor["sink"]
    call_uuid = str(uuid.uuid4())
    channel = await switch.inbound_call("+15550199000", caller_for(call_uuid), bot="desk")
    await wait_for(lambda: "Press one to confirm the cancellation." in a.models.spoken)
    await ctl.stop()  # the controller's process goes away ...
    await a.kill()  # ... and while nobody listens, the fork drops
    await wait_for(lambda: "disconnect" in channel.fork_events, 5)
    await asyncio.sleep(0.2)
    await a.recorder.redis.delete(fork_lease_key(call_uuid))  # the dead lease expired
    fresh = ESLController(ctl.settings, sink)  # a new process: it knows calls from Redis only
    floor["controller"] = fresh
    await fresh.start(wait_s=10)
    await wait_for(lambda: channel.fork_events.count("connect") == 2, 5)
    await wait_for(lambda: channel.hangup_cause is not None, 20)
    assert floor["b"].models.spoken[0] == APOLOGY
    assert channel.hangup_cause == "NORMAL_CLEARING"
    assert fresh.calls[call_uuid].forks == 2


async def test_the_fork_lease_passes_to_a_newer_fork_only(redis_server):
    """One fork per call, but a fork the controller numbered higher (started after the
    older one's websocket dropped) takes over the lease a dead replica still holds."""
    recorder = RedisCallRecorder(redis_server.url)
    directory = RedisCallDirectory(recorder.redis)
    try:
        call = str(uuid.uuid4())
        assert await directory.attach(call, "1.aaaa", 30, 1)
        assert not await directory.attach(call, "1.bbbb", 30, 1)  # a second fork at once
        assert await directory.attach(call, "2.cccc", 30, 2)  # the re-fork
        assert not await directory.refresh(call, "1.aaaa", 30)  # the old fork lost it
        assert not await directory.attach(call, "1.aaaa", 30, 1)  # and cannot take it back
        await directory.detach(call, "1.aaaa")  # nor give away the new fork's
        assert await recorder.redis.get(fork_lease_key(call)) == b"2.cccc"
    finally:
        await recorder.close()
