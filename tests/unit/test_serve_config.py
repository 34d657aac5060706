"""`serve deploy configs/serve.yaml` works: the file passes Ray Serve's own schema and its
import path builds the CallFleet application. Nothing here starts Ray."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.serve import Application
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve.schema import ServeDeploySchema

from deployments.app import app_builder
from deployments.common import AppArgs

pytestmark = pytest.mark.unit

SERVE_YAML = Path(__file__).resolve().parents[2] / "configs" / "serve.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CALLFLEET_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def serve_doc() -> dict[str, Any]:
    return yaml.safe_load(SERVE_YAML.read_text())


@pytest.fixture(scope="module")
def app_doc(serve_doc: dict[str, Any]) -> dict[str, Any]:
    return serve_doc["applications"][0]


def test_serve_yaml_passes_ray_serves_schema(serve_doc: dict[str, Any]) -> None:
    schema = ServeDeploySchema.model_validate(serve_doc)
    app, api = schema.applications
    assert (api.name, api.route_prefix) == ("callfleet-api", "/api")
    assert api.import_path == "deployments.api.ingress:api_builder"
    assert app.name == "callfleet"
    assert app.route_prefix == "/"
    assert app.import_path == "deployments.app:app_builder"
    assert schema.http_options.host == "127.0.0.1"
    assert schema.http_options.port == 8000


def test_import_path_resolves_to_the_app_builder(app_doc: dict[str, Any]) -> None:
    module_name, _, attr = app_doc["import_path"].partition(":")
    builder = getattr(importlib.import_module(module_name), attr)
    assert callable(builder)
    assert builder is app_builder


def test_yaml_args_parse_as_app_args(app_doc: dict[str, Any]) -> None:
    args = AppArgs.model_validate(app_doc["args"])
    assert args.config is None
    assert args.overrides["redis_url"] == "redis://127.0.0.1:6391/0"
    assert args.overrides["state_dir"] == "/tmp/callfleet"


def test_serve_builds_the_app_from_the_yaml_args(app_doc: dict[str, Any]) -> None:
    # the same call Serve makes for `serve deploy` / `serve run`
    connected = ray.is_initialized()  # the integration tests may hold a driver already
    app = call_user_app_builder_with_args_if_necessary(app_builder, app_doc["args"])
    assert isinstance(app, Application)
    assert ray.is_initialized() == connected  # building the graph starts nothing


def test_builder_without_redis_url_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        app_builder({})


def test_builder_reports_bad_overrides_as_config_errors() -> None:
    with pytest.raises(ValueError, match="asr.beam_size"):
        app_builder({"overrides": {"redis_url": "redis://db:6379/0", "asr": {"beam_size": 0}}})


def test_serve_builds_the_api_app_from_the_yaml_args(serve_doc: dict[str, Any]) -> None:
    from deployments.api.ingress import api_builder

    api = serve_doc["applications"][1]
    app = call_user_app_builder_with_args_if_necessary(api_builder, api["args"])
    assert isinstance(app, Application)
