"""One call's conversation loop: audio in → VAD → ASR → intent ∥ emotion → bot → TTS →
audio out, with barge-in, DTMF and no-input. Runs as asyncio tasks inside the media
gateway; it knows the models only through the `TurnModels` protocol and the bot through
the script engine's API (`bots.script.ScriptBot`), so it is tested without Ray.

The call is bounded (`gateway.limits`): caller events waiting for the bot, key presses a
second and kept in the record, turns kept, and the call's length (at `max_call_s` the bot
says so and hangs up, or hands over). Input over a bound is dropped and counted in the
outcome's ``dropped``; the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol, TypeVar

from bots.script.engine import ScriptBot
from bots.script.state import DialogState
from bots.script.turns import Action, BotTurn, Say, Transfer, TurnInput
from bots.slots import SlotSpec
from configs.settings import GatewaySettings
from telephony import codecs, media_fork
from telephony.call_data import (
    CallOutcome,
    Handover,
    ResumedCall,
    TurnProsody,
    TurnRecord,
    TurnTiming,
)
from telephony.call_limits import RateLimiter
from telephony.metrics import ERRORS, NO_METRICS, Metrics
from telephony.playback import AudioOut, Playback
from telephony.prosody import ProsodyBaseline, measure_prosody
from telephony.vad import Endpointer, SpeechStarted, UtteranceEnded
from training.models.outputs import EmotionResult, IntentResult, Transcript

log = logging.getLogger("callfleet.call")
T = TypeVar("T")

ASR_RATE = 16000
_SORRY = "Sorry, I had a problem there. Could you say that again?"
_LOOK_AGAIN_S = 0.05  # how often the no-input timer looks again while someone is talking
MAX_CALL_REASON = "maximum call length reached"
_TURN_GRACE_S = 10.0  # at the time limit, a turn in progress gets this long to finish


class TurnModels(Protocol):
    """The model services one turn needs (Serve handles in production)."""

    async def transcribe(self, pcm16k: bytes, expect: SlotSpec | None = None) -> Transcript: ...
    async def intent(self, text: str) -> IntentResult: ...
    async def emotion(self, text: str, loudness_z: float | None, pitch_z: float | None) -> EmotionResult: ...
    def speak(self, text: str, sample_rate: int) -> AsyncGenerator[tuple[str, bytes], None]:
        """The reply's audio, sentence by sentence. The session closes the stream when it
        stops listening (barge-in), so work requested ahead can be cancelled."""


class ActionSink(Protocol):
    """Carries out the bot's side effects (do-not-call, tickets, webhooks, …)."""

    async def started(self, meta: media_fork.ForkMetadata, state: DialogState) -> None: ...
    async def carry_out(self, meta: media_fork.ForkMetadata, state: DialogState,
                        actions: tuple[Action, ...]) -> None: ...


class CallRecorder(Protocol):
    """Where live call context goes (Redis in production)."""

    async def call_started(self, meta: media_fork.ForkMetadata) -> ResumedCall | None:
        """Register the call; what is stored of it when it is resuming, else None."""

    async def turn(self, call_uuid: str, turn: TurnRecord, state: DialogState) -> None:
        """One turn, and the dialog state after it."""

    async def call_ended(self, call_uuid: str, outcome: CallOutcome) -> None: ...


class CallSession:
    """Owns one media fork from metadata to close."""

    def __init__(
        self,
        meta: media_fork.ForkMetadata,
        models: TurnModels,
        out: AudioOut,
        recorder: CallRecorder,
        settings: GatewaySettings,
        bot: ScriptBot,
        actions: ActionSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        elapsed_s: float = 0.0,
        metrics: Metrics = NO_METRICS,
    ):
        """`elapsed_s`: how long the call has lasted already (since it was answered, or
        on another replica before its fork moved here); it counts towards `max_call_s`.
        `metrics`: where failures are counted (``callfleet_errors{kind}``)."""
        self.meta = meta
        self.models = models
        self.out = out
        self.recorder = recorder
        self.settings = settings
        self.bot = bot
        self.actions = actions
        self.clock = clock
        self.metrics = metrics
        self._counted: BaseException | None = None  # the last failure already counted
        mode = meta.playback or settings.playback
        self.playback = Playback(out, mode, meta.sample_rate, settings.playout_lead_ms, clock=clock)
        self.endpointer = Endpointer(meta.sample_rate, settings.vad)
        self.baseline = ProsodyBaseline()
        self.limits = settings.limits
        self.state = self._new_state(bot, meta)
        self.outcome = CallOutcome()
        # the call's turns, earlier replicas' too (the latest `max_stored_turns`)
        self.turns: list[TurnRecord] = []
        self.finished = asyncio.Event()  # set when the bot has ended the call
        self._samples_in = 0
        self._utterances: asyncio.Queue[tuple[UtteranceEnded | media_fork.DtmfEvent, float]] = \
            asyncio.Queue(maxsize=self.limits.max_pending_events)
        self._keys = RateLimiter(self.limits.dtmf_per_s, self.limits.dtmf_burst, clock)
        self._generation = 0  # bumped by barge-in: stale replies are not spoken
        self._quiet_since = clock()  # caller speech last heard, or their last event handled
        self._deadline = clock() + self.limits.max_call_s - max(0.0, elapsed_s)
        self._worker: asyncio.Task | None = None
        self._timer: asyncio.Task | None = None
        self._stopping = False  # time is up: the turn loop takes no new event
        self._idle = asyncio.Event()  # clear while the turn loop handles an event
        self._idle.set()
        self._closing: asyncio.Future[CallOutcome] | None = None

    @staticmethod
    def _new_state(bot: ScriptBot, meta: media_fork.ForkMetadata) -> DialogState:
        extra = meta.extra or {}
        variant = extra.get("variant")
        kwargs = dict(call_uuid=meta.call_uuid, customer=meta.customer,
                      campaign=meta.campaign, direction=meta.direction)
        try:
            return bot.new_state(**kwargs, variant=variant if isinstance(variant, str) else None)
        except ValueError:  # a variant this bot does not have: the bot chooses one
            log.warning("unknown A/B variant for the call's bot; the bot chooses one",
                        extra={"call_uuid": meta.call_uuid})
            return bot.new_state(**kwargs)

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        resumed = await self.recorder.call_started(self.meta)
        if resumed:
            # the fork moved to this replica mid-call: resume where the call was (the
            # bot repeats its current question)
            self.state = resumed.state
            self.turns = list(resumed.turns)[-self.limits.max_stored_turns:]
        elif self.actions is not None:
            await self.actions.started(self.meta, self.state)
        if self.clock() >= self._deadline:  # it came back after its time was up
            await self._time_up()
            return
        self._timer = asyncio.create_task(self._time_limit())
        opening = await self.bot.start(self.state)
        if resumed and self.settings.resume_prompt:
            # the caller heard silence while the fork moved (its replica was lost): say
            # so, then the bot repeats where the call was
            await self._say(BotTurn(segments=(Say(self.settings.resume_prompt),)))
        await self._say(opening)
        await self._done_with(opening)
        if not self._over:
            self._worker = asyncio.create_task(self._turns())

    async def close(self, reason: str | None = None) -> CallOutcome:
        """Stop the call's tasks and record its outcome. Idempotent: a second close (or
        one racing the first) records nothing and returns the same outcome, with the
        first close's reason. The closing runs to the end even if the closer is cancelled,
        so the outcome is recorded."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(reason))
        return await asyncio.shield(self._closing)

    async def _close(self, reason: str | None) -> CallOutcome:
        if reason:
            self.outcome.reason = reason
        for task in (self._timer, self._worker):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.playback.close()
        self.outcome.turns = self.state.turns
        self.outcome.heard = tuple(self.playback.heard)
        self.outcome.cut = tuple(self.playback.cut)
        await self.recorder.call_ended(self.meta.call_uuid, self.outcome)
        return self.outcome

    # ---- input from the fork ---------------------------------------------------------

    async def on_audio(self, pcm: bytes) -> None:
        """Feed one binary frame (already checked for even length)."""
        self._samples_in += len(pcm) // 2
        for event in self.endpointer.push(pcm):
            if isinstance(event, SpeechStarted):
                if self.playback.active:
                    await self._barge_in()
            elif isinstance(event, UtteranceEnded):
                # wall time at which the caller actually stopped speaking
                lag = self._samples_in / self.meta.sample_rate - event.end_s
                self._queue(event, self.clock() - lag)
        if self.endpointer.in_speech:
            self._quiet_since = self.clock()

    def on_text(self, text: str) -> None:
        event = media_fork.parse_module_text(text)
        if isinstance(event, media_fork.DtmfEvent):
            if self._over:
                return  # the bot's part is over: a key no longer counts
            if not self._keys.allow():
                self._drop("dtmf_rate")
                return
            if len(self.outcome.dtmf) < self.limits.max_dtmf_digits:
                self.outcome.dtmf += event.digit
            else:
                self._drop("dtmf_record")  # the bot still gets the key
            on_dtmf = getattr(self.bot, "on_dtmf", None)
            if on_dtmf is not None:
                self._queue(event, self.clock())
        elif event is not None:
            self.playback.on_mark(event)

    def _queue(self, event: UtteranceEnded | media_fork.DtmfEvent, at: float) -> None:
        """An utterance or key press for the turn loop; dropped (and counted) when
        `max_pending_events` are already waiting: the bot is far behind the caller."""
        try:
            self._utterances.put_nowait((event, at))
        except asyncio.QueueFull:
            self._drop("events")

    def _drop(self, kind: str) -> None:
        self.metrics.inc(ERRORS, kind="input_dropped")
        count = self.outcome.dropped.get(kind, 0) + 1
        self.outcome.dropped[kind] = count
        if count == 1:  # once per kind and call: a flood must not flood the log too
            log.warning("caller input over a bound dropped (%s)", kind,
                        extra={"call_uuid": self.meta.call_uuid})

    # ---- the call's length -------------------------------------------------------------

    @property
    def _over(self) -> bool:
        """The bot's part of the call is over (the script ended it, or its time is up)."""
        return self.finished.is_set() or self.state.ended or self._stopping

    async def _time_limit(self) -> None:
        await asyncio.sleep(max(0.0, self._deadline - self.clock()))
        if not self._over:
            await self._time_up()

    async def _time_up(self) -> None:
        """`max_call_s` has passed: let what the bot is saying finish, then say the limit's
        message and hang up, or hand over (`on_max_call`). Nothing the caller does makes
        a turn any more."""
        log.info("call reached its maximum length", extra={"call_uuid": self.meta.call_uuid})
        self._stopping = True
        # a turn in progress finishes (its record and actions are kept), within reason
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), _TURN_GRACE_S)
        if self.finished.is_set() or self.state.ended:
            return  # that turn ended the call itself
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self.state.ended = True
        await self.playback.drained()
        actions: tuple[Action, ...] = ()
        if self.limits.on_max_call == "handover":
            actions = (Transfer(skills=(), priority=0, reason=MAX_CALL_REASON,
                                brief="The call reached the bot's time limit.",
                                escalation_reason="max_call_length"),)
        reply = BotTurn(segments=(Say(self.limits.max_call_message),), actions=actions,
                        end_call=True)
        try:
            await self._say(reply)
        except Exception as exc:  # the call ends anyway
            log.error("the time limit's message could not be spoken (%s)", type(exc).__name__,
                      extra={"call_uuid": self.meta.call_uuid})
        await self._done_with(reply, reason=MAX_CALL_REASON)

    # ---- the conversation --------------------------------------------------------------

    async def _barge_in(self) -> None:
        self._generation += 1
        self.outcome.barge_ins += 1
        await self.playback.barge_in()
        log.info("barge-in", extra={"call_uuid": self.meta.call_uuid})

    async def _turns(self) -> None:
        while True:
            utterance, speech_end = await self._next_event()
            if self._over:
                continue  # the bot's part is over: what the caller does no longer makes turns
            self._idle.clear()
            try:
                if utterance is None:
                    await self._silence()
                    continue
                if isinstance(utterance, media_fork.DtmfEvent):
                    await self._keypress(utterance.digit)
                else:
                    await self._turn(utterance, speech_end)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed turn must not end the call
                if exc is not self._counted:  # not a model or the bot: counted as a turn
                    self.metrics.inc(ERRORS, kind="turn")
                log.exception("turn failed", extra={"call_uuid": self.meta.call_uuid})
                with contextlib.suppress(Exception):
                    await self._say(BotTurn(segments=(Say(_SORRY),)))
            finally:
                self._quiet_since = self.clock()
                self._idle.set()

    async def _next_event(self) -> tuple[UtteranceEnded | media_fork.DtmfEvent | None, float]:
        """The caller's next utterance or key press with the time it ended, or (None, now)
        for no input: the caller has been silent `no_input_s` since the bot finished
        speaking (its last audio played out at the caller's end) and since their own last
        event. Once the bot's part is over there is no no-input."""
        while True:
            if not self._utterances.empty():
                return self._utterances.get_nowait()
            try:
                return await asyncio.wait_for(self._utterances.get(), self._no_input_due_in())
            except asyncio.TimeoutError:
                due_in = self._no_input_due_in()
                if due_in is not None and due_in <= 0:
                    return None, self.clock()

    def _no_input_due_in(self) -> float | None:
        """Seconds until the caller's silence counts as no input; None: never."""
        if self._over:
            return None
        now = self.clock()
        if self.endpointer.in_speech:
            return _LOOK_AGAIN_S
        if self.playback.active:  # the timer starts when the caller has heard it all
            return max(self.playback.playout_end - now, _LOOK_AGAIN_S)
        since = max(self._quiet_since, self.playback.playout_end)
        return since + self.settings.no_input_s - now

    async def _turn(self, utterance: UtteranceEnded, speech_end: float) -> None:
        endpoint_ms = self._ms(speech_end)
        # numpy work on seconds of audio stays off the event loop other calls share
        prosody, pcm16k = await asyncio.to_thread(_analyse, utterance)
        relative = self.baseline.relative(prosody)
        self.baseline.update(prosody)
        prep_ms = self._ms(speech_end)

        expect = self.bot.expectation(self.state)
        transcript = await self._step("asr", self.models.transcribe(codecs.int16_to_l16(pcm16k), expect))
        asr_ms = self._ms(speech_end)
        text = transcript.text.strip()
        if not text:
            return  # noise or a cough: nothing to answer
        sound = TurnProsody(prosody.loudness_db, prosody.pitch_hz,
                            relative.get("loudness_z"), relative.get("pitch_z"))
        intent, emotion = await self._step("nlu", asyncio.gather(
            self.models.intent(text),
            self.models.emotion(text, sound.loudness_z, sound.pitch_z),
        ))
        nlu_ms = self._ms(speech_end)
        reply = await self._step("bot", self.bot.on_turn(self.state, TurnInput(text, intent, emotion)))
        bot_ms = self._ms(speech_end)

        def spoken(first_audio: float | None) -> TurnRecord:
            timing = TurnTiming(
                endpoint_ms=endpoint_ms, prep_ms=prep_ms, asr_ms=asr_ms,
                asr_engine_ms=round(transcript.elapsed_s * 1000, 1), nlu_ms=nlu_ms,
                bot_ms=bot_ms,
                first_audio_ms=None if first_audio is None else (first_audio - speech_end) * 1000,
            )
            return TurnRecord(
                n=self.state.turns, bot=reply.text, bot_state=reply.state, caller=text,
                intent=intent, emotion=emotion, prosody=sound, actions=reply.actions,
                timing=timing)

        await self._answer(reply, spoken)

    async def _keypress(self, digit: str) -> None:
        reply = await self._step("bot", self.bot.on_dtmf(self.state, digit))
        await self._answer(reply, lambda _: TurnRecord(
            n=self.state.turns, bot=reply.text, bot_state=reply.state, dtmf=digit,
            actions=reply.actions))

    async def _silence(self) -> None:
        reply = await self._step("bot", self.bot.on_no_input(self.state))
        await self._answer(reply, lambda _: TurnRecord(
            n=self.state.turns, bot=reply.text, bot_state=reply.state, no_input=True,
            actions=reply.actions))

    async def _answer(self, reply: BotTurn,
                      turn: Callable[[float | None], TurnRecord]) -> None:
        """Speak the bot's reply, then record the turn (`turn` makes it from the wall time
        of the first audio out) and carry out its actions. The bot has moved on whether or
        not the caller heard it, so a reply TTS failed on is still recorded and acted on:
        a handover or hang-up still happens. The failure is then raised for an apology,
        unless the bot's part is over."""
        try:
            first_audio, unspoken = await self._say(reply), None
        except Exception as exc:
            first_audio, unspoken = None, exc
        await self._record(turn(first_audio))
        await self._done_with(reply)
        if unspoken is None:
            return
        if not reply.end_call:
            raise unspoken
        log.error("the bot's last words could not be spoken (%s); the call ends anyway",
                  type(unspoken).__name__, exc_info=unspoken,
                  extra={"call_uuid": self.meta.call_uuid})

    async def _record(self, turn: TurnRecord) -> None:
        self.turns.append(turn)
        del self.turns[:-self.limits.max_stored_turns]
        await self.recorder.turn(self.meta.call_uuid, turn, self.state)

    async def _done_with(self, reply: BotTurn, reason: str | None = None) -> None:
        """Carry out the turn's side effects; end the bot's part when the script says so
        (with a transfer: the handover, built here once, goes out over the fork).
        `reason`: why it ended, when not the script's own choice."""
        if reply.actions and self.actions is not None:
            await self.actions.carry_out(self.meta, self.state, reply.actions)
        if reply.end_call:
            transfers = reply.of_type(Transfer)
            if transfers:
                self.outcome.handover = Handover.build(
                    transfers[0], self.turns, self.meta.customer, self.meta.campaign)
            self.outcome.reason = reason or ("escalated" if transfers else "bot closed the call")
            await self.playback.drained()
            self.finished.set()

    async def _step(self, kind: str, work: Awaitable[T]) -> T:
        """One model or bot step of a turn; its failure is counted as `kind`."""
        try:
            return await work
        except Exception as exc:
            self._count_error(kind, exc)
            raise

    def _count_error(self, kind: str, exc: BaseException) -> None:
        self.metrics.inc(ERRORS, kind=kind)
        self._counted = exc

    async def _say(self, reply: BotTurn) -> float | None:
        """Synthesize sentence by sentence and queue each as soon as it is ready; return
        the wall time of the first frame on the wire."""
        try:
            return await self._speak(reply)
        except Exception as exc:
            self._count_error("tts", exc)
            raise

    async def _speak(self, reply: BotTurn) -> float | None:
        generation = self._generation
        first: asyncio.Future | None = None
        # closed here, not left to the garbage collector: closing cancels the TTS work
        # requested ahead
        async with contextlib.aclosing(self.models.speak(reply.text, self.meta.sample_rate)) as speech:
            async for sentence, pcm in speech:
                if generation != self._generation:
                    return None  # barge-in: stop talking
                started = self.playback.enqueue(pcm, sentence)
                first = first or started
        if first is None:
            return None
        return await first  # None when a barge-in dropped it

    def _ms(self, since: float) -> float:
        return round((self.clock() - since) * 1000, 1)


def _analyse(utterance: UtteranceEnded):
    """Prosody of the utterance and its 16 kHz copy for ASR."""
    pcm = codecs.l16_to_int16(utterance.pcm)
    return measure_prosody(pcm, utterance.sample_rate), codecs.resample(pcm, utterance.sample_rate, ASR_RATE)
