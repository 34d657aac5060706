"""TTS replica: Piper by default (Coqui engine optional), bounded prompt cache."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ray import serve

from deployments.common import ServedVersion, pick_device, settings_from
from deployments.engines.tts import SpeechSynthesizer, make_engine
from deployments.priority_gate import PriorityGate

FIRST_SENTENCE, READ_AHEAD = 0, 1  # priorities: a caller waiting in silence goes first


@serve.deployment(name="tts", health_check_period_s=10)
class TTSDeployment:
    def __init__(self, settings: dict[str, Any]):
        cfg = settings_from(settings)
        engine = make_engine(cfg.tts, use_cuda=pick_device(cfg.tts) == "cuda")
        self.synth = SpeechSynthesizer(engine, cache_size=cfg.tts.cache_size)
        self.synth.synthesize("Hello.", 8000)  # warm up
        voice = cfg.tts.voice if cfg.tts.engine == "piper" else (cfg.tts.coqui_model or "")
        ServedVersion("tts").serving(f"{cfg.tts.engine}:{Path(voice).name}")
        self.gate = PriorityGate(cfg.tts.concurrency)

    async def synthesize(self, text: str, sample_rate: int, priority: int = FIRST_SENTENCE) -> bytes:
        """L16 PCM of `text` at the call's sample rate. Cached prompts return at once;
        synthesis waits for the gate (`priority` READ_AHEAD yields to first sentences), and
        a prompt rendered while it waited is taken from the cache."""
        pcm = self.synth.cached(text, sample_rate)
        if pcm is not None:
            return pcm
        async with self.gate.hold(priority):
            # many calls of one campaign ask for the same prompt at once: the first holder
            # renders it, the ones queued behind it find it in the cache
            pcm = self.synth.cached(text, sample_rate)
            if pcm is not None:
                return pcm
            return await asyncio.to_thread(self.synth.synthesize, text, sample_rate)

    def cache_info(self) -> dict[str, Any]:
        return asdict(self.synth.cache_info())

    def check_health(self) -> None:
        if self.synth is None:
            raise RuntimeError("TTS engine not loaded")
