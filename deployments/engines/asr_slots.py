"""Whisper decoding for a turn whose script state expects a slot (digits, yes/no, …).

An isolated "five" over an 8 kHz line is too short for whisper's language model: tiny.en
hears "Bye." (63 % of single digits right, docs/benchmarks.md). When the turn says what
it expects, this decoder:

1. conditions the audio the way whisper was trained on it: peak level, 0.3 s of silence
   either side, an encoder window of at least 10 s (shorter windows change words);
2. encodes once and decodes freely (a sentence, not an answer, ends here);
3. decodes again against the slot's vocabulary, with the expected words as the
   previous-text prompt: for a one-word answer (a menu digit, yes/no) it scores the first
   token of every allowed word and takes the best; for longer answers (a PIN, an order
   id) a beam search with every other token suppressed, and the best hypothesis whose
   value fits the slot's length and pattern;
4. keeps the free text when the slot's words get too little probability (the caller said
   "I want a person", not a number), so escalation phrases still get through.

Blocking; the engine's callers run it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from bots.slots import SlotSpec, slot_value

__all__ = ["SlotDecoder", "SlotResult"]

SAMPLE_RATE = 16_000
PAD_S = 0.3
PEAK = 0.5
MIN_FRAMES = 1000  # 10 s: shorter encoder windows change short words
FULL_FRAMES = 3000
MIN_SLOT_MASS = 0.7
"""A one-word answer is read as the slot only when the slot's words together get at
least this probability at the first token AND the best of them is the most likely token
of all. Measured with the digit hint (fsdd_digits_dev against read speech cut to 0.8-3 s,
8 kHz): digits 2nd percentile 0.76 and the best token 98 % of the time; other speech
median 0.44 and the best token 10 % of the time."""
MIN_SLOT_MASS_SHORT = 0.4  # the same when the free transcript is one or two words ("Bye.")
MIN_TOKEN_LOGPROB = np.log(0.02)  # a longer constrained answer, per token on average
MAX_EXTRA_WORDS = 2
"""The free transcript may be at most this many words longer than the slot's answer
("it's A one zero zero two"); a longer sentence was not an answer to the question."""

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_ONE_WORD = {
    "digits": {str(d): (w, str(d), *(("oh",) if d == 0 else ())) for d, w in enumerate(_DIGIT_WORDS)},
    "yes_no": {"yes": ("yes", "yeah", "yep", "sure", "correct"), "no": ("no", "nope", "nah")},
}
_HINTS = {
    "digits": "Seven. Two. Zero. Nine. Four. One. Eight. Three. Six. Five.",
    "number": "Twenty-one. 150. Seven. 4,000.",
    "order_id": "A1002. B 7 4 1 9. C3306.",
    "yes_no": "Yes. No.",
}
_NUMBER_WORDS = (*_DIGIT_WORDS, "oh", "ten", "eleven", "twelve", "thirteen", "fourteen",
                 "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty",
                 "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred",
                 "thousand", "double", "triple")


@dataclass(frozen=True)
class SlotResult:
    text: str  # what the caller said, the slot's value when it was heard
    value: str | None  # the slot's normalised value, None when not filled
    avg_logprob: float
    no_speech_prob: float
    constrained: bool  # the value came from the slot-constrained decode


def _unloop(text: str) -> str:
    """Whisper on a short padded clip sometimes loops ("five five five …" to the length
    limit): a word repeated four or more times in a row is kept once."""
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        run = 1
        while i + run < len(words) and words[i + run] == words[i]:
            run += 1
        out.extend(words[i:i + run] if run < 4 else words[i:i + 1])
        i += run
    return " ".join(out)


class SlotDecoder:
    def __init__(self, model: WhisperModel, language: str, beam_size: int):
        self.model = model
        self.beam_size = max(2, beam_size)
        self.tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                             task="transcribe", language=language)
        self.prompt = [*self.tok.sot_sequence, self.tok.no_timestamps]
        self.suppress_default = get_suppressed_tokens(self.tok, [-1])
        self._vocab = cache(self._build_suppress)

    def decode(self, audio: np.ndarray, spec: SlotSpec) -> SlotResult:
        encoded = self.model.model.encode(self._features(audio))
        free = self.model.model.generate(
            encoded, [self.prompt], beam_size=self.beam_size, suppress_blank=True,
            suppress_tokens=self.suppress_default, return_scores=True,
            return_no_speech_prob=True, max_length=len(self.prompt) + 60)[0]
        text = _unloop(self._text(free.sequences_ids[0]))
        logprob, no_speech = float(free.scores[0]), float(free.no_speech_prob)
        found = self._constrained(encoded, spec, text) if self._short_enough(text, spec) else None
        if found is None:
            return SlotResult(text, slot_value(spec, text), logprob, no_speech, False)
        return SlotResult(found, slot_value(spec, found) or found, logprob, no_speech, True)

    # ---- internals ----------------------------------------------------------------

    def _features(self, audio: np.ndarray) -> ctranslate2.StorageView:
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > 1e-4:
            audio = audio * (PEAK / peak)
        pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)
        audio = np.concatenate([pad, audio.astype(np.float32), pad])
        feats = self.model.feature_extractor(audio)[..., :-1]
        frames = min(FULL_FRAMES, max(MIN_FRAMES, feats.shape[-1] + 100))
        frames += frames % 2
        out = np.zeros((1, feats.shape[0], frames), np.float32)
        n = min(frames, feats.shape[-1])
        out[0, :, :n] = feats[:, :n]
        return ctranslate2.StorageView.from_array(out)

    def _text(self, ids: list[int]) -> str:
        return self.tok.decode([t for t in ids if t < self.tok.eot]).strip()

    @staticmethod
    def _short_enough(text: str, spec: SlotSpec) -> bool:
        words = len(text.split())
        if spec.single_word:
            most = 4  # a lone digit is often misheard as a short phrase ("I'm going to go.")
        elif spec.kind == "choice":
            most = max(len(o.split()) for o in spec.options)
        else:
            most = spec.lengths[1] + (1 if spec.kind == "order_id" else 0)
        return words <= most + MAX_EXTRA_WORDS

    def _hinted_prompt(self, spec: SlotSpec) -> list[int]:
        hint = _HINTS.get(spec.kind) or ". ".join(spec.options) + "."
        return [self.tok.sot_prev, *self.tok.encode(" " + hint), *self.prompt]

    def _constrained(self, encoded: ctranslate2.StorageView, spec: SlotSpec,
                     free_text: str) -> str | None:
        prompt = self._hinted_prompt(spec)
        if spec.single_word:
            bar = MIN_SLOT_MASS_SHORT if len(free_text.split()) <= 2 else MIN_SLOT_MASS
            return self._best_first_word(encoded, prompt, _ONE_WORD[spec.kind], bar)
        results = self.model.model.generate(
            encoded, [prompt], beam_size=max(4, self.beam_size), num_hypotheses=max(4, self.beam_size),
            suppress_blank=True, suppress_tokens=self._vocab(spec.kind, spec.options),
            return_scores=True, max_length=len(prompt) + 40)[0]
        texts = [self._text(ids) for ids in results.sequences_ids]
        if not texts or max(results.scores) < MIN_TOKEN_LOGPROB:
            return None
        return next((t for t in texts if slot_value(spec, t) is not None), None)

    def _best_first_word(self, encoded, prompt: list[int], words: dict[str, tuple[str, ...]],
                         bar: float) -> str | None:
        step = self.model.model.generate(encoded, [prompt], beam_size=1,
                                         max_length=len(prompt) + 1, return_logits_vocab=True)[0]
        logits = np.asarray(step.logits[0][0], dtype=np.float64)
        logprobs = logits - np.logaddexp.reduce(logits)
        scores = {value: np.logaddexp.reduce(logprobs[self._first_tokens(forms)])
                  for value, forms in words.items()}
        best = max(scores, key=scores.__getitem__)
        mass = float(np.exp(np.logaddexp.reduce(list(scores.values()))))
        on_top = scores[best] >= logprobs.max()
        return best if mass >= bar and on_top else None

    def _first_tokens(self, forms: tuple[str, ...]) -> list[int]:
        ids = set()
        for form in forms:
            for surface in (f" {form}", f" {form.capitalize()}", form, form.capitalize()):
                ids.add(self.tok.encode(surface)[0])
        return sorted(ids)

    def _build_suppress(self, kind: str, options: tuple[str, ...]) -> list[int]:
        """Every token id except those the slot's answers are written with."""
        words = {"digits": _NUMBER_WORDS, "number": _NUMBER_WORDS,
                 "order_id": (*_NUMBER_WORDS, *"abcdefghijklmnopqrstuvwxyz")}.get(kind, ())
        allowed = {self.tok.eot}
        for word in (*words, *(w for o in options for w in o.split())):
            for surface in (f" {word}", f" {word.capitalize()}", f" {word.upper()}", word,
                            word.capitalize(), word.upper()):
                allowed.update(self.tok.encode(surface))
        for i in range(self.tok.eot):
            piece = self.tok.decode([i]).strip()
            if piece in {".", ",", "-", "?"} or (piece.isdigit() and piece.isascii() and len(piece) <= 3):
                allowed.add(i)
            if kind == "order_id" and piece.isascii() and piece.isalnum() and len(piece) <= 4:
                allowed.add(i)  # "A1", "B24": ids are often written as one piece
        vocab = self.tok.timestamp_begin + 1501  # text, special, then 1501 timestamp tokens
        return [i for i in range(vocab) if i not in allowed]
