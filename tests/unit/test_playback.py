"""Bot audio out to FreeSWITCH: paced like a phone line, marked per sentence, and cut off
at once when the caller barges in."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from telephony import media_fork
from telephony.media_fork import MarkEvent
from telephony.playback import Playback

pytestmark = pytest.mark.unit

RATE = 8000
FRAME = 320  # 20 ms of 8 kHz L16
LEAD_MS = 100


def audio(seconds: float, rate: int = RATE) -> bytes:
    return b"\x01\x00" * int(rate * seconds)


@dataclass
class Sent:
    at: float
    kind: str  # "bytes" | "text"
    data: bytes | str


@dataclass
class RecordingOut:
    """Stands in for the websocket to mod_audio_fork, which we cannot run here."""

    sent: list[Sent] = field(default_factory=list)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(Sent(time.monotonic(), "bytes", data))

    async def send_text(self, data: str) -> None:
        self.sent.append(Sent(time.monotonic(), "text", data))

    @property
    def frames(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "bytes"]

    @property
    def texts(self) -> list[str]:
        return [s.data for s in self.sent if s.kind == "text"]


async def wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@pytest.fixture
def out() -> RecordingOut:
    return RecordingOut()


@pytest.fixture
async def binary(out: RecordingOut) -> AsyncIterator[Playback]:
    playback = Playback(out, "binary", RATE, lead_ms=LEAD_MS)
    yield playback
    await playback.close()


@pytest.fixture
async def play_audio(out: RecordingOut) -> AsyncIterator[Playback]:
    playback = Playback(out, "playAudio", RATE, lead_ms=LEAD_MS)
    yield playback
    await playback.close()


# ---- binary mode -------------------------------------------------------------------------


async def test_binary_audio_is_sent_in_real_time_frames_then_a_mark(
    binary: Playback, out: RecordingOut
) -> None:
    pcm = audio(1.0)
    started = binary.enqueue(pcm, "Hello there.")
    mark = media_fork.mark("seg-1")
    await wait_for(lambda: mark in out.texts)

    frames = out.frames
    assert len(frames) == 50
    assert all(len(f.data) == FRAME for f in frames)
    assert b"".join(f.data for f in frames) == pcm
    # the mark follows the last frame
    assert out.sent[-1] == Sent(out.sent[-1].at, "text", mark)
    assert out.sent[-2] is frames[-1]

    first = frames[0].at
    assert frames[-1].at - first >= 0.8, "the sentence was not paced like a phone line"
    # never more than lead_ms of audio ahead of the caller's ear (one frame of slack
    # because the frame just sent is counted, plus scheduling jitter)
    for i, frame in enumerate(frames):
        audio_sent = (i + 1) * 0.020
        ahead = audio_sent - (frame.at - first)
        assert ahead <= LEAD_MS / 1000 + 0.020 + 0.015, f"frame {i} was {ahead:.3f}s ahead"

    when = await started
    assert isinstance(when, float)
    assert first <= when <= first + 0.05


async def test_short_last_frame_is_sent_as_is(binary: Playback, out: RecordingOut) -> None:
    pcm = audio(0.05)  # 800 bytes = 320 + 320 + 160
    binary.enqueue(pcm, "Hi.")
    await wait_for(lambda: media_fork.mark("seg-1") in out.texts)
    assert [len(f.data) for f in out.frames] == [320, 320, 160]


async def test_sentences_play_in_order_each_with_its_own_mark(
    binary: Playback, out: RecordingOut
) -> None:
    binary.enqueue(audio(0.1), "One.")
    binary.enqueue(audio(0.1), "Two.")
    await wait_for(lambda: media_fork.mark("seg-2") in out.texts)
    texts = out.texts
    assert texts == [media_fork.mark("seg-1"), media_fork.mark("seg-2")]
    kinds = [s.kind for s in out.sent]
    assert kinds == ["bytes"] * 5 + ["text"] + ["bytes"] * 5 + ["text"]


async def test_barge_in_stops_at_once_and_clears_the_module(
    binary: Playback, out: RecordingOut
) -> None:
    first = binary.enqueue(audio(1.0), "Your order has shipped.")
    second = binary.enqueue(audio(0.5), "Anything else?")
    await asyncio.sleep(0.3)
    assert binary.active

    sent_before = len(out.sent)
    frames_before = len(out.frames)
    await binary.barge_in()
    await asyncio.sleep(0.15)  # anything still trickling out would show up now

    after = out.sent[sent_before:]
    assert len(out.frames) - frames_before <= 1, "audio kept flowing after the barge-in"
    assert frames_before < 50, "the whole sentence went out before the barge-in"
    texts_after = [s.data for s in after if s.kind == "text"]
    assert texts_after == ['{"type":"killAudio"}', '{"type":"clearMarks"}']
    # no mark is promised for a sentence that was cut
    assert not any('"type":"mark"' in t for t in out.texts)

    assert isinstance(await first, float)  # it had started playing
    assert await second is None  # it never reached the wire
    assert binary.cut == ["Your order has shipped.", "Anything else?"]
    assert not binary.active


async def test_playback_goes_on_after_a_barge_in(binary: Playback, out: RecordingOut) -> None:
    binary.enqueue(audio(1.0), "Long sentence.")
    await asyncio.sleep(0.1)
    await binary.barge_in()
    started = binary.enqueue(audio(0.1), "Sorry, go ahead.")
    assert isinstance(await asyncio.wait_for(started, 2), float)
    await wait_for(lambda: media_fork.mark("seg-2") in out.texts)


async def test_barge_in_when_idle_still_clears_the_module(
    binary: Playback, out: RecordingOut
) -> None:
    await binary.barge_in()
    assert out.texts == ['{"type":"killAudio"}', '{"type":"clearMarks"}']
    assert binary.cut == []
    assert not binary.active


async def test_playout_mark_records_what_the_caller_heard(
    binary: Playback, out: RecordingOut
) -> None:
    binary.enqueue(audio(0.04), "First.")
    binary.enqueue(audio(0.04), "Second.")
    await wait_for(lambda: media_fork.mark("seg-2") in out.texts)

    binary.on_mark(MarkEvent("seg-1", "playout"))
    binary.on_mark(MarkEvent("seg-2", "cleared"))
    binary.on_mark(MarkEvent("seg-99", "playout"))  # unknown: ignored
    binary.on_mark(MarkEvent("seg-1", "playout"))  # reported twice: counted once
    assert binary.heard == ["First."]


async def test_marks_parsed_from_the_wire_feed_heard(binary: Playback, out: RecordingOut) -> None:
    binary.enqueue(audio(0.02), "Hi.")
    await wait_for(lambda: media_fork.mark("seg-1") in out.texts)
    event = media_fork.parse_module_text(
        json.dumps({"type": "mark", "data": {"name": "seg-1", "event": "playout"}})
    )
    assert event is not None
    binary.on_mark(event)
    assert binary.heard == ["Hi."]


# ---- playAudio mode ----------------------------------------------------------------------


async def test_play_audio_sends_one_message_per_sentence(
    play_audio: Playback, out: RecordingOut
) -> None:
    one, two = audio(0.15), audio(0.1, RATE)
    play_audio.enqueue(one, "Hello.")
    play_audio.enqueue(two, "Bye.")
    await wait_for(lambda: len(out.texts) == 2)

    assert out.frames == []
    commands = [media_fork.parse_server_text(t) for t in out.texts]
    assert [c.type for c in commands] == ["playAudio", "playAudio"]
    assert commands[0].audio() == (one, RATE)
    assert commands[1].audio() == (two, RATE)
    assert [c.data["textContent"] for c in commands] == ["Hello.", "Bye."]
    # the second file is sent only when the first is within lead_ms of its end
    gap = out.sent[1].at - out.sent[0].at
    assert gap >= 0.15 - LEAD_MS / 1000 - 0.01


async def test_play_audio_is_active_while_the_audio_plays(
    play_audio: Playback, out: RecordingOut
) -> None:
    started = play_audio.enqueue(audio(0.4), "Let me check that for you.")
    at = await started
    assert out.texts and json.loads(out.texts[0])["type"] == "playAudio"
    assert play_audio.active
    await asyncio.sleep(at + 0.3 - time.monotonic())
    assert play_audio.active, "went quiet before the sentence finished playing"
    await asyncio.sleep(at + 0.45 - time.monotonic())
    assert not play_audio.active


async def test_play_audio_barge_in_sends_kill_audio_only(
    play_audio: Playback, out: RecordingOut
) -> None:
    await play_audio.enqueue(audio(0.5), "A long answer.")
    pending = play_audio.enqueue(audio(0.5), "More.")
    await play_audio.barge_in()
    assert out.texts[-1] == '{"type":"killAudio"}'
    assert '{"type":"clearMarks"}' not in out.texts
    assert await pending is None
    assert play_audio.cut == ["More."]
    assert not play_audio.active


async def test_drained_waits_for_playout(play_audio: Playback) -> None:
    at = await play_audio.enqueue(audio(0.2), "Short.")
    await play_audio.drained(timeout=2)
    assert time.monotonic() >= at + 0.2 - 0.01
    assert not play_audio.active


# ---- construction ------------------------------------------------------------------------


async def test_unknown_mode_is_refused(out: RecordingOut) -> None:
    with pytest.raises(ValueError, match="unknown playback mode 'stream'"):
        Playback(out, "stream", RATE)
