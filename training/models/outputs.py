"""What the models say: the typed results the model engines return, the Serve replicas
hand to the media gateway, and the call session passes to the bot and into the records.

Plain frozen dataclasses with no dependencies, so every layer (bots, telephony, the
cluster, the gateway) can hold them without loading a model. The JSON form of each is
defined once here (`intent_to_json` …) and used only by the serializers of the wires
that carry them: the Redis call records (`cluster.records.call_state`), the fork's
``transfer`` message (`telephony.media_fork`), the skill router's request
(`cluster.routing.models`) and the bot chat's output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OOS_LABEL",
    "EmotionInput",
    "EmotionResult",
    "IntentResult",
    "Transcript",
    "emotion_from_json",
    "emotion_to_json",
    "intent_from_json",
    "intent_to_json",
]

OOS_LABEL = "oos"


@dataclass(frozen=True)
class Transcript:
    """What was said in one utterance.

    ``avg_logprob`` and ``no_speech_prob`` are the means over whisper's 30 s windows (one
    window for a normal utterance). ``elapsed_s`` is the wall time the caller waited; in a
    batch every item reports the time of the whole batch.
    """

    text: str
    language: str = ""
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    duration_s: float = 0.0
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class IntentResult:
    """The top intent, its probability, the three most likely intents (best first), and
    whether the bot should treat the utterance as out of scope. ``model_version`` names
    the model that said it ("" where nobody set it, e.g. straight from an engine)."""

    label: str
    confidence: float
    top3: tuple[tuple[str, float], ...] = ()
    out_of_scope: bool = False
    model_version: str = ""

    def __post_init__(self) -> None:
        # accept any sequence of pairs, keep tuples: results compare equal however built
        object.__setattr__(self, "top3", tuple((str(n), float(p)) for n, p in self.top3))

    @property
    def decision(self) -> str:
        """What the bot acts on: the intent, or ``oos`` when out of scope."""
        return OOS_LABEL if self.out_of_scope else self.label


@dataclass(frozen=True)
class EmotionInput:
    """One utterance for the emotion model; z-scores are against the caller's own
    baseline (None = unknown)."""

    text: str
    loudness_z: float | None = None
    pitch_z: float | None = None


@dataclass(frozen=True)
class EmotionResult:
    """The most likely emotion and every class's score (text fused with acoustic
    arousal); ``text_scores`` are the text model's alone, ``arousal`` the acoustic cue
    (None without one)."""

    label: str
    scores: Mapping[str, float] = field(default_factory=dict)
    text_scores: Mapping[str, float] = field(default_factory=dict)
    arousal: float | None = None

    def score(self, label: str) -> float:
        return float(self.scores.get(label, 0.0))


# ---- JSON forms (for the wire serializers only) -------------------------------------------


def intent_to_json(result: IntentResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "label": result.label,
        "confidence": result.confidence,
        "top3": [{"label": label, "confidence": p} for label, p in result.top3],
        "out_of_scope": result.out_of_scope,
    }
    if result.model_version:
        doc["model_version"] = result.model_version
    return doc


def intent_from_json(doc: Mapping[str, Any]) -> IntentResult:
    """Inverse of `intent_to_json`; tolerant of missing keys (older records)."""
    top3: Sequence[Any] = doc.get("top3") or ()
    return IntentResult(
        label=str(doc.get("label") or OOS_LABEL),
        confidence=float(doc.get("confidence") or 0.0),
        top3=tuple((str(t.get("label")), float(t.get("confidence") or 0.0))
                   for t in top3 if isinstance(t, Mapping)),
        out_of_scope=bool(doc.get("out_of_scope", False)),
        model_version=str(doc.get("model_version") or ""),
    )


def emotion_to_json(result: EmotionResult) -> dict[str, Any]:
    return {"label": result.label, "scores": dict(result.scores),
            "text_scores": dict(result.text_scores), "arousal": result.arousal}


def emotion_from_json(doc: Mapping[str, Any]) -> EmotionResult:
    """Inverse of `emotion_to_json`; tolerant of missing keys (older records)."""
    arousal = doc.get("arousal")
    return EmotionResult(
        label=str(doc.get("label") or ""),
        scores={str(k): float(v) for k, v in (doc.get("scores") or {}).items()},
        text_scores={str(k): float(v) for k, v in (doc.get("text_scores") or {}).items()},
        arousal=None if arousal is None else float(arousal),
    )
