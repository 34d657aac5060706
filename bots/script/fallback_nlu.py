"""A stand-in intent (and emotion) classifier built from a bot's own training utterances.

For `callfleet bot chat` and tests where no trained model is at hand: TF-IDF over word
and character n-grams and a logistic-loss linear model (SGD), trained in well under a
second. It is a
fallback, said so in its `source`, not a replacement for the trained MiniLM model: it
knows little beyond the wording in the data file (about 85 % on held-out shop utterances
against the MiniLM model's figures in the registry). `confidence` is its probability for
the winning label; below `oos_threshold` (or when the winner is ``oos``) the turn is out
of scope.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from training.models.outputs import EmotionResult, IntentResult

__all__ = ["FallbackEmotionClassifier", "FallbackIntentClassifier", "load_examples"]

OOS = "oos"
FALLBACK = "fallback"  # the model_version of what these classifiers say


def load_examples(path: str | os.PathLike, section: str = "intents") -> dict[str, list[str]]:
    """Utterances per label from a `bots/data/*.yaml` file (``intents`` or ``emotions``)."""
    doc = yaml.safe_load(Path(path).read_text())
    table = (doc or {}).get(section) or {}
    examples: dict[str, list[str]] = {}
    for label, entry in table.items():
        items = entry.get("examples", []) if isinstance(entry, dict) else entry
        texts = [str(t).strip() for t in items or [] if str(t).strip()]
        if texts:
            examples[str(label)] = texts
    return examples


class _TfidfModel:
    """TF-IDF over word 1-2-grams and character 2-5-grams, then a logistic-loss linear model."""

    def __init__(self, examples: dict[str, list[str]]) -> None:
        from sklearn.exceptions import ConvergenceWarning  # heavy: loads sklearn
        from sklearn.feature_extraction.text import TfidfVectorizer  # heavy: loads sklearn
        from sklearn.linear_model import SGDClassifier  # heavy: loads sklearn
        from sklearn.pipeline import (  # heavy: loads sklearn
            make_pipeline,
            make_union,
        )

        if len(examples) < 2:
            raise ValueError("a fallback classifier needs utterances of at least two labels")
        texts = [t.lower() for label in sorted(examples) for t in examples[label]]
        labels = [label for label in sorted(examples) for _ in examples[label]]
        features = make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        )
        # SGD with log loss: as accurate as lbfgs here and fits in ~50 ms, not seconds
        classifier = SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=100, tol=1e-4,
                                   random_state=0)
        self.pipeline = make_pipeline(features, classifier)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.pipeline.fit(texts, labels)
        self.labels = [str(c) for c in self.pipeline.classes_]

    def scores(self, text: str) -> dict[str, float]:
        probs = self.pipeline.predict_proba([text.lower()])[0]
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}


class FallbackIntentClassifier:
    """`IntentResult`s as the intent engine gives them; ``model_version`` is
    ``fallback``."""

    source = "fallback classifier: TF-IDF + linear model, no trained model"

    def __init__(self, examples: dict[str, list[str]], oos_threshold: float = 0.45) -> None:
        self.nn = _TfidfModel(examples)
        self.labels = tuple(self.nn.labels)
        self.oos_threshold = oos_threshold

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs: Any) -> FallbackIntentClassifier:
        return cls(load_examples(path, "intents"), **kwargs)

    def classify(self, text: str) -> IntentResult:
        if not text or not text.strip():
            return IntentResult(OOS, 0.0, (), True, model_version=FALLBACK)
        scores = self.nn.scores(text)
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        label, confidence = ranked[0]
        confidence = round(min(1.0, confidence), 3)
        return IntentResult(label, confidence, [(n, round(s, 3)) for n, s in ranked[:3]],
                            label == OOS or confidence < self.oos_threshold,
                            model_version=FALLBACK)


class FallbackEmotionClassifier:
    """`EmotionResult`s (text only) from the ``emotions`` utterances of data files."""

    source = "fallback classifier: TF-IDF + linear model, no trained model"

    def __init__(self, examples: dict[str, list[str]]) -> None:
        self.nn = _TfidfModel(examples) if len(examples) >= 2 else None

    @classmethod
    def from_files(cls, *paths: str | os.PathLike) -> FallbackEmotionClassifier:
        merged: dict[str, list[str]] = {}
        for path in paths:
            for label, texts in load_examples(path, "emotions").items():
                merged.setdefault(label, []).extend(texts)
        return cls(merged)

    def classify(self, text: str) -> EmotionResult:
        if self.nn is None or not text.strip():
            return EmotionResult("neutral", {"neutral": 1.0}, {"neutral": 1.0})
        scores = {k: round(v, 3) for k, v in self.nn.scores(text).items()}
        return EmotionResult(max(scores, key=scores.get), scores, scores)
