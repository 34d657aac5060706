"""The demo order service the shipped inbound bot looks orders up in.

A tiny, fixed set of orders (ids a letter and four digits, as callers read them out) so a
demo call, `callfleet bot chat` and the tests have something real to talk to:

* HTTP: `create_app()` is a FastAPI app with ``GET /orders/{order_id}`` (404 when the
  order does not exist) and ``GET /healthz``; `serve()` runs it with uvicorn
  (``callfleet bot orders``). The inbound script's ``orders`` service points at it.
* In process: `find_order(order_id)` is the same data as a registered lookup function
  (``functions={"find_order": find_order}``), and `asgi_client()` gives an httpx client
  that talks to the app without a socket (chat and tests).

Demo data only: no real customers, nothing is ever written.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException

__all__ = ["DEMO_ORDERS", "asgi_client", "create_app", "find_order", "serve"]

log = logging.getLogger("callfleet.bots.demo_orders")

DEFAULT_PORT = 8765
_ID = re.compile(r"^[A-Za-z][0-9]{4}\Z")  # ASCII digits; \Z, not "$" (a trailing newline)

DEMO_ORDERS: dict[str, dict[str, Any]] = {
    "A1001": {"status": "shipped", "item": "trail running shoes", "carrier": "ParcelFleet",
              "eta": "Thursday", "status_text": "has shipped with ParcelFleet and should arrive on Thursday",
              "can_change_address": False, "can_cancel": False, "refundable": False},
    "A1002": {"status": "processing", "item": "blue wool sweater", "carrier": None,
              "eta": "next Monday", "status_text": "is being packed and should arrive next Monday",
              "can_change_address": True, "can_cancel": True, "refundable": False},
    "A1003": {"status": "delivered", "item": "coffee grinder", "carrier": "ParcelFleet",
              "eta": None, "status_text": "was delivered yesterday and signed for at the front door",
              "can_change_address": False, "can_cancel": False, "refundable": True},
    "A1004": {"status": "cancelled", "item": "garden hose", "carrier": None, "eta": None,
              "status_text": "was cancelled, and the refund has gone back to your card",
              "can_change_address": False, "can_cancel": False, "refundable": False},
    "A1005": {"status": "out for delivery", "item": "desk lamp", "carrier": "QuickVan",
              "eta": "today", "status_text": "is out for delivery with QuickVan and should arrive today before six",
              "can_change_address": False, "can_cancel": False, "refundable": False},
    "A1006": {"status": "delayed", "item": "winter jacket", "carrier": "ParcelFleet",
              "eta": "next week", "status_text": "is delayed at the carrier's depot; the new estimate is next week",
              "can_change_address": True, "can_cancel": True, "refundable": False},
}


def find_order(order_id: str) -> dict[str, Any] | None:
    """The order as the HTTP service returns it, or None when there is no such order."""
    key = str(order_id or "").strip().upper()
    if not _ID.match(key) or key not in DEMO_ORDERS:
        return None
    return {"id": key, **copy.deepcopy(DEMO_ORDERS[key])}


def create_app(delay_s: float = 0.0):
    """The FastAPI app; `delay_s` slows every order answer (to demo lookup timeouts)."""

    app = FastAPI(title="CallFleet demo order service", version="1")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "orders": len(DEMO_ORDERS)}

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, Any]:
        if delay_s:
            await asyncio.sleep(delay_s)
        order = find_order(order_id)
        if order is None:
            raise HTTPException(status_code=404, detail="no such order")
        return order

    return app


def asgi_client(delay_s: float = 0.0, base_url: str = "http://orders.demo") -> httpx.AsyncClient:
    """An httpx client wired straight to the app (no socket, no server process)."""
    transport = httpx.ASGITransport(app=create_app(delay_s))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, delay_s: float = 0.0) -> None:
    """Run the service in the foreground until interrupted."""

    log.info("demo order service on http://%s:%s", host, port)
    uvicorn.run(create_app(delay_s), host=host, port=port, log_level="warning")
