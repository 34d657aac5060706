"""The passage-embedding cache and hybrid fusion, with a fake encoder (no torch, no weights).

The fake encoder hashes word stems into a small vector: enough to exercise caching, cache
invalidation, fusion and fallback exactly as the real MiniLM encoder goes through them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import bots.kb.encoder as encoder_module
from bots.kb import (
    Article,
    EmbeddingCache,
    EncoderUnavailableError,
    KnowledgeBase,
    KnowledgeBaseSettings,
    load_shop_faq,
)
from bots.kb.settings import DEFAULT_SHOP_FAQ
from bots.kb.text import search_terms

pytestmark = pytest.mark.unit


class FakeEncoder:
    """Bag of hashed stems, L2-normalised; counts the texts it was asked to encode."""

    def __init__(self, *_args, fingerprint: str = "fake-v1", **_kwargs):
        self.fingerprint = fingerprint
        self.encoded = 0

    def encode(self, texts: Sequence[str], progress=None) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in search_terms(text):
                out[row, zlib.crc32(term.encode()) % 64] += 1.0
            if progress is not None:
                progress(row + 1, len(texts))
        self.encoded += len(texts)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


@pytest.fixture(scope="module")
def articles() -> list[Article]:
    return load_shop_faq(DEFAULT_SHOP_FAQ)


def hybrid(**update) -> KnowledgeBaseSettings:
    return KnowledgeBaseSettings(mode="hybrid", abcd_dir=None, **update)


def test_embeddings_are_built_once_then_loaded_from_disk(articles, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    first, encoder = KnowledgeBase(articles, hybrid()), FakeEncoder()
    calls: list[tuple[int, int]] = []
    assert first.attach_encoder(encoder, cache, progress=lambda d, t: calls.append((d, t))) is True
    n = len(first.passages)
    assert encoder.encoded == n
    assert calls[-1] == (n, n)
    assert (tmp_path / "index.npz").is_file()

    again, encoder2 = KnowledgeBase(articles, hybrid()), FakeEncoder()
    assert again.attach_encoder(encoder2, cache) is False
    assert encoder2.encoded == 0  # nothing re-embedded
    assert again.search("how do I return an item")[0].article_id == "shop/returns"
    assert encoder2.encoded == 1  # just the query


def test_a_changed_corpus_or_encoder_rebuilds(articles, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    KnowledgeBase(articles, hybrid()).attach_encoder(FakeEncoder(), cache)
    extra = Article(id="shop/new", title="Do you sell socks?", source="shop_faq",
                    body="Yes, we sell socks in every size.")
    assert KnowledgeBase([*articles, extra], hybrid()).attach_encoder(FakeEncoder(), cache) is True
    assert KnowledgeBase([*articles, extra], hybrid()).attach_encoder(FakeEncoder(), cache) is False
    other_model = FakeEncoder(fingerprint="fake-v2")
    assert KnowledgeBase([*articles, extra], hybrid()).attach_encoder(other_model, cache) is True


def test_a_corrupt_cache_file_is_rebuilt_not_fatal(articles, tmp_path: Path) -> None:
    (tmp_path / "index.npz").write_bytes(b"this is not a zip file")
    kb = KnowledgeBase(articles, hybrid())
    assert kb.attach_encoder(FakeEncoder(), EmbeddingCache(tmp_path)) is True
    assert kb.search("refund process")[0].article_id == "shop/refund-process"


@pytest.mark.parametrize("fusion", ["rrf", "score_mix"])
def test_hybrid_hits_carry_both_scores(articles, fusion: str) -> None:
    kb = KnowledgeBase(articles, hybrid(fusion=fusion))
    kb.attach_encoder(FakeEncoder())
    assert kb.mode == "hybrid"
    hit = kb.search("how do I return an item")[0]
    assert hit.article_id == "shop/returns"
    assert hit.dense_score is not None and 0.0 < hit.dense_score <= 1.0
    assert hit.bm25_score > 0
    assert "**return**" in hit.passage_highlighted
    assert kb.search("") == []


def test_dense_weight_zero_ranks_like_bm25(articles) -> None:
    bm25 = KnowledgeBase(articles, KnowledgeBaseSettings(mode="bm25", abcd_dir=None))
    kb = KnowledgeBase(articles, hybrid(dense_weight=0.0))
    kb.attach_encoder(FakeEncoder())
    for query in ("cancel my order", "refund", "gift card balance"):
        keyword_hits = [h.article_id for h in kb.search(query, top_k=5) if h.bm25_score > 0]
        assert keyword_hits == [h.article_id for h in bm25.search(query, top_k=5)][:len(keyword_hits)]


def test_load_uses_state_dir_for_the_cache(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(encoder_module, "SentenceEncoder", FakeEncoder)
    kb = KnowledgeBase.load(hybrid(), state_dir=tmp_path)
    assert kb.mode == "hybrid"
    assert (tmp_path / "kb" / "index.npz").is_file()
    custom = tmp_path / "elsewhere"
    KnowledgeBase.load(hybrid(index_dir=custom), state_dir=tmp_path)
    assert (custom / "index.npz").is_file()


def test_missing_encoder_falls_back_to_bm25_or_fails_clearly(monkeypatch, tmp_path: Path) -> None:
    def unavailable(*_args, **_kwargs):
        raise EncoderUnavailableError("the sentence encoder needs torch (test)")

    monkeypatch.setattr(encoder_module, "SentenceEncoder", unavailable)
    kb = KnowledgeBase.load(hybrid(), state_dir=tmp_path)
    assert kb.mode == "bm25"
    assert kb.search("how do I return an item")[0].dense_score is None
    with pytest.raises(EncoderUnavailableError, match="needs torch"):
        KnowledgeBase.load(hybrid(fallback_to_bm25=False), state_dir=tmp_path)


def test_settings_reject_unknown_fields_and_bad_values() -> None:
    with pytest.raises(ValueError, match="extra"):
        KnowledgeBaseSettings(bogus=1)
    with pytest.raises(ValueError, match="mode"):
        KnowledgeBaseSettings(mode="fuzzy")


def test_an_unwritable_cache_folder_does_not_stop_search(articles, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the index folder should be")
    kb = KnowledgeBase(articles, hybrid())
    assert kb.attach_encoder(FakeEncoder(), EmbeddingCache(blocker / "kb")) is True
    assert kb.search("refund process")[0].article_id == "shop/refund-process"
