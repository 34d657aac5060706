"""Calls through the ESL controller actor and the simulated FreeSWITCH, and what happens
when things break mid-call: a dropped websocket, a lost event socket, a model replica
that dies. In each case the call's record survives in Redis, the other calls go on, and
the controller recovers."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import ray
import redis
from pydantic import SecretStr

from cluster.actors.esl import RemoteCallControl, get_controller, record_key
from cluster.sim.simulate import place
from telephony.call_control import OriginateRequest
from telephony.sim.channel_model import ChannelModel
from telephony.sim.scenarios import build_call, load_scenarios
from telephony.sim.switch import SimulatedSwitch
from tests.integration.helpers import fetch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def calls(caller_voice):
    scenarios = load_scenarios()
    return lambda n: [(scenarios[i % len(scenarios)],
                       build_call(scenarios[i % len(scenarios)], caller_voice)) for i in range(n)]


def stored_record(info, call_uuid: str) -> dict | None:
    raw = redis.Redis.from_url(info.redis_url).get(record_key(call_uuid))
    return json.loads(raw) if raw else None


def test_calls_through_the_controller_actor_complete_and_are_recorded(driver, cluster_settings,
                                                                       capsys):
    from cluster.sim.simulate import run_simulation

    code = run_simulation(cluster_settings, calls=3, as_json=True, via="esl")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["completed"] == 3, summary
    assert summary["hangup_causes"] == {"NORMAL_CLEARING": 3}
    phases = list(summary["call_phases"])
    assert all(p.startswith("ringing → answered → bot") and p.endswith("ended") for p in phases)


def test_caller_dropping_mid_sentence_loses_nothing_and_disturbs_no_one(driver, calls):
    cluster = driver
    plan = calls(2)
    dropper = plan[0][1]
    dropper.turns[-1].hangup_after_s = 0.6  # gone in the middle of the last sentence
    results = asyncio.run(place(cluster, plan, stagger_s=0.2))
    dropped, other = results[0].report, results[1].report
    assert dropped.hung_up_by == "caller" and dropped.turn_latency_s[-1] is None
    assert other.error is None and None not in other.turn_latency_s  # every turn answered
    record = _call_context(cluster, dropper.meta.call_uuid)
    assert record["status"] == "ended"
    assert len(record["turns"]) == len(dropper.turns) - 1  # the answered turns are kept


def _call_context(info, call_uuid: str) -> dict:
    return asyncio.run(fetch(info, call_uuid))


def test_lost_event_socket_mid_call_recovers_and_keeps_records(driver, cluster_settings, calls):
    cluster = driver
    plan = calls(2)

    async def scenario():
        by_number = {f"+1555300000{i}": call for i, (_, call) in enumerate(plan)}
        password = "s3cret-" + uuid.uuid4().hex
        switch = SimulatedSwitch(password, ChannelModel(
            answer_rate=1.0, busy_rate=0.0, ring_s=(0.2, 0.4)),
            callers=lambda dest, uid, rate, kind: _bind(by_number.get(dest), uid))
        await switch.start()
        fs = cluster_settings.freeswitch.model_copy(update={
            "port": switch.port, "password": SecretStr(password),
            "media_url": cluster.media_url})
        handle = get_controller(fs, cluster.redis_url)
        control = RemoteCallControl(handle)
        try:
            await handle.ready.remote(15.0)
            uuids = [str(uuid.uuid4()) for _ in plan]
            originates = [asyncio.ensure_future(control.originate(OriginateRequest(
                call_uuid=u, destination=n, gateways=["carrier-a"],
                variables={"callfleet_playback": s.playback,
                           "callfleet_fork_rate": "8k" if s.sample_rate == 8000 else "16k"})))
                for u, n, (s, _) in zip(uuids, by_number, plan, strict=True)]
            results = await asyncio.gather(*originates)
            assert all(r.answered for r in results)
            await asyncio.sleep(2.0)  # both calls are talking to the bot
            assert switch.esl.drop_connections() == 1
            for u in uuids:
                await asyncio.wait_for(switch.channels[u].done.wait(), 120)
            for _ in range(100):
                status = await handle.status.remote()
                if status["connected"] and status["resyncs"] >= 1:
                    break
                await asyncio.sleep(0.1)
            reports = [c.report for c in switch.finished]
            return uuids, status, reports
        finally:
            await switch.stop()
            await handle.shutdown.remote()
            ray.kill(handle, no_restart=True)

    uuids, status, reports = asyncio.run(scenario())
    assert status["connected"] and status["resyncs"] >= 1
    # the media never depended on the event socket: both conversations went on
    assert all(r is not None and r.error is None and r.turn_latency_s for r in reports)
    for u in uuids:
        record = stored_record(cluster, u)
        assert record is not None, "call record missing from Redis"
        assert record["phase"] == "ended"
        assert [p for p, _ in record["history"]][:3] == ["ringing", "answered", "bot"]


def _bind(call, call_uuid):
    if call is not None:
        import dataclasses

        call.meta = dataclasses.replace(call.meta, call_uuid=call_uuid)
    return call


def test_model_replica_dying_mid_call_does_not_drop_calls(driver, calls):
    cluster = driver
    plan = calls(2)

    async def scenario():
        task = asyncio.ensure_future(place(cluster, plan, stagger_s=0.2))
        await asyncio.sleep(4.0)
        names = [a for a in ray.util.list_named_actors(all_namespaces=True)
                 if "#tts#" in a["name"]]
        assert names, "no TTS replica found"
        ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]),
                 no_restart=True)
        return await task

    results = asyncio.run(scenario())
    for result in results:
        r = result.report
        assert r.error is None, r.error
        assert r.close_code in (1000, 1001, None)
        assert r.bot_audio_s > 0
    # every call still has its record, ended, in Redis
    for _, call in plan:
        assert _call_context(cluster, call.meta.call_uuid)["status"] == "ended"


def test_turn_timings_are_exported_per_stage(driver):
    cluster = driver
    import httpx

    report = httpx.get(f"{cluster.http_url}/metrics/turns", timeout=10).json()
    assert report["turns"] > 0  # the calls above were metered
    first_audio = report["first_audio"]
    assert first_audio["p50_ms"] > report["asr"]["p50_ms"] > 0
