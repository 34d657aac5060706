"""The declarative Serve config `callfleet up` applies, and the one a promotion applies."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from cluster.runtime.serve_deploy import ServeDeployError, build_config, with_model_version
from configs.settings import load_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path):
    return load_settings(state_dir=str(tmp_path / "state"), registry_path=str(tmp_path / "reg"),
                         redis_url="redis://127.0.0.1:6391/0", api={"api_key": "very-secret-key"})


def test_config_is_valid_for_serve_and_keeps_secrets_out(settings) -> None:
    from ray.serve.schema import ServeDeploySchema

    config = build_config(settings)
    ServeDeploySchema.model_validate(config)  # what the Serve controller accepts
    main, api = config["applications"]
    assert (main["import_path"], api["import_path"]) == (
        "deployments.app:app_builder", "deployments.api.ingress:api_builder")
    assert api["route_prefix"] == "/api"
    deployments = {d["name"]: d["user_config"] for d in main["deployments"]}
    assert set(deployments) == {"asr", "intent", "emotion"}
    assert deployments["intent"]["max_batch_size"] == settings.intent.max_batch_size
    assert "very-secret-key" not in str(config)  # the dashboard shows the config
    settings_file = main["args"]["config"]
    assert stat.S_IMODE(os.stat(settings_file).st_mode) == 0o600
    assert yaml.safe_load(open(settings_file))["api"]["api_key"] == "very-secret-key"


def test_the_app_builder_rebuilds_only_when_settings_change(settings) -> None:
    first = build_config(settings)["applications"][0]["args"]
    assert build_config(settings)["applications"][0]["args"] == first  # same code version
    changed = settings.model_copy(update={"redis_url": "redis://127.0.0.1:7000/0"})
    assert build_config(changed)["applications"][0]["args"] != first


def test_promotion_changes_only_the_model_version(settings) -> None:
    config = build_config(settings)
    promoted = with_model_version(config, settings.serve.app_name, "intent", "v0007")
    intent = next(d for d in promoted["applications"][0]["deployments"] if d["name"] == "intent")
    assert intent["user_config"]["version"] == "v0007"
    original = next(d for d in config["applications"][0]["deployments"] if d["name"] == "intent")
    assert original["user_config"]["version"] != "v0007"  # the input is not modified
    assert {k: v for k, v in intent["user_config"].items() if k != "version"} == {
        k: v for k, v in original["user_config"].items() if k != "version"}
    with pytest.raises(ServeDeployError, match="no deployment serves 'conversion'"):
        with_model_version(config, settings.serve.app_name, "conversion", "v0001")
