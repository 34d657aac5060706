"""Knowledge base: shop FAQ + ABCD agent guidelines, hybrid BM25 + MiniLM search.

The bot asks `KnowledgeBase.answer` for FAQ answers on the phone; agents and the agent
UI use `KnowledgeBase.search` (and ``callfleet kb search``). See docs/knowledge-base.md.
No Ray here; torch is imported only when the encoder is loaded (not in ``bm25`` mode).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are loaded from their modules on first use (PEP 562), so importing one light
# module of this package (its settings section, say) does not load all the others.
_EXPORTS = {
    "ABCD_SOURCE": "bots.kb.articles",
    "Article": "bots.kb.articles",
    "ArticleLoadError": "bots.kb.articles",
    "EmbeddingCache": "bots.kb.encoder",
    "EncoderUnavailableError": "bots.kb.encoder",
    "KnowledgeBase": "bots.kb.search",
    "KnowledgeBaseError": "bots.kb.articles",
    "KnowledgeBaseSettings": "bots.kb.settings",
    "SHOP_FAQ_SOURCE": "bots.kb.articles",
    "SearchHit": "bots.kb.search",
    "load_abcd": "bots.kb.articles",
    "load_articles": "bots.kb.search",
    "load_shop_faq": "bots.kb.articles",
}

__all__ = [
    "ABCD_SOURCE",
    "Article",
    "ArticleLoadError",
    "EmbeddingCache",
    "EncoderUnavailableError",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "KnowledgeBaseSettings",
    "SHOP_FAQ_SOURCE",
    "SearchHit",
    "load_abcd",
    "load_articles",
    "load_shop_faq",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # the same names, for type checkers and editors
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
