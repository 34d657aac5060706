"""Whisper decoding with an encoder window sized to the utterance.

faster-whisper pads every utterance's log-mel features to Whisper's 30 s window (3000
frames) before the encoder, so a 2 s answer costs as much encoder time as 30 s of audio:
on 2 CPU threads, tiny.en spends ~300 ms encoding 3000 frames and ~40 ms encoding 1000.
CTranslate2's encoder accepts shorter inputs, so here the features are padded only to the
longest utterance in the batch plus one second, and at least `min_window_s` (shorter
windows start to change words). Prompt, token suppression, beam search and the
``avg_logprob`` / ``no_speech_prob`` figures follow faster-whisper's temperature-0 path.
Measured against the 30 s window in docs/benchmarks.md (`benchmarks/asr_window.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

__all__ = ["Decoded", "WindowDecoder"]

FRAMES_PER_S = 100  # whisper's log-mel hop: 10 ms
FULL_WINDOW_FRAMES = 3000
MAX_NEW_TOKENS = 200  # a 30 s utterance is far below this


@dataclass(frozen=True)
class Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float


class WindowDecoder:
    def __init__(self, model: WhisperModel, language: str, beam_size: int, min_window_s: float):
        self.model = model
        self.beam_size = beam_size
        self.min_frames = int(min_window_s * FRAMES_PER_S)
        self.tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                                   task="transcribe", language=language)
        self.prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]
        self.suppress = get_suppressed_tokens(self.tokenizer, [-1])

    def window_frames(self, longest_frames: int) -> int:
        frames = max(self.min_frames, longest_frames + FRAMES_PER_S)  # one second of margin
        frames = min(FULL_WINDOW_FRAMES, frames)
        return frames + frames % 2  # the encoder's stride-2 convolution wants an even count

    def decode(self, clips: Sequence[np.ndarray]) -> list[Decoded]:
        """Transcribe 16 kHz float32 clips (each at most 30 s) in one encoder/decoder batch."""
        features = [self.model.feature_extractor(clip)[..., :-1] for clip in clips]
        frames = self.window_frames(max(f.shape[-1] for f in features))
        batch = np.zeros((len(features), features[0].shape[0], frames), dtype=np.float32)
        for i, f in enumerate(features):
            n = min(frames, f.shape[-1])
            batch[i, :, :n] = f[:, :n]
        results = self.model.model.generate(
            ctranslate2.StorageView.from_array(batch), [self.prompt] * len(features),
            beam_size=self.beam_size, max_length=MAX_NEW_TOKENS, suppress_blank=True,
            suppress_tokens=self.suppress, return_scores=True, return_no_speech_prob=True,
        )
        out = []
        for result in results:
            tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
            seq_len = len(result.sequences_ids[0])
            avg_logprob = result.scores[0] * seq_len / (seq_len + 1)
            out.append(Decoded(self.tokenizer.decode(tokens).strip(), float(avg_logprob),
                               float(result.no_speech_prob)))
        return out
