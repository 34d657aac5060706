"""The REST API ingress (Serve application ``callfleet-api`` at ``/api``): agents and
their feed, campaigns and leads, knowledge-base search, and the two browser screens —
the agent desk (``/api/desk``) and the supervisor wallboard (``/api/wallboard``;
`deployments.api.desk`). The media gateway, which owns ``/`` on the Serve port, redirects
``/desk`` and ``/wallboard`` here.

Stateless like the media gateway: agents, offers and campaigns live in Redis; accepting
an offer transfers the call through the ESL controller actor. Offers themselves are made
by the one dispatching router (`cluster.actors.floor.RouterService`); this replica's router only
changes state (``dispatch=False``).

(No `from __future__ import annotations`: FastAPI must see real annotations through
Serve's class-based ingress.)
"""

import asyncio
import secrets
from pathlib import Path
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve

from bots.kb import KnowledgeBase
from cluster.actors.esl import RemoteCallControl, get_controller
from cluster.dialer.scoring import registered_scorer
from cluster.dialer.store import DialerStore
from cluster.records.customers import RedisCustomerCache
from cluster.routing import FeedHub, RedisFeedPublisher, RoutingStore, SkillRouter
from cluster.runtime.deploy import with_cluster_state
from configs.settings import load_settings, settings_doc
from deployments.api.agents import AgentApi, AgentApiSettings, build_agents_router
from deployments.api.campaigns import build_campaigns_router
from deployments.api.customers import CustomerAccess, build_customers_router
from deployments.api.desk import DeskView, build_desk_router
from deployments.api.records import RecordsAccess, build_records_router
from deployments.api.tickets import TicketAccess, build_tickets_router
from deployments.common import AppArgs, settings_from

app = FastAPI(title="CallFleet API", description="Agents, campaigns and knowledge base.")


class _Replica:
    """What the routes of this process use (set by the replica's constructor)."""

    agent_api: AgentApi | None = None
    dialer_store = None
    dialer_settings = None
    registry_path = None
    kb = None
    agents = None
    desk: DeskView | None = None
    records: RecordsAccess | None = None
    customers: CustomerAccess | None = None
    tickets: TicketAccess | None = None


def _dialer_store():
    if _Replica.dialer_store is None:
        raise HTTPException(503, "API not ready")
    return _Replica.dialer_store


_bearer = HTTPBearer(auto_error=False)


async def _any_user(
        cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """Knowledge-base search: any agent token or the supervisor key."""
    api = _Replica.agent_api
    if api is None:
        raise HTTPException(503, "API not ready")
    if cred is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    key = api.settings.api_key.get_secret_value() if api.settings.api_key else None

    if key and secrets.compare_digest(cred.credentials.encode(), key.encode()):
        return "supervisor"
    agent = await api.service.authenticate(cred.credentials)
    if agent is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return agent


def _dialer_settings():
    if _Replica.dialer_settings is None:
        raise HTTPException(503, "API not ready")
    return _Replica.dialer_settings


app.include_router(build_agents_router(lambda: _Replica.agent_api))
def _lead_scorer():
    """The registered conversion model orders imported leads (None: by tags only)."""

    return registered_scorer(_Replica.registry_path)


app.include_router(build_campaigns_router(_dialer_store, _dialer_settings, _lead_scorer))
app.include_router(build_desk_router(lambda: _Replica.desk))
app.include_router(build_records_router(  # /api/records: the durable store, supervisor key
    lambda: _Replica.agent_api.settings.api_key if _Replica.agent_api else None,
    lambda: _Replica.records))
app.include_router(build_tickets_router(lambda: _Replica.tickets))  # agents, supervisor, intake
app.include_router(build_customers_router(  # profiles: supervisor key
    lambda: _Replica.agent_api.settings.api_key if _Replica.agent_api else None,
    lambda: _Replica.customers))


@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok" if _Replica.agent_api is not None else "starting"}


@app.get("/kb/search")
async def kb_search(q: Annotated[str, Query(min_length=1, max_length=500)],
                    _user: Annotated[str, Depends(_any_user)],
                    top: Annotated[int, Query(ge=1, le=20)] = 3) -> list[dict[str, Any]]:
    if _Replica.kb is None:
        raise HTTPException(503, "knowledge base unavailable")
    hits = await asyncio.to_thread(_Replica.kb.search, q, top)
    return [h.model_dump(mode="json") for h in hits]


@serve.deployment(name="api", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class ApiIngress:
    def __init__(self, settings: dict[str, Any]):

        cfg = settings_from(settings)
        store = RoutingStore(cfg.redis_url)
        control = RemoteCallControl(get_controller(cfg.freeswitch, cfg.redis_url))
        router = SkillRouter(store, control, cfg.routing, sinks=[RedisFeedPublisher(store)],
                             dispatch=False)
        api_settings = AgentApiSettings(
            api_key=cfg.api.api_key, feed_auth_timeout_s=cfg.api.feed_auth_timeout_s,
            feed_ping_s=cfg.api.feed_ping_s)
        _Replica.agent_api = AgentApi(router, api_settings, FeedHub(cfg.redis_url))
        _Replica.dialer_store = DialerStore(cfg.redis_url)
        try:
            _Replica.kb = KnowledgeBase.load(cfg.kb.model_copy(update={"mode": "bm25"}),
                                             state_dir=cfg.state_dir)
        except Exception:
            _Replica.kb = None
        _Replica.dialer_settings = cfg.dialer
        _Replica.registry_path = cfg.registry_path
        _Replica.records = RecordsAccess(cfg.store_url, cfg.records.auto_migrate)
        _Replica.customers = CustomerAccess(_Replica.records, cfg.customers, RedisCustomerCache(
            aioredis.from_url(cfg.redis_url, socket_timeout=5, socket_connect_timeout=5),
            cfg.customers.cache_ttl_s))
        _Replica.tickets = TicketAccess(_Replica.agent_api, _Replica.customers, cfg.tickets)
        _Replica.desk = DeskView(
            agents=_Replica.agent_api, router=router,
            redis=aioredis.from_url(cfg.redis_url, decode_responses=True, socket_timeout=5,
                                    socket_connect_timeout=5),
            supervision=control, dialer=_Replica.dialer_store, kb=_Replica.kb,
            registry_path=Path(cfg.registry_path) if cfg.registry_path else None)

    async def check_health(self) -> None:
        if _Replica.agent_api is None:
            raise RuntimeError("API not initialised")


def build_api_app(settings_doc: dict[str, Any]):
    return ApiIngress.bind(settings_doc)


def api_builder(args: dict[str, Any]):
    """Serve config entry point (configs/serve.yaml): same arguments as the main app's."""

    parsed = AppArgs.model_validate(args)
    settings = with_cluster_state(load_settings(parsed.config, **parsed.overrides))
    return build_api_app(settings_doc(settings))
