"""`callfleet simulate --via esl`: the same simulated calls, placed the way production
places them. A simulated FreeSWITCH runs in this process; the cluster's ESL controller
actor connects to its event socket, originates each call through a carrier gateway,
starts the media fork on answer, and the scripted callee talks to the media gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from typing import Any

from pydantic import SecretStr

from cluster.actors.esl import RemoteCallControl, get_controller
from cluster.runtime.lifecycle import ClusterInfo, connect_ray
from cluster.sim.results import CallResult
from configs.settings import Settings
from telephony.call_control import OriginateRequest
from telephony.sim.channel_model import ChannelModel
from telephony.sim.fork_client import CallReport, SimulatedCall
from telephony.sim.scenarios import Scenario
from telephony.sim.switch import SimulatedSwitch


async def place_via_esl(settings: Settings, info: ClusterInfo,
                        calls: list[tuple[Scenario, SimulatedCall]], stagger_s: float,
                        model: ChannelModel | None = None) -> tuple[list[CallResult], list[dict]]:
    """Returns the per-call results and the controller's call records."""
    import ray  # heavy: loads ray


    by_number = {f"+1555{2000000 + i:07d}": call for i, (_, call) in enumerate(calls)}

    def callee(destination: str, call_uuid: str, rate: int, kind: str) -> SimulatedCall | None:
        call = by_number.get(destination)
        if call is not None:
            call.meta = dataclasses.replace(call.meta, call_uuid=call_uuid)
        return call

    password = secrets.token_urlsafe(16)
    model = model or ChannelModel(answer_rate=1.0, busy_rate=0.0, ring_s=(0.3, 1.0))
    switch = SimulatedSwitch(password, model, callers=callee)
    await switch.start()
    fs = settings.freeswitch.model_copy(update={
        "port": switch.port, "password": SecretStr(password), "media_url": info.media_url})
    await asyncio.to_thread(connect_ray, info.ray_address)
    handle = get_controller(fs, info.redis_url)
    control = RemoteCallControl(handle)
    try:
        await handle.ready.remote(15.0)

        async def one(i: int, number: str, scenario: Scenario, call: SimulatedCall) -> CallResult:
            await asyncio.sleep(i * stagger_s)
            call_uuid = str(uuid.uuid4())
            variables = {"callfleet_playback": scenario.playback,
                         "callfleet_fork_rate": "8k" if scenario.sample_rate == 8000 else "16k"}
            result = await control.originate(OriginateRequest(
                call_uuid=call_uuid, destination=number, gateways=fs.gateways,
                caller_id_number="+15550100000", variables=variables))
            if not result.answered:
                report = CallReport(call_uuid, error=f"not answered: {result.cause}")
                return CallResult(scenario.name, report)
            channel = switch.channels.get(call_uuid)
            if channel is not None:
                await channel.done.wait()
            report = channel.report if channel and channel.report else CallReport(
                call_uuid, error="fork never connected")
            return CallResult(scenario.name, report)

        results = await asyncio.gather(*(
            one(i, number, scenario, call)
            for i, (number, (scenario, call)) in enumerate(zip(by_number, calls, strict=True))))
        records: list[dict[str, Any]] = []
        for res in results:
            doc = await handle.call.remote(res.report.call_uuid)
            if doc:
                records.append(doc)
        return list(results), records
    finally:
        await switch.stop()
        try:
            await handle.shutdown.remote()
        finally:
            ray.kill(handle, no_restart=True)
