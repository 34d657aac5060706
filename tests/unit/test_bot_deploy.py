"""`callfleet bots deploy`: scripts checked where the command runs, published through a
real Redis, and taken live by gateway replicas (their BotRegistry) without a restart; a
broken script is refused with file:line and the serving version stays."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis

from cluster.cli.main import main
from cluster.records.bot_scripts import (
    GEN_KEY,
    BundleError,
    PublishedScripts,
    ReplicaScripts,
    ScriptBundle,
    materialise,
)
from configs.settings import Settings
from deployments.gateway.bot_registry import BotRegistry
from telephony.media_fork import ForkMetadata
from tests.unit.test_bot_registry import INTENTS, script

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture
def client(redis_server):
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    r.flushdb()
    yield r
    r.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An operator's checkout: scripts/ beside data/ (the scripts name ../data/intents)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "intents.yaml").write_text(INTENTS)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "front_desk.yaml").write_text(
        script("front_desk", "Front desk, how can I help?"))
    return tmp_path


def gateway(tmp_path: Path, repo: Path, name: str) -> BotRegistry:
    """A replica's registry with its own node folder (state_dir) and the repo's scripts."""
    settings = Settings(state_dir=tmp_path / name,
                        bots={"scripts_dir": str(repo / "scripts"), "inbound_script": "front_desk",
                              "reload_interval_s": 0},
                        kb={"abcd_dir": None})
    return BotRegistry(settings)


async def greeting(registry: BotRegistry, bot: str) -> str:
    meta = ForkMetadata(call_uuid="c1", sample_rate=8000, extra={"bot": bot})
    b = await registry.for_call(meta)
    return (await b.start(b.new_state(call_uuid="c1"))).text


def test_the_bundle_keeps_the_layout_the_script_names_its_intents_by(repo: Path) -> None:
    bundle = ScriptBundle()
    bundle.add(repo / "scripts" / "front_desk.yaml", "front_desk", "v1",
               repo / "data" / "intents.yaml")
    assert set(bundle.files) == {"scripts/front_desk.yaml", "data/intents.yaml"}
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "x.yaml").write_text("bot: x")
    with pytest.raises(BundleError, match="more than one folder above"):
        bundle.add(deep / "x.yaml", "x", "v1", repo / "data" / "intents.yaml")


def test_materialise_never_writes_outside_its_folder(tmp_path: Path) -> None:
    out = materialise({"scripts/a.yaml": "bot: a", "../evil.yaml": "x",
                       "data/i.yaml": "intents: {}"}, tmp_path / "node")
    assert out == [(tmp_path / "node" / "scripts" / "a.yaml").resolve()]
    assert not (tmp_path / "evil.yaml").exists()


def test_deploy_reaches_every_replica_without_a_restart(
        tmp_path: Path, repo: Path, client, redis_server, capsys) -> None:
    async def run() -> None:
        replicas = [gateway(tmp_path, repo, f"node{i}") for i in (1, 2)]
        acks = [ReplicaScripts.from_url(redis_server.url, f"r{i}") for i in (1, 2)]
        assert await greeting(replicas[0], "front_desk") == "Front desk, how can I help?"

        new = tmp_path / "edit" / "scripts"
        new.mkdir(parents=True)
        (tmp_path / "edit" / "data").mkdir()
        (tmp_path / "edit" / "data" / "intents.yaml").write_text(INTENTS)
        (new / "front_desk.yaml").write_text(script("front_desk", "Hello from the new desk."))
        (new / "promo.yaml").write_text(script("promo", "A quick offer."))
        code = main(["bots", "deploy", str(new / "front_desk.yaml"), str(new / "promo.yaml"),
                     "--redis-url", redis_server.url, "--no-wait", "--json"])
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["deployed"] and summary["generation"] == 1

        for registry, ack in zip(replicas, acks, strict=True):
            assert await registry.sync_published(ack) == 1
            assert await greeting(registry, "front_desk") == "Hello from the new desk."
            assert await greeting(registry, "promo") == "A quick offer."
        store = PublishedScripts(client)
        seen = store.replicas()
        assert set(seen) == {"r1", "r2"}
        want = {b: i["version"] for b, i in summary["bots"].items()}
        assert all({b: r["bots"][b] for b in want} == want for r in seen.values())
        for registry, ack in zip(replicas, acks, strict=True):
            await registry.stop_watching(ack)
        assert store.replicas() == {}

    asyncio.run(run())


def test_a_broken_script_is_refused_with_file_line_and_nothing_is_published(
        tmp_path: Path, repo: Path, client, redis_server, capsys) -> None:
    broken = repo / "scripts" / "broken.yaml"
    broken.write_text(script("front_desk", "x").replace("goto: bye", "goto: nowhere"))
    code = main(["bots", "deploy", str(repo / "scripts" / "front_desk.yaml"), str(broken),
                 "--redis-url", redis_server.url, "--no-wait"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{broken}:" in err and "nowhere" in err
    assert client.get(GEN_KEY) is None  # not even the good file went out

    async def still_serving() -> str:
        registry = gateway(tmp_path, repo, "node")
        ack = ReplicaScripts.from_url(redis_server.url, "r")
        await registry.sync_published(ack)
        text = await greeting(registry, "front_desk")
        await registry.stop_watching(ack)
        return text

    assert asyncio.run(still_serving()) == "Front desk, how can I help?"


def test_the_wait_reports_replicas_that_did_not_take_the_new_version(
        repo: Path, client, redis_server, capsys) -> None:
    client.set("cf:bots:replica:old", json.dumps({"gen": 0, "bots": {"front_desk": "zzz"},
                                                  "rejected": {}}), px=20_000)
    code = main(["bots", "deploy", str(repo / "scripts" / "front_desk.yaml"),
                 "--redis-url", redis_server.url, "--timeout", "1", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert summary["deployed"] and not summary["ok"]
    assert (summary["replicas"], summary["serving"]) == (1, 0)
