"""ASR replica: faster-whisper, batched across calls."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import numpy as np
from ray import serve

from deployments.common import apply_batching, pick_device, settings_from
from deployments.engines.asr import WhisperTranscriber


@serve.deployment(name="asr", health_check_period_s=10)
class ASRDeployment:
    def __init__(self, settings: dict[str, Any]):
        cfg = settings_from(settings)
        self.engine = WhisperTranscriber(cfg.asr, cfg.cache_dir, device=pick_device(cfg.asr))
        self.engine.warmup()

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_batching(self.transcribe, config)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def transcribe(self, pcms: list[bytes]) -> list[dict[str, Any]]:
        """16 kHz L16 utterances in, transcripts out (one thread call per batch)."""
        audios = [np.frombuffer(p, dtype="<i2").astype(np.float32) / 32768.0 for p in pcms]
        results = await asyncio.to_thread(self.engine.transcribe_batch, audios)
        return [asdict(r) for r in results]

    def check_health(self) -> None:
        if self.engine is None:
            raise RuntimeError("ASR model not loaded")
