"""The records REST API: calls, their turns and the compliance ledger from the durable
store, for supervisors, auditors and the tools they use. Routes under ``/records``:

    GET /records/calls                     calls, newest first (?campaign=&agent=&direction=
                                           &since=&until=&limit=&offset=)
    GET /records/calls/export              the same calls as a file (?format=csv|parquet,
                                           &turns=true for one row per turn)
    GET /records/calls/{call_uuid}         one call with its turns and dial attempts
    GET /records/compliance/{campaign_id}  abandonment over 24 h and 30 days, calling-window
                                           decisions, do-not-call changes (?at=)
    GET /records/dnc                       do-not-call changes: who, when, why (?phone=
                                           &scope=&since=&limit=)

Only the supervisor key (``api.api_key``) opens them: transcripts and the ledger are not
an agent's to browse (an agent token is refused), and without a configured key every
request is (503). Phone numbers are always masked here. Times are ISO 8601 (UTC when no
zone is given) or unix seconds. The store is opened on first use, so an API replica
starts while the database is still down; until it answers the routes say 503.

(No `from __future__ import annotations`: FastAPI must see the annotations as objects.)
"""

import asyncio
import hmac
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.background import BackgroundTask

from cluster.store import CallQuery, RecordStore, StoreUnavailable
from cluster.store.export import CALL_COLUMNS, TURN_COLUMNS, jsonable, write_csv, write_parquet
from cluster.store.models import Call, CallTurn

__all__ = ["RecordsAccess", "build_records_router"]


class RecordsAccess:
    """The replica's store, opened (and migrated, with `auto_migrate`) on first use."""

    def __init__(self, url: str, auto_migrate: bool = True):
        self.url = url
        self.auto_migrate = auto_migrate
        self._store: RecordStore | None = None
        self._lock = threading.Lock()

    def store(self) -> RecordStore:
        """Blocking (run it in a thread); raises `StoreUnavailable` while the database is
        down."""
        with self._lock:
            if self._store is None:
                self._store = RecordStore.open(self.url, auto_migrate=self.auto_migrate)
            return self._store


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(422, f"{name}: {text!r} is neither ISO 8601 nor unix seconds") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def build_records_router(api_key: Callable[[], SecretStr | None],
                         access: Callable[[], RecordsAccess | None]) -> APIRouter:
    """The ``/records`` routes. `api_key` and `access` are called per request (a Serve
    ingress declares its routes before its replica has read the settings)."""
    router = APIRouter(prefix="/records", tags=["records"])
    bearer = HTTPBearer(auto_error=False)

    async def supervisor(
            cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        key = api_key()
        if key is None:
            raise HTTPException(503, "records need the supervisor key: set api.api_key")
        if cred is None:
            raise HTTPException(401, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(cred.credentials.encode(), key.get_secret_value().encode()):
            raise HTTPException(403, "records are open to the supervisor key only")

    async def run(work: Callable[[RecordStore], Any]) -> Any:
        holder = access()
        if holder is None:
            raise HTTPException(503, "API not ready")

        def blocking() -> Any:
            return work(holder.store())

        try:
            return await asyncio.to_thread(blocking)
        except StoreUnavailable as exc:
            raise HTTPException(503, "the records database is unavailable; try again later",
                                headers={"Retry-After": "5"}) from exc

    Supervisor = Annotated[None, Depends(supervisor)]

    def calls_query(campaign: str | None, agent: str | None, direction: str | None,
                    since: str | None, until: str | None, limit: int | None,
                    offset: int = 0) -> CallQuery:
        return CallQuery(campaign=campaign, agent=agent, direction=direction,
                         since=_moment(since, "since"), until=_moment(until, "until"),
                         limit=limit, offset=offset)

    @router.get("/calls")
    async def list_calls(
        _: Supervisor,
        campaign: str | None = None, agent: str | None = None,
        direction: Literal["inbound", "outbound"] | None = None,
        since: str | None = None, until: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        query = calls_query(campaign, agent, direction, since, until, limit, offset)

        def work(store: RecordStore) -> dict[str, Any]:
            return {"total": store.count_calls(query),
                    "calls": [jsonable(r) for r in store.list_calls(query)]}

        return await run(work)

    @router.get("/calls/export")
    async def export_calls(
        _: Supervisor,
        format: Literal["csv", "parquet"] = "csv", turns: bool = False,
        campaign: str | None = None, agent: str | None = None,
        direction: Literal["inbound", "outbound"] | None = None,
        since: str | None = None, until: str | None = None,
    ) -> FileResponse:
        query = calls_query(campaign, agent, direction, since, until, None)
        fd, name = tempfile.mkstemp(prefix="callfleet-export-", suffix=f".{format}")
        os.close(fd)
        path = Path(name)

        def work(store: RecordStore) -> int:
            rows = store.iter_turns(query) if turns else store.iter_calls(query)
            columns = TURN_COLUMNS if turns else CALL_COLUMNS
            if format == "parquet":
                table = CallTurn.__table__ if turns else Call.__table__
                return write_parquet(rows, table, columns, path)
            with path.open("w", newline="") as handle:
                return write_csv(rows, columns, handle)

        try:
            count = await run(work)
        except BaseException:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise
        what = "turns" if turns else "calls"
        media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
        return FileResponse(path, media_type=media, filename=f"callfleet-{what}.{format}",
                            headers={"X-Record-Count": str(count)},
                            background=BackgroundTask(path.unlink, missing_ok=True))

    @router.get("/calls/{call_uuid}")
    async def get_call(call_uuid: str, _: Supervisor) -> dict[str, Any]:
        call = await run(lambda store: store.get_call(call_uuid))
        if call is None:
            raise HTTPException(404, f"no call {call_uuid!r} in the records")
        turns = [jsonable(t) for t in call.pop("turns")]
        attempts = [jsonable(a) for a in call.pop("attempts")]
        callbacks = [jsonable(a) for a in call.pop("callback_attempts")]
        return {**jsonable(call), "turns": turns, "attempts": attempts,
                "callback_attempts": callbacks}

    @router.get("/compliance/{campaign_id}")
    async def compliance(campaign_id: str, _: Supervisor, at: str | None = None) -> dict[str, Any]:
        moment = _moment(at, "at")
        return await run(lambda store: store.compliance(campaign_id, moment))

    @router.get("/dnc")
    async def dnc_changes(
        _: Supervisor, phone: str | None = None, scope: str | None = None,
        since: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    ) -> list[dict[str, Any]]:
        moment = _moment(since, "since")
        rows = await run(lambda store: store.dnc_changes(phone, scope, moment, limit))
        return [jsonable(r) for r in rows]

    return router
