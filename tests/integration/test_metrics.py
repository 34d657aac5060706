"""The metrics really reach Prometheus: after one call through the cluster, the node's
metrics export port (`ray.metrics_port`, which `callfleet up` gives `ray start`) serves the
call's turn-stage histogram and counters, the model versions the replicas serve and the
skill router's gauges, under the names docs/operations.md lists. Ray reports every ~10 s,
so the scrape is retried for a bounded time."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest

from telephony import codecs
from telephony.media_fork import ForkMetadata
from telephony.metrics import exported_names
from telephony.sim.fork_client import CallerTurn, SimulatedCall, run_call
from telephony.sim.scenarios import trim_silence

pytestmark = pytest.mark.integration

SCRAPE_DEADLINE_S = 60.0  # a few of Ray's ~10 s report intervals
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and "callfleet" in match["name"]:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
            out.append((match["name"], labels, float(match["value"])))
    return out


def scrape_until(url: str, ready) -> list[tuple[str, dict[str, str], float]]:
    """Scrape `url` until `ready(samples)` holds or the deadline passes; the last scrape."""
    deadline = time.monotonic() + SCRAPE_DEADLINE_S
    found: list[tuple[str, dict[str, str], float]] = []
    while True:
        try:
            found = samples(httpx.get(url, timeout=5).text)
        except httpx.HTTPError:
            found = []
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(2.0)


def test_a_call_shows_up_in_the_prometheus_export(cluster, cluster_settings, caller_voice):
    pcm = codecs.phone_line(caller_voice.speak("Hi, where is my order?", 16000), 16000)
    call = SimulatedCall(
        ForkMetadata(call_uuid=str(uuid.uuid4()), sample_rate=8000, direction="inbound"),
        [CallerTurn(trim_silence(pcm, 8000), "Hi, where is my order?")], max_wait_s=30)
    report = asyncio.run(run_call(f"{cluster.media_url}/{call.meta.call_uuid}", call))
    assert report.error is None and report.turn_latency_s and report.turn_latency_s[0]

    url = f"http://{cluster_settings.ray.node_ip}:{cluster_settings.ray.metrics_port}/metrics"

    def ready(found) -> bool:
        names = {name for name, _, _ in found}
        first_audio = [v for name, labels, v in found
                       if name == "ray_callfleet_turn_stage_ms_count"
                       and labels.get("stage") == "first_audio"]
        return (sum(first_audio) >= 1 and "ray_callfleet_calls_ended_total" in names
                and "ray_callfleet_agents" in names and "ray_callfleet_model_version_info" in names)

    found = scrape_until(url, ready)
    names = {name for name, _, _ in found}
    assert ready(found), f"not exported within {SCRAPE_DEADLINE_S:.0f} s; saw {sorted(names)}"
    # only names the code declares (and docs/operations.md lists) are exported
    assert names <= set(exported_names()), sorted(names - set(exported_names()))
    stages = {labels["stage"] for name, labels, _ in found
              if name == "ray_callfleet_turn_stage_ms_bucket"}
    assert {"endpoint", "asr", "nlu", "bot", "first_audio"} <= stages
    assert any(v >= 1 for name, _, v in found if name == "ray_callfleet_calls_started_total")
    served = {(labels["kind"], labels["version"]) for name, labels, v in found
              if name == "ray_callfleet_model_version_info" and v == 1}
    assert {kind for kind, _ in served} == {"asr", "intent", "emotion", "tts"}, served
    states = {labels["state"] for name, labels, _ in found if name == "ray_callfleet_agents"}
    assert states == {"logged_out", "available", "on_call", "wrap_up", "break"}
    # no call id or phone number became a label value
    assert not [labels for _, labels, _ in found if call.meta.call_uuid in labels.values()]
