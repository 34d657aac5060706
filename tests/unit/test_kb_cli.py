"""`callfleet kb` as an agent or a script uses it (BM25 mode: no model weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cluster.cli.kb as kb_cli
from bots.kb import KnowledgeBaseSettings
from cluster.cli.main import main

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _datasets(shared_datasets: Path) -> None:
    """The default settings index ../shared/datasets/abcd; skip where it is absent."""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_for_scripts(capsys) -> None:
    code, out, _ = run(capsys, "kb", "search", "how do I return an item", "--mode", "bm25", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["mode"] == "bm25"
    assert doc["hits"][0]["article_id"] == "shop/returns"
    assert len(doc["hits"]) == 3
    assert "**return**" in doc["hits"][0]["passage_highlighted"]


def test_search_human_output_shows_passage_and_key_steps(capsys) -> None:
    code, out, err = run(capsys, "kb", "search", "refund process", "--mode", "bm25", "--top", "1",
                         "--answer")
    assert code == 0
    assert "1. How does the refund process work" in out
    assert "shop/refund-process" in out
    assert "key steps" in out
    assert "2." not in out.split("key steps")[0]  # only one article
    assert "**" not in out  # markup became styling
    assert "bot answer: We refund you within five business days" in out
    assert "1 result(s), bm25 search" in err


def test_source_filter_and_top(capsys) -> None:
    code, out, _ = run(capsys, "kb", "search", "refund", "--mode", "bm25", "--source", "abcd",
                       "--top", "5", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and len(hits) == 5
    assert all(hit["source"] == "abcd" for hit in hits)


def test_meaningless_query_finds_nothing(capsys) -> None:
    code, out, _ = run(capsys, "kb", "search", "xqzv blorf", "--mode", "bm25")
    assert code == 0
    assert "no articles match" in out
    code, out, _ = run(capsys, "kb", "search", "???", "--mode", "bm25", "--json", "--answer")
    assert json.loads(out)["hits"] == [] and json.loads(out)["answer"] is None


def test_empty_query_is_a_user_error(capsys) -> None:
    code, out, err = run(capsys, "kb", "search", "   ", "--mode", "bm25")
    assert code == 2
    assert "query is empty" in err and out == ""


def test_bad_top_is_rejected_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["kb", "search", "refund", "--top", "0"])
    assert caught.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_show_prints_an_article(capsys) -> None:
    code, out, _ = run(capsys, "kb", "show", "shop/returns", "--json")
    assert code == 0
    assert json.loads(out)["title"] == "How do I return an item?"
    code, out, _ = run(capsys, "kb", "show", "abcd/product_defect/refund_initiate")
    assert code == 0 and "Initiate Refund" in out and "key steps" in out


def test_show_unknown_article_suggests_ids(capsys) -> None:
    code, _, err = run(capsys, "kb", "show", "returns")
    assert code == 2
    assert "no article 'returns'" in err and "shop/returns" in err


def test_broken_source_file_is_reported_not_raised(capsys, monkeypatch, tmp_path: Path) -> None:
    broken = tmp_path / "faq.yaml"
    broken.write_text("articles:\n  - id: x\n    title: T\n")
    settings = KnowledgeBaseSettings(shop_faq_path=broken, abcd_dir=None)
    monkeypatch.setattr(kb_cli, "_settings", lambda args: (settings, tmp_path))
    code, _, err = run(capsys, "kb", "search", "refund", "--mode", "bm25")
    assert code == 2
    assert "faq.yaml" in err and "body: required field missing" in err


def test_help_texts(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["kb", "search", "--help"])
    out = capsys.readouterr().out
    assert "--top N" in out and "--json" in out and "bm25" in out
