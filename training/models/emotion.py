"""Per-utterance emotion (anger / neutral / positive) from text plus acoustic arousal.

Plain Python (no Ray): a deployment wraps `EmotionClassifier`. The text model is a
logistic regression over mean-pooled, L2-normalised all-MiniLM-L6-v2 sentence embeddings
(as sentence-transformers computes them); `SentenceEncoder` is shared with
`training.emotion.default` so serving embeds exactly as training did.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from training.models.encoder import SentenceEncoder
from training.models.loading import ENCODER_PACKAGE, encoder_package_version, resolve_device
from training.models.outputs import EmotionInput, EmotionResult
from training.models.registry import ModelNotFoundError, ModelRegistry

__all__ = [
    "EMOTION_LABELS",
    "EmotionClassifier",
    "fuse_arousal",
]

log = logging.getLogger("callfleet.engines.emotion")

EMOTION_LABELS = ("anger", "neutral", "positive")
CLASSIFIER_FILE = "classifier.json"


def fuse_arousal(
    text_scores: dict[str, float],
    loudness_z: float | None,
    pitch_z: float | None,
    acoustic_weight: float,
) -> tuple[dict[str, float], float | None]:
    """Combine text scores with the acoustic arousal cue; returns (scores, arousal).

    The rule, chosen to be simple, monotone and explainable to a supervisor:

    * No acoustic input (both z-scores None): scores = text scores, arousal = None.
    * ``arousal = sigmoid(0.7 * max(loudness_z, 0) + 0.3 * max(pitch_z, 0) - 1)``; a
      missing z counts as 0. Only speech louder/higher than the caller's own baseline
      counts; quiet or flat speech never pushes towards neutral.
    * ``raised = max(0, 2 * arousal - 1)`` is 0 until the weighted z passes 1 and tends
      to 1 for very agitated speech, so ordinary variation changes nothing.
    * ``moved = acoustic_weight * raised * text_neutral`` leaves neutral and goes to the
      non-neutral classes in proportion to the squares of their text scores: mostly anger
      when the words lean angry, mostly positive when they lean happy (equal split when
      both are 0). Scores still sum to 1 and text stays the main evidence.
    """
    if loudness_z is None and pitch_z is None:
        return dict(text_scores), None
    lz = max(float(loudness_z or 0.0), 0.0)
    pz = max(float(pitch_z or 0.0), 0.0)
    arousal = 1.0 / (1.0 + math.exp(-(0.7 * lz + 0.3 * pz - 1.0)))
    raised = max(0.0, 2.0 * arousal - 1.0)
    anger, neutral, positive = (text_scores[k] for k in EMOTION_LABELS)
    moved = acoustic_weight * raised * neutral
    weight_a, weight_p = anger**2, positive**2
    share_anger = weight_a / (weight_a + weight_p) if weight_a + weight_p > 0 else 0.5
    scores = {
        "anger": anger + moved * share_anger,
        "neutral": neutral - moved,
        "positive": positive + moved * (1.0 - share_anger),
    }
    return scores, arousal


class EmotionClassifier:
    """Text emotion from a registry version, fused with arousal from loudness and pitch."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        acoustic_weight: float = 0.35,
        cpu_threads: int = 1,
        device: str = "auto",
        encoder_path: str | os.PathLike | None = None,
    ):
        model_dir = Path(model_dir)
        if not (model_dir / CLASSIFIER_FILE).is_file():
            raise ModelNotFoundError(f"{model_dir} holds no emotion model ({CLASSIFIER_FILE})")
        if not 0.0 <= acoustic_weight <= 1.0:
            raise ValueError(f"acoustic_weight must be in [0, 1], got {acoustic_weight}")
        head = json.loads((model_dir / CLASSIFIER_FILE).read_text())
        meta_file = model_dir / "meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        self.version: str = meta.get("version", model_dir.name)
        self.labels: tuple[str, ...] = tuple(head["classes"])
        if sorted(self.labels) != sorted(EMOTION_LABELS):
            raise ValueError(f"{model_dir}: classes {self.labels} != {EMOTION_LABELS}")
        self.acoustic_weight = acoustic_weight
        self._coef = np.asarray(head["coef"], dtype=np.float64)
        self._intercept = np.asarray(head["intercept"], dtype=np.float64)
        encoder = head.get("encoder", {})
        trained_with = encoder.get("package_version")
        if trained_with and trained_with != encoder_package_version():
            log.warning(
                "emotion model %s was trained with %s %s, found %s",
                self.version,
                ENCODER_PACKAGE,
                trained_with,
                encoder_package_version(),
            )
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads)
        self.encoder = SentenceEncoder(
            encoder_path, max_length=int(encoder.get("max_length", 64)), batch_size=64,
            device=str(self.device))

    @classmethod
    def from_registry(
        cls,
        registry: ModelRegistry,
        version: str = "current",
        acoustic_weight: float = 0.35,
        cpu_threads: int = 1,
        device: str = "auto",
    ) -> EmotionClassifier:
        info = registry.get("emotion", version)
        return cls(
            info.path, acoustic_weight=acoustic_weight, cpu_threads=cpu_threads, device=device
        )

    def text_scores(self, texts: list[str]) -> list[dict[str, float]]:
        """Text-only class probabilities; an empty text is neutral (nothing was said)."""
        spoken = [i for i, text in enumerate(texts) if text.strip()]
        out = [dict(zip(EMOTION_LABELS, (0.0, 1.0, 0.0), strict=True)) for _ in texts]
        if not spoken:
            return out
        embeddings = self.encoder.encode([texts[i].strip() for i in spoken])
        logits = embeddings.astype(np.float64) @ self._coef.T + self._intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        for row, i in zip(probs, spoken, strict=True):
            out[i] = {label: float(row[k]) for k, label in enumerate(self.labels)}
        return out

    def predict_batch(self, items: list[EmotionInput | str]) -> list[EmotionResult]:
        """One encoder pass for the batch; results in input order. Deterministic."""
        inputs = [EmotionInput(item) if isinstance(item, str) else item for item in items]
        results = []
        for item, text in zip(inputs, self.text_scores([i.text for i in inputs]), strict=True):
            text = {k: text[k] for k in EMOTION_LABELS}
            scores, arousal = fuse_arousal(
                text, item.loudness_z, item.pitch_z, self.acoustic_weight
            )
            label = max(EMOTION_LABELS, key=lambda k: scores[k])  # ties: first in order
            results.append(EmotionResult(label, scores, text, arousal))
        return results
