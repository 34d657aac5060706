"""Knowledge-base search: index build time, query latency and a small relevance check.

    .venv/bin/python benchmarks/kb_search.py            # human lines, then one JSON object
    .venv/bin/python benchmarks/kb_search.py --json     # only the JSON object
    .venv/bin/python benchmarks/kb_search.py --repeats 20 --threads 2

Measures, on the real corpus (shop FAQ + ABCD guidelines):

* build: article loading + BM25 index; MiniLM load; embedding every passage (fresh, into
  a temporary index folder); loading again from that cache.
* query latency p50/p95 for BM25-only and hybrid search (each query repeated, after one
  warm-up pass), linearly interpolated like the call benchmarks' (`cluster.sim.results`).
* relevance on hand-written queries (below, written for this check, not taken from the
  data): recall@1, recall@3 and MRR for bm25, dense, hybrid (rrf) and hybrid (score_mix);
  and what `answer()` does on them and on out-of-domain questions, which must get None.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bots.kb import EmbeddingCache, KnowledgeBase, KnowledgeBaseSettings  # noqa: E402
from bots.kb.articles import load_abcd, load_shop_faq  # noqa: E402
from telephony.call_data import percentile  # noqa: E402

#: (query, ids that count as right). Phrased as callers and agents say things.
QUERIES: list[tuple[str, set[str]]] = [
    ("how long will my delivery take", {"shop/delivery-times"}),
    ("do I have to pay for shipping", {"shop/shipping-costs", "abcd/shipping_issue/cost"}),
    ("I want to send these jeans back", {"shop/returns", "abcd/product_defect/return_size",
                                         "abcd/product_defect/return_color"}),
    ("when do I get my money back", {"shop/refund-process", "abcd/product_defect/refund_status"}),
    ("I moved and need to update my shipping address",
     {"shop/change-delivery-address", "abcd/manage_account/manage_change_address",
      "abcd/shipping_issue/manage"}),
    ("can I still cancel what I ordered yesterday",
     {"shop/cancel-order", "abcd/order_issue/manage_cancel"}),
    ("my parcel says delivered but it's not here",
     {"shop/missing-or-late-parcel", "abcd/shipping_issue/missing"}),
    ("can I pay with paypal", {"shop/payment-methods"}),
    ("the website keeps rejecting my credit card",
     {"shop/payment-declined", "abcd/troubleshoot_site/credit_card"}),
    ("are you open on sunday", {"shop/opening-hours"}),
    ("the zip on my jacket broke after two months",
     {"shop/warranty", "shop/damaged-or-faulty-item"}),
    ("I got charged a fee I don't recognise", {"abcd/order_issue/status_mystery_fee"}),
    ("the discount voucher says it expired",
     {"shop/promo-codes", "abcd/purchase_dispute/promo_code_out_of_date"}),
    ("I can't log in to my account",
     {"shop/account-password", "abcd/account_access/recover_password",
      "abcd/account_access/recover_username"}),
    ("customer wants a refund for a stained shirt",
     {"abcd/product_defect/return_stain", "abcd/product_defect/refund_initiate"}),
    ("the price went down the day after I bought it",
     {"shop/price-match", "abcd/purchase_dispute/bad_price_yesterday"}),
    ("items are not showing up in my shopping cart", {"abcd/troubleshoot_site/shopping_cart"}),
    ("how do I pay my subscription bill", {"abcd/subscription_inquiry/manage_pay_bill"}),
    ("do you deliver to Canada", {"shop/international-shipping"}),
    ("the shoes are too small, can I get a bigger size",
     {"shop/exchanges", "shop/sizing", "abcd/product_defect/return_size"}),
]

OUT_OF_DOMAIN = [
    "what's the weather like in paris tomorrow",
    "tell me a joke",
    "who won the football match last night",
    "book me a flight to rome",
    "what is the capital of australia",
    "asdf qwerty zxcv",
]


def relevance(kb: KnowledgeBase) -> dict:
    at1 = at3 = 0
    rr = 0.0
    misses = []
    for query, expected in QUERIES:
        ids = [h.article_id for h in kb.search(query, top_k=10)]
        rank = next((i + 1 for i, a in enumerate(ids) if a in expected), None)
        at1 += rank == 1
        at3 += rank is not None and rank <= 3
        rr += 1.0 / rank if rank else 0.0
        if not rank or rank > 3:
            misses.append({"query": query, "top3": ids[:3]})
    n = len(QUERIES)
    return {"recall@1": round(at1 / n, 3), "recall@3": round(at3 / n, 3),
            "mrr": round(rr / n, 3), "queries": n, "misses@3": misses}


def answers(kb: KnowledgeBase) -> dict:
    right = wrong = none = 0
    wrong_cases = []
    for query, expected in QUERIES:
        if not any(e.startswith("shop/") for e in expected):
            continue
        text = kb.answer(query)
        if text is None:
            none += 1
            continue
        hit = kb.search(query, top_k=1, sources=kb.settings.answer_sources)[0]
        if hit.article_id in expected:
            right += 1
        else:
            wrong += 1
            wrong_cases.append({"query": query, "answered_from": hit.article_id})
    false_answers = [q for q in OUT_OF_DOMAIN if kb.answer(q) is not None]
    return {"right": right, "wrong": wrong, "none": none, "wrong_cases": wrong_cases,
            "out_of_domain_answered": false_answers, "out_of_domain": len(OUT_OF_DOMAIN)}


def latency(kb: KnowledgeBase, repeats: int) -> dict:
    queries = [q for q, _ in QUERIES]
    for query in queries:  # warm-up
        kb.search(query)
    times = []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            kb.search(query)
            times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(times, 0.5) or 0.0, 2),
            "p95_ms": round(percentile(times, 0.95) or 0.0, 2), "n": len(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="latency passes over the queries")
    parser.add_argument("--threads", type=int, default=KnowledgeBaseSettings().cpu_threads,
                        help="torch threads for the encoder (default: the settings default, 1)")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args()
    say = (lambda line: None) if args.json else print

    base = KnowledgeBaseSettings(mode="bm25", cpu_threads=args.threads)
    started = time.perf_counter()
    articles = load_shop_faq(base.shop_faq_path) + load_abcd(base.abcd_dir)
    bm25_kb = KnowledgeBase(articles, base)
    bm25_build_s = time.perf_counter() - started

    from bots.kb.encoder import SentenceEncoder

    started = time.perf_counter()
    encoder = SentenceEncoder(cpu_threads=args.threads, max_tokens=base.encoder_max_tokens,
                              batch_size=base.encoder_batch_size)
    encoder_load_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        hybrid_kb = KnowledgeBase(articles, base.model_copy(update={"mode": "hybrid"}))
        started = time.perf_counter()
        hybrid_kb.attach_encoder(encoder, EmbeddingCache(tmp))
        embed_build_s = time.perf_counter() - started
        cached_kb = KnowledgeBase(articles, base.model_copy(update={"mode": "hybrid"}))
        started = time.perf_counter()
        rebuilt = cached_kb.attach_encoder(encoder, EmbeddingCache(tmp))
        cache_load_s = time.perf_counter() - started
    embeddings = hybrid_kb._embeddings

    def variant(**update) -> KnowledgeBase:
        return KnowledgeBase(articles, base.model_copy(update=update), encoder=encoder,
                             embeddings=embeddings)

    variants = {"bm25": bm25_kb, "dense": variant(mode="dense"),
                "hybrid_rrf": variant(mode="hybrid", fusion="rrf"),
                "hybrid_score_mix": variant(mode="hybrid", fusion="score_mix")}
    report = {
        "corpus": {"articles": len(articles), "passages": len(hybrid_kb.passages),
                   "shop_faq": sum(a.source == "shop_faq" for a in articles),
                   "abcd": sum(a.source == "abcd" for a in articles)},
        "build_s": {"articles_and_bm25": round(bm25_build_s, 3),
                    "encoder_load": round(encoder_load_s, 3),
                    "embed_passages": round(embed_build_s, 3),
                    "load_from_cache": round(cache_load_s, 3), "cache_hit": not rebuilt},
        "latency": {"bm25": latency(bm25_kb, args.repeats),
                    "hybrid": latency(variants["hybrid_rrf"], args.repeats)},
        "relevance": {name: relevance(kb) for name, kb in variants.items()},
        "answers": {name: answers(variants[name]) for name in ("bm25", "hybrid_rrf")},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": args.threads, "python": platform.python_version()},
    }
    b, lat = report["build_s"], report["latency"]
    say(f"corpus: {report['corpus']['articles']} articles, {report['corpus']['passages']} passages")
    say(f"build: articles+BM25 {b['articles_and_bm25']:.2f} s, MiniLM load {b['encoder_load']:.2f} s, "
        f"embedding passages {b['embed_passages']:.2f} s, from cache {b['load_from_cache']:.3f} s")
    say(f"query latency: bm25 p50 {lat['bm25']['p50_ms']} ms / p95 {lat['bm25']['p95_ms']} ms; "
        f"hybrid p50 {lat['hybrid']['p50_ms']} ms / p95 {lat['hybrid']['p95_ms']} ms")
    for name, rel in report["relevance"].items():
        say(f"relevance {name:<17} recall@1 {rel['recall@1']:.2f}  recall@3 {rel['recall@3']:.2f}  "
            f"MRR {rel['mrr']:.2f}  ({rel['queries']} queries)")
    for name, ans in report["answers"].items():
        say(f"answer() {name:<10} right {ans['right']}, wrong {ans['wrong']}, none {ans['none']}; "
            f"out-of-domain answered {len(ans['out_of_domain_answered'])}/{ans['out_of_domain']}")
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
