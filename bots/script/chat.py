"""A text conversation with a script, for writing and debugging bots without audio.

`ChatSession` turns typed lines into bot events the way the call session would (intent
and emotion from the given classifiers, entities from the extractors) and returns one
plain record per turn. Lines starting with ``/`` are commands: ``/dtmf 12``,
``/silence``, ``/emotion anger 0.9`` (for the next line), ``/state``, ``/help``, ``/quit``.
Rendering (rich, JSON) is the CLI's business (`cluster/bot_cli.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bots.script.engine import ScriptBot
from bots.script.entities import extract_entities
from bots.script.state import DialogState
from bots.script.turns import BotTurn, TurnInput
from training.models.outputs import EmotionResult, IntentResult, emotion_to_json, intent_to_json

__all__ = ["COMMANDS", "ChatCommandError", "ChatSession"]

ClassifyIntent = Callable[[str], IntentResult]
ClassifyEmotion = Callable[[str], EmotionResult]

COMMANDS = {
    "/dtmf DIGITS": "the caller presses keys, e.g. /dtmf 1",
    "/silence": "the caller says nothing (no-input timeout)",
    "/emotion LABEL [SCORE]": "use this emotion for the next line, e.g. /emotion anger 0.9",
    "/state": "show the dialog state",
    "/help": "show these commands",
    "/quit": "end the chat",
}


class ChatCommandError(ValueError):
    """A mistyped chat command; the message says how to write it."""


@dataclass
class ChatSession:
    bot: ScriptBot
    classify_intent: ClassifyIntent
    classify_emotion: ClassifyEmotion
    state: DialogState
    turn_no: int = 0
    finished: bool = False
    _emotion_override: EmotionResult | None = None

    async def start(self) -> dict[str, Any]:
        turn = await self.bot.start(self.state)
        return self._record("start", None, None, None, {}, turn)

    async def handle(self, line: str) -> dict[str, Any] | None:
        """One typed line; a record, or None for lines that produce no turn (/help...)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        if line.startswith("/"):
            return await self._command(line)
        intent = self.classify_intent(line)
        emotion = self._emotion_override or self.classify_emotion(line)
        self._emotion_override = None
        entities = extract_entities(line)
        turn = await self.bot.on_turn(self.state, TurnInput(line, intent, emotion, entities))
        return self._record("speech", line, intent, emotion, entities, turn)

    async def _command(self, line: str) -> dict[str, Any] | None:
        name, *args = line.split()
        if name == "/dtmf":
            if len(args) != 1 or not all(c in "0123456789*#" for c in args[0]):
                raise ChatCommandError("write /dtmf followed by keys, e.g. /dtmf 1 or /dtmf 12#")
            turn = await self.bot.on_dtmf(self.state, args[0])
            return self._record("dtmf", args[0], None, None, {}, turn)
        if name == "/silence":
            turn = await self.bot.on_no_input(self.state)
            return self._record("no_input", None, None, None, {}, turn)
        if name == "/emotion":
            if not 1 <= len(args) <= 2:
                raise ChatCommandError("write /emotion LABEL [SCORE], e.g. /emotion anger 0.9")
            try:
                score = float(args[1]) if len(args) == 2 else 0.9
            except ValueError:
                raise ChatCommandError(f"score must be a number from 0 to 1, got {args[1]!r}") from None
            if not 0 <= score <= 1:
                raise ChatCommandError(f"score must be a number from 0 to 1, got {score}")
            rest = round(1 - score, 3)
            scores = {args[0]: score, **({"neutral": rest} if args[0] != "neutral" else {})}
            self._emotion_override = EmotionResult(args[0], scores, scores)
            return None
        if name in ("/quit", "/exit"):
            self.finished = True
            return None
        if name in ("/state", "/help"):
            return None  # shown by the front end
        raise ChatCommandError(f"unknown command {name}; commands: {', '.join(COMMANDS)}")

    def _record(self, event: str, said: str | None, intent: IntentResult | None,
                emotion: EmotionResult | None, entities: dict[str, Any], turn: BotTurn) -> dict[str, Any]:
        """The chat's output record (what ``--json`` prints, one per turn)."""
        if event != "start":
            self.turn_no += 1
        if turn.end_call:
            self.finished = True
        return {"turn": self.turn_no, "event": event, "caller": said,
                "intent": intent_to_json(intent) if intent else None,
                "emotion": emotion_to_json(emotion) if emotion else None,
                "entities": entities or None, "variant": self.state.variant, **turn.to_dict()}
