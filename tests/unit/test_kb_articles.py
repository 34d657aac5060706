"""Loading knowledge-base articles: the shipped FAQ, ABCD, and clear errors for bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bots.kb import (
    Article,
    ArticleLoadError,
    KnowledgeBase,
    KnowledgeBaseError,
    load_abcd,
    load_shop_faq,
)
from bots.kb.index import split_passages
from bots.kb.settings import DEFAULT_SHOP_FAQ
from bots.kb.text import highlight, search_terms, stem

pytestmark = pytest.mark.unit


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- shop FAQ ----------------------------------------------------------------------------


def test_shipped_faq_articles_are_complete() -> None:
    articles = load_shop_faq(DEFAULT_SHOP_FAQ)
    assert 15 <= len(articles) <= 25
    by_id = {a.id: a for a in articles}
    for expected in ("shop/returns", "shop/refund-process", "shop/change-delivery-address",
                     "shop/order-tracking", "shop/payment-methods", "shop/opening-hours",
                     "shop/warranty", "shop/cancel-order", "shop/delivery-times"):
        assert expected in by_id
    for article in articles:
        assert article.source == "shop_faq"
        assert article.steps, f"{article.id} has no steps"
        assert len(article.body.split()) >= 20
        assert "\n" not in article.body  # one spoken paragraph
    # consistent with what the minimal bot says on the phone
    assert "8 am to 8 pm" in by_id["shop/opening-hours"].body


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("articles: [", "not valid YAML"),
        ("- just a list", "'articles:' list at the top"),
        ("articles: []", "list is empty"),
        ("articles:\n  - id: ok\n    title: T\n", "article 1 ('ok'): body: required field missing"),
        ("articles:\n  - id: Bad_Id\n    title: T\n    body: B\n", "article 1 ('Bad_Id'): id: "),
        ("articles:\n  - id: ok\n    title: T\n    body: B\n    answer: x\n",
         "answer: unknown field (allowed: id, title, body, steps, tags)"),
        ("articles:\n  - id: ok\n    title: T\n    body: B\n  - id: ok\n    title: U\n    body: C\n",
         "'shop/ok' appears twice"),
        ("articles:\n  - just text\n", "article 1: expected a mapping"),
        ("articles:\n  - id: ok\n    title: '  '\n    body: B\n", "title"),
    ],
)
def test_faq_errors_name_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "faq.yaml", text)
    with pytest.raises(ArticleLoadError) as caught:
        load_shop_faq(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_faq_file(tmp_path: Path) -> None:
    with pytest.raises(ArticleLoadError, match="faq.yaml: file not found"):
        load_shop_faq(tmp_path / "faq.yaml")


# -- ABCD --------------------------------------------------------------------------------


def test_abcd_subflows_become_readable_articles(shared_datasets: Path) -> None:
    articles = {a.id: a for a in load_abcd(shared_datasets / "abcd")}
    assert len(articles) == 55
    refund = articles["abcd/product_defect/refund_initiate"]
    assert refund.title == "Initiate Refund (Product Defect)"
    assert refund.source == "abcd"
    assert "[" not in refund.body  # UI button brackets removed
    # a step introducing options names them
    assert "Refund method in Record Reason - valid options are: Gift card, Add value, Paper check, Credit card" in refund.steps
    # placeholder steps ("Option 1") carry what to do instead
    card = articles["abcd/troubleshoot_site/credit_card"]
    assert card.steps[0].startswith("Try Again: Option 1 - Instruct the customer to try")
    assert all(len(step) > 5 for a in articles.values() for step in a.steps)


def copy_abcd(shared_datasets: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "abcd"
    shutil.copytree(shared_datasets / "abcd", folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def test_abcd_errors_are_clear(shared_datasets: Path, tmp_path: Path) -> None:
    with pytest.raises(ArticleLoadError, match="ABCD folder not found"):
        load_abcd(tmp_path / "nowhere")
    folder = copy_abcd(shared_datasets, tmp_path)
    (folder / "kb.json").unlink()
    with pytest.raises(ArticleLoadError, match=r"kb\.json: file not found"):
        load_abcd(folder)
    folder = copy_abcd(shared_datasets, tmp_path / "2")
    write(folder / "guidelines.json", "{not json")
    with pytest.raises(ArticleLoadError, match=r"guidelines\.json: not valid JSON"):
        load_abcd(folder)


def test_abcd_files_that_disagree_are_rejected(shared_datasets: Path, tmp_path: Path) -> None:
    folder = copy_abcd(shared_datasets, tmp_path)
    ontology = json.loads((folder / "ontology.json").read_text())
    ontology["intents"]["subflows"]["shipping_issue"].pop()
    write(folder / "ontology.json", json.dumps(ontology))
    with pytest.raises(ArticleLoadError, match="flow 'Shipping Issue' has 4 subflows but ontology.json lists 3"):
        load_abcd(folder)


def test_duplicate_ids_across_sources_are_rejected() -> None:
    one = Article(id="x/1", title="T", source="a", body="B")
    with pytest.raises(KnowledgeBaseError, match="'x/1' appears twice"):
        KnowledgeBase([one, one])
    with pytest.raises(KnowledgeBaseError, match="no articles"):
        KnowledgeBase([])


# -- text and passages -------------------------------------------------------------------


def test_word_forms_meet_at_one_stem() -> None:
    for forms in (["refund", "refunds", "refunded", "refunding"],
                  ["ship", "shipping", "shipped", "shipment"],
                  ["cancel", "cancelled", "canceling", "cancellation"],
                  ["deliver", "delivery", "deliveries", "delivered"],
                  ["change", "changed", "changing", "changes"],
                  ["address", "addresses"]):
        assert len({stem(w) for w in forms}) == 1, forms
    assert stem("status") == "status"


def test_search_terms_drop_stop_words_and_fold_case_and_accents() -> None:
    assert search_terms("How do I RETURN an item?") == ["return", "item"]
    assert search_terms("Café’s") == search_terms("cafe")
    assert search_terms("the and of ... ???") == []


def test_highlight_marks_whole_words_and_merges_neighbours() -> None:
    terms = search_terms("return label")
    assert highlight("Print the prepaid return label. Returns are free; no returnal",
                     terms) == "Print the prepaid **return label**. **Returns** are free; no returnal"
    assert highlight("nothing here", terms) == "nothing here"
    assert highlight("Café au lait", search_terms("cafe")) == "**Café** au lait"


def test_passages_keep_whole_sentences_within_the_limit() -> None:
    body = " ".join(f"Sentence number {i} has exactly seven words." for i in range(10))
    article = Article(id="t/1", title="T", source="t", body=body)
    passages = split_passages(article, max_words=15)
    assert [len(p.text.split()) for p in passages] == [14] * 5
    assert " ".join(p.text for p in passages) == body
    assert [p.number for p in passages] == list(range(5))
