"""Bot scripts: YAML dialog definitions written by bot teams, checked with precise errors
and played by `ScriptBot` on every call. See ``docs/bots.md``.

    script = load_script("bots/scripts/inbound_shop.yaml")       # ScriptError if broken
    bot = ScriptBot(script, functions={...}, faq_lookup=kb_answer)
    state = bot.new_state(call_id=uuid, customer={"name": "Ada"})
    turn = await bot.start(state)                                 # BotTurn
    turn = await bot.on_turn(state, TurnInput(text, intent, emotion))
"""

from bots.script.actions import FaqLookup
from bots.script.engine import ScriptBot
from bots.script.library import BotScriptSettings, LoadReport, ScriptLibrary, UnknownScript
from bots.script.loader import Script, check_script, load_script, load_script_text
from bots.script.problems import ScriptError, ScriptProblem
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

__all__ = [
    "Action", "BotScriptSettings", "BotTurn", "Callback", "ConversionCounter", "DialogState", "DoNotCall",
    "FaqLookup", "Hangup", "InMemoryConversionCounter", "LoadReport", "Outcome", "Play", "Say",
    "Script", "ScriptBot", "ScriptError", "ScriptLibrary", "ScriptProblem", "Ticket", "Transfer",
    "TurnInput", "UnknownScript", "VariantStats", "WebhookMessage", "check_script",
    "choose_variant", "load_script", "load_script_text",
]
