"""The customer profile REST API (supervisor key): ``/customers/{number}``.

    GET /customers/{number}    the profile (number masked), its history (calls, tickets,
                               orders, last contact)
    PUT /customers/{number}    create or replace it: {tier, name, language, attributes}

The number is normalised to E.164 (``customers.default_country`` for national numbers)
and filed under its keyed hash; it never appears in a response or an error in full. A
write also refreshes the Redis cache the call path reads (`cluster.records.customers`).

(No `from __future__ import annotations`: FastAPI must see the annotations as objects.)
"""

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from cluster.dialer.customers import CustomerKeyer, CustomerProfile
from cluster.dialer.phone import PhoneNumberError
from cluster.records.customers import RedisCustomerCache
from cluster.store import StoreUnavailable, mask_number
from cluster.store.customers import CustomerStore, cache_doc
from cluster.store.export import jsonable
from configs.tickets import CustomersSettings
from deployments.api.records import RecordsAccess

__all__ = ["CustomerAccess", "build_customers_router", "in_store"]


@dataclass
class CustomerAccess:
    """What the customer and ticket routes share: the store, the profile key, the cache."""

    records: RecordsAccess
    settings: CustomersSettings
    cache: RedisCustomerCache | None = None

    def keyer(self) -> CustomerKeyer:
        if self.settings.secret is None:
            raise HTTPException(503, "customer profiles need customers.secret")
        return CustomerKeyer(self.settings.secret, self.settings.default_country)

    def number(self, raw: str) -> tuple[str, str]:
        """(E.164, key) of `raw`; 422 when it is not a phone number (not echoed)."""
        keyer = self.keyer()
        try:
            number = keyer.number(raw)
        except PhoneNumberError as exc:
            raise HTTPException(422, f"not a phone number: {exc}") from None
        return number, keyer.key(number)


async def in_store(access: CustomerAccess | None, work: Callable[[Any], Any]) -> Any:
    """Run `work(record_store)` in a thread; 503 while the database is down."""
    if access is None:
        raise HTTPException(503, "API not ready")
    try:
        return await asyncio.to_thread(lambda: work(access.records.store()))
    except StoreUnavailable as exc:
        raise HTTPException(503, "the records database is unavailable; try again later",
                            headers={"Retry-After": "5"}) from exc


def public_profile(row: dict[str, Any] | None, history: dict[str, Any], masked: str
                   ) -> dict[str, Any]:
    doc = {k: v for k, v in (row or {}).items() if k != "key"}
    doc["phone_masked"] = masked
    return {**jsonable(doc), "known": row is not None, "history": jsonable(history)}


def build_customers_router(api_key: Callable[[], SecretStr | None],
                           access: Callable[[], CustomerAccess | None]) -> APIRouter:
    router = APIRouter(prefix="/customers", tags=["customers"])
    bearer = HTTPBearer(auto_error=False)

    async def supervisor(
            cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        key = api_key()
        if key is None:
            raise HTTPException(503, "customer profiles need the supervisor key: set api.api_key")
        if cred is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(cred.credentials.encode(), key.get_secret_value().encode()):
            raise HTTPException(403, "customer profiles are open to the supervisor key only")

    Supervisor = Annotated[None, Depends(supervisor)]

    def ready() -> CustomerAccess:
        found = access()
        if found is None:
            raise HTTPException(503, "API not ready")
        return found

    @router.get("/{number}")
    async def get_customer(number: str, _: Supervisor) -> dict[str, Any]:
        ctx = ready()
        e164, key = ctx.number(number)

        def work(store) -> dict[str, Any]:
            customers = CustomerStore(store)
            row = customers.get(key)
            return public_profile(row, customers.history(key, e164, row), mask_number(e164))

        return await in_store(ctx, work)

    @router.put("/{number}")
    async def put_customer(number: str, body: CustomerProfile, _: Supervisor) -> dict[str, Any]:
        ctx = ready()
        e164, key = ctx.number(number)
        body = body.model_copy(update={"tier": body.tier.lower() if body.tier else None})
        problems = body.problems()
        if problems:
            raise HTTPException(422, [{"field": f, "message": m} for f, m in problems])

        def work(store) -> tuple[dict[str, Any], dict[str, Any]]:
            customers = CustomerStore(store)
            customers.put_many({key: {**body.model_dump(), "phone_masked": mask_number(e164)}},
                               source="api")
            row = customers.get(key)
            return row, customers.history(key, e164, row)

        row, history = await in_store(ctx, work)
        if ctx.cache is not None:
            await ctx.cache.put(key, cache_doc(row, history))
        return public_profile(row, history, mask_number(e164))

    return router
