"""Shadow mode: how often a candidate intent version agrees with the serving one."""

from __future__ import annotations

import pytest

from training.models.intent import NOTHING_SAID, ShadowAgreement
from training.models.outputs import IntentResult

pytestmark = pytest.mark.unit


def _r(label: str, confidence: float = 0.9, oos: bool = False) -> IntentResult:
    return IntentResult(label, confidence, [(label, confidence), ("other", 1 - confidence)], oos)


def test_agreement_counts_what_the_bot_would_do() -> None:
    shadow = ShadowAgreement("v0001", "v0002")
    serving = [_r("balance"), _r("transfer"), _r("balance", 0.3, oos=True), _r("card_lost")]
    candidate = [_r("balance", 0.7), _r("balance"), _r("transfer", 0.2, oos=True), _r("card_lost")]
    shadow.record(serving, candidate)
    report = shadow.report()
    assert report["serving_version"] == "v0001" and report["candidate_version"] == "v0002"
    assert report["compared"] == 4
    # both out of scope counts as agreeing, whatever their raw top labels were
    assert report["agreement"] == pytest.approx(3 / 4)
    assert report["oos_agreement"] == 1.0
    assert report["mean_confidence_delta"] == pytest.approx((0.2 + 0 + 0.1 + 0) / 4)
    assert report["top_disagreements"] == [{"serving": "transfer", "candidate": "balance", "count": 1}]


def test_empty_utterances_are_not_compared() -> None:
    shadow = ShadowAgreement("v1", "v2")
    shadow.record([NOTHING_SAID, _r("a")], [NOTHING_SAID, _r("b")])
    assert shadow.report()["compared"] == 1 and shadow.report()["agreement"] == 0.0


def test_skips_and_errors_are_counted_and_nothing_compared_reads_none() -> None:
    shadow = ShadowAgreement("v1", "v2")
    shadow.record_skipped(5)
    shadow.record_error()
    report = shadow.report()
    assert report["skipped"] == 5 and report["errors"] == 1
    assert report["compared"] == 0 and report["agreement"] is None


def test_disagreement_pairs_are_bounded_and_ranked() -> None:
    shadow = ShadowAgreement("v1", "v2")
    shadow.MAX_PAIRS = 3
    for i in range(10):
        shadow.record([_r(f"s{i}")], [_r(f"c{i}")])
    for _ in range(4):
        shadow.record([_r("s0")], [_r("c0")])
    assert len(shadow.pairs) == 3
    assert shadow.report(top=1)["top_disagreements"] == [{"serving": "s0", "candidate": "c0", "count": 5}]


def test_mismatched_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="2 serving results but 1 shadow"):
        ShadowAgreement("v1", "v2").record([_r("a"), _r("b")], [_r("a")])
