"""The default emotion model and its acoustic fusion, as a supervisor would see them."""

from __future__ import annotations

import pytest

from training.models.emotion import EmotionClassifier, fuse_arousal
from training.models.outputs import EmotionInput, emotion_to_json
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.models

ANGRY = "this is ridiculous, I've been waiting for weeks and nobody helps me"


@pytest.fixture(scope="module")
def classifier(trained_registry: ModelRegistry) -> EmotionClassifier:
    return EmotionClassifier.from_registry(trained_registry, cpu_threads=2)


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        (ANGRY, "anger"),
        ("thank you so much, that's perfect", "positive"),
        ("my order number is one two three", "neutral"),
        ("can you change the delivery address on my order", "neutral"),
    ],
)
def test_text_emotion(classifier: EmotionClassifier, text: str, emotion: str) -> None:
    (result,) = classifier.predict_batch([EmotionInput(text)])
    assert result.label == emotion
    assert max(result.scores, key=result.scores.get) == emotion
    assert result.scores == result.text_scores and result.arousal is None
    assert set(result.scores) == {"anger", "neutral", "positive"}
    assert sum(result.scores.values()) == pytest.approx(1.0)


def test_loud_high_pitched_speech_raises_anger(classifier: EmotionClassifier) -> None:
    text = "I've been waiting a long time for this order"
    calm, loud = classifier.predict_batch(
        [EmotionInput(text), EmotionInput(text, loudness_z=3.0, pitch_z=2.5)]
    )
    assert loud.text_scores == calm.text_scores
    assert loud.scores["anger"] > calm.scores["anger"]
    assert loud.scores["neutral"] < calm.scores["neutral"]
    assert loud.arousal is not None and loud.arousal > 0.8
    assert sum(loud.scores.values()) == pytest.approx(1.0)


def test_baseline_level_speech_changes_nothing(classifier: EmotionClassifier) -> None:
    calm, usual = classifier.predict_batch(
        [EmotionInput(ANGRY), EmotionInput(ANGRY, loudness_z=0.5, pitch_z=-1.0)]
    )
    assert usual.scores == calm.scores
    assert usual.arousal is not None and usual.arousal < 0.5


def test_deterministic_and_batch_independent(classifier: EmotionClassifier) -> None:
    alone = classifier.predict_batch(["thank you so much, that's perfect"])[0]
    batch = classifier.predict_batch([ANGRY, "thank you so much, that's perfect", ""])
    assert batch[1].label == alone.label
    assert batch[1].scores == pytest.approx(alone.scores, abs=1e-5)
    assert batch[2].label == "neutral"
    assert emotion_to_json(batch[0])["label"] == "anger"


def test_fusion_follows_the_text_lean() -> None:
    happy = {"anger": 0.05, "neutral": 0.55, "positive": 0.40}
    scores, arousal = fuse_arousal(happy, loudness_z=4.0, pitch_z=4.0, acoustic_weight=0.35)
    assert scores["positive"] - happy["positive"] > scores["anger"] - happy["anger"] > 0
    assert arousal == pytest.approx(0.9526, abs=1e-3)
    assert fuse_arousal(happy, 4.0, 4.0, acoustic_weight=0.0)[0] == pytest.approx(happy)


def test_registry_version_records_macro_f1(trained_registry: ModelRegistry) -> None:
    info = trained_registry.get("emotion")
    metrics = info.meta["metrics"]
    assert 0.5 <= metrics["eval_macro_f1"] <= 1.0
    assert (info.path / "classifier.json").is_file()
    assert not list(info.path.glob("*.pkl"))
