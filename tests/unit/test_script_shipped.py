"""The shipped bots in realistic conversations, with intents from the fallback classifier
built from each bot's own training utterances (no model weights): what the caller hears
and which actions reach the floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots import demo_orders
from bots.script import (
    Callback,
    DoNotCall,
    Hangup,
    InMemoryConversionCounter,
    Outcome,
    Play,
    ScriptBot,
    Ticket,
    Transfer,
    TurnInput,
    WebhookMessage,
    load_script,
)
from bots.script.fallback_nlu import FallbackIntentClassifier
from training.intent.default import load_intent_examples
from training.models.outputs import EmotionResult

pytestmark = pytest.mark.unit

SCRIPTS = Path(__file__).resolve().parents[2] / "bots" / "scripts"
CALM = EmotionResult("neutral", {"anger": 0.02, "neutral": 0.95, "positive": 0.03})
FURIOUS = EmotionResult("anger", {"anger": 0.93, "neutral": 0.05, "positive": 0.02})


class Call:
    """One simulated call: type what the caller says, get what the bot does."""

    def __init__(self, bot: ScriptBot, classifier: FallbackIntentClassifier, **state) -> None:
        self.bot, self.classifier = bot, classifier
        self.state = bot.new_state(**state)
        self.turns = []

    async def start(self):
        return self._keep(await self.bot.start(self.state))

    async def say(self, text: str, emotion=CALM):
        intent = self.classifier.classify(text)
        return self._keep(await self.bot.on_turn(self.state, TurnInput(text, intent, emotion)))

    async def press(self, keys: str):
        return self._keep(await self.bot.on_dtmf(self.state, keys))

    def _keep(self, turn):
        self.turns.append(turn)
        return turn

    def actions(self, kind: type) -> list:
        return [a for t in self.turns for a in t.of_type(kind)]


@pytest.fixture(scope="module")
def shop_script():
    return load_script(SCRIPTS / "inbound_shop.yaml")


@pytest.fixture(scope="module")
def promo_script():
    return load_script(SCRIPTS / "outbound_promo.yaml")


@pytest.fixture(scope="module")
def shop_nlu(shop_script) -> FallbackIntentClassifier:
    return FallbackIntentClassifier.from_file(shop_script.intents_file)


@pytest.fixture(scope="module")
def promo_nlu(promo_script) -> FallbackIntentClassifier:
    return FallbackIntentClassifier.from_file(promo_script.intents_file)


@pytest.fixture
async def orders():
    client = demo_orders.asgi_client()
    yield client
    await client.aclose()


FAQ = {"do you ship to canada": "Yes, we ship to Canada; delivery takes five to seven days."}


@pytest.fixture
def shop(shop_script, shop_nlu, orders):
    bot = ScriptBot(shop_script, http=orders, faq_lookup=FAQ.get)
    return lambda **state: Call(bot, shop_nlu, **state)


@pytest.fixture
def promo(promo_script, promo_nlu):
    bot = ScriptBot(promo_script)
    return lambda **state: Call(bot, promo_nlu, **state)


def test_shipped_intent_files_are_trainable() -> None:
    for name in ("shop_intents.yaml", "promo_intents.yaml"):
        labels, texts, _ = load_intent_examples(SCRIPTS.parent / "data" / name)
        assert "oos" in labels and len(texts) >= 20 * len(labels)


# ---- inbound shop ----------------------------------------------------------------------


async def test_order_status_asks_for_the_number_and_reads_the_status(shop) -> None:
    call = shop(customer={"name": "Ada"})
    assert (await call.start()).text == "Hi Ada, thanks for calling Fleet Shop. How can I help you today?"
    asked = await call.say("hi where's my parcel")
    assert "What's the order number?" in asked.text
    status = await call.say("yeah it's a one zero zero one")
    assert status.text.startswith("Your order A1001, the trail running shoes, has shipped with "
                                  "ParcelFleet and should arrive on Thursday.")
    assert status.text.endswith("Is there anything else I can help you with?")
    bye = await call.say("no that's all thanks")
    assert bye.text == "Thank you for calling Fleet Shop. Goodbye!"
    assert bye.end_call and call.actions(Hangup) == [Hangup("caller finished")]


async def test_refund_with_the_order_number_in_one_go_opens_a_ticket(shop) -> None:
    call = shop(customer={"name": "Ada", "id": "C-77"})
    await call.start()
    turn = await call.say("i'd like a refund for order A1003 please")
    assert "I've opened a refund request for your coffee grinder." in turn.text
    assert call.actions(Ticket) == [Ticket("refunds", "Refund request for order A1003", "normal",
                                           {"order_id": "A1003", "item": "coffee grinder",
                                            "customer_id": "C-77"})]
    assert call.actions(Outcome) == [Outcome("refund_requested", False)]


async def test_refund_of_an_undelivered_order_offers_to_cancel_it(shop) -> None:
    call = shop()
    await call.start()
    offer = await call.say("i want a refund for order A1002")
    assert "Would you like me to cancel it instead?" in offer.text
    done = await call.say("yes please")
    assert "Order A1002 is cancelled" in done.text
    assert [t.queue for t in call.actions(Ticket)] == ["cancellations"]


async def test_address_change_sends_a_secure_link_by_sms(shop) -> None:
    call = shop(customer={"id": "C-9"})
    await call.start()
    await call.say("can i change the delivery address")
    turn = await call.say("it's A1002")
    assert "I've sent you a secure link by text message" in turn.text
    assert call.actions(WebhookMessage) == [WebhookMessage(
        "sms", "address_change_link", {"order_id": "A1002", "customer_id": "C-9"})]


async def test_address_change_after_shipping_is_refused_politely(shop) -> None:
    call = shop()
    await call.start()
    turn = await call.say("i need to change the delivery address for A1001")
    assert "can't change its delivery address any more" in turn.text
    assert call.actions(WebhookMessage) == []


async def test_faq_question_is_answered_from_the_knowledge_base(shop) -> None:
    call = shop()
    await call.start()
    turn = await call.say("do you ship to canada")
    assert turn.text == ("Yes, we ship to Canada; delivery takes five to seven days. "
                         "Is there anything else I can help you with?")


async def test_asking_for_a_person_transfers_to_support(shop) -> None:
    call = shop()
    await call.start()
    turn = await call.say("can i speak to a real person")
    (transfer,) = call.actions(Transfer)
    assert turn.end_call and transfer.skills == ("support",) and transfer.priority == 6
    assert turn.text.startswith("Of course. I'm connecting you")


async def test_unknown_order_number_twice_goes_to_a_person(shop) -> None:
    call = shop()
    await call.start()
    await call.say("where is my order")
    again = await call.say("z nine nine nine nine")
    assert "I couldn't find an order Z9999" in again.text
    last = await call.say("b one two three four")
    assert "I still can't find that order" in last.text
    assert call.actions(Transfer)[0].reason == "order number not found twice"


async def test_order_system_timeout_takes_the_failure_branch(shop_script, shop_nlu) -> None:
    slow = demo_orders.asgi_client(delay_s=5)
    try:
        call = Call(ScriptBot(shop_script, http=slow), shop_nlu)
        await call.start()
        await call.say("where is my order")
        turn = await call.say("A1001")
    finally:
        await slow.aclose()
    assert turn.text.startswith("I'm sorry, I can't reach our order system right now.")
    assert call.actions(Transfer)[0].reason == "order system did not answer (timeout)"


async def test_an_angry_caller_is_handed_over_with_a_brief(shop) -> None:
    call = shop()
    await call.start()
    await call.say("where is my order")
    turn = await call.say("this is ridiculous where is my order", emotion=FURIOUS)
    assert turn.end_call and turn.escalation.reason == "anger"
    assert turn.text.startswith("I'm sorry about the trouble.")
    assert "Caller wanted: order status." in turn.escalation.brief
    assert "asked for the order number" in turn.escalation.brief


# ---- outbound promotion ---------------------------------------------------------------------


async def test_price_objection_plays_the_discount_then_high_interest_goes_to_a_senior(promo) -> None:
    call = promo(call_uuid="promo-1", customer={"name": "Sam"}, variant="regular")
    first = await call.start()
    assert first.text == "Hello, this is Alex calling from Fleet Mobile. Am I speaking with Sam?"
    offer = await call.say("yes speaking")
    assert "fifteen pounds a month" in offer.text and offer.state == "offer_question"
    discount = await call.say("hmm that's too expensive")
    play = discount.segments[0]
    assert isinstance(play, Play) and play.file == "promo/discount_offer.wav"
    assert "first three months at half price" in play.text
    hot = await call.say("oh okay that sounds great sign me up")
    (transfer,) = call.actions(Transfer)
    assert transfer.skills == ("sales", "senior") and transfer.priority == 7
    assert hot.text.startswith("Wonderful! I'm putting you straight through to one of our senior")
    assert call.actions(Outcome) == [Outcome("interested", True)]


async def test_a_plain_yes_goes_to_a_sales_adviser(promo) -> None:
    call = promo(customer={"name": "Sam"})
    await call.start()
    await call.say("yes speaking")
    await call.say("yeah go on then")
    (transfer,) = call.actions(Transfer)
    assert transfer.skills == ("sales",) and transfer.priority == 5  # interest 0.6


async def test_refusal_gets_the_discount_once_then_a_polite_goodbye(promo) -> None:
    call = promo(customer={"name": "Sam"})
    await call.start()
    await call.say("yes")
    discount = await call.say("i'm not interested thanks")
    assert discount.state == "discount_offer"
    bye = await call.say("no i don't want it")
    assert bye.end_call and call.actions(Outcome) == [Outcome("not_interested", False)]
    assert call.actions(Transfer) == []


async def test_do_not_call_request_is_applied_at_once(promo) -> None:
    call = promo(customer={"name": "Sam"})
    await call.start()
    turn = await call.say("take me off your list")
    assert call.actions(DoNotCall) == [DoNotCall("customer asked not to be called again")]
    assert turn.end_call and "won't call you again" in turn.text
    keyed = promo(customer={"name": "Sam"})
    await keyed.start()
    await keyed.press("9")
    assert keyed.actions(DoNotCall)


async def test_call_back_later_schedules_a_callback_at_the_time_said(promo) -> None:
    call = promo(customer={"name": "Sam"})
    await call.start()
    turn = await call.say("i'm busy can you call me back tomorrow morning")
    assert call.actions(Callback) == [Callback("tomorrow morning",
                                               "customer asked to be called back about the 5G offer")]
    assert turn.text == "Thanks, I'll call you back tomorrow morning. Have a good day!"


async def test_call_back_without_a_time_asks_for_one(promo) -> None:
    call = promo(customer={"name": "Sam"})
    await call.start()
    await call.say("yes")
    asked = await call.say("now's not a good time")
    assert asked.text == "No problem. When would be a better time to call you?"
    await call.say("next monday at 3 pm")
    assert call.actions(Callback)[0].when == "next monday 3 pm"


async def test_wrong_person_and_already_have_it(promo) -> None:
    wrong = promo(customer={"name": "Sam"})
    await wrong.start()
    assert (await wrong.say("you've got the wrong number")).end_call
    assert wrong.actions(Outcome) == [Outcome("wrong_person", False)]

    has = promo(customer={"name": "Sam"})
    await has.start()
    await has.say("yes")
    asked = await has.say("i already have a contract with another provider")
    assert "Would you like to hear what you could save?" in asked.text
    bye = await has.say("no i'm happy with it")
    assert bye.end_call and has.actions(Outcome) == [Outcome("already_has_plan", False)]


async def test_ab_variants_change_the_wording_and_conversions_are_counted(promo) -> None:
    counter = InMemoryConversionCounter()
    seen = set()
    variants = {}
    for i in range(12):
        call = promo(call_uuid=f"camp-{i}", customer={"name": "Sam"})
        await call.start()
        offer = await call.say("yes speaking")
        seen.add(call.state.variant)
        variants[call.state.call_uuid] = call.state.variant
        assert ("This week only" in offer.text) == (call.state.variant == "limited_time")
        await counter.record_call("spring", call.state.variant, call.state.call_uuid)
        if i % 3 == 0:
            await call.say("oh okay that sounds great sign me up")
        if any(o.converted for o in call.actions(Outcome)):
            await counter.record_conversion("spring", call.state.variant, call.state.call_uuid)
    assert seen == {"regular", "limited_time"}
    report = await counter.report("spring")
    assert sum(s.calls for s in report.values()) == 12
    assert sum(s.conversions for s in report.values()) == 4
    assert not await counter.record_call("spring", variants["camp-0"], "camp-0")  # counted once
