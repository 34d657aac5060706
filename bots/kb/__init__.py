"""Knowledge base: shop FAQ + ABCD agent guidelines, hybrid BM25 + MiniLM search.

The bot asks `KnowledgeBase.answer` for FAQ answers on the phone; agents and the agent
UI use `KnowledgeBase.search` (and ``callfleet kb search``). See docs/knowledge-base.md.
No Ray here; torch is imported only when the encoder is loaded (not in ``bm25`` mode).
"""

from bots.kb.articles import (
    ABCD_SOURCE,
    SHOP_FAQ_SOURCE,
    Article,
    ArticleLoadError,
    KnowledgeBaseError,
    load_abcd,
    load_shop_faq,
)
from bots.kb.encoder import EmbeddingCache, EncoderUnavailableError
from bots.kb.search import KnowledgeBase, SearchHit, load_articles
from bots.kb.settings import KnowledgeBaseSettings

__all__ = [
    "ABCD_SOURCE",
    "SHOP_FAQ_SOURCE",
    "Article",
    "ArticleLoadError",
    "EmbeddingCache",
    "EncoderUnavailableError",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "KnowledgeBaseSettings",
    "SearchHit",
    "load_abcd",
    "load_articles",
    "load_shop_faq",
]
