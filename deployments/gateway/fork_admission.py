"""Who may open a media fork on this gateway replica, and what the call is.

A fork is admitted only when (in this order): the replica has room (`max_forks`, else 1013
try again later); its credential is valid for its call id and not expired
(telephony/fork_auth.py), or it has none and this is a loopback-only local cluster; the
call is live in CallFleet's records (the ESL controller's ``cf:esl:<uuid>``: answered, with
the bot, or waiting for a person; not ringing, with an agent or ended); and no other fork
of the call is open (a lease in Redis, ``cf:fork:<uuid>``). A re-fork after a lost socket
(same call id, fresh credential) is admitted and resumes the call: the controller starts
it only after FreeSWITCH reported the old fork's websocket gone, and numbers it
(``CallRecord.forks``), so it takes over a lease an older fork still holds (its replica
died without giving it back) while a second fork of the same number is still refused.

What the call *is* — direction, numbers, bot, campaign, lead, the customer (from the
dialer's lead record, the customer's profile in the Redis cache, and
``callfleet_customer_<field>`` channel variables) — comes from
those records, never from the fork: the fork's metadata contributes only its call id,
credential and audio parameters (sample rate, playback mode, mix type). A refusal's
reason names no credential, number or customer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from cluster.records.call_state import DirectoryUnavailable, LiveCall
from telephony import media_fork
from telephony.fork_auth import CREDENTIAL_FIELD, CredentialRefused, ForkCredentials
from telephony.media_fork import ForkMetadata

__all__ = ["CLOSE_TRY_AGAIN", "Admitted", "CallDirectory", "ForkAdmission", "ForkRefused"]

log = logging.getLogger("callfleet.media")

CLOSE_TRY_AGAIN = 1013  # RFC 6455 registry: "Try Again Later"
LEASE_S = 30  # a fork's lease on its call; renewed every LEASE_S / 3 while it is open
CUSTOMER_VARIABLE = "callfleet_customer_"  # channel variables that add customer fields


class ForkRefused(Exception):
    """This fork may not run; `code` and `reason` go on the wire (and to the log)."""

    def __init__(self, reason: str, code: int = media_fork.CLOSE_POLICY):
        super().__init__(reason)
        self.reason, self.code = reason[:120], code


class CallDirectory(Protocol):
    """CallFleet's records of live calls, and the one-fork-per-call lease
    (`cluster.records.call_state.RedisCallDirectory`). Raises DirectoryUnavailable."""

    async def lookup(self, call_uuid: str) -> LiveCall | None: ...
    async def fork_seen(self, call_uuid: str) -> bool: ...
    async def attach(self, call_uuid: str, owner: str, ttl_s: int,
                     generation: int = 0) -> bool: ...
    async def refresh(self, call_uuid: str, owner: str, ttl_s: int) -> bool: ...
    async def detach(self, call_uuid: str, owner: str) -> None: ...


class LeadBook(Protocol):
    """The dialer's leads (`cluster.dialer.store.DialerStore`)."""

    async def get_lead(self, campaign_id: str, lead_id: str) -> Any: ...


class CustomerProfiles(Protocol):
    """Customer profiles by number, from Redis only (`cluster.dialer.customers.ProfileLookup`)."""

    async def variables(self, raw_number: str | None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Admitted:
    """A fork let in: the call's metadata as CallFleet knows it, how long the call has
    lasted already, and the lease this fork holds."""

    meta: ForkMetadata
    elapsed_s: float
    owner: str
    authenticated: bool


class ForkAdmission:
    """One per gateway replica, shared by both routes (media port and /media)."""

    def __init__(self, credentials: ForkCredentials | None, allow_unauthenticated: bool,
                 directory: CallDirectory, leads: LeadBook | None = None,
                 max_forks: int = 100, lease_s: int = LEASE_S,
                 clock: Callable[[], float] = time.time,
                 profiles: CustomerProfiles | None = None):
        self.credentials = credentials
        self.allow_unauthenticated = allow_unauthenticated
        self.directory = directory
        self.leads = leads
        self.profiles = profiles
        self.max_forks = max_forks
        self.lease_s = lease_s
        self.clock = clock
        self.open = 0  # forks on this replica, from the handshake to the close

    def announce(self) -> None:
        """Say once, at start, how this replica lets forks in."""
        if self.allow_unauthenticated:
            log.warning("media forks without a credential are accepted: every bind host is "
                        "loopback (local mode). Set freeswitch.fork_auth.allow_unauthenticated: "
                        "false to require one")
        elif self.credentials is None:
            log.error("no fork secret (freeswitch.fork_auth.secret) and not a loopback-only "
                      "cluster: every media fork will be refused")

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the replica's `max_forks` places; ForkRefused (1013) when full."""
        if self.open >= self.max_forks:
            raise ForkRefused(f"gateway at capacity ({self.max_forks} forks); try again later",
                              CLOSE_TRY_AGAIN)
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1

    async def admit(self, fork: ForkMetadata) -> Admitted:
        """Let the fork in or raise ForkRefused; see the module's docstring for the rules."""
        call_uuid = fork.call_uuid
        authenticated = self._authenticate(fork)
        try:
            live = await self.directory.lookup(call_uuid)
            if live is None:
                if authenticated:
                    raise ForkRefused("unknown call")
                if await self.directory.fork_seen(call_uuid):
                    raise ForkRefused("call id already used")
            elif live.ended:
                raise ForkRefused("call has ended")
            elif not live.forkable:
                raise ForkRefused("call is not with the bot")
            generation = live.forks if live is not None else 0
            owner = f"{generation}.{secrets.token_hex(8)}"
            if not await self.directory.attach(call_uuid, owner, self.lease_s, generation):
                raise ForkRefused("call already has an open media fork")
        except DirectoryUnavailable:
            raise ForkRefused("call records unavailable; try again later",
                              CLOSE_TRY_AGAIN) from None
        try:
            meta = await self._known(fork, live)
        except BaseException:
            await self.release_lease(call_uuid, owner)
            raise
        elapsed = max(0.0, self.clock() - live.answered_at) if live and live.answered_at else 0.0
        return Admitted(meta, elapsed, owner, authenticated)

    def _authenticate(self, fork: ForkMetadata) -> bool:
        """True for a valid credential, False for none where that is allowed."""
        credential = (fork.extra or {}).get(CREDENTIAL_FIELD)
        if credential is None and self.allow_unauthenticated:
            return False
        if self.credentials is None:
            raise ForkRefused("credentials cannot be checked: no fork secret on the gateway",
                              media_fork.CLOSE_INTERNAL_ERROR)
        try:
            self.credentials.verify(credential, fork.call_uuid)
        except CredentialRefused as err:
            raise ForkRefused(err.reason) from None
        return True

    async def _known(self, fork: ForkMetadata, live: LiveCall | None) -> ForkMetadata:
        """The call's metadata: the fork's audio parameters, the rest from the records
        (nothing more for a local fork of a call the records do not know)."""
        if live is None:
            return ForkMetadata(fork.call_uuid, fork.sample_rate, playback=fork.playback,
                                mix_type=fork.mix_type)
        extra = {name: value for name in ("bot", "lead", "variant")
                 if (value := live.variable(name)) is not None}
        direction = live.direction if live.direction in ("inbound", "outbound") else None
        return ForkMetadata(
            fork.call_uuid, fork.sample_rate, caller=live.caller or None,
            callee=live.callee or None, direction=direction, campaign=live.variable("campaign"),
            playback=fork.playback, mix_type=fork.mix_type,
            customer=await self._customer(live), extra=extra)

    async def _customer(self, live: LiveCall) -> dict[str, Any]:
        """The customer the bot and the agents see: the campaign's lead (name, tier, VIP,
        region, its file's other columns), then the customer's profile (tier, name,
        language, attributes, history; a VIP tier makes the call VIP), then
        ``callfleet_customer_<field>`` channel variables (set by the dialplan, e.g. from
        a CRM lookup)."""
        customer: dict[str, Any] = {}
        campaign, lead_id = live.variable("campaign"), live.variable("lead")
        if campaign and lead_id and self.leads is not None:
            try:
                lead = await self.leads.get_lead(campaign, lead_id)
            except Exception as exc:  # the call goes on without the lead's details
                log.warning("lead of a campaign call unavailable (%s)", type(exc).__name__)
                lead = None
            if lead is not None:
                customer.update(lead.variables)
                customer.update({k: v for k, v in (("id", lead.id), ("name", lead.name),
                                                   ("tier", lead.tier), ("region", lead.region))
                                 if v})
                customer["vip"] = bool(lead.vip)
        if self.profiles is not None:
            number = live.caller if live.direction == "inbound" else live.callee
            try:
                profile = await self.profiles.variables(number)
            except Exception as exc:  # the call goes on without the profile
                log.warning("customer profile unavailable (%s)", type(exc).__name__)
                profile = {}
            vip = bool(customer.get("vip")) or bool(profile.get("vip"))
            customer.update(profile)
            if "vip" in customer or vip:
                customer["vip"] = vip
        for key, value in live.variables.items():
            if key.startswith(CUSTOMER_VARIABLE) and len(key) > len(CUSTOMER_VARIABLE):
                customer[key[len(CUSTOMER_VARIABLE):]] = value
        return customer

    async def hold(self, admitted: Admitted) -> None:
        """Keep the fork's lease while it is open (run as a task; cancel it at the end).
        A lease lost (Redis restarted, or a long outage) is taken again when free."""
        call_uuid, warned = admitted.meta.call_uuid, False
        generation = int(admitted.owner.split(".", 1)[0]) if "." in admitted.owner else 0
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.directory.refresh(call_uuid, admitted.owner, self.lease_s) \
                        and not await self.directory.attach(call_uuid, admitted.owner,
                                                            self.lease_s, generation):
                    log.warning("media fork %s lost its lease to another fork", call_uuid)
                warned = False
            except DirectoryUnavailable:
                if not warned:
                    log.warning("media fork %s: lease not renewed, call records unavailable",
                                call_uuid)
                    warned = True

    async def release(self, admitted: Admitted) -> None:
        await self.release_lease(admitted.meta.call_uuid, admitted.owner)

    async def release_lease(self, call_uuid: str, owner: str) -> None:
        """Give the lease back; if Redis cannot be reached it expires by itself."""
        with contextlib.suppress(DirectoryUnavailable):
            await self.directory.detach(call_uuid, owner)
