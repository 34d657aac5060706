"""Knowledge base: shop FAQ + ABCD agent guidelines, hybrid BM25 + MiniLM search.

The bot asks `KnowledgeBase.answer` for FAQ answers on the phone; agents and the agent
UI use `KnowledgeBase.search` (and ``callfleet kb search``). See docs/knowledge-base.md.
No Ray here; torch is imported only when the encoder is loaded (not in ``bm25`` mode).
"""

from bots.lazy import lazy_exports

# each name is imported from its module on first use, so importing one light module of
# this package (its settings section, say) does not load all the others
__getattr__ = lazy_exports(globals(), {
    "bots.kb.articles": (
        "ABCD_SOURCE",
        "Article",
        "ArticleLoadError",
        "KnowledgeBaseError",
        "SHOP_FAQ_SOURCE",
        "load_abcd",
        "load_shop_faq",
    ),
    "bots.kb.encoder": ("EmbeddingCache", "EncoderUnavailableError"),
    "bots.kb.search": ("KnowledgeBase", "SearchHit", "load_articles"),
    "bots.kb.settings": ("KnowledgeBaseSettings",),
})
