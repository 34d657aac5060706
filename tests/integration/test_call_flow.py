"""One call through the whole cluster, as FreeSWITCH would place it: real speech over the
media-fork websocket, real models, bot audio back, call context in Redis."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import numpy as np
import pytest

from deployments.engines.asr_metrics import word_error_rate
from telephony import codecs
from telephony.media_fork import ForkMetadata
from telephony.sim.fork_client import CallerTurn, SimulatedCall, run_call
from telephony.sim.scenarios import trim_silence
from telephony.wav import read_wav
from tests.integration.helpers import fetch

pytestmark = pytest.mark.integration


def words(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower())


def call_url(info, call: SimulatedCall, route: str = "media port") -> str:
    if route == "serve http route":  # through the Serve proxy instead of the media port
        return f"{info.http_url.replace('http://', 'ws://')}/media/{call.meta.call_uuid}"
    return f"{info.media_url}/{call.meta.call_uuid}"


def make_call(turns, rate=16000, playback="binary", **meta) -> SimulatedCall:
    return SimulatedCall(
        ForkMetadata(call_uuid=str(uuid.uuid4()), sample_rate=rate, playback=playback,
                     direction="inbound", **meta),
        turns, max_wait_s=30,
    )


@pytest.mark.parametrize("route", ["media port", "serve http route"])
def test_real_speech_clip_is_transcribed_and_answered(cluster, shared_datasets, route):
    assert ":8101/" in call_url(cluster, make_call([]))  # forks go to the media port by default
    clip = shared_datasets / "speech/librivox_pocketsphinx_5utt/sense_and_sensibility_01_austen_64kb-0880.wav"
    audio, rate = read_wav(clip)
    assert rate == 16000
    call = make_call([CallerTurn(trim_silence(audio, rate), "he was not an ill disposed young man")])
    report = asyncio.run(run_call(call_url(cluster, call, route), call))
    assert report.error is None
    assert report.turn_latency_s and report.turn_latency_s[0] is not None, "bot never answered"
    assert report.bot_audio_s > 2.0  # greeting + answer, real audio
    record = asyncio.run(fetch(cluster, call.meta.call_uuid))
    said = words(record["turns"][0]["caller"]).split()
    reference = "he was not an ill disposed young man".split()
    assert word_error_rate(reference, said) <= 0.3, said
    assert record["turns"][0]["bot"]  # the bot answered what it heard (a re-prompt or FAQ)
    assert record["status"] == "ended"


def test_phone_line_caller_gets_an_answer_by_intent(cluster, caller_voice):
    """8 kHz μ-law-degraded caller, drachtio playAudio mode: asks for the order, then
    says goodbye, and the bot closes the call."""
    turns = []
    for text in ("Hi, where is my order?", "No, that's all. Goodbye."):
        pcm = codecs.phone_line(caller_voice.speak(text, 16000), 16000)
        turns.append(CallerTurn(trim_silence(pcm, 8000), text))
    call = make_call(turns, rate=8000, playback="playAudio")
    report = asyncio.run(run_call(call_url(cluster, call), call))
    assert report.error is None
    assert report.play_audio_messages >= 3 and report.frames_received == 0
    assert report.hung_up_by == "bot" and report.close_code == 1000
    record = asyncio.run(fetch(cluster, call.meta.call_uuid))
    first, last = record["turns"][0], record["turns"][-1]
    assert "order" in words(first["caller"])
    assert first["intent"]["label"] == "order_status"
    assert len(first["intent"]["top3"]) == 3
    assert "order number" in first["bot"].lower()  # the shop script asks which order
    assert set(first["emotion"]["scores"]) >= {"anger", "neutral", "positive"}
    assert last["intent"]["label"] in ("goodbye", "deny")
    assert record["outcome"]["reason"] == "bot closed the call"


def test_barge_in_stops_the_bot(cluster, caller_voice):
    speech = trim_silence(caller_voice.speak("Let me talk to a real person please.", 16000), 16000)
    call = make_call([CallerTurn(speech, barge_in_after_s=1.0)])
    report = asyncio.run(run_call(call_url(cluster, call), call))
    assert report.kill_audio >= 1, "caller spoke over the greeting but playback was not killed"
    record = asyncio.run(fetch(cluster, call.meta.call_uuid))
    assert record["outcome"]["barge_ins"] >= 1
    assert record["outcome"]["cut"], "the interrupted greeting should be recorded as cut"
    assert record["turns"][0]["intent"]["label"] == "talk_to_human"
    assert record["outcome"]["escalation"]


def test_silence_only_call_hangs_up_cleanly(cluster):
    call = make_call([CallerTurn(np.zeros(8000, dtype=np.int16))], rate=8000)
    call.hangup_after_s = 1.0
    call.max_wait_s = 3.0  # no answer is expected: do not wait long for one
    report = asyncio.run(run_call(call_url(cluster, call), call))
    assert report.error is None
    record = asyncio.run(fetch(cluster, call.meta.call_uuid))
    assert record["turns"] == []
    assert record["outcome"]["reason"] == "caller hung up"


def test_simulate_reports_every_call(cluster, cluster_settings, capsys):
    from cluster.sim.simulate import run_simulation

    code = run_simulation(cluster_settings, calls=3, as_json=True)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert summary["calls"] == 3 and summary["completed"] == 3
    assert summary["failed"] == 0 and summary["dropped"] == 0
    assert summary["turns_answered"] >= 6 and summary["turn_latency_p50_s"] > 0
