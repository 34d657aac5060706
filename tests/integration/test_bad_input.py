"""Bad media-fork input closes that websocket with a clear reason and never disturbs
another call in progress."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from telephony.media_fork import SUBPROTOCOL, ForkMetadata
from telephony.sim.fork_client import CallerTurn, SimulatedCall, run_call
from telephony.sim.scenarios import trim_silence

pytestmark = pytest.mark.integration


async def bad_peer(url: str, frames: list, subprotocol: str | None = SUBPROTOCOL):
    """Send `frames`, then wait for the server's close; return (code, reason)."""
    protocols = [subprotocol] if subprotocol else None
    async with connect(url, subprotocols=protocols, open_timeout=10) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason
    return None, ""


def meta(call_uuid: str, **extra) -> str:
    return json.dumps({"callId": call_uuid, "sampleRate": 8000, **extra})


CASES = {
    "wrong subprotocol": (lambda cid: [meta(cid)], "audio.jambonz.org", 1002, "subprotocol"),
    "no subprotocol": (lambda cid: [meta(cid)], None, 1002, "subprotocol"),
    "binary before metadata": (lambda cid: [bytes(320)], SUBPROTOCOL, 1002, "binary frame before metadata"),
    "odd-length pcm": (lambda cid: [meta(cid), bytes(320), bytes(321)], SUBPROTOCOL, 1007, "odd-length"),
    "oversized metadata": (lambda cid: [meta(cid, pad="x" * 9000)], SUBPROTOCOL, 1009, "limit is 8192"),
    "non-json metadata": (lambda cid: ["callId=abc sampleRate=8000"], SUBPROTOCOL, 1007, "not JSON"),
    "bad sample rate": (lambda cid: [json.dumps({"callId": cid, "sampleRate": 44100})], SUBPROTOCOL, 1008, "sampleRate"),
}


def test_each_bad_input_is_closed_with_a_reason_while_a_good_call_goes_on(cluster, caller_voice):
    good = SimulatedCall(
        ForkMetadata(call_uuid=str(uuid.uuid4()), sample_rate=16000),
        [CallerTurn(trim_silence(caller_voice.speak("Where is my order?", 16000), 16000))],
        max_wait_s=30,
    )

    async def scenario():
        good_task = asyncio.create_task(run_call(f"{cluster.media_url}/{good.meta.call_uuid}", good))
        await asyncio.sleep(1.0)  # the good call is in progress
        results = {}
        for name, (frames, proto, _code, _reason) in CASES.items():
            cid = str(uuid.uuid4())
            results[name] = await bad_peer(f"{cluster.media_url}/{cid}", frames(cid), proto)
        return await good_task, results

    report, results = asyncio.run(scenario())
    for name, (_f, _p, code, reason) in CASES.items():
        got_code, got_reason = results[name]
        assert got_code == code, f"{name}: closed with {got_code} {got_reason!r}"
        assert reason in got_reason, f"{name}: reason {got_reason!r}"
    assert report.error is None
    assert report.turn_latency_s and report.turn_latency_s[0] is not None
    assert report.bot_audio_s > 2.0
