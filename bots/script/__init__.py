"""Bot scripts: YAML dialog definitions written by bot teams, checked with precise errors
and played by `ScriptBot` on every call. See ``docs/bots.md``.

    script = load_script("bots/scripts/inbound_shop.yaml")       # ScriptError if broken
    bot = ScriptBot(script, functions={...}, faq_lookup=kb_answer)
    state = bot.new_state(call_uuid=uuid, customer={"name": "Ada"})
    turn = await bot.start(state)                                 # BotTurn
    turn = await bot.on_turn(state, TurnInput(text, intent, emotion))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are loaded from their modules on first use (PEP 562), so importing one light
# module of this package (its settings section, say) does not load all the others.
_EXPORTS = {
    "Action": "bots.script.turns",
    "BotScriptSettings": "bots.script.settings",
    "BotTurn": "bots.script.turns",
    "Callback": "bots.script.turns",
    "ConversionCounter": "bots.script.variants",
    "DialogState": "bots.script.state",
    "DoNotCall": "bots.script.turns",
    "FaqLookup": "bots.script.actions",
    "Hangup": "bots.script.turns",
    "InMemoryConversionCounter": "bots.script.variants",
    "LoadReport": "bots.script.library",
    "Outcome": "bots.script.turns",
    "Play": "bots.script.turns",
    "Say": "bots.script.turns",
    "Script": "bots.script.loader",
    "ScriptBot": "bots.script.engine",
    "ScriptError": "bots.script.problems",
    "ScriptLibrary": "bots.script.library",
    "ScriptProblem": "bots.script.problems",
    "Ticket": "bots.script.turns",
    "Transfer": "bots.script.turns",
    "TurnInput": "bots.script.turns",
    "UnknownScript": "bots.script.library",
    "VariantStats": "bots.script.variants",
    "WebhookMessage": "bots.script.turns",
    "check_script": "bots.script.loader",
    "choose_variant": "bots.script.variants",
    "load_script": "bots.script.loader",
    "load_script_text": "bots.script.loader",
}

__all__ = [
    "Action",
    "BotScriptSettings",
    "BotTurn",
    "Callback",
    "ConversionCounter",
    "DialogState",
    "DoNotCall",
    "FaqLookup",
    "Hangup",
    "InMemoryConversionCounter",
    "LoadReport",
    "Outcome",
    "Play",
    "Say",
    "Script",
    "ScriptBot",
    "ScriptError",
    "ScriptLibrary",
    "ScriptProblem",
    "Ticket",
    "Transfer",
    "TurnInput",
    "UnknownScript",
    "VariantStats",
    "WebhookMessage",
    "check_script",
    "choose_variant",
    "load_script",
    "load_script_text",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from bots.script.actions import FaqLookup
    from bots.script.engine import ScriptBot
    from bots.script.library import LoadReport, ScriptLibrary, UnknownScript
    from bots.script.loader import Script, check_script, load_script, load_script_text
    from bots.script.problems import ScriptError, ScriptProblem
    from bots.script.settings import BotScriptSettings
    from bots.script.state import DialogState
    from bots.script.turns import (
        Action,
        BotTurn,
        Callback,
        DoNotCall,
        Hangup,
        Outcome,
        Play,
        Say,
        Ticket,
        Transfer,
        TurnInput,
        WebhookMessage,
    )
    from bots.script.variants import (
        ConversionCounter,
        InMemoryConversionCounter,
        VariantStats,
        choose_variant,
    )
