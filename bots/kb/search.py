"""`KnowledgeBase`: hybrid (BM25 + MiniLM) search over article passages, and FAQ answers.

Contract for callers (the bot, the agent UI, the CLI):

* ``KnowledgeBase.load(settings)`` reads every configured source and, unless the mode is
  ``bm25``, loads the encoder and the cached passage embeddings (building them, with a
  progress callback, when the corpus or model changed). Do it once per process, at start.
* ``kb.search(query, top_k)`` returns at most `top_k` hits, one per article, best first;
  an empty or meaningless query gives ``[]``. CPU-bound (≈ 15–30 ms with the encoder):
  call it through ``asyncio.to_thread`` from async code.
* ``kb.answer(question)`` returns a short spoken answer from the shop FAQ, or None when no
  FAQ article matches confidently enough; the bot then says it doesn't know or escalates.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from bots.kb import encoder as kb_encoder
from bots.kb.articles import (
    Article,
    KnowledgeBaseError,
    check_unique_ids,
    load_abcd,
    load_shop_faq,
)
from bots.kb.encoder import EmbeddingCache, EncoderUnavailableError, cache_key
from bots.kb.index import BM25Index, Passage, split_passages
from bots.kb.settings import KnowledgeBaseSettings
from bots.kb.text import highlight, search_terms, sentences, tokens
from training.models.encoder import Progress

__all__ = ["KnowledgeBase", "SearchHit", "load_articles"]

log = logging.getLogger("callfleet.bots.kb")

MAX_QUERY_CHARS = 1000


class SearchHit(BaseModel):
    """One article found for a query: its best passage, scores and highlighted key steps.

    Highlighted fields wrap each word matching a query word in ``**...**``.
    """

    article_id: str
    title: str
    title_highlighted: str
    source: str
    passage: str = Field(description="the passage of the article that matched best")
    passage_highlighted: str
    steps: list[str] = Field(description="the article's key steps, query words highlighted")
    score: float = Field(description="fused ranking score (comparable within one query only)")
    bm25_score: float = Field(description="keyword score of the passage (0 = no query word)")
    dense_score: float | None = Field(None, description="cosine similarity; None in bm25 mode")
    keyword_coverage: float = Field(description="share of the query's idf weight in the passage")
    matched_terms: list[str] = Field(description="query words found in the passage")


class KnowledgeBase:
    """Articles, their passages, the BM25 index and (unless bm25 mode) passage embeddings."""

    def __init__(self, articles: list[Article], settings: KnowledgeBaseSettings | None = None,
                 *, encoder: Any = None, embeddings: np.ndarray | None = None):
        self.settings = settings or KnowledgeBaseSettings()
        if not articles:
            raise KnowledgeBaseError("no articles: configure kb.shop_faq_path or kb.abcd_dir")
        check_unique_ids(articles)
        self.articles = list(articles)
        self.passages: list[Passage] = [
            p for a in self.articles for p in split_passages(a, self.settings.passage_max_words)
        ]
        self._bm25 = BM25Index(self.passages, k1=self.settings.bm25_k1, b=self.settings.bm25_b)
        self._sources = np.array([p.article.source for p in self.passages])
        self._encoder = encoder
        self._embeddings = embeddings
        if (encoder is None) != (embeddings is None):
            raise ValueError("give both encoder and embeddings, or neither (bm25 mode)")
        if embeddings is not None and embeddings.shape[0] != len(self.passages):
            raise ValueError(f"{embeddings.shape[0]} embeddings for {len(self.passages)} passages")
        self.mode = self.settings.mode if encoder is not None else "bm25"

    # -- construction ------------------------------------------------------------------

    @classmethod
    def load(cls, settings: Any = None, *, state_dir: Path | str | None = None,
             progress: Progress | None = None) -> KnowledgeBase:
        """Load from `KnowledgeBaseSettings` (or a full `Settings` holding a ``kb`` section).

        Raises ArticleLoadError for a bad source file, EncoderUnavailableError when the
        encoder is needed, cannot load and ``fallback_to_bm25`` is off.
        """
        kb_settings, state_dir = _resolve(settings, state_dir)
        kb = cls(load_articles(kb_settings), kb_settings)
        if kb_settings.mode == "bm25":
            return kb
        try:

            encoder = kb_encoder.SentenceEncoder(  # looked up on the module: tests swap it
                kb_settings.encoder_path, cpu_threads=kb_settings.cpu_threads,
                max_tokens=kb_settings.encoder_max_tokens,
                batch_size=kb_settings.encoder_batch_size,
            )
        except EncoderUnavailableError as exc:
            if not kb_settings.fallback_to_bm25:
                raise
            log.warning("knowledge base falls back to BM25 only: %s", exc)
            return kb
        index_dir = Path(kb_settings.index_dir or Path(state_dir) / "kb")
        kb.attach_encoder(encoder, EmbeddingCache(index_dir), progress=progress)
        return kb

    def attach_encoder(self, encoder: Any, cache: EmbeddingCache | None = None,
                       progress: Progress | None = None) -> bool:
        """Use `encoder` for dense scores; embeddings come from `cache` when current.

        Returns True when the embeddings were (re)built, False when the cache was used.
        """
        texts = [p.embedding_text for p in self.passages]
        key = cache_key(encoder.fingerprint, texts)
        embeddings = cache.load(key) if cache is not None else None
        built = embeddings is None or embeddings.shape[0] != len(texts)
        if built:
            started = time.perf_counter()
            embeddings = encoder.encode(texts, progress=progress)
            log.info("embedded %s passages in %.1f s", len(texts), time.perf_counter() - started)
            if cache is not None:
                try:
                    cache.save(key, embeddings)
                except OSError as exc:  # read-only state dir: search still works, slower start
                    log.warning("cannot write the knowledge-base index %s (%s); "
                                "it will be rebuilt at the next start", cache.path, exc)
        elif progress is not None:
            progress(len(texts), len(texts))
        self._encoder, self._embeddings = encoder, embeddings
        self.mode = self.settings.mode
        return built

    # -- search ------------------------------------------------------------------------

    def search(self, query: str, top_k: int = 3, *,
               sources: list[str] | None = None) -> list[SearchHit]:
        """The `top_k` best articles for `query` (one hit each), best first.

        `sources` limits the hits to those sources (e.g. ``["shop_faq"]``). A query with
        no searchable word and no meaning to the encoder returns an empty list.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        query = " ".join(str(query).split())[:MAX_QUERY_CHARS]
        if not tokens(query):
            return []
        terms = search_terms(query)
        bm25 = self._bm25.scores(terms)
        dense = None
        if self.mode != "bm25":
            vector = self._encoder.encode([query])[0]
            dense = self._embeddings @ vector
        fused, eligible = self._fuse(bm25, dense)
        if sources is not None:
            eligible &= np.isin(self._sources, list(sources))
        best: dict[str, int] = {}
        for doc in np.flatnonzero(eligible):
            article_id = self.passages[doc].article.id
            if article_id not in best or fused[doc] > fused[best[article_id]]:
                best[article_id] = int(doc)
        ranked = sorted(best.values(), key=lambda d: (-fused[d], d))[:top_k]
        return [self._hit(doc, query, terms, fused, bm25, dense) for doc in ranked]

    def _fuse(self, bm25: np.ndarray, dense: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Fused score per passage and which passages may be hits at all."""
        s = self.settings
        keyword = bm25 > 0
        if dense is None:
            return bm25.astype(np.float64), keyword
        eligible = keyword | (dense >= s.min_dense_similarity)
        if self.mode == "dense":
            return dense.astype(np.float64), dense >= s.min_dense_similarity
        if s.fusion == "score_mix":
            top = float(bm25.max())
            norm = bm25 / top if top > 0 else np.zeros_like(bm25)
            return s.bm25_weight * norm + s.dense_weight * np.clip(dense, 0, None), eligible
        fused = s.dense_weight / (s.rrf_k + _ranks(dense))
        fused[keyword] += s.bm25_weight / (s.rrf_k + _ranks(bm25)[keyword])
        return fused, eligible

    def _hit(self, doc: int, query: str, terms: list[str], fused: np.ndarray,
             bm25: np.ndarray, dense: np.ndarray | None) -> SearchHit:
        passage = self.passages[doc]
        article = passage.article
        matched = self._bm25.matched(terms, doc)
        words = [word for word in dict.fromkeys(tokens(query))
                 if any(term in matched for term in search_terms(word))]
        return SearchHit(
            article_id=article.id, title=article.title,
            title_highlighted=highlight(article.title, terms), source=article.source,
            passage=passage.text, passage_highlighted=highlight(passage.text, terms),
            steps=[highlight(step, terms) for step in article.steps],
            score=round(float(fused[doc]), 6), bm25_score=round(float(bm25[doc]), 4),
            dense_score=None if dense is None else round(float(dense[doc]), 4),
            keyword_coverage=round(self._bm25.coverage(terms, doc), 4), matched_terms=words,
        )

    # -- answers -----------------------------------------------------------------------

    def answer(self, question: str) -> str | None:
        """A short spoken answer from the best shop-FAQ article, or None if not confident.

        Confident means, for the best FAQ passage: its cosine similarity reaches
        ``answer_min_similarity``, or it reaches ``answer_keyword_similarity`` and the
        keyword coverage reaches ``answer_min_coverage`` as well (hybrid/dense); in bm25
        mode, the keyword coverage reaches ``answer_min_coverage``. The answer is the opening sentences of that
        article, which the FAQ format reserves for the direct answer, so a hit on a later
        passage still gets the article's answer rather than a sentence out of context.
        """
        s = self.settings
        hits = self.search(question, top_k=1, sources=s.answer_sources)
        if not hits:
            return None
        hit = hits[0]
        if hit.dense_score is not None:
            confident = hit.dense_score >= s.answer_min_similarity or (
                hit.dense_score >= s.answer_keyword_similarity
                and hit.keyword_coverage >= s.answer_min_coverage)
        else:
            confident = hit.keyword_coverage >= s.answer_min_coverage
        if not confident:
            log.debug("no confident FAQ answer (best %s)", hit.article_id)
            return None
        article = self.article(hit.article_id)
        return _spoken(article.body, s.answer_max_sentences, s.answer_max_chars)

    def article(self, article_id: str) -> Article:
        """The article with this id; KeyError naming the id if there is none."""
        for article in self.articles:
            if article.id == article_id:
                return article
        raise KeyError(f"no knowledge-base article {article_id!r}")


def load_articles(settings: KnowledgeBaseSettings) -> list[Article]:
    """Every article of the sources `settings` names (ArticleLoadError on a bad file)."""
    articles: list[Article] = []
    if settings.shop_faq_path is not None:
        articles += load_shop_faq(settings.shop_faq_path)
    if settings.abcd_dir is not None:
        articles += load_abcd(settings.abcd_dir)
    return articles


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each score, 1 = highest (ties broken by position)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def _spoken(body: str, max_sentences: int, max_chars: int) -> str:
    first_paragraph = body.split("\n\n")[0]
    out: list[str] = []
    for sentence in sentences(first_paragraph)[:max_sentences]:
        if out and len(" ".join([*out, sentence])) > max_chars:
            break
        out.append(sentence)
    text = " ".join(out)
    if len(text) > max_chars:  # one very long sentence: cut at a word boundary
        text = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;:") + "."
    return text


def _resolve(settings: Any, state_dir: Path | str | None) -> tuple[KnowledgeBaseSettings, Path]:
    """Accept KnowledgeBaseSettings, a full Settings (``.kb`` + ``.state_dir``) or None."""
    if settings is None:
        return KnowledgeBaseSettings(), Path(state_dir or "var")
    if isinstance(settings, KnowledgeBaseSettings):
        return settings, Path(state_dir or "var")
    kb = getattr(settings, "kb", None)
    if kb is not None and not isinstance(kb, KnowledgeBaseSettings):
        kb = KnowledgeBaseSettings.model_validate(kb.model_dump() if hasattr(kb, "model_dump") else kb)
    return kb or KnowledgeBaseSettings(), Path(state_dir or getattr(settings, "state_dir", "var"))
