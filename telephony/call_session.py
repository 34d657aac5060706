"""One call's conversation loop: audio in → VAD → ASR → intent ∥ emotion → bot → TTS →
audio out, with barge-in, DTMF and no-input. Runs as asyncio tasks inside the media
gateway; it knows the models only through the `TurnModels` protocol and the bot through
the script engine's API (`bots.script.ScriptBot`), so it is tested without Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from bots.script.engine import ScriptBot
from bots.script.state import DialogState
from bots.script.turns import Action, BotTurn, Say, Transfer, TurnInput
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
from telephony.playback import AudioOut, Playback
from telephony.prosody import ProsodyBaseline, measure_prosody
from telephony.vad import Endpointer, SpeechStarted, UtteranceEnded
from training.models.outputs import EmotionResult, IntentResult, Transcript

log = logging.getLogger("callfleet.call")

ASR_RATE = 16000
_SORRY = "Sorry, I had a problem there. Could you say that again?"
_LOOK_AGAIN_S = 0.05  # how often the no-input timer looks again while someone is talking


class TurnModels(Protocol):
    """The model services one turn needs (Serve handles in production)."""

    async def transcribe(self, pcm16k: bytes) -> Transcript: ...
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
    ):
        self.meta = meta
        self.models = models
        self.out = out
        self.recorder = recorder
        self.settings = settings
        self.bot = bot
        self.actions = actions
        self.clock = clock
        mode = meta.playback or settings.playback
        self.playback = Playback(out, mode, meta.sample_rate, settings.playout_lead_ms, clock=clock)
        self.endpointer = Endpointer(meta.sample_rate, settings.vad)
        self.baseline = ProsodyBaseline()
        extra = meta.extra or {}
        self.state = bot.new_state(call_uuid=meta.call_uuid, customer=meta.customer,
                                   campaign=meta.campaign, direction=meta.direction,
                                   variant=extra.get("variant"))
        self.outcome = CallOutcome()
        self.turns: list[TurnRecord] = []  # every turn of the call, earlier replicas' too
        self.finished = asyncio.Event()  # set when the bot has ended the call
        self._samples_in = 0
        self._utterances: asyncio.Queue[tuple[UtteranceEnded, float]] = asyncio.Queue()
        self._generation = 0  # bumped by barge-in: stale replies are not spoken
        self._quiet_since = clock()  # caller speech last heard, or their last event handled
        self._worker: asyncio.Task | None = None
        self._closing: asyncio.Future[CallOutcome] | None = None

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        resumed = await self.recorder.call_started(self.meta)
        if resumed:
            # the fork moved to this replica mid-call: resume where the call was (the
            # bot repeats its current question)
            self.state = resumed.state
            self.turns = list(resumed.turns)
        elif self.actions is not None:
            await self.actions.started(self.meta, self.state)
        opening = await self.bot.start(self.state)
        await self._say(opening)
        await self._done_with(opening)
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
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
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
                self._utterances.put_nowait((event, self.clock() - lag))
        if self.endpointer.in_speech:
            self._quiet_since = self.clock()

    def on_text(self, text: str) -> None:
        event = media_fork.parse_module_text(text)
        if isinstance(event, media_fork.DtmfEvent):
            if self.state.ended:
                return  # the bot's part is over: a key no longer counts
            self.outcome.dtmf += event.digit
            on_dtmf = getattr(self.bot, "on_dtmf", None)
            if on_dtmf is not None:
                self._utterances.put_nowait((event, self.clock()))
        elif event is not None:
            self.playback.on_mark(event)

    # ---- the conversation --------------------------------------------------------------

    async def _barge_in(self) -> None:
        self._generation += 1
        self.outcome.barge_ins += 1
        await self.playback.barge_in()
        log.info("barge-in", extra={"call_uuid": self.meta.call_uuid})

    async def _turns(self) -> None:
        while True:
            utterance, speech_end = await self._next_event()
            if self.state.ended:
                continue  # the bot's part is over: what the caller does no longer makes turns
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
            except Exception:  # a failed turn must not end the call
                log.exception("turn failed", extra={"call_uuid": self.meta.call_uuid})
                with contextlib.suppress(Exception):
                    await self._say(BotTurn(segments=(Say(_SORRY),)))
            finally:
                self._quiet_since = self.clock()

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
        if self.state.ended or self.finished.is_set():
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

        transcript = await self.models.transcribe(codecs.int16_to_l16(pcm16k))
        asr_ms = self._ms(speech_end)
        text = transcript.text.strip()
        if not text:
            return  # noise or a cough: nothing to answer
        sound = TurnProsody(prosody.loudness_db, prosody.pitch_hz,
                            relative.get("loudness_z"), relative.get("pitch_z"))
        intent, emotion = await asyncio.gather(
            self.models.intent(text),
            self.models.emotion(text, sound.loudness_z, sound.pitch_z),
        )
        nlu_ms = self._ms(speech_end)
        reply = await self.bot.on_turn(self.state, TurnInput(text, intent, emotion))
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
        reply = await self.bot.on_dtmf(self.state, digit)
        await self._answer(reply, lambda _: TurnRecord(
            n=self.state.turns, bot=reply.text, bot_state=reply.state, dtmf=digit,
            actions=reply.actions))

    async def _silence(self) -> None:
        reply = await self.bot.on_no_input(self.state)
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
        await self.recorder.turn(self.meta.call_uuid, turn, self.state)

    async def _done_with(self, reply: BotTurn) -> None:
        """Carry out the turn's side effects; end the bot's part when the script says so
        (with a transfer: the handover, built here once, goes out over the fork)."""
        if reply.actions and self.actions is not None:
            await self.actions.carry_out(self.meta, self.state, reply.actions)
        if reply.end_call:
            transfers = reply.of_type(Transfer)
            if transfers:
                self.outcome.handover = Handover.build(
                    transfers[0], self.turns, self.meta.customer, self.meta.campaign)
            self.outcome.reason = "escalated" if transfers else "bot closed the call"
            await self.playback.drained()
            self.finished.set()

    async def _say(self, reply: BotTurn) -> float | None:
        """Synthesize sentence by sentence and queue each as soon as it is ready; return
        the wall time of the first frame on the wire."""
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
