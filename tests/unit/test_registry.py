"""The file-system model registry: versions, promotion, atomic publication, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.models.registry import ModelNotFoundError, ModelRegistry

pytestmark = pytest.mark.unit

META = {
    "base_model": "test",
    "label_map": {"0": "a", "1": "b"},
    "metrics": {"accuracy": 0.9},
    "training_config": {"epochs": 1},
    "data_sha256": "0" * 64,
}


def _build(registry: ModelRegistry, kind: str = "intent") -> str:
    version, folder = registry.new_version_dir(kind)
    (folder / "weights.bin").write_bytes(b"\0" * 16)
    return registry.commit(kind, version, META).version


def test_versions_increment_and_are_listed_in_order(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.list("intent") == []
    assert [_build(registry) for _ in range(3)] == ["v0001", "v0002", "v0003"]
    infos = registry.list("intent")
    assert [i.version for i in infos] == ["v0001", "v0002", "v0003"]
    assert infos[0].meta["kind"] == "intent" and infos[0].meta["version"] == "v0001"
    assert infos[0].meta["created_at"] and (infos[0].path / "weights.bin").is_file()
    assert registry.list("emotion") == []  # kinds are separate
    assert _build(registry, "emotion") == "v0001"


def test_promote_and_current(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.current("intent") is None
    _build(registry)
    _build(registry)
    registry.promote("intent", "v0001")
    assert registry.current("intent") == "v0001"
    assert registry.get("intent").version == "v0001"
    registry.promote("intent", "v0002")
    assert registry.get("intent", "current").version == "v0002"
    assert registry.get("intent", "v0001").path == tmp_path / "intent" / "v0001"
    assert sorted(p.name for p in (tmp_path / "intent").iterdir() if p.is_file()) == ["CURRENT"]
    with pytest.raises(ModelNotFoundError):
        registry.promote("intent", "v0009")
    assert registry.current("intent") == "v0002"


def test_half_written_version_is_invisible(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version, folder = registry.new_version_dir("intent")
    (folder / "weights.bin").write_bytes(b"partial")
    assert not folder.is_relative_to(tmp_path / "intent" / version)
    assert registry.list("intent") == []
    with pytest.raises(ModelNotFoundError):
        registry.get("intent", version)
    with pytest.raises(ModelNotFoundError):
        registry.promote("intent", version)
    # a second build meanwhile gets its own number, and both publish
    other, _ = registry.new_version_dir("intent")
    assert other != version
    registry.commit("intent", other, META)
    assert [i.version for i in registry.list("intent")] == [other]
    registry.commit("intent", version, META)
    assert {i.version for i in registry.list("intent")} == {version, other}


def test_failed_build_is_discarded_and_bad_meta_rejected(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version, folder = registry.new_version_dir("intent")
    with pytest.raises(ValueError, match="data_sha256"):
        registry.commit("intent", version, {k: v for k, v in META.items() if k != "data_sha256"})
    registry.discard("intent", version)
    assert not folder.exists() and registry.list("intent") == []
    with pytest.raises(ValueError, match="kind"):
        registry.new_version_dir("../etc")


def test_stage_commits_promotes_the_first_and_discards_a_failed_build(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with registry.stage("intent") as staged:
        (staged.path / "weights.bin").write_bytes(b"\0" * 16)
        first = staged.commit(META)
    assert first.version == "v0001" and registry.current("intent") == "v0001"  # the first
    with registry.stage("intent") as staged:
        second = staged.commit(META)
    assert second.version == "v0002" and registry.current("intent") == "v0001"
    with registry.stage("intent") as staged:
        staged.commit(META, promote=True)
    assert registry.current("intent") == "v0003"

    with pytest.raises(RuntimeError, match="out of memory"), registry.stage("intent") as staged:
        (staged.path / "weights.bin").write_bytes(b"partial")
        raise RuntimeError("out of memory")
    assert not staged.path.exists() and len(registry.list("intent")) == 3
    with registry.stage("intent") as staged:
        pass  # ended without committing: nothing is published
    assert not staged.path.exists() and len(registry.list("intent")) == 3

    with registry.stage("emotion") as staged:
        staged.commit(META, promote_if_first=False)
    assert registry.current("emotion") is None


def test_not_found_error_lists_versions_and_build_command(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelNotFoundError) as empty:
        registry.get("intent")
    message = str(empty.value)
    assert "no intent model is promoted" in message and "available versions: none" in message
    assert f"python -m training.intent.default --registry {tmp_path}" in message

    _build(registry)
    _build(registry)
    with pytest.raises(ModelNotFoundError) as unpromoted:
        registry.get("intent")
    assert "v0001, v0002" in str(unpromoted.value)
    assert "promote" in str(unpromoted.value)

    with pytest.raises(ModelNotFoundError) as missing:
        registry.get("emotion", "v0007")
    assert "'v0007'" in str(missing.value)
    assert "python -m training.emotion.default" in str(missing.value)
