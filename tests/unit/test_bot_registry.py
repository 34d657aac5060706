"""The bots one gateway replica serves (deployments/gateway/bot_registry.py), over a scripts folder
the test writes: the call's metadata picks the bot, a broken script is refused with its
file:line while the others serve, a broken edit leaves the previous version serving, a
good edit reaches new calls but not the calls already running, and FAQ answers come
from the knowledge base when there is one."""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bots.script import TurnInput
from configs.settings import Settings
from deployments.gateway.bot_registry import BotRegistry
from telephony.media_fork import ForkMetadata
from training.models.outputs import EmotionResult, IntentResult

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

INTENTS = """
intents:
  affirm: {examples: ["yes", yeah, sure, correct, right]}
  oos: {examples: [weather, tell me a joke, football, recipe, bank balance]}
"""

RELOAD_S = 0.05


def script(bot: str, greeting: str) -> str:
    return textwrap.dedent(f"""\
        bot: {bot}
        intents: ../data/intents.yaml
        start: greet
        states:
          greet:
            ask: {{prompt: "{greeting}"}}
            on:
              - intent: affirm
                goto: bye
              - intent: oos
                do: [{{faq: {{}}}}]
          bye:
            say: Goodbye.
            enter: [{{hangup: done}}]
        """)


class Folder:
    """A scripts folder (and its intents) the test edits like an operator would."""

    def __init__(self, root: Path) -> None:
        (root / "data").mkdir()
        (root / "data" / "intents.yaml").write_text(INTENTS)
        self.scripts = root / "scripts"
        self.scripts.mkdir()
        self.state_dir = root / "var"

    def write(self, name: str, text: str) -> Path:
        """Write a script; its modification time moves on a whole second, so a reload
        sees the change even on a file system with coarse timestamps."""
        path = self.scripts / name
        before = path.stat().st_mtime_ns if path.exists() else None
        path.write_text(text)
        if before is not None:
            os.utime(path, ns=(before + 10**9, before + 10**9))
        return path

    def registry(self, reload_s: float = 0, **kb: Any) -> BotRegistry:
        settings = Settings(
            state_dir=self.state_dir,
            bots={"scripts_dir": str(self.scripts), "inbound_script": "front_desk",
                  "reload_interval_s": reload_s},
            kb={"abcd_dir": None, **kb})  # the shop FAQ only: BM25 over a few articles
        return BotRegistry(settings)


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    folder = Folder(tmp_path)
    folder.write("front_desk.yaml", script("front_desk", "Front desk, how can I help?"))
    folder.write("promo.yaml", script("promo", "Hi, a quick offer for you."))
    return folder


def call(call_uuid: str = "call-1", **extra: Any) -> ForkMetadata:
    return ForkMetadata(call_uuid=call_uuid, sample_rate=8000, extra=extra)


async def greeting(registry: BotRegistry, meta: ForkMetadata) -> str:
    bot = await registry.for_call(meta)
    return (await bot.start(bot.new_state(call_uuid=meta.call_uuid))).text


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


async def next_reload() -> None:
    await asyncio.sleep(RELOAD_S * 1.5)


async def test_the_call_metadata_picks_the_bot_and_the_inbound_bot_takes_the_rest(
        folder: Folder, caplog: pytest.LogCaptureFixture) -> None:
    registry = folder.registry()
    assert await greeting(registry, call(bot="promo")) == "Hi, a quick offer for you."
    assert await greeting(registry, call()) == "Front desk, how can I help?"
    with caplog.at_level(logging.WARNING, logger="callfleet.bots"):
        assert await greeting(registry, call(bot="ghost")) == "Front desk, how can I help?"
    assert "unknown bot 'ghost' requested; using front_desk" in caplog.text
    # one bot per script version, shared by its calls (it holds no per-call state)
    assert await registry.for_call(call("a")) is await registry.for_call(call("b"))
    assert registry.status() == {"bots": ["front_desk", "promo"], "rejected": {}}


async def test_a_broken_script_is_refused_with_its_file_and_line_and_the_others_serve(
        folder: Folder, caplog: pytest.LogCaptureFixture) -> None:
    broken = script("survey", "Two questions?").replace("goto: bye", "goto: byee")
    path = folder.write("survey.yaml", broken)
    with caplog.at_level(logging.ERROR, logger="callfleet.bots"):
        registry = folder.registry()
    line = line_of(broken, "goto: byee")
    assert f"bot script {path} rejected: {path}:{line}:" in caplog.text
    assert "unknown state 'byee'; did you mean 'bye'?" in caplog.text
    assert registry.status() == {"bots": ["front_desk", "promo"], "rejected": {str(path): 2}}
    # a call asking for it still gets a bot: the inbound one
    assert await greeting(registry, call(bot="survey")) == "Front desk, how can I help?"
    assert await greeting(registry, call(bot="promo")) == "Hi, a quick offer for you."


async def test_a_broken_edit_is_refused_and_the_previous_version_keeps_serving(
        folder: Folder, caplog: pytest.LogCaptureFixture) -> None:
    registry = folder.registry(reload_s=RELOAD_S)
    running = await registry.for_call(call("running"))  # a call in progress

    bad = script("promo", "Hi, a quick offer for you.").replace('"}', "")  # unclosed quote
    path = folder.write("promo.yaml", bad)
    await next_reload()
    with caplog.at_level(logging.ERROR, logger="callfleet.bots"):
        assert await greeting(registry, call(bot="promo")) == "Hi, a quick offer for you."
    assert f"bot script change to {path} rejected, previous version serving: {path}:" in caplog.text
    assert registry.status()["rejected"] == {str(path): 1}

    folder.write("front_desk.yaml", script("front_desk", "Front desk, good morning!"))
    folder.write("promo.yaml", script("promo", "Hi, a better offer."))
    await next_reload()
    assert await greeting(registry, call(bot="promo")) == "Hi, a better offer."
    assert await greeting(registry, call()) == "Front desk, good morning!"
    assert registry.status() == {"bots": ["front_desk", "promo"], "rejected": {}}
    # the call that was already running keeps the version it started with
    assert (await running.start(running.new_state(call_uuid="running"))).text == \
        "Front desk, how can I help?"


async def test_with_reloads_off_an_edit_waits_for_the_next_start(folder: Folder) -> None:
    registry = folder.registry(reload_s=0)
    folder.write("front_desk.yaml", script("front_desk", "Front desk, good morning!"))
    await next_reload()
    assert await greeting(registry, call()) == "Front desk, how can I help?"
    assert await greeting(folder.registry(reload_s=0), call()) == "Front desk, good morning!"


async def test_questions_off_the_script_are_answered_from_the_knowledge_base(
        folder: Folder) -> None:
    bot = await folder.registry().for_call(call())
    state = bot.new_state(call_uuid="call-1")
    await bot.start(state)
    question = "How long does delivery take?"
    turn = await bot.on_turn(state, TurnInput(
        question, IntentResult("oos", 0.9, out_of_scope=True),
        EmotionResult("neutral", {"neutral": 0.9})))
    assert turn.text.startswith("Standard delivery takes one to two business days")
    assert not turn.end_call


async def test_without_a_knowledge_base_the_bots_still_serve(
        folder: Folder, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="callfleet.bots"):
        registry = folder.registry(shop_faq_path=str(tmp_path / "missing.yaml"))
    assert "knowledge base unavailable for FAQ answers" in caplog.text
    bot = await registry.for_call(call())
    state = bot.new_state(call_uuid="call-1")
    assert (await bot.start(state)).text == "Front desk, how can I help?"
    turn = await bot.on_turn(state, TurnInput(
        "How long does delivery take?", IntentResult("oos", 0.9, out_of_scope=True),
        EmotionResult("neutral", {"neutral": 0.9})))
    assert turn.text and "delivery" not in turn.text.lower()  # a re-prompt, not an error
    assert not turn.end_call


def test_the_shipped_bots_load_with_their_lookup_functions() -> None:
    registry = BotRegistry(Settings(kb={"abcd_dir": None}))
    assert registry.status() == {"bots": ["inbound_shop", "outbound_promo"], "rejected": {}}

    async def both() -> None:
        for name in ("inbound_shop", "outbound_promo"):
            bot = await registry.for_call(call(bot=name))
            assert bot.spec.bot == name

    asyncio.run(both())


# ---- scripts broken at start, new scripts, warnings ---------------------------------------


async def test_a_script_broken_at_start_is_picked_up_once_fixed(
        folder: Folder, caplog: pytest.LogCaptureFixture) -> None:
    folder.write("survey.yaml", script("survey", "Two questions?").replace("goto: bye", "goto: x"))
    registry = folder.registry(reload_s=RELOAD_S)
    await next_reload()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="callfleet.bots"):  # refused once, not per reload
        assert await greeting(registry, call(bot="survey")) == "Front desk, how can I help?"
        await next_reload()
        assert await greeting(registry, call(bot="survey")) == "Front desk, how can I help?"
    assert "rejected" not in caplog.text
    path = folder.write("survey.yaml", script("survey", "Two questions?"))
    await next_reload()
    assert await greeting(registry, call(bot="survey")) == "Two questions?"
    assert registry.status() == {"bots": ["front_desk", "promo", "survey"], "rejected": {}}
    # later edits of it are validated like any other: a broken one leaves the fix serving
    folder.write("survey.yaml", script("survey", "Two questions?").replace('"}', ""))
    await next_reload()
    assert await greeting(registry, call(bot="survey")) == "Two questions?"
    assert registry.status()["rejected"] == {str(path): 1}


async def test_a_script_new_in_the_folder_is_picked_up_and_a_broken_one_refused(
        folder: Folder, caplog: pytest.LogCaptureFixture) -> None:
    registry = folder.registry(reload_s=RELOAD_S)
    broken = folder.write("survey.yaml",
                          script("survey", "Two questions?").replace("goto: bye", "goto: x"))
    folder.write("winback.yaml", script("winback", "We miss you."))
    await next_reload()
    with caplog.at_level(logging.ERROR, logger="callfleet.bots"):
        assert await greeting(registry, call(bot="winback")) == "We miss you."
    assert f"bot script {broken} rejected: {broken}:" in caplog.text
    assert registry.status() == {"bots": ["front_desk", "promo", "winback"],
                                 "rejected": {str(broken): 2}}
    broken.unlink()  # nothing on disk is refused any more
    await next_reload()
    assert await greeting(registry, call()) == "Front desk, how can I help?"
    assert registry.status() == {"bots": ["front_desk", "promo", "winback"], "rejected": {}}


async def test_a_script_with_only_warnings_serves_without_a_rejection_logged(
        folder: Folder, caplog: pytest.LogCaptureFixture) -> None:
    warned = script("survey", "Two questions?").replace(
        "enter: [{hangup: done}]", "enter: [{hangup: done}, {say: never heard}]")
    path = folder.write("survey.yaml", warned)
    with caplog.at_level(logging.WARNING, logger="callfleet.bots"):
        registry = folder.registry()
    assert await greeting(registry, call(bot="survey")) == "Two questions?"
    assert "rejected" not in caplog.text
    (record,) = [r for r in caplog.records if r.name == "callfleet.bots"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"bot script {path} version ")
    assert "serving with 1 warning(s): " in record.getMessage()
    assert "this action comes after a hangup and never runs" in record.getMessage()
    assert registry.status() == {"bots": ["front_desk", "promo", "survey"], "rejected": {}}
