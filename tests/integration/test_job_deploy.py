"""Deploying the way Ray users do, on the session's real cluster: `ray job submit …
-- callfleet deploy` (re)deploys the whole system in place while a call is in progress,
and `ray job submit … -- callfleet bots deploy FILE` makes a script live on the gateway
replicas, or refuses a broken one with its file:line while the old version serves."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
import yaml

from cluster.records.bot_scripts import PublishedScripts
from configs.settings import settings_doc
from telephony.media_fork import ForkMetadata
from telephony.sim.fork_client import CallerTurn, SimulatedCall, run_call
from telephony.sim.scenarios import trim_silence

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "bots" / "scripts" / "inbound_shop.yaml"


def submit(cluster_settings, *entrypoint: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`ray job submit` exactly as a user runs it against the local head's job server."""
    ray = str(Path(sys.executable).with_name("ray"))
    address = f"http://127.0.0.1:{cluster_settings.ray.dashboard_port}"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    return subprocess.run(
        [ray, "job", "submit", "--address", address, "--working-dir", str(ROOT), "--",
         *entrypoint], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def settings_file(cluster_settings, tmp_path_factory) -> Path:
    """The session cluster's settings as a file a job can load (same settings: same
    Serve config, so a redeploy changes nothing)."""
    path = tmp_path_factory.mktemp("job") / "settings.yaml"
    path.write_text(yaml.safe_dump(settings_doc(cluster_settings)))
    return path


def gateway_replicas() -> set[str]:
    from ray import serve

    app = serve.status().applications["callfleet"]
    return {f"{name}:{state}:{count}" for name, d in app.deployments.items()
            for state, count in d.replica_states.items()}


def test_job_deploy_updates_in_place_without_dropping_a_call(
        driver, cluster_settings, settings_file, caller_voice):
    before = gateway_replicas()
    turns = [CallerTurn(trim_silence(caller_voice.speak(text, 16000), 16000), text,
                        silence_s=silence)
             for text, silence in (("Hi, where is my order?", 0.0),
                                   ("It is A one zero zero two.", 4.0),
                                   ("No, that's all. Goodbye.", 4.0))]
    call = SimulatedCall(
        ForkMetadata(call_uuid=str(uuid.uuid4()), sample_rate=16000, direction="inbound"),
        turns, max_wait_s=40)
    reports = []
    placed = threading.Thread(target=lambda: reports.append(
        asyncio.run(run_call(f"{driver.media_url}/{call.meta.call_uuid}", call))))
    placed.start()
    time.sleep(2.0)  # the call is up and talking while the job deploys
    job = submit(cluster_settings, "callfleet", "--config", str(settings_file), "deploy")
    placed.join(120)
    out = job.stdout + job.stderr
    assert job.returncode == 0, out[-3000:]
    assert "CallFleet deployed" in out
    assert f"media forks to ws://127.0.0.1:{cluster_settings.gateway.media_port}/media" in out
    assert gateway_replicas() == before  # updated in place: same replicas, all running
    assert reports and reports[0].error is None, reports
    assert all(latency is not None for latency in reports[0].turn_latency_s)


def test_job_bots_deploy_makes_a_script_live_and_refuses_a_broken_one(
        driver, cluster_settings, settings_file, tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "shop_intents.yaml").write_text(
        (ROOT / "bots" / "data" / "shop_intents.yaml").read_text())
    probe = folder / "deploy_probe.yaml"
    probe.write_text(SHOP.read_text().replace("bot: inbound_shop", "bot: deploy_probe", 1))
    job = submit(cluster_settings, "callfleet", "--config", str(settings_file),
                 "bots", "deploy", str(probe), "--timeout", "60")
    out = job.stdout + job.stderr
    assert job.returncode == 0, out[-3000:]
    assert "live" in out and "deploy_probe" in out
    client = redis.Redis.from_url(driver.redis_url, decode_responses=True)
    store = PublishedScripts(client)
    version = store.deployed()["deploy_probe"]["version"]
    replicas = store.replicas()
    assert replicas and all(r["bots"].get("deploy_probe") == version for r in replicas.values())

    broken = folder / "deploy_probe_broken.yaml"
    broken.write_text(probe.read_text().replace("start: greet", "start: nowhere", 1))
    job = submit(cluster_settings, "callfleet", "--config", str(settings_file),
                 "bots", "deploy", str(broken))
    out = job.stdout + job.stderr
    assert job.returncode != 0
    assert f"{broken}:" in out and "nowhere" in out
    assert all(r["bots"].get("deploy_probe") == version for r in store.replicas().values())
    assert json.loads(client.hget("cf:bots:deployed", "deploy_probe"))["version"] == version
    client.close()
