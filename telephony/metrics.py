"""The metrics CallFleet exports, and the small interface its code records them through.

Every metric is declared once here, as a `Metric`: name, type, labels (with their allowed
values where the set is closed), meaning. The call core and the floor logic record to a
`Metrics` they are given (`NO_METRICS` by default), never to a metrics library: the Ray
wrappers plug in `cluster.actors.metrics.RayMetrics`, which exports through Ray's metrics
(Prometheus, each node's metrics export port), and tests use an in-memory recorder.

Labels stay low-cardinality: stages, states, kinds, campaign ids, model versions; never a
call id, a phone number or free text (docs/operations.md lists every metric).

In Prometheus a metric is named as Ray exports it: ``ray_`` before the name, ``_total``
after a counter's, ``_bucket``/``_count``/``_sum`` after a histogram's (`exported_names`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from telephony.call_data import STAGES

__all__ = [
    "AGENTS",
    "CALLS_ACTIVE",
    "CALLS_ENDED",
    "CALLS_STARTED",
    "CALL_END_REASONS",
    "CATALOGUE",
    "DIALER_ABANDONMENT",
    "DIALER_ABANDONMENT_CAP",
    "DIALER_PACING_RATIO",
    "ERRORS",
    "ERROR_KINDS",
    "EXPORT_PREFIX",
    "Kind",
    "MODEL_VERSION",
    "NO_METRICS",
    "QUEUE_LENGTH",
    "QUEUE_WAIT",
    "TURN_STAGE",
    "Metric",
    "MetricError",
    "Metrics",
    "NullMetrics",
    "exported_names",
]

Kind = Literal["histogram", "gauge", "counter"]

#: what Ray puts before every application metric's name when it exports it
EXPORT_PREFIX = "ray_"

_MAX_LABEL_CHARS = 64


class MetricError(ValueError):
    """A metric recorded the wrong way: another type's operation, or labels that do not
    match its declaration (a programming error, never the caller's)."""


@dataclass(frozen=True)
class Metric:
    """One exported metric. `labels` are its label names in order; `allowed` gives the
    closed set of values of those labels that have one."""

    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()  # histograms: upper bounds of the buckets
    unit: str = ""
    allowed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def label_values(self, kind: Kind, labels: Mapping[str, object]) -> dict[str, str]:
        """The labels as strings, checked against the declaration (`MetricError` if not)."""
        if kind != self.kind:
            raise MetricError(f"{self.name} is a {self.kind}, not a {kind}")
        if set(labels) != set(self.labels):
            raise MetricError(f"{self.name} takes labels {list(self.labels)}, got {sorted(labels)}")
        out = {}
        for key in self.labels:
            value = str(labels[key])[:_MAX_LABEL_CHARS]
            allowed = self.allowed.get(key)
            if allowed is not None and value not in allowed:
                raise MetricError(f"{self.name}: {key}={value!r} is not one of {list(allowed)}")
            out[key] = value
        return out

    def exported(self) -> tuple[str, ...]:
        """The series names Prometheus sees (Ray 2.60's export)."""
        base = EXPORT_PREFIX + self.name
        if self.kind == "counter":
            return (base + "_total",)
        if self.kind == "histogram":
            return (base + "_bucket", base + "_count", base + "_sum")
        return (base,)


class Metrics(Protocol):
    """Where figures are recorded. Implementations never raise into the caller for a
    backend failure; they may raise `MetricError` for a recording that breaks the
    declaration (the in-memory recorder of the tests does)."""

    def observe(self, metric: Metric, value: float, **labels: object) -> None:
        """One sample of a histogram."""

    def set(self, metric: Metric, value: float, **labels: object) -> None:
        """A gauge's current value."""

    def inc(self, metric: Metric, value: float = 1.0, **labels: object) -> None:
        """Add to a counter."""


class NullMetrics:
    """Records nothing: the default where no metrics backend is plugged in."""

    def observe(self, metric: Metric, value: float, **labels: object) -> None:
        pass

    def set(self, metric: Metric, value: float, **labels: object) -> None:
        pass

    def inc(self, metric: Metric, value: float = 1.0, **labels: object) -> None:
        pass


NO_METRICS: Metrics = NullMetrics()

# ---- the catalogue -------------------------------------------------------------------------

#: what `callfleet_errors{kind}` counts, by kind
ERROR_KINDS: dict[str, str] = {
    "asr": "speech recognition failed on a turn (the caller hears an apology)",
    "nlu": "intent or emotion classification failed on a turn",
    "bot": "the bot script raised on a turn",
    "tts": "speech synthesis failed (a reply, or part of one, was not spoken)",
    "turn": "a turn failed elsewhere (recording it, carrying out its actions)",
    "input_dropped": "caller input over a per-call bound was dropped (events, key rate)",
    "fork_protocol": "a media fork broke the protocol and was closed",
    "fork_refused": "a media fork was refused (credential, call not live, replica full)",
    "no_bot": "no usable bot script for a call",
    "routing_sweep": "a skill-router sweep failed (Redis, switch)",
    "agent_connect": "the switch refused to connect an accepted offer to the agent",
    "overflow_action": "an overflow action (voicemail, hang-up) failed",
    "dialer_tick": "a dialer pacing round failed",
    "dial": "an originate failed in CallFleet or the ESL link (not a busy or unanswered number)",
    "answer_connect": "an answered dialer call could not be connected to a bot",
    "info_message": "the information message could not be played to an abandoned call",
}

#: how a call's bot part ended, as `callfleet_calls_ended{reason}` labels it
CALL_END_REASONS = ("escalated", "bot_closed", "caller_hung_up", "connection_lost",
                    "max_call_length", "protocol_error", "other")

STAGE_LABELS = tuple(s.removesuffix("_ms") for s in STAGES)

TURN_STAGE = Metric(
    "callfleet_turn_stage_ms", "histogram",
    "ms from the end of the caller's speech to the end of each turn stage (cumulative)",
    labels=("stage",), unit="ms", allowed={"stage": STAGE_LABELS},
    boundaries=(50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000))
CALLS_STARTED = Metric("callfleet_calls_started", "counter", "media forks opened (calls reaching a bot)")
CALLS_ENDED = Metric("callfleet_calls_ended", "counter", "calls whose bot part ended, by how",
                     labels=("reason",), allowed={"reason": CALL_END_REASONS})
CALLS_ACTIVE = Metric("callfleet_calls_active", "gauge",
                      "calls a gateway replica is running now (sum over replicas)")
QUEUE_LENGTH = Metric("callfleet_queue_length", "gauge",
                      "escalated calls waiting in the skill router's queue")
QUEUE_WAIT = Metric(
    "callfleet_queue_wait_seconds", "histogram",
    "seconds an escalated call waited in the queue, by how the wait ended",
    labels=("outcome",), unit="s", allowed={"outcome": ("offered", "overflow", "abandoned")},
    boundaries=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600))
AGENTS = Metric("callfleet_agents", "gauge", "registered agents by state", labels=("state",),
                allowed={"state": ("logged_out", "available", "on_call", "wrap_up", "break")})
DIALER_PACING_RATIO = Metric(
    "callfleet_dialer_pacing_ratio", "gauge",
    "lines ringing or dialled in the last pacing round per free bot slot (at least 1)",
    labels=("campaign",))
DIALER_ABANDONMENT = Metric(
    "callfleet_dialer_abandonment_ratio", "gauge",
    "abandoned / live-answered calls of a campaign over the window", labels=("campaign", "window"),
    allowed={"window": ("24h", "30d")})
DIALER_ABANDONMENT_CAP = Metric(
    "callfleet_dialer_abandonment_cap", "gauge",
    "the campaign's abandonment cap (compliance.abandon_cap)", labels=("campaign",))
MODEL_VERSION = Metric(
    "callfleet_model_version_info", "gauge",
    "1 for the model version a replica serves, 0 for one it has replaced",
    labels=("kind", "version"), allowed={"kind": ("asr", "intent", "emotion", "tts")})
ERRORS = Metric("callfleet_errors", "counter", "errors by kind", labels=("kind",),
                allowed={"kind": tuple(ERROR_KINDS)})

CATALOGUE: tuple[Metric, ...] = (
    TURN_STAGE, CALLS_STARTED, CALLS_ENDED, CALLS_ACTIVE, QUEUE_LENGTH, QUEUE_WAIT, AGENTS,
    DIALER_PACING_RATIO, DIALER_ABANDONMENT, DIALER_ABANDONMENT_CAP, MODEL_VERSION, ERRORS,
)


def exported_names() -> dict[str, Metric]:
    """Every series name Prometheus sees -> its metric."""
    return {name: metric for metric in CATALOGUE for name in metric.exported()}
