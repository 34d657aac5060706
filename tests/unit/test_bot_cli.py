"""`callfleet bot check` and `callfleet bot chat` as a script author uses them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cluster.cli.main import main

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SHOP = str(REPO / "bots" / "scripts" / "inbound_shop.yaml")
PROMO = str(REPO / "bots" / "scripts" / "outbound_promo.yaml")


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    text = Path(SHOP).read_text().replace("goto: find_order\n", "goto: find_ordr\n", 1)
    text = text.replace("intents: ../data/shop_intents.yaml",
                        f"intents: {REPO / 'bots' / 'data' / 'shop_intents.yaml'}")
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path


def test_check_passes_the_shipped_scripts_with_a_summary(capsys) -> None:
    code, out, err = run(capsys, "bot", "check", SHOP, PROMO)
    assert code == 0, err
    assert "OK" in out and "inbound_shop" in out and "outbound_promo" in out
    assert "variants limited_time, regular" in out


def test_check_lists_problems_with_file_and_line_and_exits_2(capsys, broken: Path) -> None:
    code, out, err = run(capsys, "bot", "check", str(broken))
    assert code == 2
    line = next(ln for ln in err.splitlines() if "find_ordr" in ln)
    assert line.startswith(f"{broken}:")
    assert "error: unknown state 'find_ordr'; did you mean 'find_order'?" in line
    assert "1 error(s)" in err


def test_check_json_reports_every_file(capsys, broken: Path) -> None:
    code, out, _ = run(capsys, "bot", "check", "--json", SHOP, str(broken))
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False
    good, bad = doc["files"]
    assert good["ok"] and good["summary"]["bot"] == "inbound_shop"
    assert not bad["ok"] and bad["problems"][0]["message"].startswith("unknown state 'find_ordr'")
    assert bad["problems"][0]["line"] > 0


def test_check_strict_fails_on_warnings(capsys, tmp_path: Path) -> None:
    text = Path(SHOP).read_text().replace("      - hangup: caller finished\n",
                                          "      - hangup: caller finished\n      - say: too late\n")
    path = tmp_path / "warn.yaml"
    path.write_text(text.replace("../data/", f"{REPO}/bots/data/"))
    assert run(capsys, "bot", "check", str(path))[0] == 0
    code, _, err = run(capsys, "bot", "check", "--strict", str(path))
    assert code == 2 and "warning: this action comes after a hangup" in err


def test_chat_reads_a_conversation_from_stdin(capsys, monkeypatch) -> None:
    convo = "where is my order\nit's a one zero zero two\nno thanks\n"
    code, out, err = run(capsys, "bot", "chat", "--faq", "none", SHOP, "--customer", "name=Ada", stdin=convo,
                         monkeypatch=monkeypatch)
    assert code == 0, err
    assert "Hi Ada, thanks for calling Fleet Shop" in out
    assert "caller › where is my order" in out
    assert "intent order_status" in out
    assert "is being packed and should arrive next Monday" in out
    assert "→ hangup" in out and "call ended after 3 turn(s)" in out
    assert "fallback classifier" in out  # the intent source is labelled


def test_chat_json_prints_one_object_per_turn_with_intent_and_state(capsys, monkeypatch) -> None:
    convo = "yes speaking\n/dtmf 1\n"
    code, out, _ = run(capsys, "bot", "chat", "--faq", "none", PROMO, "--json", "--variant", "limited_time",
                       "--customer", "name=Sam", stdin=convo, monkeypatch=monkeypatch)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["event"] for r in records] == ["start", "speech", "dtmf"]
    assert records[1]["intent"]["label"] == "affirm" and records[1]["state"] == "offer_question"
    assert "This week only" in records[1]["text"] and records[1]["variant"] == "limited_time"
    kinds = [a["kind"] for a in records[2]["actions"]]
    assert kinds == ["outcome", "transfer"] and records[2]["end_call"]
    assert records[2]["actions"][1]["skills"] == ["sales", "senior"]  # key 1 = interest 1.0


def test_chat_commands_silence_emotion_and_mistakes(capsys, monkeypatch) -> None:
    convo = "/silence\n/dtmf x\n/frobnicate\n/emotion anger 0.95\nwhere is my order\n"
    code, out, err = run(capsys, "bot", "chat", "--faq", "none", SHOP, "--json", stdin=convo,
                         monkeypatch=monkeypatch)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert records[1]["event"] == "no_input" and records[1]["text"].startswith("Are you still there?")
    assert "write /dtmf followed by keys" in err and "unknown command /frobnicate" in err
    assert records[2]["emotion"]["label"] == "anger"
    assert records[2]["escalation"]["reason"] == "anger"


def test_chat_rejects_bad_input_with_exit_2(capsys, monkeypatch, broken: Path) -> None:
    code, _, err = run(capsys, "bot", "chat", "--faq", "none", str(broken), stdin="", monkeypatch=monkeypatch)
    assert code == 2 and "unknown state 'find_ordr'" in err
    code, _, err = run(capsys, "bot", "chat", "--faq", "none", SHOP, "--customer", "nameAda", stdin="",
                       monkeypatch=monkeypatch)
    assert code == 2 and "--customer must look like KEY=VALUE" in err
    code, _, err = run(capsys, "bot", "chat", "--faq", "none", PROMO, "--variant", "loud", stdin="",
                       monkeypatch=monkeypatch)
    assert code == 2 and "no variant 'loud'" in err
    code, _, err = run(capsys, "bot", "chat", "--faq", "none", SHOP, "--model", "/nonexistent", stdin="",
                       monkeypatch=monkeypatch)
    assert code == 2 and "--model /nonexistent" in err


def test_help_texts_explain_the_commands(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bot", "chat", "--help"])
    out = capsys.readouterr().out
    assert "/dtmf" in out and "--model DIR" in out and "stdin" in out
