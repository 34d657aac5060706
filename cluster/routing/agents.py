"""Agent operations of the skill router: the roster (add, update, remove, tokens) and
what an agent does (log in and out, breaks, heartbeats).

`AgentDesk` is the base of `SkillRouter`; the router supplies the routing hooks
(`_dispatch`, `_withdraw`, `_flush_overflows`) that state changes trigger.

Agent API tokens have the form ``<agent_id>:<secret>``; only their SHA-256 is stored
and the check is a constant-time comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from cluster.routing.errors import InvalidStateChangeError, UnknownAgentError, describe_error
from cluster.routing.models import AgentProfile, AgentSnapshot, AgentState
from cluster.routing.store import RoutingStore
from configs.routing import RoutingSettings

__all__ = ["AgentDesk", "hash_token", "new_token"]

log = logging.getLogger("callfleet.routing")

#: states an agent may choose; on_call and wrap_up are set by the router
AGENT_CHOSEN_STATES = (AgentState.AVAILABLE, AgentState.BREAK, AgentState.LOGGED_OUT)


def new_token(agent_id: str) -> str:
    return f"{agent_id}:{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AgentDesk:
    """Agent roster and agent actions over a `RoutingStore`."""

    def __init__(self, store: RoutingStore, settings: RoutingSettings,
                 clock: Callable[[], float]):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.sinks: list[Any] = []
        self._lock = asyncio.Lock()

    # ---- roster ------------------------------------------------------------------------

    async def add_agent(self, profile: AgentProfile) -> str:
        """Register an agent (logged out); returns their API token, which is not stored
        and cannot be shown again (see `rotate_token`)."""
        token = new_token(profile.agent_id)
        await self.store.add_agent(profile, hash_token(token), self.clock())
        log.info("agent %s added", profile.agent_id)
        return token

    async def update_agent(self, profile: AgentProfile) -> AgentSnapshot:
        await self._agent(profile.agent_id)
        await self.store.update_profile(profile)
        return await self._agent(profile.agent_id)

    async def remove_agent(self, agent_id: str) -> bool:
        async with self._lock:
            for offer_id in await self.store.agent_offer_ids(agent_id):
                await self._withdraw(offer_id, self.clock(), requeue=True)
            removed = await self.store.remove_agent(agent_id)
            if removed:
                await self._dispatch(self.clock())
        await self._flush_overflows()
        return removed

    async def rotate_token(self, agent_id: str) -> str:
        await self._agent(agent_id)
        token = new_token(agent_id)
        await self.store.set_token_hash(agent_id, hash_token(token))
        return token

    async def authenticate(self, token: str) -> str | None:
        """The agent id `token` belongs to, or None."""
        agent_id, sep, _ = token.partition(":")
        if not sep or not agent_id:
            return None
        stored = await self.store.token_hash(agent_id)
        if stored is None:
            hmac.compare_digest(hash_token(token), hash_token(""))  # same work either way
            return None
        return agent_id if hmac.compare_digest(hash_token(token), stored) else None

    async def get_agent(self, agent_id: str) -> AgentSnapshot:
        return await self._agent(agent_id)

    async def list_agents(self) -> list[AgentSnapshot]:
        return await self.store.agents()

    # ---- what an agent does ------------------------------------------------------------

    async def login(self, agent_id: str) -> AgentSnapshot:
        """Start taking calls: available (or on-call when calls are still connected)."""
        return await self.set_state(agent_id, AgentState.AVAILABLE)

    async def logout(self, agent_id: str) -> AgentSnapshot:
        return await self.set_state(agent_id, AgentState.LOGGED_OUT)

    async def set_state(self, agent_id: str, state: AgentState | str) -> AgentSnapshot:
        """Change what the agent is doing. Going on break or logging out takes back
        pending offers (their calls go to other agents, without counting as no-answer)."""
        state = AgentState(state)
        if state not in AGENT_CHOSEN_STATES:
            raise InvalidStateChangeError(
                f"agents cannot set state {state.value!r} (the router sets it); choose one of "
                + ", ".join(s.value for s in AGENT_CHOSEN_STATES))
        async with self._lock:
            now = self.clock()
            agent = await self._agent(agent_id)
            if state is AgentState.AVAILABLE:
                await self.store.heartbeat(agent_id, self.settings.heartbeat_ttl_s)
                if agent.calls:
                    state = AgentState.ON_CALL
            else:
                for offer_id in await self.store.agent_offer_ids(agent_id):
                    await self._withdraw(offer_id, now, requeue=True)
                if state is AgentState.LOGGED_OUT:
                    await self.store.clear_heartbeat(agent_id)
            if state is not agent.state:
                await self._set_state(agent_id, state, now)
            await self._dispatch(now)
            snapshot = await self._agent(agent_id)
        await self._flush_overflows()
        return snapshot

    async def heartbeat(self, agent_id: str) -> AgentSnapshot:
        """The agent's UI is alive. A heartbeat does not log an agent in."""
        agent = await self._agent(agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            await self.store.heartbeat(agent_id, self.settings.heartbeat_ttl_s)
            agent = agent.model_copy(update={"online": True})
        return agent

    # ---- helpers for the router (lock held) --------------------------------------------

    async def _agent(self, agent_id: str) -> AgentSnapshot:
        agent = await self.store.get_agent(agent_id)
        if agent is None:
            raise UnknownAgentError(agent_id)
        return agent

    async def _set_state(self, agent_id: str, state: AgentState, now: float) -> None:
        fields: dict[str, Any] = {"state": state, "state_since": now}
        if state is AgentState.AVAILABLE:
            fields["idle_since"] = now
        if state is AgentState.WRAP_UP:
            fields["wrap_up_until"] = now + self.settings.wrap_up_s
        await self.store.set_agent_fields(agent_id, **fields)
        await self._emit({"type": "agent_state", "agent_id": agent_id, "state": state.value})

    async def _release_call(self, agent_id: str, call_uuid: str, now: float,
                            wrap_up: bool = True) -> None:
        """The agent's part in a call is over: wrap-up (or available) once no call is left."""
        await self.store.remove_call(agent_id, call_uuid)
        agent = await self.store.get_agent(agent_id)
        if agent is None or agent.calls or agent.state is not AgentState.ON_CALL:
            return
        if wrap_up and self.settings.wrap_up_s > 0:
            await self._set_state(agent_id, AgentState.WRAP_UP, now)
        else:
            await self._set_state(agent_id, AgentState.AVAILABLE, now)

    async def _emit(self, event: dict[str, Any]) -> None:
        for sink in self.sinks:
            try:
                await sink.publish(event)
            except Exception as exc:  # a broken sink must not stop routing
                log.warning("event sink %s failed on %s: %s", type(sink).__name__,
                            event.get("type"), describe_error(exc))

    # ---- routing hooks (SkillRouter implements them) ------------------------------------

    async def _dispatch(self, now: float) -> list[Any]:
        raise NotImplementedError

    async def _withdraw(self, offer_id: str, now: float, requeue: bool,
                        reason: str | None = None) -> None:
        raise NotImplementedError

    async def _flush_overflows(self) -> None:
        raise NotImplementedError
