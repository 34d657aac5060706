"""Two Ray nodes on this machine (`ray start --head`, then `ray start --address …` as a
second node), deployed with `serve deploy configs/serve.yaml` exactly as shipped (only
the HTTP port and proxy placement changed for the test), every setting from the nodes'
environment, the model registry on a real S3-compatible server and no shared disk
between the registry and the replicas: the gateway's replicas land on both nodes, each
serving the media port; a call is answered; a bot script deployed with `callfleet bots
deploy` goes live on both.

This cluster is the test's own (ports, temp folder and processes); it never touches the
session's cluster and is stopped by process group and temp folder at the end."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from cluster.records.bot_scripts import PublishedScripts
from cluster.runtime.redis_server import EmbeddedRedis
from telephony.media_fork import ForkMetadata
from telephony.sim.fork_client import CallerTurn, SimulatedCall, run_call
from telephony.sim.scenarios import trim_silence
from tests.servers import free_port, s3_server
from training.models.remote import push_registry

# its own cluster, not the session's: it runs in the short tier beside the integration
# tier (tests/tiers.py), like Ray Train's test
pytestmark = [pytest.mark.integration, pytest.mark.models, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class TwoNodes:
    def __init__(self, root: Path, env: dict[str, str], http_port: int, media_port: int,
                 redis_url: str, registry_cache: Path) -> None:
        self.root, self.env = root, env
        self.http_port, self.media_port = http_port, media_port
        self.redis_url, self.registry_cache = redis_url, registry_cache
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.nodes: list[subprocess.Popen] = []

    def start(self) -> None:
        temp = str(self.root / "ray")
        # every port Ray would otherwise take by default is a free one: the session's
        # cluster runs beside this one (its dashboard agent on 52365, client server 10001)
        head = [str(BIN / "ray"), "start", "--head", "--block", f"--port={self.gcs_port}",
                "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}", f"--temp-dir={temp}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--ray-client-server-port={free_port()}",
                f"--metrics-export-port={free_port()}", "--disable-usage-stats"]
        self.nodes.append(self._spawn(head, "head"))
        address = self._wait_address()
        worker = [str(BIN / "ray"), "start", "--block", f"--address={address}",
                  "--num-cpus=2", '--resources={"second_node": 1}',
                  f"--dashboard-agent-listen-port={free_port()}",
                  f"--metrics-export-port={free_port()}", "--disable-usage-stats"]
        self.nodes.append(self._spawn(worker, "worker"))

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (kept open while it runs)
        return subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def _wait_address(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = (self.root / "head.log").read_text(errors="replace")
            for line in text.splitlines():
                if "ray start --address=" in line:
                    return re.search(r"--address='?([0-9.]+:[0-9]+)", line).group(1)
            time.sleep(0.5)
        raise RuntimeError("the head did not start:\n" + text[-2000:])

    def run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def stop(self) -> None:
        for proc in self.nodes:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Ray's own processes carry the test's temp folder on their command lines
        subprocess.run(["pkill", "-9", "-f", str(self.root / "ray")], check=False)
        subprocess.run(["pkill", "-9", "-f", f":{self.gcs_port}"], check=False)


@pytest.fixture(scope="module")
def two_nodes(trained_registry):
    root = Path(tempfile.mkdtemp(prefix="cfmn", dir="/tmp"))  # short: Ray's socket paths
    with s3_server("models") as aws:
        registry_url = "s3://models/callfleet/registry"
        push_registry(trained_registry.root, registry_url)
        store = EmbeddedRedis(root / "redis", free_port())
        store.start()
        http_port, media_port = free_port(), free_port()
        cache = root / "node-registry"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CALLFLEET_", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS"))}
        env.update(aws)
        env.update({
            "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "CALLFLEET_REDIS_URL": store.url,
            "CALLFLEET_REGISTRY_URL": registry_url,
            "CALLFLEET_REGISTRY_PATH": str(cache),
            "CALLFLEET_STATE_DIR": str(root / "state"),
            "CALLFLEET_SERVE__HTTP_PORT": str(http_port),
            "CALLFLEET_GATEWAY__MEDIA_PORT": str(media_port),
            "CALLFLEET_GATEWAY__REPLICAS": "2",
            "CALLFLEET_GATEWAY__MAX_REPLICAS_PER_NODE": "1",
        })
        cluster = TwoNodes(root, env, http_port, media_port, store.url, cache)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
            store.stop()
            shutil.rmtree(root, ignore_errors=True)


def gateway_replicas(redis_url: str) -> dict[str, dict]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return PublishedScripts(client).replicas()
    finally:
        client.close()


def wait_healthy(cluster: TwoNodes, timeout: float = 480) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"http://127.0.0.1:{cluster.http_port}/healthz", timeout=5)
            last = f"HTTP {resp.status_code}"
            if resp.status_code == 200 and len(gateway_replicas(cluster.redis_url)) == 2:
                return
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(2)
    status = cluster.run(str(BIN / "serve"), "status", "--address",
                         f"http://127.0.0.1:{cluster.dashboard_port}")
    raise AssertionError(f"not healthy after {timeout:.0f} s ({last}):\n{status.stdout[-3000:]}")


def test_serve_deploy_spreads_gateways_over_two_nodes_with_the_registry_on_s3(
        two_nodes, caller_voice, tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": two_nodes.http_port}
    config["proxy_location"] = "HeadOnly"  # two proxies cannot share one loopback port
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    deployed = two_nodes.run(str(BIN / "serve"), "deploy", str(path), "--address",
                             f"http://127.0.0.1:{two_nodes.dashboard_port}")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    wait_healthy(two_nodes)

    replicas = gateway_replicas(two_nodes.redis_url)
    assert len({r["node"] for r in replicas.values()}) == 2, replicas  # one per node
    assert all(r["media"] == f"127.0.0.1:{two_nodes.media_port}" for r in replicas.values())
    # the models came from object storage into the nodes' (empty) registry folder
    assert sorted(p.name for p in two_nodes.registry_cache.iterdir()) >= ["emotion", "intent"]

    turns = [CallerTurn(trim_silence(caller_voice.speak(text, 16000), 16000), text)
             for text in ("Hi, where is my order?", "No, that's all. Goodbye.")]

    def place() -> object:
        call = SimulatedCall(ForkMetadata(call_uuid=str(uuid.uuid4()), sample_rate=16000,
                                          direction="inbound"), turns, max_wait_s=40)
        return asyncio.run(run_call(
            f"ws://127.0.0.1:{two_nodes.media_port}/media/{call.meta.call_uuid}", call))

    # a warm-up call first, as a floor already running would have had: on this 2-core
    # machine, beside the integration tier's cluster, the cold replicas' first turn can
    # miss the simulated caller's patience (the call itself must still connect cleanly)
    warm = place()
    assert warm.error is None and warm.connected
    report = place()
    assert report.error is None
    assert report.turn_latency_s and all(t is not None for t in report.turn_latency_s)

    script = tmp_path / "scripts" / "two_node_probe.yaml"
    script.parent.mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "bots" / "data" / "shop_intents.yaml", tmp_path / "data")
    script.write_text((ROOT / "bots" / "scripts" / "inbound_shop.yaml").read_text()
                      .replace("bot: inbound_shop", "bot: two_node_probe", 1))
    out = two_nodes.run(str(BIN / "callfleet"), "bots", "deploy", str(script),
                        "--redis-url", two_nodes.redis_url, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout)
    assert (summary["replicas"], summary["serving"]) == (2, 2)
