"""ASR replica: faster-whisper, batched across calls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve

from bots.slots import SlotSpec
from deployments.common import ServedVersion, apply_batching, pick_device, settings_from
from deployments.engines.asr import WhisperTranscriber
from training.models.outputs import Transcript


@serve.deployment(name="asr", health_check_period_s=10)
class ASRDeployment:
    def __init__(self, settings: dict[str, Any]):
        parsed = settings_from(settings)
        cfg = parsed.asr
        self.engine = WhisperTranscriber(cfg, parsed.cache_dir, device=pick_device(cfg))
        self.engine.warmup()
        ServedVersion("asr").serving(Path(cfg.model).name)  # "tiny.en", "base", a folder's name
        # Built here rather than as a class decorator so `asr.workers` batches can be
        # decoded at once: one utterance does not get faster on a second CPU thread, but
        # two utterances on one thread each finish in the time of one.
        self._batched = serve.batch(
            max_batch_size=cfg.max_batch_size, batch_wait_timeout_s=cfg.batch_wait_timeout_s,
            max_concurrent_batches=cfg.workers)(self._transcribe_batch)

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_batching(self._batched, config)

    async def transcribe(self, pcm: bytes) -> Transcript:
        """One 16 kHz L16 utterance in, its transcript out (batched across calls)."""
        return await self._batched(pcm)

    async def transcribe_expecting(self, pcm: bytes, expect: dict[str, Any]) -> Transcript:
        """One utterance the script expects to fill a slot (`bots.slots.SlotSpec` as a
        dict): decoded on its own against the slot's vocabulary (engines/asr_slots.py)."""
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        return await asyncio.to_thread(self.engine.transcribe_expecting, audio, SlotSpec(**expect))

    async def _transcribe_batch(self, pcms: list[bytes]) -> list[Transcript]:
        audios = [np.frombuffer(p, dtype="<i2").astype(np.float32) / 32768.0 for p in pcms]
        return await asyncio.to_thread(self.engine.transcribe_batch, audios)

    def check_health(self) -> None:
        if self.engine is None:
            raise RuntimeError("ASR model not loaded")
