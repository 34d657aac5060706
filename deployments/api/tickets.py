"""The tickets REST API: ``/tickets`` for agents and supervisors, ``/tickets/intake``
for other channels (web forms, e-mail gateways).

    GET  /tickets                   ?status=&queue=&assignee=&breached=&limit=&offset=
    POST /tickets                   create {subject, body, queue, priority, phone, email,
                                    call_uuid, emotion, assignee, fields, idempotency_key}
    GET  /tickets/{id}
    POST /tickets/{id}/assign       {agent_id}  (null: back to the queue)
    POST /tickets/{id}/respond      a person answered: the first-response deadline is met
    POST /tickets/{id}/close        {resolution}
    POST /tickets/intake            the intake token (``tickets.intake_token``) only;
                                    {idempotency_key, subject, body, channel, phone, email,
                                    queue, priority}: the same key gives the same ticket

Who sees what: the supervisor key (``api.api_key``) every ticket; an agent token the
tickets assigned to that agent and the unassigned ones of a queue named like one of the
agent's skills (others are 404 to them); an agent may take such a ticket (assign it to
themself), answer and close it, not give it to someone else. Priority follows
`cluster.store.triage` (tier of the customer's profile, emotion, what was asked);
deadlines the queue's (``tickets.queues``). Numbers are masked in every response.

(No `from __future__ import annotations`: FastAPI must see the annotations as objects.)
"""

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from cluster.store.customers import CustomerStore
from cluster.store.tickets import (
    NewTicket,
    TicketConflict,
    TicketNotFound,
    TicketQuery,
    TicketStore,
    public_ticket,
)
from configs.tickets import TicketsSettings
from deployments.api.agents import AgentApi, Principal, principal_for
from deployments.api.customers import CustomerAccess, in_store

__all__ = ["IntakeTicket", "TicketAccess", "TicketBody", "build_tickets_router"]

Priority = Literal["low", "normal", "high", "urgent"]


@dataclass
class TicketAccess:
    agents: AgentApi
    customers: CustomerAccess
    settings: TicketsSettings


class TicketBody(BaseModel):
    """A ticket an agent or a supervisor opens."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=300)
    body: str | None = Field(None, max_length=20_000)
    queue: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    priority: Priority = "normal"
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=320)
    call_uuid: str | None = Field(None, max_length=64)
    emotion: str | None = Field(None, max_length=64)
    assignee: str | None = Field(None, max_length=128)
    fields: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


class IntakeTicket(BaseModel):
    """A ticket from another channel; `idempotency_key` is required (a form posted twice,
    an e-mail fetched twice make one ticket)."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=300)
    body: str | None = Field(None, max_length=20_000)
    channel: Literal["web", "email", "chat", "sms", "other"] = "web"
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    queue: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    priority: Priority = "normal"
    fields: dict[str, Any] = Field(default_factory=dict)


class AssignBody(BaseModel):
    agent_id: str | None = Field(None, max_length=128)


class CloseBody(BaseModel):
    resolution: str | None = Field(None, max_length=20_000)


def build_tickets_router(access: Callable[[], TicketAccess | None]) -> APIRouter:
    router = APIRouter(prefix="/tickets", tags=["tickets"])
    bearer = HTTPBearer(auto_error=False, description="agent token, supervisor key, or the "
                        "intake token (intake only)")
    Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

    def ready() -> TicketAccess:
        found = access()
        if found is None:
            raise HTTPException(503, "API not ready")
        return found

    async def principal(creds: Creds) -> Principal:
        ctx = ready()
        who = await principal_for(ctx.agents, creds.credentials) if creds else None
        if who is None:
            raise HTTPException(401, "missing or invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        return who

    Who = Annotated[Principal, Depends(principal)]

    async def scope(who: Principal, ctx: TicketAccess) -> TicketQuery | None:
        """None for the supervisor; an agent's own tickets and queues otherwise."""
        if who.supervisor:
            return None
        snapshot = await ctx.agents.service.get_agent(who.agent_id)
        return TicketQuery(agent=who.agent_id, agent_queues=tuple(snapshot.profile.skills))

    def tickets(store) -> TicketStore:
        ctx = ready()
        return TicketStore(store, ctx.settings, ctx.customers.settings.vip_tiers)

    def customer(ctx: TicketAccess, phone: str | None) -> tuple[str | None, str | None]:
        """(E.164, key) of a ticket's number, when one is given and profiles are on."""
        if not phone:
            return None, None
        if ctx.customers.settings.secret is None:
            raise HTTPException(503, "tickets with a phone number need customers.secret")
        return ctx.customers.number(phone)

    async def create(ctx: TicketAccess, new: NewTicket) -> tuple[dict[str, Any], bool]:
        def work(store) -> tuple[dict[str, Any], bool]:
            ticket = new
            if new.customer_key:
                profile = CustomerStore(store).get(new.customer_key)
                if profile and profile.get("tier"):
                    ticket = NewTicket(**{**new.__dict__, "tier": profile["tier"]})
            return tickets(store).create(ticket)

        return await in_store(ctx.customers, work)

    async def guarded(work: Callable[[Any], Any]) -> dict[str, Any]:
        ctx = ready()
        try:
            return public_ticket(await in_store(ctx.customers, work))
        except TicketNotFound:
            raise HTTPException(404, "no such ticket") from None
        except TicketConflict as exc:
            raise HTTPException(409, str(exc)) from None

    @router.post("/intake", status_code=201)
    async def intake(body: IntakeTicket, creds: Creds) -> dict[str, Any]:
        ctx = ready()
        token = ctx.settings.intake_token
        if token is None:
            raise HTTPException(503, "ticket intake is closed: set tickets.intake_token")
        if creds is None or not hmac.compare_digest(
                creds.credentials.encode(), token.get_secret_value().encode()):
            raise HTTPException(401, "missing or invalid intake token",
                                headers={"WWW-Authenticate": "Bearer"})
        phone, key = customer(ctx, body.phone)
        row, created = await create(ctx, NewTicket(
            subject=body.subject, body=body.body, source="intake", channel=body.channel,
            queue=body.queue, priority=body.priority, phone=phone, customer_key=key,
            email=body.email, fields=body.fields, created_by=f"intake:{body.channel}",
            idempotency_key=body.idempotency_key))
        return {**public_ticket(row), "created": created}

    @router.get("")
    async def list_tickets(
        who: Who, status: Literal["open", "closed"] | None = None, queue: str | None = None,
        assignee: str | None = None, breached: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        ctx = ready()
        mine = await scope(who, ctx)
        query = TicketQuery(status=status, queue=queue, assignee=assignee, breached=breached,
                            agent=mine.agent if mine else None,
                            agent_queues=mine.agent_queues if mine else (),
                            limit=limit, offset=offset)
        rows = await in_store(ctx.customers, lambda store: tickets(store).list(query))
        return [public_ticket(r) for r in rows]

    @router.post("", status_code=201)
    async def open_ticket(body: TicketBody, who: Who) -> dict[str, Any]:
        ctx = ready()
        if not who.supervisor and body.assignee not in (None, who.agent_id):
            raise HTTPException(403, "an agent may open tickets for themself or the queue only")
        phone, key = customer(ctx, body.phone)
        creator = "supervisor" if who.supervisor else f"agent:{who.agent_id}"
        row, created = await create(ctx, NewTicket(
            subject=body.subject, body=body.body, source="agent", channel="desk",
            queue=body.queue, priority=body.priority, phone=phone, customer_key=key,
            email=body.email, call_uuid=body.call_uuid, emotion=body.emotion,
            assignee=body.assignee, fields=body.fields, created_by=creator,
            idempotency_key=f"{creator}:{body.idempotency_key}" if body.idempotency_key
            else None))
        return {**public_ticket(row), "created": created}

    @router.get("/{ticket_id}")
    async def get_ticket(ticket_id: str, who: Who) -> dict[str, Any]:
        ctx = ready()
        mine = await scope(who, ctx)
        row = await in_store(ctx.customers, lambda store: tickets(store).get(ticket_id, mine))
        if row is None:
            raise HTTPException(404, "no such ticket")
        return public_ticket(row)

    @router.post("/{ticket_id}/assign")
    async def assign(ticket_id: str, body: AssignBody, who: Who) -> dict[str, Any]:
        ctx = ready()
        mine = await scope(who, ctx)
        if mine is not None and body.agent_id != who.agent_id:
            raise HTTPException(403, "an agent may only take a ticket for themself")
        return await guarded(lambda store: tickets(store).assign(ticket_id, body.agent_id, mine))

    @router.post("/{ticket_id}/respond")
    async def respond(ticket_id: str, who: Who) -> dict[str, Any]:
        mine = await scope(who, ready())
        return await guarded(lambda store: tickets(store).respond(ticket_id, mine))

    @router.post("/{ticket_id}/close")
    async def close(ticket_id: str, body: CloseBody, who: Who) -> dict[str, Any]:
        mine = await scope(who, ready())
        return await guarded(lambda store: tickets(store).close(ticket_id, body.resolution, mine))

    return router
