"""The agent API: what an agent desktop (and the later agent web UI) talks to.

REST under ``/agents`` — log in and out, breaks, heartbeats, the queue, accept or reject
an offer, report a call's outcome — and the websocket feed ``/agents/feed`` that pushes
offers with their context brief as they are made.

Authentication is a bearer token: an agent's own token (``<agent_id>:<secret>``, from
``callfleet agents add``) lets that agent act for themself only (403 otherwise); the
supervisor API key from `AgentApiSettings` may act for every agent. Tokens are compared
in constant time and never logged. The websocket takes the token as the ``token`` query
parameter or as a first message ``{"type": "auth", "token": "..."}`` (browsers cannot
set headers on websockets); it is closed with code 1008 when the token is missing or
wrong.

The router arrives as an `AgentService` — `SkillRouter` itself, or an adapter that
forwards the same async methods to a router actor. Because a Serve ingress needs its
routes at import time, `build_agents_router` takes a provider called per request.

(No `from __future__ import annotations`: the routes' `Annotated` dependency aliases are
local to `build_agents_router`, and FastAPI must see them as real objects.)
"""

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from redis.exceptions import RedisError

from cluster.routing import (
    AgentSnapshot,
    AgentState,
    CallerGoneError,
    ConnectFailedError,
    EscalationNotFoundError,
    FeedHub,
    InvalidStateChangeError,
    NotYourCallError,
    NotYourOfferError,
    Offer,
    OfferClosedError,
    OfferNotFoundError,
    QueueItem,
    RouteResult,
    RoutingError,
    UnknownAgentError,
)

__all__ = ["AgentApi", "AgentApiSettings", "AgentService", "Principal", "build_agents_router",
           "principal_for", "routing_errors"]

log = logging.getLogger("callfleet.api.agents")

# websocket close codes: 1008 policy violation (auth), 1003 unsupported data,
# 1011 server error, 1013 try again later (reader too slow)
WS_UNAUTHORIZED, WS_BAD_DATA, WS_SERVER_ERROR, WS_TOO_SLOW = 1008, 1003, 1011, 1013


class AgentApiSettings(BaseModel):
    """Agent API options (mounted by the lead, e.g. as ``agent_api:``)."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(
        None, description="supervisor key: may act for every agent (None = agent tokens only)")
    feed_auth_timeout_s: float = Field(
        5.0, gt=0, le=60, description="websocket: time to send the auth message")
    feed_ping_s: float = Field(
        20.0, gt=0, le=300, description="websocket: keep-alive ping when nothing else was sent")


class AgentService(Protocol):
    """What the API needs from the skill router (`SkillRouter` has all of it)."""

    async def authenticate(self, token: str) -> str | None: ...
    async def get_agent(self, agent_id: str) -> AgentSnapshot: ...
    async def list_agents(self) -> list[AgentSnapshot]: ...
    async def set_state(self, agent_id: str, state: AgentState | str) -> AgentSnapshot: ...
    async def heartbeat(self, agent_id: str) -> AgentSnapshot: ...
    async def queue(self) -> list[QueueItem]: ...
    async def pending_offers(self, agent_id: str) -> list[dict[str, Any]]: ...
    async def accept(self, offer_id: str, agent_id: str,
                     agent_leg_uuid: str | None = None) -> Offer: ...
    async def reject(self, offer_id: str, agent_id: str) -> RouteResult: ...
    async def complete(self, call_uuid: str, agent_id: str, converted: bool) -> AgentSnapshot: ...


@dataclass
class AgentApi:
    """Everything the routes need; `feed` may be None when no websocket feed runs here."""

    service: AgentService
    settings: AgentApiSettings
    feed: FeedHub | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: one agent, or a supervisor (agent_id None)."""

    agent_id: str | None

    @property
    def supervisor(self) -> bool:
        return self.agent_id is None

    def require(self, agent_id: str) -> None:
        if not self.supervisor and self.agent_id != agent_id:
            raise HTTPException(403, f"this token belongs to another agent, not {agent_id!r}")


class StateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: AgentState = Field(description="available, break or logged_out")


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str | None = Field(None, description="required with the supervisor key")
    agent_leg_uuid: str | None = Field(
        None, max_length=128, description="the agent's live channel: bridge to it instead of "
        "transferring the call to the agent's extension")


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str | None = Field(None, description="required with the supervisor key")


class CompleteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    converted: bool = Field(description="the call ended in a sale / the campaign's goal")


_STATUS = (
    ((UnknownAgentError, OfferNotFoundError, EscalationNotFoundError), 404),
    ((NotYourOfferError, NotYourCallError), 403),
    ((OfferClosedError,), 409),
    ((InvalidStateChangeError,), 422),
)


@contextlib.contextmanager
def routing_errors() -> Iterator[None]:
    """Routing refusals as HTTP statuses with their (data-free) messages. An accept whose
    caller hung up is a 409 with ``reason: caller_hung_up`` (the desk says so)."""
    try:
        yield
    except CallerGoneError as exc:
        raise HTTPException(409, {"detail": str(exc), "reason": exc.reason}) from exc
    except ConnectFailedError as exc:
        raise HTTPException(502, {"detail": str(exc), "retryable": exc.retryable}) from exc
    except RoutingError as exc:
        for types, status in _STATUS:
            if isinstance(exc, types):
                raise HTTPException(status, str(exc)) from exc
        raise HTTPException(503, str(exc)) from exc
    except RedisError as exc:
        log.warning("agent API: routing state unavailable (%s)", type(exc).__name__)
        raise HTTPException(503, "routing state is unavailable; try again") from exc


async def principal_for(api: AgentApi, token: str) -> Principal | None:
    """Who `token` is: the supervisor (the API key), an agent, or None."""
    key = api.settings.api_key
    if key is not None and hmac.compare_digest(token.encode(), key.get_secret_value().encode()):
        return Principal(agent_id=None)
    with routing_errors():
        agent_id = await api.service.authenticate(token)
    return Principal(agent_id) if agent_id else None


def _acting_agent(who: Principal, body_agent: str | None) -> str:
    if who.supervisor:
        if not body_agent:
            raise HTTPException(422, "with the supervisor key, name the agent in the body (agent_id)")
        return body_agent
    if body_agent and body_agent != who.agent_id:
        raise HTTPException(403, f"this token belongs to another agent, not {body_agent!r}")
    assert who.agent_id is not None
    return who.agent_id


def build_agents_router(api: AgentApi | Callable[[], AgentApi | None]) -> APIRouter:
    """The ``/agents`` routes over `api` (or a provider of it, called per request)."""
    provider = api if callable(api) else (lambda: api)
    bearer = HTTPBearer(auto_error=False, description="agent token or supervisor API key")
    router = APIRouter(prefix="/agents", tags=["agents"])

    def context() -> AgentApi:
        found = provider()
        if found is None:
            raise HTTPException(503, "the agent API is not ready")
        return found

    Ctx = Annotated[AgentApi, Depends(context)]

    async def principal(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                        ctx: Ctx) -> Principal:
        who = await principal_for(ctx, creds.credentials) if creds else None
        if who is None:
            raise HTTPException(401, "missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        return who

    Who = Annotated[Principal, Depends(principal)]

    @router.get("", summary="all agents with state and statistics (supervisor key)")
    async def list_agents(who: Who, ctx: Ctx) -> list[dict[str, Any]]:
        if not who.supervisor:
            raise HTTPException(403, "listing every agent needs the supervisor key")
        with routing_errors():
            return [a.public() for a in await ctx.service.list_agents()]

    @router.get("/queue", summary="waiting calls in service order (no customer data)")
    async def queue(who: Who, ctx: Ctx) -> list[QueueItem]:
        with routing_errors():
            return await ctx.service.queue()

    @router.get("/{agent_id}", summary="one agent's state and pending offers")
    async def get_agent(agent_id: str, who: Who, ctx: Ctx) -> dict[str, Any]:
        who.require(agent_id)
        with routing_errors():
            doc = (await ctx.service.get_agent(agent_id)).public()
            doc["pending"] = await ctx.service.pending_offers(agent_id)
        return doc

    async def change(agent_id: str, state: AgentState, who: Principal,
                     ctx: AgentApi) -> dict[str, Any]:
        who.require(agent_id)
        with routing_errors():
            return (await ctx.service.set_state(agent_id, state)).public()

    @router.post("/{agent_id}/login", summary="start taking calls (state available)")
    async def login(agent_id: str, who: Who, ctx: Ctx) -> dict[str, Any]:
        return await change(agent_id, AgentState.AVAILABLE, who, ctx)

    @router.post("/{agent_id}/logout", summary="stop taking calls; pending offers move on")
    async def logout(agent_id: str, who: Who, ctx: Ctx) -> dict[str, Any]:
        return await change(agent_id, AgentState.LOGGED_OUT, who, ctx)

    @router.post("/{agent_id}/state", summary="available, break or logged_out")
    async def set_state(agent_id: str, body: StateChange, who: Who, ctx: Ctx) -> dict[str, Any]:
        return await change(agent_id, body.state, who, ctx)

    @router.post("/{agent_id}/heartbeat", summary="the desktop is alive (send every TTL/3)")
    async def heartbeat(agent_id: str, who: Who, ctx: Ctx) -> dict[str, Any]:
        who.require(agent_id)
        with routing_errors():
            return (await ctx.service.heartbeat(agent_id)).public()

    @router.post("/offers/{offer_id}/accept",
                 summary="take the call: transfer to the agent's extension or bridge to a leg")
    async def accept(offer_id: str, who: Who, ctx: Ctx,
                     body: AcceptBody | None = None) -> Offer:
        body = body or AcceptBody()
        agent_id = _acting_agent(who, body.agent_id)
        with routing_errors():
            return await ctx.service.accept(offer_id, agent_id, body.agent_leg_uuid)

    @router.post("/offers/{offer_id}/reject", summary="decline: the call goes to another agent")
    async def reject(offer_id: str, who: Who, ctx: Ctx,
                     body: RejectBody | None = None) -> RouteResult:
        agent_id = _acting_agent(who, (body or RejectBody()).agent_id)
        with routing_errors():
            return await ctx.service.reject(offer_id, agent_id)

    @router.post("/{agent_id}/calls/{call_uuid}/complete",
                 summary="the call is over: record the outcome, start wrap-up")
    async def complete(agent_id: str, call_uuid: str, body: CompleteBody,
                       who: Who, ctx: Ctx) -> dict[str, Any]:
        who.require(agent_id)
        with routing_errors():
            return (await ctx.service.complete(call_uuid, agent_id, body.converted)).public()

    @router.websocket("/feed")
    async def feed(ws: WebSocket) -> None:
        await _serve_feed(ws, provider())

    return router


# ---- websocket feed ----------------------------------------------------------------------


async def _serve_feed(ws: WebSocket, api: AgentApi | None) -> None:
    """Authenticate, send a hello with the pending offers, then stream events. Client
    messages: ``{"type": "heartbeat"}`` (counts as an agent heartbeat), ``{"type":
    "ping"}``. A bad frame closes this connection with a reason, nothing else."""
    await ws.accept()
    if api is None or api.feed is None:
        await ws.close(WS_SERVER_ERROR, "the agent feed is not running here")
        return
    token = ws.query_params.get("token")
    if not token:
        try:
            first = json.loads(await asyncio.wait_for(ws.receive_text(),
                                                      api.settings.feed_auth_timeout_s))
            token = first.get("token") if isinstance(first, dict) and first.get("type") == "auth" else None
        except (asyncio.TimeoutError, ValueError, KeyError, WebSocketDisconnect):
            token = None
    try:
        who = await principal_for(api, token) if token else None
    except HTTPException:
        await ws.close(WS_SERVER_ERROR, "routing state is unavailable")
        return
    if who is None:
        await ws.close(WS_UNAUTHORIZED, "missing or invalid token")
        return
    wanted = ws.query_params.get("agent_id")
    if not who.supervisor and wanted and wanted != who.agent_id:
        await ws.close(WS_UNAUTHORIZED, "this token belongs to another agent")
        return
    target = who.agent_id or wanted  # a supervisor without agent_id sees every event
    try:
        async with api.feed.subscribe(target) as sub:
            hello: dict[str, Any] = {"type": "hello", "agent_id": target, "pending_offers": []}
            if target:
                hello["agent"] = (await api.service.get_agent(target)).public()
                hello["pending_offers"] = await api.service.pending_offers(target)
            await ws.send_json(hello)
            await _pump(ws, api, sub, who.agent_id)
    except WebSocketDisconnect:
        return
    except (RoutingError, RedisError, asyncio.TimeoutError) as exc:
        log.warning("agent feed closed: %s", type(exc).__name__)
        with contextlib.suppress(Exception):
            await ws.close(WS_SERVER_ERROR, "routing state is unavailable")


async def _pump(ws: WebSocket, api: AgentApi, sub: Any, agent_id: str | None) -> None:
    """Events out, client messages in, a ping when idle; `agent_id` is the caller's own
    (heartbeats over the feed count for that agent only)."""
    receive = asyncio.ensure_future(ws.receive_text())
    event = asyncio.ensure_future(sub.get())
    try:
        while True:
            done, _ = await asyncio.wait({receive, event}, timeout=api.settings.feed_ping_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if sub.overflowed:
                await ws.close(WS_TOO_SLOW, "too many unread events; reconnect")
                return
            if not done:
                await ws.send_json({"type": "ping"})
            if event in done:
                await ws.send_json(event.result())
                event = asyncio.ensure_future(sub.get())
            if receive in done:
                try:
                    # raises WebSocketDisconnect when the client left, KeyError on a binary frame
                    message = json.loads(receive.result())
                    kind = message["type"]
                except (ValueError, KeyError, TypeError):
                    await ws.close(WS_BAD_DATA, "expected JSON objects with a 'type'")
                    return
                if kind == "heartbeat" and agent_id:
                    await api.service.heartbeat(agent_id)
                elif kind == "ping":
                    await ws.send_json({"type": "pong"})
                receive = asyncio.ensure_future(ws.receive_text())
    finally:
        # no awaiting here: when this handler is being cancelled (server shutdown), an
        # await in cleanup is cancelled again and the cancellation escapes its scope
        for task in (receive, event):
            task.add_done_callback(_consume)
            task.cancel()


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished helper task's outcome so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()
