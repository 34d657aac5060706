"""configs/kuberay/ deploys what `callfleet deploy` deploys, and Kubernetes would take it.

The RayService is checked against KubeRay's RayService CRD (an excerpt of its v1 schema,
tests/data/kuberay/, see the NOTICE there) the way `kubectl apply --validate=strict`
checks it: unknown fields are errors. The parts of the CRD that embed Kubernetes' own
types (pod templates, Services) and the other objects (ConfigMap, PVC, Job) are checked
against Kubernetes' schema (kubernetes-validate, strict). Its serveConfigV2 must be the
apps of configs/serve.yaml, and ASR and TTS must be able to run only on the GPU group.
Nothing here needs a cluster."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from configs.settings import Settings, load_settings
from deployments.common import actor_options

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "configs" / "kuberay"
SERVE_YAML = ROOT / "configs" / "serve.yaml"
CRD = ROOT / "tests" / "data" / "kuberay" / "ray.io_rayservices.v1.excerpt.yaml"
K8S_VERSION = "1.30"  # the oldest Kubernetes the manifest is meant for
ELIDED = "x-callfleet-elided"
SECRET_NAME = "callfleet-secrets"
# what the secret's keys stand for, for the settings check (real values never in the repo)
SECRET_PLACEHOLDERS = {
    "CALLFLEET_REDIS_URL": "redis://:password@redis:6379/0",
    "CALLFLEET_FREESWITCH__FORK_AUTH__SECRET": "a-fork-secret-of-32-characters!!",
    "CALLFLEET_FREESWITCH__PASSWORD": "not-the-default-password",
    "CALLFLEET_API__API_KEY": "an-api-key",
    "CALLFLEET_STORE_URL": "postgresql+psycopg://callfleet:pw@postgres/callfleet",
}


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(KUBERAY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


OBJECTS = _objects()
RAYSERVICE = OBJECTS[("RayService", "callfleet")]
CONFIG_MAP = OBJECTS[("ConfigMap", "callfleet-config")]
CLUSTER = RAYSERVICE["spec"]["rayClusterConfig"]
GROUPS = {g["groupName"]: g for g in CLUSTER["workerGroupSpecs"]}


def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text().split("\n---\n", 1)[1])
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return v1["schema"]["openAPIV3Schema"]


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema as the API server applies it with strict field validation: an object
    with declared properties refuses others (the server would otherwise prune them
    silently). `x-kubernetes-*` keys are annotations for the server (list/map merge types,
    int-or-string, CEL rules): JSON Schema ignores them, and int-or-string is already an
    anyOf in the schema."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for child in node.get("properties", {}).values():
            walk(child)
        for key in ("items", "additionalProperties"):
            walk(node.get(key))
        for key in ("anyOf", "allOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(schema)
    return schema


CRD_SCHEMA = _crd_schema()


def _elided(schema: dict[str, Any], value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(kind, path, value) for each part of `value` the CRD excerpt left out."""
    if ELIDED in schema:
        yield schema[ELIDED], path, value
        return
    if isinstance(value, dict):
        for key, sub in value.items():
            child = schema.get("properties", {}).get(key)
            if child is not None:
                yield from _elided(child, sub, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, sub in enumerate(value):
            yield from _elided(schema["items"], sub, f"{path}[{i}]")


def _crd_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_strict(CRD_SCHEMA))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(doc)]


def _k8s_errors(obj: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'.'.join(map(str, exc.path))}: {exc.message}"
    return None


def _pods() -> dict[str, dict[str, Any]]:
    """Every pod template that runs CallFleet: the head, each worker group, the model job."""
    pods = {"head": CLUSTER["headGroupSpec"]["template"]}
    pods.update({name: group["template"] for name, group in GROUPS.items()})
    pods["models-job"] = OBJECTS[("Job", "callfleet-models")]["spec"]["template"]
    return pods


def _container(template: dict[str, Any]) -> dict[str, Any]:
    (container,) = template["spec"]["containers"]
    return container


def _secret_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


# --- the RayService against KubeRay's CRD ---------------------------------------------------

def test_rayservice_passes_the_kuberay_crd_schema() -> None:
    assert RAYSERVICE["apiVersion"] == "ray.io/v1"
    assert _crd_errors(RAYSERVICE) == []


def test_the_schema_check_refuses_what_kubectl_would() -> None:
    # the check is only worth something if it fails: an unknown field, a number where the
    # CRD wants a string, a worker group without minReplicas
    typo = copy.deepcopy(RAYSERVICE)
    typo["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplica"] = 1
    assert any("minReplica" in e for e in _crd_errors(typo))
    number = copy.deepcopy(RAYSERVICE)
    number["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    assert any("num-cpus" in e for e in _crd_errors(number))
    missing = copy.deepcopy(RAYSERVICE)
    del missing["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]["minReplicas"]
    assert any("minReplicas" in e for e in _crd_errors(missing))
    bad_pod = copy.deepcopy(CLUSTER["headGroupSpec"]["template"])
    bad_pod["spec"]["containers"][0]["imagePullPolicy "] = "Always"
    assert _k8s_errors({"apiVersion": "v1", "kind": "PodTemplate",
                        "metadata": {"name": "x"}, "template": bad_pod})


def test_kubernetes_parts_of_the_rayservice_pass_kubernetes_schema() -> None:
    checked = []
    for kind, path, value in _elided(CRD_SCHEMA, RAYSERVICE):
        if kind == "PodTemplateSpec":
            obj = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                   "template": value}
        elif kind == "Service":
            obj = {"apiVersion": "v1", "kind": "Service", **value}
        else:
            pytest.fail(f"{path} is a field the vendored CRD excerpt does not carry ({kind}); "
                        "vendor it (tests/data/kuberay/NOTICE) before using it")
        assert _k8s_errors(obj) is None, path
        checked.append(path)
    # both pod templates and the Serve Service were really checked
    assert len([p for p in checked if p.endswith(".template")]) == 1 + len(GROUPS)
    assert ".spec.serveService" in checked


@pytest.mark.parametrize("key", [k for k in OBJECTS if k[0] != "RayService"],
                         ids=lambda k: f"{k[0]}/{k[1]}")
def test_other_objects_pass_kubernetes_schema(key: tuple[str, str]) -> None:
    assert _k8s_errors(OBJECTS[key]) is None


# --- the same Serve apps as the local deploy ------------------------------------------------

def _apps(config: dict[str, Any]) -> list[dict[str, Any]]:
    # Serve's defaults for what an app may leave out, so only real differences count
    return [{"args": {}, "deployments": [], **app} for app in config["applications"]]


def test_serve_config_v2_is_the_local_serve_config() -> None:
    local = yaml.safe_load(SERVE_YAML.read_text())
    kube = yaml.safe_load(RAYSERVICE["spec"]["serveConfigV2"])
    assert _apps(kube) == _apps(local), (
        "serveConfigV2 in configs/kuberay/rayservice.yaml must run the apps of "
        "configs/serve.yaml: copy its `applications` over")
    # only where the proxies listen may differ: on the pod's address in Kubernetes
    allowed = {"http_options", "proxy_location", "applications"}
    assert {k: v for k, v in kube.items() if k not in allowed} == {
        k: v for k, v in local.items() if k not in allowed}
    assert kube["http_options"]["host"] == "0.0.0.0"
    assert kube["http_options"]["port"] == local["http_options"]["port"]
    # (configs/serve.yaml passes Serve's own schema: tests/unit/test_serve_config.py)


def test_the_serve_service_reaches_the_proxies_port() -> None:
    port = yaml.safe_load(RAYSERVICE["spec"]["serveConfigV2"])["http_options"]["port"]
    (svc_port,) = RAYSERVICE["spec"]["serveService"]["spec"]["ports"]
    assert svc_port["port"] == svc_port["targetPort"] == port
    for name, template in _pods().items():
        if name == "models-job":
            continue
        ports = {p["name"]: p["containerPort"] for p in _container(template)["ports"]}
        assert ports["serve"] == port, name
        assert ports["metrics"] == 8080, name
    head_ports = {p["name"]: p["containerPort"] for p in _container(_pods()["head"])["ports"]}
    assert head_ports["dashboard"] == 8265
    # FreeSWITCH is told to fork to that Service, on the Serve route the gateway serves
    media_url = CONFIG_MAP["data"]["CALLFLEET_FREESWITCH__MEDIA_URL"]
    assert media_url == f"ws://{RAYSERVICE['spec']['serveService']['metadata']['name']}:{port}/media"


# --- settings, secrets, storage, GPUs -------------------------------------------------------

@pytest.fixture()
def kube_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a CallFleet process in one of these pods builds: configs/default.yaml,
    then the ConfigMap and the Secret as environment."""
    for name in list(os.environ):
        if name.startswith("CALLFLEET_"):
            monkeypatch.delenv(name)
    for name, value in {**CONFIG_MAP["data"], **SECRET_PLACEHOLDERS}.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def _field_exists(model: type, parts: list[str]) -> bool:
    field = model.model_fields.get(parts[0])
    if field is None:
        return False
    if len(parts) == 1:
        return True
    return hasattr(field.annotation, "model_fields") and _field_exists(field.annotation, parts[1:])


def test_every_callfleet_variable_names_a_setting() -> None:
    names = set(CONFIG_MAP["data"]) | set(SECRET_PLACEHOLDERS)
    for name in sorted(n for n in names if n.startswith("CALLFLEET_")):
        parts = name.removeprefix("CALLFLEET_").lower().split("__")
        assert _field_exists(Settings, parts), f"{name} is no setting (configs/settings.py)"


def test_pods_build_valid_kubernetes_settings(kube_settings: Settings) -> None:
    assert kube_settings.serve.host == "0.0.0.0"
    assert kube_settings.state_dir == Path("/var/lib/callfleet")
    assert kube_settings.redis_url == SECRET_PLACEHOLDERS["CALLFLEET_REDIS_URL"]
    assert kube_settings.gateway.media_port is None
    assert not kube_settings.freeswitch.simulate
    # reachable from other machines, so media forks must carry the credential
    assert not kube_settings.unauthenticated_forks_allowed
    assert kube_settings.freeswitch.fork_auth.secret is not None


def test_every_pod_gets_the_same_settings_and_secrets_only_from_the_secret() -> None:
    pods = _pods()
    for name, template in pods.items():
        container = _container(template)
        refs = [e["configMapRef"]["name"] for e in container["envFrom"]]
        assert refs == ["callfleet-config"], name
        for var, ref in _secret_env(container).items():
            assert (ref["name"], ref["key"]) == (SECRET_NAME, var), name
    ray_pods = [_container(t) for n, t in pods.items() if n != "models-job"]
    secrets = [_secret_env(c) for c in ray_pods]
    assert all(s == secrets[0] for s in secrets)
    assert set(secrets[0]) == set(SECRET_PLACEHOLDERS)
    # Redis, the fork key and the switch password are required: a pod without them
    # does not start (rather than start with a wrong default)
    required = {v for v, ref in secrets[0].items() if not ref.get("optional")}
    assert required == {"CALLFLEET_REDIS_URL", "CALLFLEET_FREESWITCH__FORK_AUTH__SECRET",
                        "CALLFLEET_FREESWITCH__PASSWORD"}
    for key in CONFIG_MAP["data"]:
        assert not any(word in key for word in ("PASSWORD", "SECRET", "KEY", "TOKEN",
                                                "REDIS_URL", "STORE_URL")), key
    assert CONFIG_MAP["data"]["HF_HUB_OFFLINE"] == "1"


def test_every_pod_mounts_the_shared_state_folder() -> None:
    pvc = OBJECTS[("PersistentVolumeClaim", "callfleet-state")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    state_dir = CONFIG_MAP["data"]["CALLFLEET_STATE_DIR"]
    for name, template in _pods().items():
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in _container(template)["volumeMounts"]}
        assert state_dir in mounts, name
        claim = volumes[mounts[state_dir]]["persistentVolumeClaim"]["claimName"]
        assert claim == "callfleet-state", name
        security = template["spec"]["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] != 0, name


def _gpus(template: dict[str, Any]) -> int:
    resources = _container(template)["resources"]
    requested = resources.get("requests", {}).get("nvidia.com/gpu")
    limited = resources.get("limits", {}).get("nvidia.com/gpu")
    assert requested == limited, "Kubernetes needs GPU requests equal to limits"
    return int(limited or 0)


def test_asr_and_tts_replicas_fit_only_on_the_gpu_group(kube_settings: Settings) -> None:
    gpu, cpu = GROUPS["gpu"], GROUPS["cpu"]
    assert _gpus(gpu["template"]) == 1
    assert gpu["rayStartParams"]["num-gpus"] == "1"
    assert _gpus(cpu["template"]) == 0 and _gpus(CLUSTER["headGroupSpec"]["template"]) == 0
    assert _container(gpu["template"])["image"].endswith("-cuda")
    # what build_app gives each deployment (deployments/app.py): GPU shares for ASR and TTS,
    # none for the rest. Ray places a replica with num_gpus > 0 only on a node with GPUs:
    # the gpu group's pods.
    on_gpu = {"asr": kube_settings.asr, "tts": kube_settings.tts}
    on_cpu = {"intent": kube_settings.intent, "emotion": kube_settings.emotion,
              "gateway": kube_settings.gateway}
    for name, replica in on_gpu.items():
        assert actor_options(replica)["num_gpus"] > 0, name
    for name, replica in on_cpu.items():
        assert actor_options(replica)["num_gpus"] == 0, name
    # one ASR and one TTS replica share each card, and the group's pods hold them all
    needed = sum(r.replicas * r.num_gpus for r in on_gpu.values())
    assert needed <= gpu["replicas"] * _gpus(gpu["template"])
    assert kube_settings.asr.num_gpus + kube_settings.tts.num_gpus <= 1


def test_head_runs_no_replicas(kube_settings: Settings) -> None:
    assert CLUSTER["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    # every deployment asks for some CPU, so none is placed on a head with none
    for name in ("asr", "intent", "emotion", "tts", "gateway"):
        assert actor_options(getattr(kube_settings, name))["num_cpus"] > 0, name


def test_old_cluster_outlives_the_calls_it_carries() -> None:
    # after an upgrade KubeRay deletes the old cluster; the gateway drains up to ~10 minutes
    assert RAYSERVICE["spec"]["rayClusterDeletionDelaySeconds"] >= 600
