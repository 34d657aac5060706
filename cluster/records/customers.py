"""Customer profiles as the call path sees them: filed under a keyed hash of the number,
cached in Redis so that admitting a call reads Redis only, never SQL.

The key is HMAC-SHA256(``customers.secret``, normalised E.164 number), hex: the number
itself is never a key, in SQL or in Redis, and cannot be recovered from one without the
secret. The profile (tier, name, language, attributes, a summary of the history) is
written to ``cf:customer:<key>`` whenever it is imported or changed
(`cluster.store.customers`), with ``customers.cache_ttl_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

__all__ = ["CUSTOMER_PREFIX", "RedisCustomerCache", "customer_key"]

log = logging.getLogger("callfleet.records.customers")

CUSTOMER_PREFIX = "cf:customer:"


def customer_key(secret: str | bytes | SecretStr, e164: str) -> str:
    """The profile key of a normalised E.164 number (64 hex characters)."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ValueError("customer profiles need a key (customers.secret)")
    return hmac.new(raw, e164.encode(), hashlib.sha256).hexdigest()


class RedisCustomerCache:
    """``cf:customer:<key>`` → the profile as JSON (what the bot and the router see)."""

    def __init__(self, redis: aioredis.Redis, ttl_s: int = 30 * 86_400):
        self.redis = redis
        self.ttl_s = ttl_s

    async def put(self, key: str, profile: Mapping[str, Any]) -> None:
        await self.redis.set(CUSTOMER_PREFIX + key, json.dumps(dict(profile), default=str),
                             ex=self.ttl_s)

    async def put_many(self, profiles: Mapping[str, Mapping[str, Any]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key, profile in profiles.items():
            pipe.set(CUSTOMER_PREFIX + key, json.dumps(dict(profile), default=str), ex=self.ttl_s)
        await pipe.execute()

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.get(CUSTOMER_PREFIX + key)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            log.warning("customer cache entry is not JSON; ignored")
            return None
        return doc if isinstance(doc, dict) else None

    async def delete(self, key: str) -> None:
        await self.redis.delete(CUSTOMER_PREFIX + key)
