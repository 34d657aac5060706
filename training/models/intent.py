"""Intent classification for caller utterances (plain Python; a deployment wraps it).

A fine-tuned BERT-family sequence classifier from the model registry (see
`training.intent.build`). Out of scope means: the model says ``oos``, or it is not
confident enough (top probability below the threshold), or nothing was said. The bot
and the escalation policy act on `out_of_scope` rather than on the raw label.

Backends: a version that holds a verified ``model.onnx`` (``callfleet models export-onnx``
or ``train --onnx``) runs through onnxruntime on CPU (about 2-3x faster for one
sentence); ``backend="torch"`` forces the transformers model, which is also what runs
on a GPU. The threshold is the one tuned at training time (``oos_threshold`` in
meta.json) unless the caller gives one.

`ShadowAgreement` counts how often a candidate version agrees with the serving one on
the same live utterances (shadow mode); it stores labels and counts only, never text.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from training.models.loading import quiet_transformers, resolve_device
from training.models.outputs import OOS_LABEL, IntentResult
from training.models.registry import ModelNotFoundError, ModelRegistry

__all__ = [
    "DEFAULT_OOS_THRESHOLD",
    "OOS_LABEL",
    "IntentClassifier",
    "ShadowAgreement",
]

log = logging.getLogger("callfleet.engines.intent")

ONNX_FILE = "model.onnx"
DEFAULT_OOS_THRESHOLD = 0.45  # for versions trained without out-of-scope rows to tune on
Backend = Literal["auto", "torch", "onnx"]


class IntentClassifier:
    """Loads one model version once; `predict_batch` runs one padded forward pass."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        oos_threshold: float | None = None,
        cpu_threads: int = 1,
        device: str = "auto",
        max_length: int | None = None,
        backend: Backend = "auto",
    ):
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ModelNotFoundError(f"{model_dir} holds no intent model (config.json)")
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"intent backend must be auto, torch or onnx, got {backend!r}")
        meta_file = model_dir / "meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        #: where the threshold came from: "given", "tuned" (meta.json) or "default"
        self.threshold_source = "given"
        if oos_threshold is None:
            tuned = meta.get("oos_threshold")
            self.threshold_source = "default" if tuned is None else "tuned"
            oos_threshold = DEFAULT_OOS_THRESHOLD if tuned is None else float(tuned)
        if not 0.0 <= oos_threshold <= 1.0:
            raise ValueError(f"oos_threshold must be in [0, 1], got {oos_threshold}")
        self.version: str = meta.get("version", model_dir.name)
        self.oos_threshold = oos_threshold
        self.max_length = max_length or int(meta.get("training_config", {}).get("max_length", 32))
        self.device = resolve_device(device)
        has_onnx = (model_dir / ONNX_FILE).is_file()
        if backend == "onnx" and not has_onnx:
            raise ModelNotFoundError(
                f"{model_dir} has no {ONNX_FILE}; export it with: callfleet models export-onnx "
                f"intent {self.version} (or use backend 'torch')"
            )
        self.backend = "onnx" if backend == "onnx" or (
            backend == "auto" and has_onnx and self.device.type == "cpu"
        ) else "torch"
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads)
        with quiet_transformers():
            from transformers import (  # after the offline switches above
                AutoConfig,
                AutoTokenizer,
            )

            from training.models.intent_head import register  # after the offline switches above

            register()  # versions with the mean head have their own model type
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        id2label = {int(k): v for k, v in config.id2label.items()}
        self.labels: tuple[str, ...] = tuple(id2label[i] for i in range(len(id2label)))
        self._session = self._model = None
        if self.backend == "onnx":
            self._session = _onnx_session(model_dir / ONNX_FILE, cpu_threads)
            self._input_names = [i.name for i in self._session.get_inputs()]
        else:
            with quiet_transformers():
                from training.models.intent_head import (
                    load_classifier,  # after the offline switches above
                )

                self._model = load_classifier(model_dir)
            self._model.to(self.device).eval()
        log.info(
            "intent model %s loaded (%s on %s, %d labels, oos threshold %.3f)",
            self.version, self.backend, self.device, len(self.labels), self.oos_threshold,
        )

    @classmethod
    def from_registry(
        cls,
        registry: ModelRegistry,
        version: str = "current",
        oos_threshold: float | None = None,
        cpu_threads: int = 1,
        device: str = "auto",
        backend: Backend = "auto",
    ) -> IntentClassifier:
        """Load `version` ("current" = the promoted one) of the registry's intent model."""
        info = registry.get("intent", version)
        return cls(info.path, oos_threshold=oos_threshold, cpu_threads=cpu_threads,
                   device=device, backend=backend)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities (rows in input order, columns in `labels` order)."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self._session is not None:
            enc = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="np")
            feed = {name: enc[name].astype(np.int64) for name in self._input_names}
            logits = self._session.run(["logits"], feed)[0].astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
        with torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            return torch.softmax(self._model(**batch).logits.float(), dim=-1).cpu().numpy()

    def predict_batch(self, texts: list[str]) -> list[IntentResult]:
        """Results in input order; an empty text is out of scope with confidence 0."""
        spoken = [i for i, text in enumerate(texts) if text and text.strip()]
        results: list[IntentResult] = [NOTHING_SAID] * len(texts)
        if not spoken:
            return results
        probs = self.predict_proba([texts[i].strip() for i in spoken])
        k = min(3, probs.shape[1])
        top_i = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        for row, i in enumerate(spoken):
            top3 = [(self.labels[j], float(probs[row, j])) for j in top_i[row]]
            label, confidence = top3[0]
            oos = label == OOS_LABEL or confidence < self.oos_threshold
            results[i] = IntentResult(label, confidence, top3, oos)
        return results


#: the result for an empty utterance (no model is asked)
NOTHING_SAID = IntentResult(OOS_LABEL, 0.0, [(OOS_LABEL, 0.0)], True)


def _onnx_session(path: Path, cpu_threads: int):
    import onnxruntime as ort  # heavy: loads onnxruntime

    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class ShadowAgreement:
    """Agreement between the serving version and a shadow candidate on the same utterances.

    `record` takes both versions' results for one batch. The report gives the share of
    utterances where the bot would act the same (same intent, or both out of scope), the
    agreement on the out-of-scope decision alone, the mean absolute confidence difference,
    and the most frequent (serving -> candidate) disagreements as label pairs. Batches
    the shadow had no spare capacity for are counted as skipped, never queued.
    """

    MAX_PAIRS = 1000  # distinct disagreement pairs kept (bounded memory)

    def __init__(self, serving_version: str, candidate_version: str):
        self.serving_version = serving_version
        self.candidate_version = candidate_version
        self.compared = 0
        self.agreed = 0
        self.oos_agreed = 0
        self.confidence_delta_sum = 0.0
        self.skipped = 0
        self.errors = 0
        self.pairs: Counter[tuple[str, str]] = Counter()

    def record(self, serving: list[IntentResult], candidate: list[IntentResult]) -> None:
        if len(serving) != len(candidate):
            raise ValueError(f"{len(serving)} serving results but {len(candidate)} shadow results")
        for ours, theirs in zip(serving, candidate, strict=True):
            if ours == NOTHING_SAID:
                continue  # an empty utterance tells nothing about the models
            self.compared += 1
            self.agreed += ours.decision == theirs.decision
            self.oos_agreed += ours.out_of_scope == theirs.out_of_scope
            self.confidence_delta_sum += abs(ours.confidence - theirs.confidence)
            pair = (ours.decision, theirs.decision)
            if pair[0] != pair[1] and (pair in self.pairs or len(self.pairs) < self.MAX_PAIRS):
                self.pairs[pair] += 1

    def record_skipped(self, utterances: int) -> None:
        self.skipped += utterances

    def record_error(self) -> None:
        self.errors += 1

    def report(self, top: int = 10) -> dict[str, Any]:
        n = self.compared
        return {
            "serving_version": self.serving_version,
            "candidate_version": self.candidate_version,
            "compared": n,
            "agreement": self.agreed / n if n else None,
            "oos_agreement": self.oos_agreed / n if n else None,
            "mean_confidence_delta": self.confidence_delta_sum / n if n else None,
            "skipped": self.skipped,
            "errors": self.errors,
            "top_disagreements": [
                {"serving": a, "candidate": b, "count": c}
                for (a, b), c in self.pairs.most_common(top)
            ],
        }
