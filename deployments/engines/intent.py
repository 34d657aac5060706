"""Intent classification for caller utterances (plain Python; a deployment wraps it).

A fine-tuned BERT-family sequence classifier from the model registry (see
`training.intent_default`). Out of scope means: the model says ``oos``, or it is not
confident enough (top probability below `oos_threshold`), or nothing was said. The bot
and the escalation policy act on `out_of_scope` rather than on the raw label.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deployments.engines.emotion import quiet_transformers, resolve_device
from training.registry import ModelNotFoundError, ModelRegistry

__all__ = ["OOS_LABEL", "IntentClassifier", "IntentResult"]

log = logging.getLogger("callfleet.engines.intent")

OOS_LABEL = "oos"


@dataclass(frozen=True)
class IntentResult:
    """The top intent, its probability, the three most likely intents (best first)."""

    label: str
    confidence: float
    top3: list[tuple[str, float]]
    out_of_scope: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "top3": [{"label": label, "confidence": p} for label, p in self.top3],
            "out_of_scope": self.out_of_scope,
        }


class IntentClassifier:
    """Loads one model version once; `predict_batch` runs one padded forward pass."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        oos_threshold: float = 0.45,
        cpu_threads: int = 1,
        device: str = "auto",
        max_length: int | None = None,
    ):
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ModelNotFoundError(f"{model_dir} holds no intent model (config.json)")
        if not 0.0 <= oos_threshold <= 1.0:
            raise ValueError(f"oos_threshold must be in [0, 1], got {oos_threshold}")
        meta_file = model_dir / "meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        self.version: str = meta.get("version", model_dir.name)
        self.oos_threshold = oos_threshold
        self.max_length = max_length or int(meta.get("training_config", {}).get("max_length", 32))
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads)
        with quiet_transformers():
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model_dir, local_files_only=True
            )
        self.model.to(self.device).eval()
        id2label = self.model.config.id2label
        self.labels: tuple[str, ...] = tuple(id2label[i] for i in range(len(id2label)))
        log.info(
            "intent model %s loaded on %s (%d labels)", self.version, self.device, len(self.labels)
        )

    @classmethod
    def from_registry(
        cls,
        registry: ModelRegistry,
        version: str = "current",
        oos_threshold: float = 0.45,
        cpu_threads: int = 1,
        device: str = "auto",
    ) -> IntentClassifier:
        """Load `version` ("current" = the promoted one) of the registry's intent model."""
        info = registry.get("intent", version)
        return cls(info.path, oos_threshold=oos_threshold, cpu_threads=cpu_threads, device=device)

    @torch.inference_mode()
    def predict_batch(self, texts: list[str]) -> list[IntentResult]:
        """Results in input order; an empty text is out of scope with confidence 0."""
        spoken = [i for i, text in enumerate(texts) if text and text.strip()]
        empty = IntentResult(OOS_LABEL, 0.0, [(OOS_LABEL, 0.0)], True)
        results: list[IntentResult] = [empty] * len(texts)
        if not spoken:
            return results
        batch = self.tokenizer(
            [texts[i].strip() for i in spoken],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        probs = torch.softmax(self.model(**batch).logits.float(), dim=-1).cpu()
        top_p, top_i = probs.topk(min(3, probs.shape[-1]), dim=-1)
        for row, i in enumerate(spoken):
            top3 = [
                (self.labels[k], float(p))
                for p, k in zip(top_p[row].tolist(), top_i[row].tolist(), strict=True)
            ]
            label, confidence = top3[0]
            oos = label == OOS_LABEL or confidence < self.oos_threshold
            results[i] = IntentResult(label, confidence, top3, oos)
        return results
