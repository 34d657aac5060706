"""The model registry on object storage, against a real S3-compatible server the test
starts (moto's server, over HTTP through s3fs): one node builds and promotes, another
node (its own cache folder) finds, downloads and loads the same version; a promotion is
seen by every node; an unreachable store leaves each node serving its cached copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import free_port, s3_server
from training.models.registry import ModelNotFoundError, ModelRegistry

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

META = {"base_model": "test", "label_map": {}, "metrics": {"accuracy": 0.9},
        "training_config": {}, "data_sha256": "0"}


@pytest.fixture(scope="module")
def s3():
    with s3_server("models"):
        yield "s3://models/callfleet/registry"


def build(registry: ModelRegistry, kind: str, weights: bytes, promote: bool) -> str:
    with registry.stage(kind) as staged:
        (staged.path / "weights.bin").write_bytes(weights)
        (staged.path / "tokenizer").mkdir()
        (staged.path / "tokenizer" / "vocab.txt").write_text("a\nb\n")
        info = staged.commit(META, promote=promote)
    return info.version


def test_a_version_built_on_one_node_is_served_on_another(s3, tmp_path: Path) -> None:
    node_a = ModelRegistry(tmp_path / "a", remote=s3)
    node_b = ModelRegistry(tmp_path / "b", remote=s3)
    with pytest.raises(ModelNotFoundError):
        node_b.get("intent")
    v1 = build(node_a, "intent", b"one", promote=True)

    info = node_b.get("intent")
    assert info.version == v1
    assert (info.path / "weights.bin").read_bytes() == b"one"
    assert (info.path / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    assert info.path.is_relative_to(tmp_path / "b")

    # node b builds the next version: numbers come from the shared store, not its cache
    v2 = build(node_b, "intent", b"two", promote=False)
    assert v2 != v1 and [i.version for i in node_a.list("intent")] == [v1, v2]
    node_a.promote("intent", v2)
    assert node_b.current("intent") == v2
    assert (node_b.get("intent").path / "weights.bin").read_bytes() == b"two"
    node_a.update_meta("intent", v2, {"onnx_max_diff": 0.001})
    assert ModelRegistry(tmp_path / "c", remote=s3).get("intent", v2).metrics[
        "onnx_max_diff"] == 0.001


def test_an_unreachable_store_leaves_the_cached_copy_serving(
        s3, tmp_path: Path, monkeypatch) -> None:
    node = ModelRegistry(tmp_path / "n", remote=s3)
    version = build(node, "emotion", b"e", promote=True)
    assert node.get("emotion").version == version
    import s3fs  # heavy: loads botocore

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    offline = ModelRegistry(tmp_path / "n", remote=s3)
    offline.remote.fs.retries = 1
    assert offline.get("emotion").version == version  # this node's cached copy
    assert (offline.get("emotion").path / "weights.bin").read_bytes() == b"e"
    s3fs.S3FileSystem.clear_instance_cache()


def test_models_push_copies_a_local_registry_to_the_store(s3, tmp_path: Path) -> None:
    from cluster.cli.main import main

    local = ModelRegistry(tmp_path / "local")
    v1 = build(local, "intent", b"1", promote=True)
    v2 = build(local, "intent", b"2", promote=False)
    url = s3 + "-pushed"
    assert main(["models", "push", "--registry", str(local.root), "--to", url]) == 0
    node = ModelRegistry(tmp_path / "node", remote=url)
    assert [i.version for i in node.list("intent")] == [v1, v2]
    assert node.current("intent") == v1
    assert main(["models", "push", "--registry", str(local.root), "--to", url]) == 0  # idempotent
