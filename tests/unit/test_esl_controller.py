"""The ESL controller (greenswitch over a real TCP socket) against the simulated switch.

The websocket end of the media fork here is a minimal peer that speaks the
mod_audio_fork server side (it stands in for the media gateway, which the integration
tests run for real)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from websockets.asyncio.server import serve

from configs.settings import FreeswitchSettings as ControllerSettings
from telephony import media_fork
from telephony.call_control import CallControlError, OriginateRequest
from telephony.call_data import Handover, HandoverTurn
from telephony.call_fsm import CallPhase
from telephony.esl_controller import ESLController
from telephony.fork_auth import CredentialRefused, ForkCredentials
from telephony.media_fork import ForkMetadata
from telephony.sim.channel_model import ChannelModel, GatewayModel
from telephony.sim.fork_client import CallerTurn, SimulatedCall
from telephony.sim.switch import SimulatedSwitch, parse_variables

pytestmark = pytest.mark.unit

UUID = "0b7a3f52-5f0e-4a51-9d1c-2f3b0c4d5e6f"
SECRET = "unit-test-fork-secret-0123456789"
TONE = (np.sin(np.arange(8000) / 4) * 8000).astype("<i2")


HANDOVER = Handover("caller pressed 0", skills=("support",), priority=6, brief="Wants a person.",
                    customer={"tier": "vip"}, vip=True,
                    turns=(HandoverTurn(None, "Press 0 for a person."),))


class GatewayPeer:
    """Server side of a fork: records what arrives; plays one prompt; on a key press,
    says goodbye (`disconnect`) or asks for a person (`transfer`)."""

    def __init__(self, on_key: str = "disconnect", play: str = "playAudio"):
        self.on_key, self.play = on_key, play
        self.metadata: list[dict] = []
        self.texts: list[dict] = []

    async def __call__(self, ws) -> None:
        self.metadata.append(json.loads(await ws.recv()))
        if self.play == "playAudio":
            await ws.send(media_fork.play_audio(TONE.tobytes(), 16000))
        else:
            await ws.send(TONE.tobytes())
        async for msg in ws:
            if isinstance(msg, str):
                self.texts.append(json.loads(msg))
                if self.texts[-1].get("type") == "dtmf":
                    send = media_fork.disconnect() if self.on_key == "disconnect" \
                        else media_fork.transfer(HANDOVER)
                    await ws.send(send)
                    await ws.close()
                    return


def keys_caller(keys: str):
    def script(destination, call_uuid, rate, kind):
        turn = CallerTurn(np.zeros(0, dtype=np.int16), dtmf=keys)
        return SimulatedCall(ForkMetadata(call_uuid, rate), [turn], pause_s=0.3)
    return script


@pytest.fixture
async def rig():
    peers: list = []

    async def build(model: ChannelModel, peer: GatewayPeer | None = None, **ctl):
        peer = peer or GatewayPeer()
        server = await serve(peer, "127.0.0.1", 0, subprotocols=[media_fork.SUBPROTOCOL])
        port = server.sockets[0].getsockname()[1]
        switch = SimulatedSwitch("not-ClueCon", model, callers=keys_caller("1"), linger_s=30)
        await switch.start()
        settings = ControllerSettings(port=switch.port, password="not-ClueCon",
                                      media_url=f"ws://127.0.0.1:{port}/media", **ctl)
        controller = ESLController(settings)
        await controller.start(wait_s=10)
        peers.append((server, switch, controller))
        return switch, controller, peer

    yield build
    for server, switch, controller in peers:
        await controller.stop()
        await switch.stop()
        server.close()


def fast(**kw) -> ChannelModel:
    return ChannelModel(**{"answer_rate": 1.0, "busy_rate": 0.0, "ring_s": (0.1, 0.2), **kw})


async def wait_for(predicate, timeout=10.0):
    async def poll():
        while not predicate():  # noqa: ASYNC110 - the state is owned by other tasks
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


async def test_answered_call_gets_a_fork_hears_the_bot_and_ends_on_goodbye(rig):
    switch, ctl, peer = await rig(fast(), playback="playAudio", fork_auth={"secret": SECRET})
    result = await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100001",
                                                  gateways=["carrier-a"],
                                                  caller_id_name="Fleet Shop, Sales"))
    assert result.answered and result.gateway == "carrier-a"
    assert switch.channels[UUID].variables["origination_caller_id_name"] == "Fleet Shop, Sales"
    record = ctl.calls[UUID]
    await wait_for(lambda: record.ended)
    assert [phase for phase, _ in record.history] == ["ringing", "answered", "bot", "ended"]
    assert record.hangup_cause == "NORMAL_CLEARING"
    assert record.dtmf == "1"
    # the fork opened on the gateway route with JSON metadata the gateway can validate
    meta = peer.metadata[0]
    assert meta["callId"] == UUID and meta["sampleRate"] == 16000
    assert media_fork.parse_metadata(json.dumps(meta), UUID).playback == "playAudio"
    # audio parameters and the call's credential only: what the call is (bot, campaign,
    # lead, customer) the gateway reads from the controller's record, never from the fork
    assert set(meta) == {"callId", "sampleRate", "playback", "mixType", "credential"}
    ForkCredentials(SECRET).verify(meta["credential"], UUID)  # issued for this call
    with pytest.raises(CredentialRefused, match="not valid for this call"):
        ForkCredentials(SECRET).verify(meta["credential"], "another-call")
    # playAudio → module event with a file → uuid_broadcast → the caller heard the prompt
    channel = switch.finished[0]
    assert "play_audio" in channel.fork_events
    assert len(channel.report.bot_audio) == len(TONE.tobytes())
    assert peer.texts[0] == {"type": "dtmf", "data": {"digit": "1"}}


async def test_carrier_failure_fails_over_but_a_busy_callee_does_not(rig):
    model = fast(gateways={"a": GatewayModel(down=True), "b": GatewayModel()})
    switch, ctl, _ = await rig(model)
    ok = await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100002",
                                              gateways=["a", "b"]))
    assert ok.answered and ok.attempts == [("a", "GATEWAY_DOWN"), ("b", "SUCCESS")]
    assert ctl.calls[UUID].phase in (CallPhase.ANSWERED, CallPhase.BOT)

    busy_model = fast(answer_rate=0.0, busy_rate=1.0)
    _, ctl2, _ = await rig(busy_model)
    busy = await ctl2.originate(OriginateRequest(call_uuid="a" * 8 + "-1111-2222-3333-444455556666",
                                                 destination="+15550100003",
                                                 gateways=["carrier-a", "carrier-b"]))
    assert not busy.answered and busy.cause == "USER_BUSY"
    assert busy.attempts == [("carrier-a", "USER_BUSY")]  # no failover on a callee cause


async def test_bot_asks_for_a_person_and_the_call_is_transferred(rig):
    switch, ctl, peer = await rig(fast(), GatewayPeer(on_key="transfer", play="binary"))
    await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100004",
                                         gateways=["carrier-a"]))
    record = ctl.calls[UUID]
    await wait_for(lambda: record.phase is CallPhase.ESCALATED)
    assert record.escalation == HANDOVER  # as the bot's session built it, through the switch
    await ctl.transfer(UUID, "1001")
    assert record.phase is CallPhase.AGENT
    a_leg = switch.channels[UUID]
    assert a_leg.transferred_to == "1001"
    # the dialplan bridges to the agent's phone: a B-leg the controller must not take
    # for a call of its own (adopted, it would be forked to a bot on answer)
    await wait_for(lambda: a_leg.other_leg is not None)
    b_leg = a_leg.other_leg
    assert b_leg.destination == "1001" and b_leg.originator is a_leg
    assert record.agent_leg == b_leg.uuid
    assert list(ctl.calls) == [UUID] and b_leg.fork_events == []
    await wait_for(lambda: record.ended)  # the simulated agent finishes and hangs up
    assert [p for p, _ in record.history][-3:] == ["escalated", "agent", "ended"]
    assert record.hangup_cause == "NORMAL_CLEARING"
    assert a_leg.hangup_cause == b_leg.hangup_cause == "NORMAL_CLEARING"
    assert list(ctl.calls) == [UUID]


async def test_hanging_up_a_bridged_caller_ends_the_agent_leg_and_resync_skips_it(rig):
    switch, ctl, _ = await rig(fast(), GatewayPeer(on_key="transfer", play="binary"))
    switch.agent_talk_s = 30  # the agent would talk on
    await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100008",
                                         gateways=["carrier-a"]))
    record = ctl.calls[UUID]
    await wait_for(lambda: record.phase is CallPhase.ESCALATED)
    await ctl.transfer(UUID, "1002")
    a_leg = switch.channels[UUID]
    await wait_for(lambda: a_leg.other_leg is not None and a_leg.other_leg.callstate == "ACTIVE")
    b_leg = a_leg.other_leg
    # a reconnect while bridged: the channel list holds both legs, the B-leg is not adopted
    assert switch.esl.drop_connections() == 1
    await wait_for(lambda: ctl.resyncs >= 2 and ctl.connected, 10)
    assert list(ctl.calls) == [UUID] and not record.ended
    await ctl.hangup(UUID)
    await wait_for(lambda: record.ended)
    assert b_leg.hangup_cause == "NORMAL_CLEARING" and b_leg.done.is_set()
    assert not switch.channels  # no leg left behind


async def test_lost_event_socket_reconnects_and_resyncs(rig):
    switch, ctl, _ = await rig(fast())
    await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100005",
                                         gateways=["carrier-a"]))
    await wait_for(lambda: ctl.calls[UUID].phase is CallPhase.BOT)
    assert switch.esl.drop_connections() == 1
    await wait_for(lambda: not ctl.connected, 5)
    # while we are cut off, FreeSWITCH ends the call: we never see its hangup event
    await switch.channels[UUID].hangup("NORMAL_CLEARING")
    await wait_for(lambda: ctl.connected and ctl.resyncs == 2, 15)
    await wait_for(lambda: ctl.calls[UUID].ended)
    assert ctl.calls[UUID].hangup_cause in ("NORMAL_CLEARING", "LOST_WHILE_DISCONNECTED")
    # and the controller works again
    again = "c" * 8 + "-1111-2222-3333-444455556666"
    result = await ctl.originate(OriginateRequest(call_uuid=again, destination="+15550100006",
                                                  gateways=["carrier-a"]))
    assert result.answered


async def test_bad_requests_get_clear_errors_and_change_nothing(rig):
    switch, ctl, _ = await rig(fast())
    with pytest.raises(CallControlError, match="destination"):
        await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+1555 0100; rm",
                                             gateways=["carrier-a"]))
    with pytest.raises(CallControlError, match="uuid_kill failed"):
        await ctl.hangup("d" * 8 + "-1111-2222-3333-444455556666")
    with pytest.raises(CallControlError, match="not a channel uuid"):
        await ctl.hangup("x; api shutdown")
    assert not switch.channels


async def test_wrong_password_is_reported_not_hung():
    switch = SimulatedSwitch("right")
    await switch.start()
    ctl = ESLController(ControllerSettings(port=switch.port, password="wrong"))
    try:
        with pytest.raises(CallControlError, match="not reachable"):
            await ctl.start(wait_s=1.5)
    finally:
        await ctl.stop()
        await switch.stop()


def test_channel_variables_parse_like_freeswitch():
    assert parse_variables("a=1,b='x y',c=p\\,q") == {"a": "1", "b": "x y", "c": "p,q"}


def test_channel_model_is_seeded_and_honours_rates():
    model = ChannelModel(answer_rate=0.5, busy_rate=0.2, seed=3)
    draws = [model.draw(model.rng(), "carrier-a", 30).kind for _ in range(1)]
    rng = model.rng()
    kinds = [model.draw(rng, "carrier-a", 30).kind for _ in range(2000)]
    assert draws[0] == kinds[0]
    assert 0.45 < kinds.count("ANSWER") / 2000 < 0.55
    assert 0.16 < kinds.count("USER_BUSY") / 2000 < 0.24
    assert model.draw(rng, "nowhere", 30).kind == "NO_ROUTE_DESTINATION"


async def test_inbound_call_to_a_bot_number_is_forked_by_the_controller(rig):
    switch, ctl, peer = await rig(fast())
    caller = keys_caller("1")("+15550100101", UUID, 16000, "person")
    await switch.inbound_call("+15550100101", caller, bot="inbound_shop")
    await wait_for(lambda: UUID in ctl.calls and ctl.calls[UUID].ended)
    record = ctl.calls[UUID]
    assert record.direction == "inbound"
    assert [p for p, _ in record.history] == ["ringing", "answered", "bot", "ended"]
    # the bot the dialplan chose is in the record the gateway reads, not in the fork
    assert record.variables["callfleet_bot"] == "inbound_shop"
    assert not {"bot", "direction", "customer", "campaign", "lead"} & set(peer.metadata[0])
    assert "credential" not in peer.metadata[0]  # no secret configured: none to give


class SavingSink:
    """A CallRecordSink that remembers each saved record's phase and bot flag."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, str, bool]] = []

    async def save(self, record) -> None:
        self.saved.append((record.call_uuid, record.phase.value, record.bot_requested))


async def test_the_call_record_is_stored_before_the_fork_is_started():
    """The gateway admits a fork by the controller's record of the call (live? which bot,
    campaign, lead?), so that record is saved before FreeSWITCH is told to fork."""
    sink = SavingSink()
    at_connect: list[list] = []

    class Peer(GatewayPeer):
        async def __call__(self, ws) -> None:
            at_connect.append(list(sink.saved))
            await super().__call__(ws)

    peer = Peer()
    server = await serve(peer, "127.0.0.1", 0, subprotocols=[media_fork.SUBPROTOCOL])
    switch = SimulatedSwitch("not-ClueCon", fast(), callers=keys_caller("1"), linger_s=30)
    await switch.start()
    ctl = ESLController(ControllerSettings(
        port=switch.port, password="not-ClueCon", fork_auth={"secret": SECRET},
        media_url=f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/media"), sink)
    try:
        await ctl.start(wait_s=10)
        await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100008",
                                             gateways=["carrier-a"]))
        await wait_for(lambda: at_connect)
        assert (UUID, "answered", True) in at_connect[0]
    finally:
        await ctl.stop()
        await switch.stop()
        server.close()


async def test_a_fork_that_cannot_reach_the_gateway_sends_the_call_to_people(rig):
    switch, ctl, _ = await rig(fast(), fallback_extension="1999")
    ctl.settings.media_url = "ws://127.0.0.1:9/media"  # nothing listens there
    await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100007",
                                         gateways=["carrier-a"]))
    await wait_for(lambda: ctl.calls[UUID].phase is CallPhase.AGENT)
    channel = switch.channels.get(UUID) or switch.finished[-1]
    assert "connect_failed" in channel.fork_events
    assert channel.transferred_to == "1999"


async def test_a_caller_hanging_up_while_the_agent_phone_rings_cancels_the_agent_leg(rig):
    switch, ctl, _ = await rig(fast(), GatewayPeer(on_key="transfer", play="binary"))
    switch.agent_ring_s = 30  # nobody picks up for a while
    await ctl.originate(OriginateRequest(call_uuid=UUID, destination="+15550100009",
                                         gateways=["carrier-a"]))
    record = ctl.calls[UUID]
    await wait_for(lambda: record.phase is CallPhase.ESCALATED)
    await ctl.transfer(UUID, "1003")
    await wait_for(lambda: record.agent_leg is not None)
    b_leg = switch.channels[record.agent_leg]
    await ctl.hangup(UUID)
    await wait_for(lambda: record.ended and b_leg.done.is_set())
    assert b_leg.hangup_cause == "ORIGINATOR_CANCEL" and b_leg.callstate == "HANGUP"
    assert not switch.channels
