"""The FreeSWITCH simulator as a detached Ray actor, for `callfleet up` on one machine
(``freeswitch.simulate: true``): it listens on ``freeswitch.host:port`` like a real
switch, and every callee who answers is a scripted caller from a scenario file, voiced
by the simulator's caller voice."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from configs.settings import Settings, settings_doc
from telephony.sim.channel_model import ChannelModel

__all__ = ["SIM_NAME", "SimulatedSwitchService", "start_simulator"]

logger = logging.getLogger(__name__)

SIM_NAME = "callfleet-freeswitch-sim"
OUTBOUND_SCENARIOS = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "outbound.yaml"


class SimulatedSwitchService:
    def __init__(self, settings: dict[str, Any]):
        from telephony.sim.scenarios import load_scenarios  # heavy: loads scipy
        from telephony.sim.switch import SimulatedSwitch  # heavy: loads scipy

        cfg = Settings.model_validate(settings).freeswitch
        self.scenarios = load_scenarios(cfg.sim_scenarios or OUTBOUND_SCENARIOS)
        model = ChannelModel(answer_rate=cfg.sim_answer_rate, busy_rate=cfg.sim_busy_rate,
                             ring_s=cfg.sim_ring_s,
                             gateways={g: {} for g in cfg.gateways}, seed=None)
        self.switch = SimulatedSwitch(cfg.password.get_secret_value(), model,
                                      callers=self._callee, host=cfg.host, port=cfg.port)
        self._voice = None
        self._ready = asyncio.get_event_loop().create_task(self.switch.start())

    async def ready(self) -> int:
        await self._ready
        return self.switch.port

    async def _callee(self, destination: str, call_uuid: str, rate: int, kind: str):
        from telephony.sim.caller_voice import CallerVoice  # heavy: loads scipy
        from telephony.sim.scenarios import build_call, scenario_for  # heavy: loads scipy

        scenario = scenario_for(self.scenarios, destination).model_copy(
            update={"sample_rate": rate})
        if self._voice is None:
            self._voice = await asyncio.to_thread(CallerVoice)
        return await asyncio.to_thread(build_call, scenario, self._voice, call_uuid)

    async def stats(self) -> dict[str, Any]:
        finished = [c for c in self.switch.finished if c.originator is None]  # calls, not agent legs
        causes: dict[str, int] = {}
        for channel in finished:
            causes[channel.hangup_cause or "?"] = causes.get(channel.hangup_cause or "?", 0) + 1
        return {"live": len(self.switch.channels), "finished": len(finished),
                "agent_legs": sum(1 for c in self.switch.finished if c.originator is not None),
                "hangup_causes": causes,
                "transferred": sum(1 for c in finished if c.transferred_to),
                "info_messages": sum(1 for c in finished if c.broadcasts and not c.report)}

    async def shutdown(self) -> None:
        await self.switch.stop()


def start_simulator(settings: Settings):
    import ray  # heavy: loads ray


    handle = ray.remote(SimulatedSwitchService).options(
        name=SIM_NAME, namespace="callfleet", lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=1000).remote(settings_doc(settings))
    ray.get(handle.ready.remote(), timeout=60)
    return handle
