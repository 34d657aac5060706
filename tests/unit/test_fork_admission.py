"""Who may open a media fork (deployments/gateway/fork_admission.py), through the real fork
runner (`serve_media_fork`) over an in-process socket, a real bot script and fake models:
a fork needs a valid credential for its own call (or, in loopback-only local mode, none),
the call must be live in CallFleet's records and not already forked, the replica must
have room; and what the call is (bot, campaign, lead, customer, numbers) comes from the
records, whatever the fork's metadata says. Also the Redis side of those records
(`RedisCallDirectory`) against a real redis-server, and the refusals as a real websocket
client on the media port sees them."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bots.script import ScriptBot, load_script_text
from cluster.actors.esl import RedisCallRecordSink
from cluster.dialer.leads import Lead
from cluster.records.call_state import (
    DirectoryUnavailable,
    RedisCallDirectory,
    RedisCallRecorder,
    fork_lease_key,
)
from cluster.sim.simulate import ForkIssuer
from configs.settings import GatewaySettings, load_settings
from deployments.gateway.fork_admission import CLOSE_TRY_AGAIN, ForkAdmission, ForkRefused
from deployments.gateway.media_server import MediaServer
from deployments.gateway.media_ws import serve_media_fork
from telephony import media_fork
from telephony.call_fsm import CallPhase, CallRecord
from telephony.fork_auth import ForkCredentials
from telephony.media_fork import ForkMetadata
from telephony.sim.fork_client import SimulatedCall
from tests.fakes.call import FakeActionSink, FakeRecorder, FakeTurnModels, dtmf, until
from tests.fakes.directory import FakeCallDirectory, FakeLeads, live_call
from tests.fakes.fork_socket import FakeForkSocket

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

SECRET = "fork-admission-unit-test-secret"
CALLER = "+15550100111"  # what the controller recorded: never in a log line

INTENTS = """
intents:
  affirm: {examples: ["yes", yeah, sure, correct, right]}
  oos: {examples: [weather, tell me a joke, football, recipe, bank balance]}
"""

SCRIPT = """
bot: front_desk
intents: intents.yaml
start: greet
global:
  - dtmf: "0"
    goto: handover
states:
  greet:
    ask: {prompt: "Hello, this is the front desk. How can I help?"}
  handover:
    say: Connecting you now.
    enter: [{transfer: {skill: support, priority: 6, reason: caller pressed zero}}]
"""


class Bots:
    """The bot registry's port: one bot; remembers the metadata of each call it served."""

    def __init__(self, bot: ScriptBot) -> None:
        self.bot = bot
        self.metas: list[ForkMetadata] = []

    async def for_call(self, meta: ForkMetadata) -> ScriptBot:
        self.metas.append(meta)
        return self.bot


class Gateway:
    """One replica's fork runner with its admission."""

    def __init__(self, bot: ScriptBot, *, calls=(), local: bool = False,
                 secret: str | None = SECRET, max_forks: int = 100, leads=None) -> None:
        self.directory = FakeCallDirectory(calls)
        self.credentials = ForkCredentials(SECRET)
        self.admission = ForkAdmission(ForkCredentials(secret) if secret else None,
                                       allow_unauthenticated=local, directory=self.directory,
                                       leads=leads, max_forks=max_forks)
        self.settings = GatewaySettings()
        self.models = FakeTurnModels()
        self.records = FakeRecorder()
        self.sink = FakeActionSink()
        self.bots = Bots(bot)

    def run(self, sock: FakeForkSocket, call_uuid: str) -> asyncio.Task[str]:
        return asyncio.create_task(serve_media_fork(
            sock, call_uuid, self.settings, self.models, self.records, self.bots, self.sink,
            admission=self.admission))

    def fork(self, call_uuid: str, credential: str | None = "issue", **fields: Any) -> FakeForkSocket:
        """A fork whose metadata is sent: with a fresh credential for its call by default."""
        doc: dict[str, Any] = {"callId": call_uuid, "sampleRate": 8000, **fields}
        if credential == "issue":
            doc["credential"] = self.credentials.issue(call_uuid)
        elif credential is not None:
            doc["credential"] = credential
        sock = FakeForkSocket()
        sock.feed(json.dumps(doc))
        return sock

    async def greeted(self, call_uuid: str, **kw: Any) -> tuple[FakeForkSocket, asyncio.Task[str]]:
        sock = self.fork(call_uuid, **kw)
        task = self.run(sock, call_uuid)
        await until(lambda: bool({"mark", "playAudio"} & set(sock.command_types()))
                    or task.done())
        assert not task.done(), task.result()
        return sock, task


@pytest.fixture
def bot(tmp_path: Path) -> ScriptBot:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    return ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "front_desk.yaml", tmp_path))


async def refused_with(gw: Gateway, sock: FakeForkSocket, call_uuid: str) -> tuple[int, str]:
    reason = await asyncio.wait_for(gw.run(sock, call_uuid), 5)
    assert sock.closed is not None and sock.closed[1] == reason
    assert sock.sent == []  # not a word of greeting
    return sock.closed


# ---- the credential ---------------------------------------------------------------------------


async def test_a_live_call_with_a_valid_credential_gets_its_bot(bot: ScriptBot) -> None:
    gw = Gateway(bot, calls=[live_call("call-1", "answered", bot="front_desk")])
    sock, task = await gw.greeted("call-1")
    assert gw.directory.leases.keys() == {"call-1"}  # the fork holds its call
    assert gw.bots.metas[0].extra == {"bot": "front_desk"}
    sock.hang_up()
    assert await asyncio.wait_for(task, 5) == "caller hung up"
    assert gw.directory.leases == {}  # given back at the end


@pytest.mark.parametrize(("credential", "reason"), [
    (None, "credential required"),
    ("v1.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "credential not valid for this call"),
    ("not-a-credential", "credential malformed"),
    ("other-call", "credential not valid for this call"),
    ("expired", "credential expired"),
    ("tampered", "credential not valid for this call"),
], ids=["missing", "forged", "malformed", "wrong-call", "expired", "tampered"])
async def test_without_a_valid_credential_no_bot_runs(
        bot: ScriptBot, credential: str | None, reason: str) -> None:
    gw = Gateway(bot, calls=[live_call("call-1")])
    if credential == "other-call":
        credential = gw.credentials.issue("call-2")
    elif credential == "expired":
        credential = gw.credentials.issue("call-1", ttl_s=-5)
    elif credential == "tampered":
        version, expiry, signature = gw.credentials.issue("call-1").split(".")
        credential = f"{version}.{int(expiry) + 86_400}.{signature}"
    sock = gw.fork("call-1", credential)
    assert await refused_with(gw, sock, "call-1") == (media_fork.CLOSE_POLICY, reason)
    assert gw.bots.metas == [] and gw.records.started == [] and gw.directory.leases == {}


async def test_a_gateway_without_a_secret_outside_local_mode_refuses_every_fork(bot) -> None:
    gw = Gateway(bot, calls=[live_call("call-1")], secret=None)
    code, reason = await refused_with(gw, gw.fork("call-1"), "call-1")
    assert code == media_fork.CLOSE_INTERNAL_ERROR
    assert reason == "credentials cannot be checked: no fork secret on the gateway"


# ---- the call must be live and not already forked -----------------------------------------------


@pytest.mark.parametrize(("phase", "reason"), [
    (None, "unknown call"),
    ("ended", "call has ended"),
    ("ringing", "call is not with the bot"),
    ("agent", "call is not with the bot"),
])
async def test_a_call_that_is_not_live_with_the_bot_is_refused(
        bot: ScriptBot, phase: str | None, reason: str) -> None:
    gw = Gateway(bot, calls=[live_call("call-1", phase)] if phase else [])
    assert await refused_with(gw, gw.fork("call-1"), "call-1") == (media_fork.CLOSE_POLICY, reason)
    assert gw.records.started == []


async def test_a_second_fork_of_a_live_call_is_refused_and_a_re_fork_after_close_resumes(
        bot: ScriptBot) -> None:
    gw = Gateway(bot, calls=[live_call("call-1", "bot")])
    first, first_task = await gw.greeted("call-1")
    intruder = gw.fork("call-1")  # even with a valid credential of its own
    assert await refused_with(gw, intruder, "call-1") == (
        media_fork.CLOSE_POLICY, "call already has an open media fork")
    assert not first_task.done() and first.closed is None  # the call itself goes on
    first.drop()  # the socket is lost
    assert await asyncio.wait_for(first_task, 5) == "caller hung up"
    again, again_task = await gw.greeted("call-1")  # FreeSWITCH forks again: fresh credential
    assert gw.records.started == ["call-1", "call-1"]  # the same call, resumed
    again.hang_up()
    await asyncio.wait_for(again_task, 5)


async def test_call_records_that_cannot_be_read_mean_try_again_later(bot: ScriptBot) -> None:
    gw = Gateway(bot, calls=[live_call("call-1")])
    gw.directory.unavailable = True
    assert await refused_with(gw, gw.fork("call-1"), "call-1") == (
        CLOSE_TRY_AGAIN, "call records unavailable; try again later")


# ---- loopback-only local mode ----------------------------------------------------------------------


async def test_local_mode_takes_a_fork_without_a_credential_but_never_reuses_a_call_id(
        bot: ScriptBot) -> None:
    gw = Gateway(bot, calls=[live_call("ended-1", "ended")], local=True)
    sock, task = await gw.greeted("new-1", credential=None)
    sock.hang_up()
    await asyncio.wait_for(task, 5)
    # the same id again (its dialog is stored): refused, so nobody resumes someone's call
    assert await refused_with(gw, gw.fork("new-1", None), "new-1") == (
        media_fork.CLOSE_POLICY, "call id already used")
    assert await refused_with(gw, gw.fork("ended-1", None), "ended-1") == (
        media_fork.CLOSE_POLICY, "call has ended")
    # a credential that is there must be valid, even here
    bad = gw.fork("new-2", gw.credentials.issue("new-3"))
    assert await refused_with(gw, bad, "new-2") == (
        media_fork.CLOSE_POLICY, "credential not valid for this call")


# ---- what the call is comes from the records ---------------------------------------------------------

INJECTED = {"customer": {"tier": "vip", "vip": True, "name": "Mallory"}, "campaign": "spring",
            "lead": "L999", "bot": "evil_bot", "variant": "limited_time",
            "from": "+15550100666", "to": "+15550100777", "direction": "outbound"}


async def test_the_fork_cannot_say_who_the_customer_is_or_which_bot_campaign_or_lead(
        bot: ScriptBot) -> None:
    lead = Lead(id="L001", phone="+15550100222", name="Dana Scully", timezone="UTC",
                tz_source="column", region="NY", tier="silver", vip=False,
                variables={"plan": "premium"})
    leads = FakeLeads({("spring", "L001"): lead})
    record = live_call("call-1", "bot", direction="outbound", caller="+15550100000",
                       callee="+15550100222", bot="front_desk", campaign="spring", lead="L001",
                       customer_account="A-17")
    gw = Gateway(bot, calls=[record], leads=leads)
    sock, task = await gw.greeted("call-1", **INJECTED)
    (meta,) = gw.bots.metas
    assert meta.customer == {"plan": "premium", "id": "L001", "name": "Dana Scully",
                             "tier": "silver", "region": "NY", "vip": False, "account": "A-17"}
    assert (meta.campaign, meta.extra) == ("spring", {"bot": "front_desk", "lead": "L001"})
    assert (meta.caller, meta.callee, meta.direction) == ("+15550100000", "+15550100222", "outbound")
    assert leads.asked == [("spring", "L001")]  # the record's lead, not the fork's
    sock.feed(dtmf("0"))  # to a person: the handover says who the customer really is
    assert await asyncio.wait_for(task, 5) == "escalated"
    handover = sock.commands()[-1].data
    assert handover["vip"] is False and handover["campaign_id"] == "spring"
    assert handover["customer"]["name"] == "Dana Scully"


async def test_a_local_fork_of_an_unknown_call_gets_nothing_it_asked_for(bot: ScriptBot) -> None:
    gw = Gateway(bot, local=True)
    sock, task = await gw.greeted("call-9", credential=None, playback="playAudio", **INJECTED)
    (meta,) = gw.bots.metas
    assert meta.customer == {} and meta.extra == {} and meta.campaign is None
    assert meta.caller is None and meta.callee is None and meta.direction is None
    assert meta.playback == "playAudio"  # audio parameters are the fork's to choose
    sock.feed(dtmf("0"))
    await asyncio.wait_for(task, 5)
    assert sock.commands()[-1].data["vip"] is False


async def test_the_call_length_so_far_comes_from_the_answer_time() -> None:
    directory = FakeCallDirectory([live_call("call-1", answered_at=1000.0)])
    credentials = ForkCredentials(SECRET, clock=lambda: 1090.0)
    admission = ForkAdmission(credentials, False, directory, clock=lambda: 1090.0)
    fork = ForkMetadata("call-1", 8000, extra={"credential": credentials.issue("call-1")})
    admitted = await admission.admit(fork)
    assert admitted.elapsed_s == 90.0 and admitted.authenticated


async def test_the_lease_is_renewed_while_the_fork_is_open_and_retaken_when_lost() -> None:
    directory = FakeCallDirectory([live_call("call-1")])
    admission = ForkAdmission(None, True, directory, lease_s=1)
    admitted = await admission.admit(ForkMetadata("call-1", 8000))
    keeper = asyncio.create_task(admission.hold(admitted))
    try:
        await until(lambda: len(directory.refreshed) >= 1, 3)
        del directory.leases["call-1"]  # Redis lost it
        await until(lambda: directory.leases.get("call-1") == admitted.owner, 3)
    finally:
        keeper.cancel()
    await admission.release(admitted)
    assert directory.leases == {}


# ---- room on the replica -------------------------------------------------------------------------


async def test_beyond_its_fork_cap_a_replica_says_try_again_later(bot: ScriptBot) -> None:
    gw = Gateway(bot, calls=[live_call(f"call-{i}") for i in range(3)], max_forks=1)
    first, first_task = await gw.greeted("call-0")
    assert await refused_with(gw, gw.fork("call-1"), "call-1") == (
        CLOSE_TRY_AGAIN, "gateway at capacity (1 forks); try again later")
    assert first.closed is None and not first_task.done()
    first.hang_up()
    await asyncio.wait_for(first_task, 5)
    second, second_task = await gw.greeted("call-2")  # room again
    second.hang_up()
    await asyncio.wait_for(second_task, 5)
    assert gw.admission.open == 0


# ---- nothing secret or personal in the log -----------------------------------------------------------


async def test_no_credential_or_phone_number_reaches_the_log(
        bot: ScriptBot, caplog: pytest.LogCaptureFixture) -> None:
    gw = Gateway(bot, calls=[live_call("call-1", caller=CALLER), live_call("call-2", "ended")])
    with caplog.at_level(logging.DEBUG):
        good = gw.fork("call-1", **{"from": CALLER})
        task = gw.run(good, "call-1")
        await until(lambda: "mark" in good.command_types())
        bad_credential = gw.credentials.issue("call-3")
        await refused_with(gw, gw.fork("call-1", bad_credential), "call-1")
        await refused_with(gw, gw.fork("call-2"), "call-2")
        good.hang_up()
        await asyncio.wait_for(task, 5)
    assert any("refused" in r.getMessage() for r in caplog.records)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert CALLER not in text and bad_credential not in text
    assert bad_credential.split(".")[2] not in text and "credential\":" not in text


# ---- the records in Redis ------------------------------------------------------------------------------


@pytest.fixture
async def directory(redis_server) -> AsyncIterator[RedisCallDirectory]:
    recorder = RedisCallRecorder(redis_server.url)
    yield RedisCallDirectory(recorder.redis)
    await recorder.close()


async def test_the_directory_reads_the_controllers_record_of_a_call(
        redis_server, directory: RedisCallDirectory) -> None:
    sink = RedisCallRecordSink(redis_server.url)
    record = CallRecord("esl-1", "outbound", destination="+15550100222", caller_id="+15550100000",
                        variables={"callfleet_bot": "outbound_promo", "callfleet_campaign": "c1",
                                   "callfleet_lead": "L1"})
    record.move(CallPhase.ANSWERED, at=1234.5)
    await sink.save(record)
    live = await directory.lookup("esl-1")
    assert live is not None and live.forkable and not live.ended
    assert (live.direction, live.caller, live.callee, live.answered_at) == (
        "outbound", "+15550100000", "+15550100222", 1234.5)
    assert (live.variable("bot"), live.variable("campaign"), live.variable("lead")) == (
        "outbound_promo", "c1", "L1")
    record.move(CallPhase.ENDED)
    await sink.save(record)
    assert (await directory.lookup("esl-1")).ended
    assert await directory.lookup("nobody") is None
    await directory.redis.set("cf:esl:broken", "{not json")
    assert not (await directory.lookup("broken")).forkable
    await sink.redis.aclose()


async def test_one_lease_per_call_and_only_its_owner_renews_or_frees_it(
        directory: RedisCallDirectory) -> None:
    await directory.redis.delete(fork_lease_key("lease-1"))
    assert await directory.attach("lease-1", "owner-a", 30)
    assert not await directory.attach("lease-1", "owner-b", 30)
    assert not await directory.refresh("lease-1", "owner-b", 30)
    assert await directory.refresh("lease-1", "owner-a", 60)
    assert 30 < await directory.redis.ttl(fork_lease_key("lease-1")) <= 60
    await directory.detach("lease-1", "owner-b")  # not theirs: nothing happens
    assert not await directory.attach("lease-1", "owner-b", 30)
    await directory.detach("lease-1", "owner-a")
    assert await directory.attach("lease-1", "owner-b", 30)


async def test_a_call_a_gateway_has_served_is_seen(redis_server, directory) -> None:
    recorder = RedisCallRecorder(redis_server.url)
    assert not await directory.fork_seen("seen-1")
    await recorder.call_started(ForkMetadata("seen-1", 8000))
    assert await directory.fork_seen("seen-1")
    await recorder.close()


async def test_an_unreachable_redis_is_directory_unavailable() -> None:
    recorder = RedisCallRecorder("redis://127.0.0.1:9/0")
    directory = RedisCallDirectory(recorder.redis)
    for call in (directory.lookup("x"), directory.attach("x", "o", 5), directory.fork_seen("x")):
        with pytest.raises(DirectoryUnavailable, match="call records unavailable"):
            await call
    await recorder.close()


# ---- what a real client on the media port sees -------------------------------------------------------


async def test_on_the_media_port_refusals_arrive_as_close_codes_with_reasons(bot) -> None:
    gw = Gateway(bot, calls=[live_call("call-1"), live_call("call-2")], max_forks=1)

    async def run_fork(sock, call_uuid: str) -> str:
        return await serve_media_fork(sock, call_uuid, gw.settings, gw.models, gw.records,
                                      gw.bots, admission=gw.admission)

    server = MediaServer("127.0.0.1", 0, run_fork)
    await server.start()
    base = f"ws://127.0.0.1:{server.bound_port}/media"
    try:
        async with connect(f"{base}/call-1", subprotocols=[media_fork.SUBPROTOCOL]) as ws:
            await ws.send(json.dumps({"callId": "call-1", "sampleRate": 8000}))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                media_fork.CLOSE_POLICY, "credential required")
        async with connect(f"{base}/call-1", subprotocols=[media_fork.SUBPROTOCOL]) as ws:
            await ws.send(json.dumps({"callId": "call-1", "sampleRate": 8000,
                                      "credential": gw.credentials.issue("call-1")}))
            assert isinstance(await ws.recv(), bytes)  # the greeting: admitted
            async with connect(f"{base}/call-2", subprotocols=[media_fork.SUBPROTOCOL]) as full:
                with pytest.raises(ConnectionClosed) as closed:
                    await full.recv()
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                    CLOSE_TRY_AGAIN, "gateway at capacity (1 forks); try again later")
    finally:
        await server.drain(5)


def test_a_refusal_reason_fits_a_close_frame() -> None:
    assert len(ForkRefused("x" * 500).reason.encode()) <= 123


# ---- `callfleet simulate` / `demo`: forks straight to the gateway, made known first -------------


async def test_simulated_calls_are_made_known_like_the_controller_makes_them(
        redis_server, directory: RedisCallDirectory, tmp_path: Path) -> None:

    settings = load_settings(state_dir=str(tmp_path), freeswitch={"fork_auth": {"secret": SECRET}})
    issuer = ForkIssuer(settings, redis_server.url)
    call = SimulatedCall(ForkMetadata("sim-1", 8000, caller="+15550100123", direction="inbound",
                                      customer={"name": "Dana"}), turns=[])
    try:
        await issuer.answered(call)
        live = await directory.lookup("sim-1")
        assert live is not None and live.forkable and live.caller == "+15550100123"
        ForkCredentials(SECRET).verify(call.meta.extra["credential"], "sim-1")
        admission = ForkAdmission(ForkCredentials(SECRET), False, directory)
        admitted = await admission.admit(call.meta)  # as the gateway sees its metadata
        assert admitted.meta.customer == {"name": "Dana"}  # from the record, not the fork
        await admission.release(admitted)
        await issuer.hung_up(call)
        assert (await directory.lookup("sim-1")).ended
    finally:
        await issuer.aclose()
