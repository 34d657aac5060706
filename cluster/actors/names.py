"""Names of the floor's detached actors, and looking one up without blocking."""

from __future__ import annotations

import asyncio

__all__ = ["NAMESPACE", "RECORD_WRITER_NAME", "ROUTER_NAME", "lookup"]

NAMESPACE = "callfleet"
ROUTER_NAME = "callfleet-router"
RECORD_WRITER_NAME = "callfleet-record-writer"


async def lookup(name: str):
    """The named actor, or None; the lookup is a blocking GCS call, so it runs in a thread
    (these hooks run on the controller actor's event loop)."""
    import ray  # a Ray driver: only inside actors, never for unit-tested callers

    def lookup():
        try:
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return None

    return await asyncio.to_thread(lookup)
