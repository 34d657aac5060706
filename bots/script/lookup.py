"""Lookups a script makes: a registered Python function or an HTTP service, each with a
timeout. A lookup never raises into the conversation: every failure becomes a
`LookupResult` with an error code the script branches on (``on_failure``/``on_not_found``)
and can read as ``lookup.error``: ``timeout``, ``not_found``, ``error`` or ``bad_result``.

Results go into the dialog state, which lives in Redis, so they must be JSON: a function
returns a mapping (or None for "not found"); a service answers with a JSON object.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["LookupFunction", "LookupResult", "call_function", "call_service"]

log = logging.getLogger("callfleet.bots.lookup")

#: ``fn(**args) -> Mapping | None`` (sync functions run in a worker thread)
LookupFunction = Callable[..., Any]


@dataclass(frozen=True)
class LookupResult:
    ok: bool
    value: dict[str, Any] | None = None
    error: str | None = None
    status: int | None = None

    def as_variable(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error, "status": self.status}


def _json_object(value: Any) -> dict[str, Any] | None:
    """A JSON-clean copy of a mapping, or None when it cannot be stored."""
    if not isinstance(value, Mapping):
        return None
    try:
        return json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError):
        return None


async def call_function(name: str, fn: LookupFunction, args: Mapping[str, Any],
                        timeout_s: float) -> LookupResult:
    """Run a registered function with a deadline (a sync one in a thread: a slow one is
    abandoned at the deadline, its thread finishes in the background)."""
    try:
        if inspect.iscoroutinefunction(fn):
            value = await asyncio.wait_for(fn(**args), timeout_s)
        else:
            value = await asyncio.wait_for(asyncio.to_thread(fn, **args), timeout_s)
    except (TimeoutError, asyncio.TimeoutError):
        log.warning("lookup %s timed out after %.1fs", name, timeout_s)
        return LookupResult(False, error="timeout")
    except Exception as exc:  # a failing function takes the failure branch, never the call
        log.warning("lookup %s failed: %s", name, type(exc).__name__)
        return LookupResult(False, error="error")
    if value is None:
        return LookupResult(False, error="not_found")
    clean = _json_object(value)
    if clean is None:
        log.warning("lookup %s returned %s, not a JSON object", name, type(value).__name__)
        return LookupResult(False, error="bad_result")
    return LookupResult(True, clean)


async def call_service(client: httpx.AsyncClient, service: str, url: str, method: str,
                       body: Mapping[str, Any] | None, timeout_s: float) -> LookupResult:
    """One HTTP request with a deadline; 2xx + JSON object = ok, 404 = not found."""
    try:
        response = await asyncio.wait_for(
            client.request(method, url, json=dict(body) if body is not None else None,
                           timeout=timeout_s),
            timeout_s)
    except (TimeoutError, asyncio.TimeoutError, httpx.TimeoutException):
        log.warning("lookup on service %s timed out after %.1fs", service, timeout_s)
        return LookupResult(False, error="timeout")
    except httpx.HTTPError as exc:
        log.warning("lookup on service %s failed: %s", service, type(exc).__name__)
        return LookupResult(False, error="error")
    if response.status_code == 404:
        return LookupResult(False, error="not_found", status=404)
    if not response.is_success:
        log.warning("lookup on service %s answered HTTP %s", service, response.status_code)
        return LookupResult(False, error="error", status=response.status_code)
    try:
        clean = _json_object(response.json())
    except ValueError:
        clean = None
    if clean is None:
        log.warning("lookup on service %s did not answer with a JSON object", service)
        return LookupResult(False, error="bad_result", status=response.status_code)
    return LookupResult(True, clean, status=response.status_code)
