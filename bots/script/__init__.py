"""Bot scripts: YAML dialog definitions written by bot teams, checked with precise errors
and played by `ScriptBot` on every call. See ``docs/bots.md``.

    script = load_script("bots/scripts/inbound_shop.yaml")       # ScriptError if broken
    bot = ScriptBot(script, functions={...}, faq_lookup=kb_answer)
    state = bot.new_state(call_uuid=uuid, customer={"name": "Ada"})
    turn = await bot.start(state)                                 # BotTurn
    turn = await bot.on_turn(state, TurnInput(text, intent, emotion))
"""

from bots.lazy import lazy_exports

# each name is imported from its module on first use, so importing one light module of
# this package (its settings section, say) does not load all the others
__getattr__ = lazy_exports(globals(), {
    "bots.script.actions": ("FaqLookup",),
    "bots.script.engine": ("ScriptBot",),
    "bots.script.library": ("LoadReport", "ScriptLibrary", "UnknownScript"),
    "bots.script.loader": ("Script", "check_script", "load_script", "load_script_text"),
    "bots.script.problems": ("ScriptError", "ScriptProblem"),
    "bots.script.settings": ("BotScriptSettings",),
    "bots.script.state": ("DialogState",),
    "bots.script.turns": (
        "Action",
        "BotTurn",
        "Callback",
        "DoNotCall",
        "Hangup",
        "Outcome",
        "Play",
        "Say",
        "Ticket",
        "Transfer",
        "TurnInput",
        "WebhookMessage",
    ),
    "bots.script.variants": (
        "ConversionCounter",
        "InMemoryConversionCounter",
        "VariantStats",
        "choose_variant",
    ),
})
