"""The campaign REST API: what a CRM, a supervisor console or a script uses to run
outbound campaigns. Routes under ``/campaigns``:

    POST   /campaigns                       create (JSON campaign; identical repeat = 200)
    PUT    /campaigns/{id}                  replace its settings (pacing, schedule, ...)
    GET    /campaigns                       status of every campaign
    GET    /campaigns/{id}                  status of one
    POST   /campaigns/{id}/{action}         start | pause | resume | stop (idempotent)
    POST   /campaigns/{id}/leads            import leads: the CSV file as the request body
                                            (Content-Type text/csv); report per bad row
    GET    /campaigns/{id}/records          compliance records (?since=&until= unix or ISO,
                                            &format=json|csv)
    POST   /campaigns/dnc                   add numbers to the global do-not-call list
    POST   /campaigns/{id}/dnc              ... or to one campaign's

Every request needs ``Authorization: Bearer <token>`` with `DialerSettings.api_token`
(compared in constant time, never logged); without a configured token every request is
refused. Lead import takes an ``Idempotency-Key`` header: a retried upload with the same
key returns the first report and adds nothing (re-importing a file adds nothing anyway,
as known numbers are skipped). The CSV is sent as the raw body rather than a multipart
form, so the API needs no form-parsing dependency:
``curl -H 'Content-Type: text/csv' --data-binary @leads.csv``.

(No `from __future__ import annotations`: FastAPI must see the annotations as objects.)
"""

import asyncio
import csv
import hmac
import io
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from cluster.dialer import (
    CampaignConfig,
    CampaignExists,
    CampaignNotFound,
    DialerSettings,
    DialerStore,
    InvalidTransition,
    LeadFileError,
    parse_leads_csv,
)
from cluster.dialer.phone import PhoneNumberError, normalise_e164
from cluster.dialer.store import RequestInProgress

__all__ = ["DncRequest", "build_campaigns_router"]

log = logging.getLogger("callfleet.api.campaigns")

# who a do-not-call change made through this API is recorded as (one shared token)
_API_ACTOR = "campaign-api-token"

RECORD_COLUMNS = ("attempt_id", "lead_id", "attempt", "call_uuid", "started_at", "ended_at",
                  "result", "cause", "answered", "abandoned", "ring_s", "gateway", "handle_s",
                  "hangup_cause", "escalated")


class DncRequest(BaseModel):
    """Numbers for a do-not-call list; numbers without +code use `country`."""

    model_config = ConfigDict(extra="forbid")

    numbers: list[str] = Field(min_length=1, max_length=10_000)
    country: str = "US"
    reason: str = Field("", max_length=500, description="why, for the compliance ledger")


def build_campaigns_router(store: Callable[[], DialerStore],
                           settings: DialerSettings | Callable[[], DialerSettings] | None = None,
                           scorer: Callable[[], Any] | None = None) -> APIRouter:
    """The ``/campaigns`` routes. `store` is called per request (the ingress owns the
    `DialerStore`, one per replica event loop); `settings` may be a provider too (a Serve
    ingress declares its routes before its replica has read the settings)."""
    fixed = settings or DialerSettings()
    current: Callable[[], DialerSettings] = fixed if callable(fixed) else (lambda: fixed)
    bearer = HTTPBearer(auto_error=False)

    async def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        token = current().api_token
        expected = token.get_secret_value() if token else ""
        given = credentials.credentials if credentials else ""
        if not expected:
            raise HTTPException(503, "the campaign API has no token configured "
                                     "(dialer.api_token); it refuses every request")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/campaigns", tags=["campaigns"],
                       dependencies=[Depends(authorised)])

    async def guarded(work: Callable[[DialerStore], Awaitable[Any]]) -> Any:
        try:
            return await work(store())
        except CampaignNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except (CampaignExists, InvalidTransition, RequestInProgress) as exc:
            raise HTTPException(409, str(exc)) from None
        except (LeadFileError, PhoneNumberError) as exc:
            raise HTTPException(422, str(exc)) from None
        except RedisError as exc:
            log.warning("campaign API: Redis unavailable: %s", type(exc).__name__)
            raise HTTPException(503, "campaign store (Redis) unavailable; retry") from None

    @router.post("", status_code=201)
    async def create(config: CampaignConfig, response: Response) -> dict[str, Any]:
        created = await guarded(lambda s: s.create_campaign(config))
        if not created:
            response.status_code = 200
        return {"id": config.id, "created": created}

    @router.put("/{campaign_id}")
    async def update(campaign_id: str, config: CampaignConfig) -> dict[str, Any]:
        if config.id != campaign_id:
            raise HTTPException(422, f"body id {config.id!r} does not match the URL's {campaign_id!r}")
        await guarded(lambda s: s.update_campaign(config))
        return {"id": config.id, "updated": True}

    @router.get("")
    async def list_campaigns() -> list[dict[str, Any]]:
        async def work(s: DialerStore) -> list[dict[str, Any]]:
            return [await s.status(cid) for cid in await s.campaign_ids()]

        return await guarded(work)

    @router.post("/dnc")
    async def global_dnc(body: DncRequest) -> dict[str, Any]:
        numbers = _numbers(body)
        added = await guarded(lambda s: s.add_dnc(numbers, actor=_API_ACTOR, reason=body.reason,
                                                  source="api"))
        return {"scope": "global", "added": added}

    @router.get("/{campaign_id}")
    async def status(campaign_id: str) -> dict[str, Any]:
        return await guarded(lambda s: s.status(campaign_id))

    @router.post("/{campaign_id}/dnc")
    async def campaign_dnc(campaign_id: str, body: DncRequest) -> dict[str, Any]:
        numbers = _numbers(body)

        async def work(s: DialerStore) -> int:
            await s.get_campaign(campaign_id)
            return await s.add_dnc(numbers, campaign_id, actor=_API_ACTOR, reason=body.reason,
                                   source="api")

        return {"scope": campaign_id, "added": await guarded(work)}

    @router.post("/{campaign_id}/leads")
    async def import_leads(
        campaign_id: str, request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        text = await _read_csv_body(request, current().max_upload_bytes)

        async def work(s: DialerStore) -> dict[str, Any]:
            config, _ = await s.get_campaign(campaign_id)

            async def do_import() -> dict[str, Any]:
                known = await s.known_phones(campaign_id)
                report = await asyncio.to_thread(  # a big file takes a while: off the loop
                    parse_leads_csv, text, config.default_country, config.default_timezone, known)
                chance = await asyncio.to_thread(scorer) if scorer else None
                added, clashes = await s.add_leads(campaign_id, report.leads, chance)
                return {**report.summary(), "added": added, "id_clashes": clashes,
                        "errors": [e.model_dump() for e in report.errors],
                        "duplicate_rows": report.duplicate_rows}

            return await s.once(f"import:{campaign_id}", idempotency_key, do_import)

        return await guarded(work)

    @router.get("/{campaign_id}/records")
    async def records(
        campaign_id: str,
        since: Annotated[str | None, Query(description="unix seconds or ISO date/time")] = None,
        until: Annotated[str | None, Query(description="unix seconds or ISO date/time")] = None,
        limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Any:
        start, end = _moment(since, "since"), _moment(until, "until")

        async def work(s: DialerStore):
            await s.get_campaign(campaign_id)
            return await s.records(campaign_id, start, end, limit)

        found = await guarded(work)
        if format == "json":
            return [r.model_dump(mode="json") for r in found]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(RECORD_COLUMNS)
        for r in found:
            doc = r.model_dump(mode="json")
            writer.writerow(["" if doc[c] is None else doc[c] for c in RECORD_COLUMNS])
        return Response(buffer.getvalue(), media_type="text/csv")

    @router.post("/{campaign_id}/{action}")
    async def lifecycle(campaign_id: str, action: str) -> dict[str, Any]:
        if action not in ("start", "pause", "resume", "stop"):
            raise HTTPException(404, f"unknown action {action!r}; use start, pause, resume or stop")
        state = await guarded(lambda s: s.transition(campaign_id, action))
        return {"id": campaign_id, "state": state.value}

    return router


def _numbers(body: DncRequest) -> list[str]:
    try:
        return [normalise_e164(n, body.country) for n in body.numbers]
    except PhoneNumberError as exc:
        raise HTTPException(422, f"invalid number in the list: {exc}") from None


def _moment(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name} must be unix seconds or an ISO date/time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


async def _read_csv_body(request: Request, limit: int) -> str:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("text/csv", "text/plain", "application/csv", "application/octet-stream"):
        raise HTTPException(415, "send the lead file as the request body with "
                                 "Content-Type: text/csv")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"lead file larger than {limit} bytes; split it")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(415, "the lead file is not UTF-8 text") from None
