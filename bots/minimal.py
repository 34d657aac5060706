"""The minimal shipped bot: greet, answer by intent, close.

It is the placeholder for the script engine (its own issue): the replies are the shop
bot's content, chosen from the intent the model found, the caller's emotion and how the
conversation went so far. It never sees audio and holds no state of its own: everything
it needs is in the `ConversationState` the call session keeps (and stores in Redis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SHOP_NAME = "Fleet Shop"


@dataclass
class ConversationState:
    """What the bot knows about one call; serialisable to Redis as a dict."""

    turns: int = 0
    no_match: int = 0
    last_intent: str | None = None
    anger_turns: int = 0
    escalated: bool = False
    customer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ConversationState:
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class BotReply:
    text: str
    end_call: bool = False
    escalate: str | None = None  # reason, when the call should go to a person
    state: str = "listening"


_ANSWERS = {
    "greeting": "Hello! How can I help you with your order today?",
    "order_status": (
        "I can help with that. Your most recent order has shipped and should arrive "
        "within two business days. Is there anything else?"
    ),
    "refund_request": (
        "I'm sorry it didn't work out. I've opened a refund request, and you'll get an "
        "email with the return label shortly. Anything else I can do?"
    ),
    "address_change": (
        "Sure. I can update the delivery address before the order ships. I'll send you a "
        "secure link by text message to enter the new address. Anything else?"
    ),
    "cancel_order": (
        "Understood. If the order hasn't shipped yet, I can cancel it now. I've sent you a "
        "confirmation link. Is there anything else?"
    ),
    "store_hours": (
        "Our support line is open every day from eight in the morning to eight in the "
        "evening, and the online shop is always open. Anything else?"
    ),
    "affirm": "Great. What else can I help you with?",
    "deny": "Alright. Is there anything else I can help you with today?",
}
_TRANSFER = "Of course. I'm connecting you with one of my colleagues now. Please hold."
_CALM_TRANSFER = (
    "I'm sorry about the trouble. I'm connecting you with a colleague who can sort this "
    "out right away. Please hold."
)
_GOODBYE = f"Thank you for calling {SHOP_NAME}. Goodbye!"
_NO_MATCH = [
    "Sorry, I didn't quite get that. You can ask about an order, a refund, or an address change.",
    "I'm still not sure I understood. Could you say it in a few words, like 'where is my order'?",
]


class MinimalBot:
    """Greets, answers by intent, hands over to a person when asked or when the caller is
    angry on two turns, and closes after a goodbye, a 'no' to 'anything else', repeated
    no-match, or `max_turns` turns."""

    def __init__(self, max_turns: int = 12, anger_threshold: float = 0.6):
        self.max_turns = max_turns
        self.anger_threshold = anger_threshold

    def greeting(self, state: ConversationState) -> BotReply:
        name = state.customer.get("name")
        hello = f"Hi {name}, thanks" if name else "Hi, thanks"
        return BotReply(f"{hello} for calling {SHOP_NAME}. How can I help you today?")

    def respond(
        self, state: ConversationState, intent: dict[str, Any], emotion: dict[str, Any]
    ) -> BotReply:
        state.turns += 1
        label = intent.get("label", "oos")
        angry = emotion.get("scores", {}).get("anger", 0.0) >= self.anger_threshold
        state.anger_turns = state.anger_turns + 1 if angry else 0
        previous, state.last_intent = state.last_intent, label

        if label == "talk_to_human":
            return self._escalate(state, _TRANSFER, "caller asked for a person")
        if state.anger_turns >= 2:
            return self._escalate(state, _CALM_TRANSFER, "caller angry on two turns")
        if label == "goodbye" or (label == "deny" and previous not in (None, "greeting")):
            return BotReply(_GOODBYE, end_call=True, state="closed")
        if intent.get("out_of_scope") or label not in _ANSWERS:
            state.no_match += 1
            if state.no_match > len(_NO_MATCH):
                return self._escalate(state, _TRANSFER, "bot did not understand three times")
            return BotReply(_NO_MATCH[state.no_match - 1], state="no_match")
        state.no_match = 0
        if state.turns >= self.max_turns:
            return BotReply(_ANSWERS[label].rsplit(".", 1)[0] + ". " + _GOODBYE, end_call=True)
        return BotReply(_ANSWERS[label], state=label)

    @staticmethod
    def _escalate(state: ConversationState, text: str, reason: str) -> BotReply:
        state.escalated = True
        return BotReply(text, end_call=True, escalate=reason, state="escalated")
