"""`callfleet kb` — search the knowledge base the bot answers from and agents look things up in.

    callfleet kb search "refund process" [--top N] [--json] [--mode bm25|dense|hybrid]
    callfleet kb show ARTICLE_ID [--json]
    callfleet kb build [--force]

Articles come from the shop FAQ (``bots/data/shop_faq.yaml``) and the ABCD agent
guidelines (``../shared/datasets/abcd``); see docs/knowledge-base.md. Hybrid search needs
the passage embeddings: the first search (or ``kb build``) computes them with a progress
bar and caches them in ``<state_dir>/kb/index.npz``; later runs load them in a blink
until the corpus or the encoder changes.

Results go to stdout (matched words highlighted; ``--json`` for scripts); progress and
errors go to stderr. Mistakes (empty query, unknown article, broken source file) exit 2.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from bots.kb import (
    EmbeddingCache,
    KnowledgeBase,
    KnowledgeBaseError,
    KnowledgeBaseSettings,
    load_articles,
)
from bots.kb.encoder import SentenceEncoder
from cluster.cli.common import CliError, console, out, reports_errors
from configs.settings import load_settings

__all__ = ["register"]

_MARK_RE = re.compile(r"\*\*(.+?)\*\*")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``kb`` and its sub-commands on the top-level `subparsers`."""
    kb = subparsers.add_parser(
        "kb", help="search the knowledge base (shop FAQ + agent guidelines)",
        description="Search the knowledge base the bot answers FAQs from and agents look "
        "procedures up in: hybrid keyword (BM25) + MiniLM embedding search over passages.",
    )
    sub = kb.add_subparsers(dest="kb_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "search", help="find the articles that answer a question",
        description="Best articles for QUERY, each with its best-matching passage and its "
        "key steps; words matching the query are highlighted.",
    )
    p.add_argument("query", metavar="QUERY", help='what to look for, e.g. "refund process"')
    p.add_argument("--top", type=_positive, default=3, metavar="N",
                   help="number of articles to show (default 3)")
    p.add_argument("--mode", choices=("hybrid", "bm25", "dense"),
                   help="search mode (default: kb.mode from the settings, normally hybrid; "
                   "bm25 needs no model and starts instantly)")
    p.add_argument("--source", action="append", metavar="SOURCE",
                   help="only articles from this source (shop_faq or abcd); repeatable")
    p.add_argument("--answer", action="store_true",
                   help="also show what the bot would say on the phone (or that it would not)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_kb_search)

    p = sub.add_parser("show", help="print one article in full",
                       description="Print an article's body and key steps (ids as in search).")
    p.add_argument("article_id", metavar="ARTICLE_ID", help="e.g. shop/returns")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_kb_show)

    p = sub.add_parser(
        "build", help="compute and cache the passage embeddings now",
        description="Embed every passage with the sentence encoder and cache the result in "
        "<state_dir>/kb/index.npz (skipped when the cache is current, unless --force).",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    p.set_defaults(func=cmd_kb_build)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _kb_errors() -> tuple[type[Exception], ...]:
    """Broken source files and the like: the data is wrong, not the code (status 2)."""

    return (KnowledgeBaseError,)


# -- commands ----------------------------------------------------------------------------


@reports_errors(_kb_errors)
def cmd_kb_search(args: argparse.Namespace) -> int:
    if not args.query.strip():
        raise CliError('the query is empty; try for example: callfleet kb search "refund process"')
    kb = _load(args, mode=args.mode)
    started = time.perf_counter()
    hits = kb.search(args.query, top_k=args.top, sources=args.source)
    took_ms = (time.perf_counter() - started) * 1000
    spoken = kb.answer(args.query) if args.answer else None
    if args.json:
        doc: dict[str, Any] = {"query": args.query, "mode": kb.mode, "took_ms": round(took_ms, 1),
                               "hits": [hit.model_dump() for hit in hits]}
        if args.answer:
            doc["answer"] = spoken
        print(json.dumps(doc, indent=2))
        return 0
    if not hits:
        out.print(f"no articles match {escape(args.query)!r} ({kb.mode} search)")
    for rank, hit in enumerate(hits, 1):
        dense = f", cosine {hit.dense_score:.2f}" if hit.dense_score is not None else ""
        out.print(f"[bold]{rank}. {_rich(hit.title_highlighted)}[/bold]  [dim]"
                  f"{hit.article_id} · {hit.source} · score {hit.score:.3f}{dense}[/dim]",
                  highlight=False)
        out.print(_indented(_rich(hit.passage_highlighted), 3))
        if hit.steps:
            out.print("   [bold]key steps[/bold]")
            for number, step in enumerate(hit.steps, 1):
                out.print(_indented(f"{number:>2}. " + _rich(step), 3))
        out.print()
    if args.answer:
        line = escape(spoken) if spoken else "[dim](no confident FAQ answer: the bot would not answer)[/dim]"
        out.print(f"[bold]bot answer:[/bold] {line}")
    console.print(f"[dim]{len(hits)} result(s), {kb.mode} search, {took_ms:.0f} ms[/dim]")
    return 0


@reports_errors(_kb_errors)
def cmd_kb_show(args: argparse.Namespace) -> int:
    kb = _load(args, mode="bm25")  # showing an article needs no encoder
    try:
        article = kb.article(args.article_id)
    except KeyError:
        close = [a.id for a in kb.articles if args.article_id.lower() in a.id.lower()][:5]
        hint = f"; did you mean: {', '.join(close)}" if close else "; ids look like shop/returns"
        raise CliError(f"no article {args.article_id!r}{hint}") from None
    if args.json:
        print(json.dumps(article.model_dump(), indent=2))
        return 0
    out.print(f"[bold]{escape(article.title)}[/bold]  [dim]{article.id} · {article.source}[/dim]")
    for paragraph in article.body.split("\n\n"):
        out.print(escape(paragraph), highlight=False)
        out.print()
    if article.steps:
        out.print("[bold]key steps[/bold]")
        for number, step in enumerate(article.steps, 1):
            out.print(f"  {number:>2}. {escape(step)}", highlight=False)
    if article.tags:
        out.print(f"[dim]tags: {escape(', '.join(article.tags))}[/dim]")
    return 0


@reports_errors(_kb_errors)
def cmd_kb_build(args: argparse.Namespace) -> int:

    kb_settings, state_dir = _settings(args)
    kb_settings = kb_settings.model_copy(update={"mode": "hybrid"})
    kb = KnowledgeBase(load_articles(kb_settings), kb_settings)
    with console.status("loading the sentence encoder"):
        encoder = SentenceEncoder(kb_settings.encoder_path, cpu_threads=kb_settings.cpu_threads,
                                  max_tokens=kb_settings.encoder_max_tokens,
                                  batch_size=kb_settings.encoder_batch_size)
    cache = EmbeddingCache(kb_settings.index_dir or state_dir / "kb")
    if args.force:
        cache.path.unlink(missing_ok=True)
    started = time.perf_counter()
    with _progress_bar("embedding passages") as progress:
        built = kb.attach_encoder(encoder, cache, progress=progress)
    took = time.perf_counter() - started
    verb = f"built in {took:.1f} s" if built else "already current (use --force to rebuild)"
    console.print(f"knowledge-base index {verb}: {len(kb.articles)} articles, "
                  f"{len(kb.passages)} passages -> {cache.path}")
    return 0


# -- helpers -----------------------------------------------------------------------------


def _settings(args: argparse.Namespace):
    """The ``kb`` section of the settings (defaults until it is mounted) and state_dir."""

    settings = load_settings(getattr(args, "config", None))
    kb_settings = getattr(settings, "kb", None) or KnowledgeBaseSettings()
    return kb_settings, settings.state_dir


def _load(args: argparse.Namespace, mode: str | None):

    kb_settings, state_dir = _settings(args)
    if mode:
        kb_settings = kb_settings.model_copy(update={"mode": mode})
    if kb_settings.mode == "bm25":
        return KnowledgeBase.load(kb_settings, state_dir=state_dir)
    if console.is_terminal:
        console.print(f"[dim]loading the knowledge base ({kb_settings.mode} search; "
                      "--mode bm25 skips the model)[/dim]")
    with _progress_bar("embedding passages (first run; cached afterwards)") as progress:
        return KnowledgeBase.load(kb_settings, state_dir=state_dir, progress=progress)


@contextmanager
def _progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress(done, total) callback drawing a bar on stderr, shown only once called
    with work left to do (a cache hit draws nothing)."""

    bars = Progress(TextColumn("[bold blue]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
    task_id = None

    def progress(done: int, total: int) -> None:
        nonlocal task_id
        if task_id is None:
            if done >= total:
                return
            bars.start()
            task_id = bars.add_task(description, total=total)
        bars.update(task_id, completed=done)

    try:
        yield progress
    finally:
        if task_id is not None:
            bars.stop()


def _indented(markup: str, width: int):

    return Padding(Text.from_markup(markup), (0, 0, 0, width), expand=False)


def _rich(marked: str) -> str:
    """``**word**`` markup from the search API -> rich markup, everything else escaped."""
    parts = _MARK_RE.split(marked)
    return "".join(f"[bold yellow]{escape(p)}[/bold yellow]" if i % 2 else escape(p)
                   for i, p in enumerate(parts))

