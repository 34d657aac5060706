"""The portable Serve config (`callfleet serve-config`, configs/serve.yaml): what `serve
deploy` and KubeRay take is the app `callfleet up`/`deploy` runs, with nothing of one
machine in it; its apps build from the cluster's environment; autoscaling comes from
settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from cluster.cli.main import main
from cluster.runtime.deploy import check_state_dir, with_cluster_state
from cluster.runtime.lifecycle import ClusterError
from cluster.runtime.serve_deploy import build_config, portable_config, render_portable_config
from configs.settings import load_settings
from deployments.app import app_builder, replica_count

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("CALLFLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)


def test_configs_serve_yaml_is_the_generated_portable_config(clean_env) -> None:
    shipped = (ROOT / "configs" / "serve.yaml").read_text()
    assert shipped == render_portable_config(load_settings()), \
        "configs/serve.yaml is stale: run `callfleet serve-config -o configs/serve.yaml`"
    from ray.serve.schema import ServeDeploySchema  # heavy: loads ray

    ServeDeploySchema.model_validate(yaml.safe_load(shipped))
    assert "/tmp" not in shipped and "redis://" not in shipped


def test_portable_and_local_configs_are_the_same_apps(clean_env, tmp_path) -> None:
    settings = load_settings(state_dir=str(tmp_path))
    local, portable = build_config(settings), portable_config(settings)
    strip = [{k: v for k, v in app.items() if k != "args"} for app in local["applications"]]
    assert strip == [{k: v for k, v in app.items() if k != "args"}
                     for app in portable["applications"]]
    assert all(app["args"] == {"config": None, "overrides": {}}
               for app in portable["applications"])


def test_serve_config_command_writes_the_file(clean_env, tmp_path) -> None:
    out = tmp_path / "serve.yaml"
    assert main(["serve-config", "-o", str(out)]) == 0
    assert out.read_text() == (ROOT / "configs" / "serve.yaml").read_text()


def test_apps_build_from_the_environment(clean_env, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CALLFLEET_REDIS_URL", "redis://:pw@redis.internal:6379/0")
    monkeypatch.setenv("CALLFLEET_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CALLFLEET_FREESWITCH__FORK_AUTH__SECRET", "k" * 32)
    args = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    app = app_builder(args["applications"][0]["args"])
    assert type(app).__name__ == "Application"


def test_without_redis_the_app_says_how_to_get_one(clean_env, tmp_path) -> None:
    with pytest.raises(ValueError, match="CALLFLEET_REDIS_URL"):
        with_cluster_state(load_settings(state_dir=str(tmp_path)))


def test_a_state_folder_inside_the_jobs_working_dir_is_refused(tmp_path) -> None:
    job_dir = tmp_path / "session" / "runtime_resources" / "working_dir_files" / "_ray_pkg_1"
    with pytest.raises(ClusterError, match="CALLFLEET_STATE_DIR"):
        check_state_dir(load_settings(state_dir=str(job_dir / "var")))
    check_state_dir(load_settings(state_dir=str(tmp_path / "var")))


def test_autoscaling_comes_from_settings() -> None:
    fixed = load_settings()
    assert replica_count(fixed.asr) == {"num_replicas": 1}
    scaled = load_settings(asr={"replicas": 1, "autoscaling": {"max_replicas": 4}},
                           gateway={"replicas": 2, "autoscaling": {
                               "max_replicas": 6, "target_ongoing_requests": 20}})
    asr = replica_count(scaled.asr)["autoscaling_config"]
    assert (asr["min_replicas"], asr["max_replicas"]) == (1, 4)
    assert asr["target_ongoing_requests"] == scaled.asr.max_batch_size / 2
    gateway = replica_count(scaled.gateway)["autoscaling_config"]
    assert (gateway["min_replicas"], gateway["max_replicas"]) == (2, 6)
    assert gateway["target_ongoing_requests"] == 20


def test_serve_yaml_names_both_apps_and_their_builders(clean_env) -> None:
    from ray.serve.schema import ServeDeploySchema  # heavy: loads ray

    schema = ServeDeploySchema.model_validate(
        yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text()))
    app, api = schema.applications
    assert (app.name, app.route_prefix, app.import_path) == (
        "callfleet", "/", "deployments.app:app_builder")
    assert (api.name, api.route_prefix, api.import_path) == (
        "callfleet-api", "/api", "deployments.api.ingress:api_builder")
    assert (schema.http_options.host, schema.http_options.port) == ("127.0.0.1", 8000)


def test_serve_builds_both_apps_the_way_serve_deploy_does(clean_env, monkeypatch,
                                                          tmp_path) -> None:
    import ray  # heavy: loads ray
    from ray.serve import Application  # heavy: loads ray
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from deployments.api.ingress import api_builder

    monkeypatch.setenv("CALLFLEET_REDIS_URL", "redis://:pw@redis.internal:6379/0")
    monkeypatch.setenv("CALLFLEET_STATE_DIR", str(tmp_path))
    doc = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    connected = ray.is_initialized()  # the integration tests may hold a driver already
    for builder, app in zip((app_builder, api_builder), doc["applications"], strict=True):
        built = call_user_app_builder_with_args_if_necessary(builder, app["args"])
        assert isinstance(built, Application)
    assert ray.is_initialized() == connected  # building the graph starts nothing


def test_builder_reports_bad_overrides_as_config_errors(clean_env) -> None:
    with pytest.raises(ValueError, match="asr.beam_size"):
        app_builder({"overrides": {"redis_url": "redis://db:6379/0", "asr": {"beam_size": 0}}})
