"""`callfleet agents ...` and `callfleet queue` against a real Redis, found the way the
CLI finds a running cluster's (run/cluster.json) or given with --redis-url."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import redis

from cluster.cli.main import build_parser
from cluster.routing import EscalationRequest, RoutingStore, SkillRouter
from cluster.runtime.redis_server import EmbeddedRedis
from tests.fakes.dialer import free_port

pytestmark = pytest.mark.unit






@pytest.fixture
def url(redis_server: EmbeddedRedis) -> str:
    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server.url


def run(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.func(args)


def escalate(url: str, call: str, **fields) -> None:
    async def go() -> None:
        store = RoutingStore(url)
        try:
            await SkillRouter(store).escalate(EscalationRequest(call_uuid=call, reason="anger",
                                                                customer={"name": "Pat"}, **fields))
        finally:
            await store.close()

    asyncio.run(go())


def test_add_list_state_remove(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("agents", "add", "ann", "--extension", "7001", "--skill", "billing=3",
               "--skill", "German", "--concurrency", "2", "--redis-url", url) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ann:")
    assert run("agents", "state", "ann", "available", "--redis-url", url) == 0
    capsys.readouterr()
    assert run("agents", "list", "--json", "--redis-url", url) == 0
    (agent,) = json.loads(capsys.readouterr().out)
    assert agent["agent_id"] == "ann" and agent["state"] == "available" and agent["online"]
    assert agent["profile"]["skills"] == {"billing": 3, "german": 1}
    assert token.split(":", 1)[1] not in json.dumps(agent)
    assert run("agents", "list", "--redis-url", url) == 0
    table = capsys.readouterr().out
    assert "ann" in table and "billing=3" in table and "1" in table
    assert run("agents", "token", "ann", "--redis-url", url) == 0
    assert capsys.readouterr().out.strip() not in ("", token)
    assert run("agents", "remove", "ann", "--redis-url", url) == 0
    assert run("agents", "remove", "ann", "--redis-url", url) == 2
    assert "no agent 'ann'" in capsys.readouterr().err


def test_bad_input_exits_2_with_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("agents", "add", "ann", "--extension", "7001", "--skill", "billing=high",
               "--redis-url", url) == 2
    assert "whole number" in capsys.readouterr().err
    assert run("agents", "add", "queue", "--extension", "7001", "--redis-url", url) == 2
    assert "reserved" in capsys.readouterr().err
    assert run("agents", "add", "ann", "--extension", "7001", "--redis-url", url) == 0
    assert run("agents", "add", "ann", "--extension", "7001", "--redis-url", url) == 2
    assert "already exists" in capsys.readouterr().err
    assert run("agents", "state", "bob", "break", "--redis-url", url) == 2
    with pytest.raises(SystemExit):
        run("agents", "state", "ann", "on_call", "--redis-url", url)  # argparse refuses


def test_queue_in_service_order_without_customer_data(url: str, capsys) -> None:
    escalate(url, "call-1")
    escalate(url, "call-2", vip=True, skills={"billing": 2})
    assert run("queue", "--json", "--redis-url", url) == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["call_uuid"] for i in items] == ["call-2", "call-1"]
    assert "Pat" not in json.dumps(items)
    assert run("queue", "--redis-url", url) == 0
    out = capsys.readouterr().out
    assert "VIP" in out and "billing>=2" in out


def test_finds_the_running_cluster_redis(url: str, tmp_path: Path, capsys) -> None:
    from cluster.runtime.lifecycle import ClusterInfo

    config = tmp_path / "callfleet.yaml"
    config.write_text(f"state_dir: {tmp_path / 'var'}\n")
    run_dir = tmp_path / "var" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "cluster.json").write_text(json.dumps(asdict(ClusterInfo(
        ray_address="127.0.0.1:1", started_ray=False, redis_url=url, started_redis=False,
        http_url="http://127.0.0.1:1", app_name="callfleet", started_at=0.0))))
    assert run("--config", str(config), "agents", "add", "ann", "--extension", "7001") == 0
    capsys.readouterr()
    (run_dir / "cluster.json").unlink()
    assert run("--config", str(config), "queue") == 1
    assert "callfleet up" in capsys.readouterr().err


def test_unreachable_redis_exits_1(capsys) -> None:
    assert run("queue", "--redis-url", f"redis://127.0.0.1:{free_port()}/0") == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and "callfleet status" in err
