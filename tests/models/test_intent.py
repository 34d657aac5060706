"""The default shop intent model: what a caller would notice the bot understanding."""

from __future__ import annotations

import pytest

from training.models.intent import IntentClassifier
from training.models.outputs import IntentResult, intent_to_json
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def classifier(trained_registry: ModelRegistry) -> IntentClassifier:
    return IntentClassifier.from_registry(trained_registry, cpu_threads=2)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("where is my package", "order_status"),
        ("I want my money back", "refund_request"),
        ("let me talk to a real person", "talk_to_human"),
        ("I need to cancel the order I placed yesterday", "cancel_order"),
        ("what time do you open on saturday", "store_hours"),
    ],
)
def test_understands_shop_requests(classifier: IntentClassifier, text: str, intent: str) -> None:
    (result,) = classifier.predict_batch([text])
    assert result.label == intent
    assert not result.out_of_scope


def test_weather_is_out_of_scope(classifier: IntentClassifier) -> None:
    (result,) = classifier.predict_batch(["what's the weather in paris tomorrow"])
    assert result.out_of_scope


def test_results_are_well_formed_and_in_input_order(classifier: IntentClassifier) -> None:
    texts = ["where is my package", "", "goodbye", "   "]
    results = classifier.predict_batch(texts)
    assert [r.label for r in results][:3:2] == ["order_status", "goodbye"]
    for text, result in zip(texts, results, strict=True):
        assert isinstance(result, IntentResult)
        assert 0.0 <= result.confidence <= 1.0
        if text.strip():
            assert len(result.top3) == 3
            scores = [p for _, p in result.top3]
            assert scores == sorted(scores, reverse=True)
            assert all(0.0 <= p <= 1.0 for p in scores)
            assert result.top3[0] == (result.label, result.confidence)
        else:
            assert result.out_of_scope and result.confidence == 0.0
    assert set(intent_to_json(results[0])) == {"label", "confidence", "top3", "out_of_scope"}
    assert classifier.predict_batch([]) == []


def test_low_confidence_counts_as_out_of_scope(trained_registry: ModelRegistry) -> None:
    strict = IntentClassifier.from_registry(trained_registry, oos_threshold=1.0)
    (result,) = strict.predict_batch(["where is my package"])
    assert result.label == "order_status" and result.out_of_scope


def test_registry_version_records_holdout_accuracy(trained_registry: ModelRegistry) -> None:
    info = trained_registry.get("intent")
    assert info.meta["metrics"]["holdout_accuracy"] >= 0.85
    assert "oos" in info.meta["label_map"].values()
    assert (info.path / "model.safetensors").is_file()
    assert IntentClassifier.from_registry(trained_registry).version == info.version
