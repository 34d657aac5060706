"""The agent desk (``/desk``) and the supervisor wallboard (``/wallboard``): two pages the
API app serves itself, and the JSON routes behind them.

The pages are static HTML with a small script each (``deployments/api/static``): no
CDN, no build step, nothing fetched from the internet. They sign in with a token typed
into a form; the token stays in the tab (``sessionStorage``), goes out only in the
``Authorization`` header and the feed's first websocket message, never in a URL.

Routes (relative to the API app, which Serve mounts at ``/api``; the media gateway
redirects ``/desk`` and ``/wallboard`` on port 8000 here):

* ``GET /desk``, ``GET /wallboard``, ``GET /static/<file>`` — the pages (no auth: they
  hold no data)
* ``GET /session`` — who the token is: ``{"role": "agent"|"supervisor", ...}``
* agent, own offers and calls only: ``GET /agents/offers/{offer}/articles`` (knowledge
  base articles for the conversation), ``GET /agents/{id}/calls/{call}`` (the live
  transcript), ``POST /agents/{id}/calls/{call}/hangup``, ``POST
  /agents/{id}/calls/{call}/wrap-up`` (disposition, notes, callback time)
* supervisor only: ``GET /wallboard/state``; ``POST /wallboard/calls/{call}/eavesdrop``
  (listen, whisper, barge), ``POST|DELETE /wallboard/eavesdrops/{leg}``, ``POST
  /wallboard/campaigns/{id}/pause|resume``, ``POST /wallboard/agents/{id}/state``, ``PUT
  /wallboard/routing/weights``

Phone numbers are shown masked (`mask_number`); transcripts and notes are never logged.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from cluster.routing import AgentState, EscalationStatus, SkillRouter, WrapUp, mask_number
from deployments.api.agents import AgentApi, Principal, principal_for, routing_errors
from telephony.call_control import CallControlError, CallGoneError
from training.models.registry import ModelRegistry

__all__ = ["DeskView", "Supervision", "build_desk_router"]

log = logging.getLogger("callfleet.api.desk")

STATIC = Path(__file__).resolve().parent / "static"
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
#: the pages may load only their own files and talk only to this origin
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DEFAULT_DISPOSITIONS = ("resolved", "follow_up", "sale", "no_sale", "complaint", "wrong_number")
MAX_CALLS_SHOWN = 200
LATENCY_BINS_MS = tuple(range(0, 3001, 250))


class Supervision(Protocol):
    """What the wallboard needs from call control (the ESL controller, or its actor)."""

    async def eavesdrop(self, call_uuid: str, extension: str, mode: str = "listen") -> str: ...
    async def eavesdrop_mode(self, leg_uuid: str, mode: str) -> None: ...
    async def hangup(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> None: ...


@dataclass
class DeskView:
    """What the desk and wallboard routes use besides the agent API: the router (agents,
    queue, escalations), Redis for the call records (read only), call control for
    supervisors, and optional parts (dialer store, knowledge base, model registry)."""

    agents: AgentApi
    router: SkillRouter
    redis: aioredis.Redis  # decode_responses=True
    supervision: Supervision | None = None
    dialer: Any = None  # cluster.dialer.store.DialerStore
    kb: Any = None  # bots.kb.KnowledgeBase
    registry_path: Path | None = None
    dispositions: tuple[str, ...] = DEFAULT_DISPOSITIONS


class WrapUpBody(WrapUp):
    converted: bool = Field(False, description="the call reached the campaign's goal")


class EavesdropBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["listen", "whisper", "barge"] = "listen"
    extension: str = Field(pattern=r"^[0-9A-Za-z*#+_.@-]{1,64}$",
                           description="the supervisor's phone (rung through the dialplan)")


class ModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["listen", "whisper", "barge"]


class StateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: AgentState


class WeightsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_weight: float | None = None
    conversion_weight: float | None = None
    skill_level_weight: float | None = None


def _page(name: str) -> FileResponse:
    path = STATIC / name
    media = _CONTENT_TYPES.get(path.suffix)
    if media is None or not path.is_file():
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=media, headers=_HEADERS)


def build_desk_router(view: DeskView | Callable[[], DeskView | None]) -> APIRouter:
    """The desk and wallboard pages and their routes over `view` (or a provider)."""
    provider = view if callable(view) else (lambda: view)
    bearer = HTTPBearer(auto_error=False)
    router = APIRouter(tags=["desk"])
    static_files = {p.name for p in STATIC.iterdir() if p.suffix in _CONTENT_TYPES}

    def context() -> DeskView:
        found = provider()
        if found is None:
            raise HTTPException(503, "the API is not ready")
        return found

    View = Annotated[DeskView, Depends(context)]

    async def principal(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                        view: View) -> Principal:
        who = await principal_for(view.agents, creds.credentials) if creds else None
        if who is None:
            raise HTTPException(401, "missing or invalid token",
                                headers={"WWW-Authenticate": "Bearer"})
        return who

    Who = Annotated[Principal, Depends(principal)]

    async def supervisor(who: Who) -> Principal:
        if not who.supervisor:
            raise HTTPException(403, "the wallboard needs a supervisor key; an agent's token "
                                "opens the agent desk (/desk)")
        return who

    Boss = Annotated[Principal, Depends(supervisor)]

    # ---- pages -----------------------------------------------------------------------

    @router.get("/desk", include_in_schema=False)
    async def desk_page() -> FileResponse:
        return _page("desk.html")

    @router.get("/wallboard", include_in_schema=False)
    async def wallboard_page() -> FileResponse:
        return _page("wallboard.html")

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in static_files:
            raise HTTPException(404, "no such file")
        return _page(name)

    # ---- both ------------------------------------------------------------------------

    @router.get("/session", summary="who this token is, and the desk's settings")
    async def session(who: Who, view: View) -> dict[str, Any]:
        settings = view.router.settings
        doc: dict[str, Any] = {
            "role": "supervisor" if who.supervisor else "agent", "agent_id": who.agent_id,
            "server_time": time.time(), "heartbeat_s": round(settings.heartbeat_ttl_s / 3, 1),
            "wrap_up_s": settings.wrap_up_s, "dispositions": list(view.dispositions)}
        if who.agent_id:
            with routing_errors():
                doc["agent"] = (await view.router.get_agent(who.agent_id)).public()
        return doc

    # ---- agent: offers and calls ---------------------------------------------------------

    @router.get("/agents/offers/{offer_id}/articles",
                summary="knowledge-base articles for the offered call's conversation")
    async def offer_articles(offer_id: str, who: Who, view: View) -> list[dict[str, Any]]:
        with routing_errors():
            offer = await view.router.store.get_offer(offer_id)
            if offer is None or (not who.supervisor and offer.agent_id != who.agent_id):
                raise HTTPException(404, "no such offer for this agent")
            record = await view.router.store.get_escalation(offer.call_uuid)
        if record is None or view.kb is None:
            return []
        request = record.request
        words = [t.get("caller") or t.get("text") or "" for t in request.transcript]
        words += [i.get("label", "").replace("_", " ") for i in request.intents if i]
        query = " ".join(w for w in words if w)[:500].strip() or request.reason
        hits = await asyncio.to_thread(view.kb.search, query, 3)
        return [h.model_dump(mode="json") for h in hits]

    async def own_call(view: DeskView, who: Principal, agent_id: str, call_uuid: str):
        who.require(agent_id)
        with routing_errors():
            record = await view.router.store.get_escalation(call_uuid)
        if record is None or record.agent_id != agent_id:
            raise HTTPException(404, "no such call for this agent")
        return record

    @router.get("/agents/{agent_id}/calls/{call_uuid}",
                summary="the agent's call: status and the transcript so far (poll it)")
    async def call(agent_id: str, call_uuid: str, who: Who, view: View) -> dict[str, Any]:
        record = await own_call(view, who, agent_id, call_uuid)
        turns = await _record_turns(view.redis, call_uuid)
        transcript = turns if turns else [
            {"caller": t.get("caller") or t.get("text"), "bot": t.get("bot", "")}
            for t in record.request.transcript]
        return {"call_uuid": call_uuid, "status": record.status.value,
                "ended": record.status is EscalationStatus.ENDED,
                "ended_reason": record.ended_reason, "connected_at": record.connected_at,
                "caller": record.request.caller, "transcript": transcript,
                "wrap_up": record.wrap_up.model_dump() if record.wrap_up else None}

    @router.post("/agents/{agent_id}/calls/{call_uuid}/hangup", summary="end the agent's call")
    async def hangup(agent_id: str, call_uuid: str, who: Who, view: View) -> dict[str, Any]:
        await own_call(view, who, agent_id, call_uuid)
        with routing_errors():
            return (await view.router.hangup(call_uuid, agent_id)).model_dump(mode="json")

    @router.post("/agents/{agent_id}/calls/{call_uuid}/wrap-up",
                 summary="disposition, notes and callback time; starts wrap-up")
    async def wrap_up(agent_id: str, call_uuid: str, body: WrapUpBody, who: Who,
                      view: View) -> dict[str, Any]:
        await own_call(view, who, agent_id, call_uuid)
        if body.disposition not in view.dispositions:
            raise HTTPException(422, f"disposition must be one of {', '.join(view.dispositions)}")
        notes = WrapUp(disposition=body.disposition, notes=body.notes,
                       callback_at=body.callback_at)
        with routing_errors():
            agent = await view.router.complete(call_uuid, agent_id, body.converted, notes)
        return agent.public()

    # ---- supervisor: the wallboard -------------------------------------------------------

    @router.get("/wallboard/state", summary="the floor now (supervisor key)")
    async def wallboard_state(_: Boss, view: View) -> dict[str, Any]:
        try:
            return await _floor_state(view)
        except RedisError as exc:
            log.warning("wallboard: Redis unavailable (%s)", type(exc).__name__)
            raise HTTPException(503, "floor state is unavailable; try again") from exc

    def control(view: DeskView) -> Supervision:
        if view.supervision is None:
            raise HTTPException(503, "no call control here: cannot listen in")
        return view.supervision

    @router.post("/wallboard/calls/{call_uuid}/eavesdrop",
                 summary="ring the supervisor's extension and join the call")
    async def eavesdrop(call_uuid: str, body: EavesdropBody, _: Boss,
                        view: View) -> dict[str, Any]:
        try:
            leg = await control(view).eavesdrop(call_uuid, body.extension, body.mode)
        except CallGoneError as exc:
            raise HTTPException(409, {"detail": "the call has ended", "reason": "call_ended"}) from exc
        except CallControlError as exc:
            raise HTTPException(502, {"detail": str(exc), "retryable": exc.retryable}) from exc
        log.info("supervisor joined a call (%s)", body.mode)
        return {"call_uuid": call_uuid, "leg_uuid": leg, "mode": body.mode}

    @router.post("/wallboard/eavesdrops/{leg_uuid}", summary="switch listen / whisper / barge")
    async def eavesdrop_mode(leg_uuid: str, body: ModeBody, _: Boss, view: View) -> dict[str, Any]:
        try:
            await control(view).eavesdrop_mode(leg_uuid, body.mode)
        except CallGoneError as exc:
            raise HTTPException(409, {"detail": "no longer listening", "reason": "call_ended"}) from exc
        except CallControlError as exc:
            raise HTTPException(502, {"detail": str(exc), "retryable": exc.retryable}) from exc
        return {"leg_uuid": leg_uuid, "mode": body.mode}

    @router.delete("/wallboard/eavesdrops/{leg_uuid}", summary="stop listening (hang up)")
    async def eavesdrop_stop(leg_uuid: str, _: Boss, view: View) -> dict[str, Any]:
        try:
            await control(view).hangup(leg_uuid)
        except CallGoneError:
            pass
        except CallControlError as exc:
            raise HTTPException(502, {"detail": str(exc), "retryable": exc.retryable}) from exc
        return {"leg_uuid": leg_uuid, "stopped": True}

    @router.post("/wallboard/campaigns/{campaign_id}/{action}", summary="pause or resume")
    async def campaign(campaign_id: str, action: Literal["pause", "resume"], _: Boss,
                       view: View) -> dict[str, Any]:
        if view.dialer is None:
            raise HTTPException(503, "no dialer store here")
        try:
            state = await view.dialer.transition(campaign_id, action)
        except KeyError as exc:
            raise HTTPException(404, f"no campaign {campaign_id!r}") from exc
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"id": campaign_id, "state": getattr(state, "value", state)}

    @router.post("/wallboard/agents/{agent_id}/state", summary="set an agent's state")
    async def agent_state(agent_id: str, body: StateBody, _: Boss, view: View) -> dict[str, Any]:
        with routing_errors():
            return (await view.router.set_state(agent_id, body.state)).public()

    @router.put("/wallboard/routing/weights", summary="change routing weights live")
    async def weights(body: WeightsBody, _: Boss, view: View) -> dict[str, float]:
        wanted = body.model_dump(exclude_none=True)
        try:
            return await view.router.set_weights(wanted)
        except ValueError as exc:
            raise HTTPException(422, "weights out of range (see RoutingSettings)") from exc

    return router


# ---- reading the floor ------------------------------------------------------------------


def _turn_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored turn as the desk shows it (no prosody, no timings)."""
    if doc.get("no_input"):
        caller = None
    elif doc.get("dtmf"):
        caller = f"[pressed {doc['dtmf']}]"
    else:
        caller = doc.get("caller")
    return {"n": doc.get("n"), "caller": caller, "bot": doc.get("bot", ""),
            "intent": doc.get("intent"), "emotion": doc.get("emotion")}


def _latest(docs: list[Any]) -> dict[str, Any]:
    return next((d for d in reversed(docs) if isinstance(d, dict) and d.get("label")), {})


async def _record_turns(redis: aioredis.Redis, call_uuid: str) -> list[dict[str, Any]]:
    raw = await redis.lrange(f"cf:call:{call_uuid}:turns", 0, -1)
    out = []
    for item in raw:
        try:
            out.append(_turn_view(json.loads(item)))
        except (TypeError, ValueError):
            continue
    return out


async def _floor_state(view: DeskView) -> dict[str, Any]:
    now = time.time()
    router, redis = view.router, view.redis
    agents = [a.public() for a in await router.list_agents()]
    queue = [q.model_dump(mode="json") for q in await router.queue()]
    escalations = {r.request.call_uuid: r for r in await router.store.active_escalations()}
    bot_calls = set(await redis.smembers("cf:calls:active"))
    ids = sorted(bot_calls | set(escalations))[:MAX_CALLS_SHOWN]
    async with redis.pipeline(transaction=False) as pipe:
        for call_uuid in ids:
            pipe.hgetall(f"cf:call:{call_uuid}")
            pipe.lrange(f"cf:call:{call_uuid}:turns", -5, -1)
        raw = await pipe.execute() if ids else []
    calls = []
    for i, call_uuid in enumerate(ids):
        doc, last = raw[2 * i], raw[2 * i + 1]
        esc = escalations.get(call_uuid)
        if esc is not None:
            where = "with_agent" if esc.status is EscalationStatus.CONNECTED else "queued"
        elif doc.get("status", "bot") == "bot":
            where = "bot"
        else:
            continue
        # the latest turn that has them (a key press has neither)
        turns = [_turn_view(json.loads(t)) for t in last]
        intent = (_latest([t.get("intent") for t in turns])
                  or _latest(esc.request.intents if esc else []))
        emotion = (_latest([t.get("emotion") for t in turns])
                   or _latest(esc.request.emotions if esc else []))
        started = float(doc.get("started_at") or (esc.enqueued_at if esc else now))
        calls.append({
            "call_uuid": call_uuid, "where": where,
            "status": esc.status.value if esc else "bot",
            "agent_id": esc.agent_id if esc else None,
            "duration_s": round(max(now - started, 0.0), 1),
            "caller": esc.request.caller if esc else mask_number(doc.get("caller")),
            "campaign_id": (esc.request.campaign_id if esc else None) or doc.get("campaign") or None,
            "vip": bool(esc and esc.request.vip),
            "intent": {"label": intent.get("label"), "confidence": intent.get("confidence")},
            "emotion": {"label": emotion.get("label")},
        })
    return {
        "now": now, "calls": calls, "queue": queue, "agents": agents,
        "queue_figures": (await router.store.daily_outcomes(now, 1))[0],
        "queue_trend": await router.store.daily_outcomes(now, 30),
        "weights": await router.weights(),
        "campaigns": await _campaigns(view, now),
        "models": await asyncio.to_thread(_model_versions, view.registry_path),
        "turn_latency": await _latency(redis, bot_calls),
    }


async def _campaigns(view: DeskView, now: float) -> list[dict[str, Any]]:
    """Per campaign: state, pacing, abandonment today (UTC) and over 30 days against its
    cap, and the daily abandonment rate for the trend plot."""
    if view.dialer is None:
        return []
    out = []
    for campaign_id in await view.dialer.campaign_ids():
        try:
            status = await view.dialer.status(campaign_id, now)
        except (KeyError, ValueError):
            continue
        day = await view.dialer.abandonment(campaign_id, now, 1)
        month = await view.dialer.abandonment(campaign_id, now, 30)
        trend = []
        for back in range(29, -1, -1):
            budget = await view.dialer.abandonment(campaign_id, now - back * 86400, 1)
            trend.append({"day": datetime.fromtimestamp(now - back * 86400, timezone.utc)
                          .date().isoformat(), "rate": round(budget.rate, 4),
                          "answered": budget.answered})
        dialer = status.get("dialer") or {}
        answer_rate = float(dialer.get("answer_rate") or 0.0)
        out.append({
            "id": campaign_id, "name": status.get("name"), "state": status.get("state"),
            "pacing_mode": status.get("pacing_mode"),
            # lines dialled per expected live answer: the dialer's over-dial factor
            "pacing_ratio": round(1 / answer_rate, 2) if answer_rate > 0 else None,
            "ringing": dialer.get("ringing", 0), "connected": dialer.get("connected", 0),
            "abandon_24h": round(day.rate, 4), "abandon_30d": round(month.rate, 4),
            "abandon_cap": status["abandonment"]["cap"], "trend": trend,
        })
    return out


def _model_versions(registry_path: Path | None) -> dict[str, str | None]:
    """The promoted version of each model kind: what the replicas serve (a promotion
    reconfigures them in place)."""
    if registry_path is None:
        return {}
    registry = ModelRegistry(registry_path)
    out: dict[str, str | None] = {}
    for kind in ("intent", "emotion", "conversion"):
        try:
            out[kind] = registry.current(kind)
        except (OSError, ValueError):
            out[kind] = None
    return out


async def _latency(redis: aioredis.Redis, active: set[str]) -> dict[str, Any]:
    """Time to the bot's first audio over the turns of live and recent calls, binned."""
    recent = await redis.lrange("cf:calls:recent", 0, 49)
    ids = list(dict.fromkeys([*sorted(active)[:50], *recent]))
    async with redis.pipeline(transaction=False) as pipe:
        for call_uuid in ids:
            pipe.lrange(f"cf:call:{call_uuid}:turns", -20, -1)
        lists = await pipe.execute() if ids else []
    values = []
    for turns in lists:
        for item in turns:
            try:
                ms = (json.loads(item).get("timing") or {}).get("first_audio_ms")
            except (TypeError, ValueError):
                continue
            if isinstance(ms, int | float):
                values.append(float(ms))
    counts = [0] * len(LATENCY_BINS_MS)
    for ms in values:
        counts[min(int(ms // 250), len(counts) - 1)] += 1
    ordered = sorted(values)
    p = (lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)) if ordered \
        else (lambda q: None)
    return {"bins_ms": list(LATENCY_BINS_MS), "counts": counts, "turns": len(values),
            "p50_ms": p(0.5), "p95_ms": p(0.95)}
