"""TTS replica: Piper by default (Coqui engine optional), bounded prompt cache."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from ray import serve

from deployments.common import pick_device, settings_from
from deployments.engines.tts import SpeechSynthesizer, make_engine


@serve.deployment(name="tts", health_check_period_s=10)
class TTSDeployment:
    def __init__(self, settings: dict[str, Any]):
        cfg = settings_from(settings)
        engine = make_engine(cfg.tts, use_cuda=pick_device(cfg.tts) == "cuda")
        self.synth = SpeechSynthesizer(engine, cache_size=cfg.tts.cache_size)
        self.synth.synthesize("Hello.", 8000)  # warm up

    async def synthesize(self, text: str, sample_rate: int) -> bytes:
        """L16 PCM of `text` at the call's sample rate."""
        return await asyncio.to_thread(self.synth.synthesize, text, sample_rate)

    def cache_info(self) -> dict[str, Any]:
        return asdict(self.synth.cache_info())

    def check_health(self) -> None:
        if self.synth is None:
            raise RuntimeError("TTS engine not loaded")
