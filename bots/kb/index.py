"""Passages and the BM25 keyword index over them.

Articles are searched as passages (a few sentences each) rather than whole: a long
agent procedure would otherwise win every query on sheer length, and a hit can show the
passage that matched. Each passage is indexed with its article's title (counted twice:
a FAQ title is the question itself) and tags, so that "how do I return an item" finds
the second passage of the returns article too.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from bots.kb.articles import Article
from bots.kb.text import search_terms, sentences

__all__ = ["BM25Index", "Passage", "split_passages"]

TITLE_WEIGHT = 2


@dataclass(frozen=True)
class Passage:
    """A run of whole sentences of one article (`number` counts from 0 within it)."""

    article: Article
    number: int
    text: str

    @property
    def embedding_text(self) -> str:
        """What the sentence encoder sees: the title gives the passage its topic."""
        return f"{self.article.title}. {self.text}"


def split_passages(article: Article, max_words: int) -> list[Passage]:
    """Pack an article's sentences greedily into passages of at most `max_words` words.

    A sentence longer than `max_words` becomes a passage of its own (never cut mid-way:
    a cut sentence reads badly in a result and confuses the encoder).
    """
    chunks: list[list[str]] = []
    words = 0
    for paragraph in article.body.split("\n\n"):
        for sentence in sentences(paragraph):
            size = len(sentence.split())
            if chunks and words + size <= max_words:
                chunks[-1].append(sentence)
                words += size
            else:
                chunks.append([sentence])
                words = size
    return [Passage(article, number, " ".join(chunk)) for number, chunk in enumerate(chunks)]


class BM25Index:
    """Okapi BM25 over passages; scores for every passage at once as a numpy array.

    idf is the non-negative variant ``ln(1 + (N - df + 0.5) / (df + 0.5))`` so a word
    present in most passages never counts against a passage.
    """

    def __init__(self, passages: list[Passage], k1: float = 1.2, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self.size = len(passages)
        self._postings: dict[str, list[tuple[int, int]]] = {}
        lengths = np.zeros(self.size, dtype=np.float32)
        for doc, passage in enumerate(passages):
            article = passage.article
            terms = (search_terms(article.title) * TITLE_WEIGHT
                     + search_terms(" ".join(article.tags)) + search_terms(passage.text))
            lengths[doc] = len(terms)
            for term, count in Counter(terms).items():
                self._postings.setdefault(term, []).append((doc, count))
        self._lengths = lengths
        self._avg_length = float(lengths.mean()) if self.size else 0.0

    def idf(self, term: str) -> float:
        df = len(self._postings.get(term, ()))
        return math.log(1.0 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 score of every passage for the (stemmed) query `terms`; 0 = no term in it."""
        out = np.zeros(self.size, dtype=np.float32)
        if not self.size:
            return out
        norm = self.k1 * (1.0 - self.b + self.b * self._lengths / max(self._avg_length, 1e-9))
        for term in dict.fromkeys(terms):  # unique, order kept
            postings = self._postings.get(term)
            if not postings:
                continue
            docs = np.fromiter((d for d, _ in postings), dtype=np.int64, count=len(postings))
            tf = np.fromiter((c for _, c in postings), dtype=np.float32, count=len(postings))
            out[docs] += self.idf(term) * tf * (self.k1 + 1.0) / (tf + norm[docs])
        return out

    def coverage(self, terms: list[str], doc: int) -> float:
        """Share of the query's idf weight whose terms occur in passage `doc` (0..1).

        A query word the corpus never saw keeps its full idf in the denominator, so
        "refund for my zorblax" covers less than "refund" alone.
        """
        unique = list(dict.fromkeys(terms))
        total = sum(self.idf(t) for t in unique)
        if total <= 0:
            return 0.0
        found = sum(self.idf(t) for t in unique
                    if any(d == doc for d, _ in self._postings.get(t, ())))
        return found / total

    def matched(self, terms: list[str], doc: int) -> set[str]:
        """The query terms that occur in passage `doc`."""
        return {t for t in terms if any(d == doc for d, _ in self._postings.get(t, ()))}
