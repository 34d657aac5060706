"""`callfleet models promote|rollback` against the running session cluster: the intent
replicas are reconfigured in place (same process) while requests keep flowing, no request
fails, and answers come from the promoted version afterwards."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import yaml

from tests.integration.helpers import Traffic

pytestmark = pytest.mark.integration


def _copy_of_current(registry) -> tuple[str, str]:
    """Commit a copy of the current intent version (same weights, so the answers other
    tests expect do not change) and return (current, copy)."""
    current = registry.get("intent")
    version, folder = registry.new_version_dir("intent")
    for item in current.path.iterdir():
        if item.is_file() and item.name != "meta.json":
            shutil.copy2(item, folder / item.name)
    registry.commit("intent", version, {**current.meta, "derived_from": current.version})
    return current.version, version


def _cli(settings_file, registry, *argv: str) -> int:
    from cluster.cli.main import main

    return main(["--config", str(settings_file), "models", "--registry", str(registry.root), *argv])


def test_promote_and_rollback_reconfigure_the_live_intent_replica(
        driver, cluster_settings, trained_registry, tmp_path, capsys) -> None:
    from ray import serve

    from configs.settings import settings_doc

    settings_file = tmp_path / "cluster.yaml"
    settings_file.write_text(yaml.safe_dump(settings_doc(cluster_settings)))
    before, candidate = _copy_of_current(trained_registry)
    handle = serve.get_deployment_handle("intent", app_name=driver.app_name)

    async def swap(*argv: str) -> tuple[int, int, int, Traffic]:
        pid = (await handle.info.remote())["pid"]
        traffic = Traffic(handle)
        codes: list[int] = []

        async def command():
            codes.append(await asyncio.to_thread(_cli, settings_file, trained_registry, *argv))

        await traffic.run_while(command)
        return codes[0], pid, (await handle.info.remote())["pid"], traffic

    code, pid_before, pid_after, traffic = asyncio.run(swap("promote", "intent", candidate))
    out = capsys.readouterr().out
    versions = [v for _, v in traffic.answers]
    print(f"promote: {len(versions)} answers, {len(traffic.failures)} failures, "
          f"longest wait {traffic.longest_gap_s():.2f} s")
    assert code == 0, out
    assert "reconfigured in place" in out
    assert not traffic.failures, traffic.failures[:3]
    assert versions[0] == before and versions[-1] == candidate
    assert pid_after == pid_before  # reconfigured, not restarted
    assert trained_registry.current("intent") == candidate

    code, pid_before, pid_after, traffic = asyncio.run(swap("rollback", "intent"))
    versions = [v for _, v in traffic.answers]
    assert code == 0, capsys.readouterr().out
    assert not traffic.failures, traffic.failures[:3]
    assert versions[-1] == before and pid_after == pid_before
    assert trained_registry.current("intent") == before
