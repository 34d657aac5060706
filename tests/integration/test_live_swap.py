"""Live model swap: requests keep flowing, none fail, and answers come from the new version.

An in-process Ray (no fixed ports, no dashboard, Serve proxy disabled) runs only the
intent deployment over a registry with two tiny versions whose intents have different
names, so every answer says which version produced it. A client keeps requests in
flight through the DeploymentHandle while the version changes.

What Ray 2.60 does (checked here): `serve.run` of the same app with only the
``user_config`` changed does NOT reconfigure in place — an imperative deploy gets a new
random code version, so Serve replaces the replica (a restart). With the default
``max_surge_percent=0`` the old replica stops before the new one is ready and requests
wait in the handle meanwhile. In-place `reconfigure` happens for declarative deploys
(`serve deploy` / REST, where the code version is a hash of the config), which
`test_promotion_reconfigures_in_place_without_failures` drives through the controller
the way the REST API does.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.helpers import Traffic

pytestmark = pytest.mark.integration

APP = "swaptest"


def _tiny_data(path: Path, suffix: str) -> Path:
    greet = ["hello", "hi there", "good morning", "hey", "hello again", "hi",
             "morning to you", "hey hello", "greetings", "good day", "hiya", "howdy"]
    bye = ["goodbye", "bye now", "see you later", "talk to you soon", "bye", "farewell",
           "see ya", "good night", "catch you later", "have a nice day bye", "so long", "later"]
    rows = [(t, f"greet_{suffix}") for t in greet] + [(t, f"bye_{suffix}") for t in bye]
    path.write_text("text,category\n" + "".join(f"{t},{c}\n" for t, c in rows))
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from training.intent.build import IntentBuildOptions, train_intent
    from training.intent.config import IntentTrainConfig
    from training.models.registry import ModelRegistry

    root = tmp_path_factory.mktemp("swap")
    reg = ModelRegistry(root / "registry")
    config = IntentTrainConfig(epochs=3, validation=0, holdout=0, batch_size=8, lr=2e-4,
                               cpu_threads=1, warmup_fraction=0.1)
    for suffix in ("one", "two"):
        train_intent(reg, _tiny_data(root / f"{suffix}.csv", suffix), config, IntentBuildOptions())
    assert reg.current("intent") == "v0001"
    return reg


@pytest.fixture(scope="module")
def serve_instance():
    import ray
    from ray import serve

    if ray.is_initialized():  # the session cluster's driver: this test runs its own
        ray.shutdown()

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    serve.start(proxy_location="Disabled")
    yield serve
    serve.shutdown()
    ray.shutdown()


def _app(registry, version: str, **extra):
    from configs.settings import load_settings
    from deployments.intent import IntentDeployment

    settings = load_settings(registry_path=str(registry.root), state_dir=str(registry.root.parent))
    doc = settings.model_dump(mode="json")
    user_config = {"version": version, "max_batch_size": 8, "batch_wait_timeout_s": 0.005, **extra}
    return IntentDeployment.options(
        user_config=user_config, ray_actor_options={"num_cpus": 0.25}, health_check_period_s=2,
    ).bind(doc)


async def _pid(handle) -> int:
    return (await handle.info.remote())["pid"]


def test_serve_run_with_new_user_config_restarts_the_replica(registry, serve_instance) -> None:
    serve = serve_instance
    handle = serve.run(_app(registry, "v0001"), name=APP, route_prefix=None)

    async def scenario():
        before = await _pid(handle)
        traffic = Traffic(handle)

        async def promote():
            registry.promote("intent", "v0002")
            await asyncio.to_thread(serve.run, _app(registry, "v0002"), name=APP, route_prefix=None)

        await traffic.run_while(promote)
        after = await _pid(handle)
        return before, after, traffic

    before, after, traffic = asyncio.run(scenario())
    versions = [v for _, v in traffic.answers]
    print(f"serve.run swap: pid {before} -> {after}, {len(versions)} answers, "
          f"{len(traffic.failures)} failures, longest wait {traffic.longest_gap_s():.1f} s")
    assert not traffic.failures, traffic.failures[:3]
    assert versions[0] == "v0001" and versions[-1] == "v0002"
    assert before != after  # Ray 2.60: an imperative redeploy replaces the replica
    serve.delete(APP)
    registry.promote("intent", "v0001")


def _declarative(registry, user_config: dict) -> None:
    """Deploy (or update) the intent-only app from a config, as `serve deploy` does."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    overrides = {"registry_path": str(registry.root), "state_dir": str(registry.root.parent)}
    config = ServeDeploySchema.model_validate({"applications": [{
        "name": APP, "route_prefix": None, "import_path": "deployments.intent:intent_app",
        "args": {"overrides": overrides},
        "deployments": [{"name": "intent", "user_config": user_config,
                         "ray_actor_options": {"num_cpus": 0.25}, "health_check_period_s": 2}],
    }]})
    client = _get_global_client()
    client.deploy_apps(config)
    deadline = time.monotonic() + 240  # model loads are slow on a busy 2-core machine
    while time.monotonic() < deadline:
        status = client.get_serve_status(APP).app_status
        if status.status == "RUNNING":
            return
        if status.status == "DEPLOY_FAILED":
            raise AssertionError(f"intent app failed to deploy: {status.message}")
        time.sleep(0.5)
    raise AssertionError(f"intent app not running after 240 s: {status.status} {status.message}")


def test_promotion_reconfigures_in_place_without_failures(registry, serve_instance) -> None:
    serve = serve_instance
    batching = {"max_batch_size": 8, "batch_wait_timeout_s": 0.005}
    _declarative(registry, {"version": "v0001", "shadow_version": "v0002", **batching})
    handle = serve.get_deployment_handle("intent", app_name=APP)

    async def scenario():
        before = await _pid(handle)
        for text in ("hello", "bye bye", "hi there", "see you"):
            await handle.classify.remote(text)
        shadow = await handle.shadow_report.remote()
        traffic = Traffic(handle)

        async def promote():
            registry.promote("intent", "v0002")
            await asyncio.to_thread(_declarative, registry, {"version": "v0002", **batching})

        await traffic.run_while(promote)
        return before, await _pid(handle), traffic, shadow, await handle.info.remote()

    before, after, traffic, shadow, info = asyncio.run(scenario())
    versions = [v for _, v in traffic.answers]
    switch = versions.index("v0002")
    print(f"in-place swap: pid {before} -> {after}, {len(versions)} answers, "
          f"{len(traffic.failures)} failures, switched after {switch} answers, longest wait "
          f"{traffic.longest_gap_s():.1f} s; shadow {shadow}")
    assert not traffic.failures, traffic.failures[:3]
    assert before == after  # the same replica: the model was swapped by reconfigure()
    assert versions[0] == "v0001" and set(versions[switch:]) == {"v0002"}
    assert info["version"] == "v0002" and info["shadow_version"] is None
    # the shadow scored the same utterances; the two tiny versions never share a label
    assert shadow["serving_version"] == "v0001" and shadow["candidate_version"] == "v0002"
    assert shadow["compared"] >= 1 and shadow["agreement"] == 0.0 and shadow["errors"] == 0
    serve.delete(APP)
