"""Customer profiles on the floor's side: the number → key rule, the profile CSV import,
and the call path's lookup (Redis cache only).

A profile is filed under `customer_key` of the caller's normalised E.164 number
(`cluster.records.customers`). The SQL side is `cluster.store.customers`; this module
needs no database.

The CSV import reads a header row with a phone column (``phone``, ``number``,
``phone_number``, ``msisdn``) and optionally ``tier`` (or ``vip_tier``), ``name``,
``language`` (``lang``); every other column becomes a string attribute (an ``orders``
column is the customer's order count, shown in their history). A bad row is reported with
its line number (header = line 1), its column and why — never its number — and every good
row is kept; a number repeated later in the file is reported and the first row kept.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from cluster.dialer.leads import MAX_VARIABLE_CHARS, LeadFileError, RowError
from cluster.dialer.phone import PhoneNumberError, normalise_e164
from cluster.records.customers import RedisCustomerCache, customer_key

__all__ = ["CustomerKeyer", "CustomerProfile", "ProfileImport", "ProfileLookup",
           "parse_profiles_csv", "profile_variables"]

log = logging.getLogger("callfleet.customers")

_TIER = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
_ALIASES = {"phone": ("phone", "number", "phone_number", "msisdn", "mobile"),
            "tier": ("tier", "vip_tier"), "name": ("name", "full_name"),
            "language": ("language", "lang")}
MAX_NAME_CHARS = 200
MAX_ATTRIBUTES = 50


class CustomerKeyer:
    """Raw number → normalised E.164 → profile key (raises `PhoneNumberError`)."""

    def __init__(self, secret: str | SecretStr, default_country: str = "US"):
        self.secret = secret
        self.default_country = default_country

    def number(self, raw: str) -> str:
        return normalise_e164(str(raw), self.default_country)

    def key(self, raw: str) -> str:
        return customer_key(self.secret, self.number(raw))


class CustomerProfile(BaseModel):
    """What is set about a customer (imported or through the API)."""

    tier: str | None = Field(None, description="VIP tier, e.g. gold, vip, platinum")
    name: str | None = Field(None, max_length=MAX_NAME_CHARS)
    language: str | None = Field(None, description="e.g. en, en-GB")
    attributes: dict[str, Any] = Field(default_factory=dict)

    def problems(self) -> list[tuple[str, str]]:
        """(field, why) for each value the store refuses."""
        out: list[tuple[str, str]] = []
        if self.tier is not None and not _TIER.match(self.tier):
            out.append(("tier", "tier must be 1-32 lower-case letters, digits, - or _"))
        if self.language is not None and not _LANGUAGE.match(self.language):
            out.append(("language", "language must be a language tag like en or en-GB"))
        if len(self.attributes) > MAX_ATTRIBUTES:
            out.append(("attributes", f"at most {MAX_ATTRIBUTES} attributes"))
        for name, value in self.attributes.items():
            if len(str(name)) > 64 or len(str(value)) > MAX_VARIABLE_CHARS:
                out.append((str(name)[:64], f"attribute too long (name 64, value "
                                            f"{MAX_VARIABLE_CHARS} characters)"))
        if "orders" in self.attributes:
            try:
                if int(self.attributes["orders"]) < 0:
                    raise ValueError
            except (TypeError, ValueError):
                out.append(("orders", "orders must be a whole number of orders"))
        return out


class ProfileImport(BaseModel):
    """The outcome of reading a profile CSV: the good rows by number, the bad ones."""

    profiles: dict[str, CustomerProfile] = Field(default_factory=dict)  # E.164 → profile
    lines: dict[str, int] = Field(default_factory=dict)  # E.164 → its line
    errors: list[RowError] = Field(default_factory=list)
    rows: int = 0

    def summary(self) -> dict[str, int]:
        return {"rows": self.rows, "accepted": len(self.profiles), "rejected": len(self.errors)}


def parse_profiles_csv(text: str, keyer: CustomerKeyer, max_rows: int = 1_000_000
                       ) -> ProfileImport:
    """Read a profile CSV (see the module docstring); raises `LeadFileError` only when
    the file as a whole cannot be read."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise LeadFileError("the file is empty; expected a header row with a phone column") from None
    except csv.Error as exc:
        raise LeadFileError(f"not a readable CSV file: {exc}") from None
    columns = [name.strip().lower() for name in header]
    roles: dict[str, int] = {}
    for role, names in _ALIASES.items():
        for index, name in enumerate(columns):
            if name in names and role not in roles:
                roles[role] = index
    if "phone" not in roles:
        raise LeadFileError(f"no phone column in the header; expected one of: "
                            f"{', '.join(_ALIASES['phone'])}")
    result = ProfileImport()
    line = 1
    try:
        for values in reader:
            line += 1
            if not any(v.strip() for v in values):
                continue
            result.rows += 1
            if result.rows > max_rows:
                raise LeadFileError(f"more than {max_rows} data rows; split the file")
            _parse_row(line, values, columns, roles, keyer, result)
    except csv.Error as exc:
        raise LeadFileError(f"line {line}: not readable as CSV ({exc})") from None
    return result


def _parse_row(line: int, values: list[str], columns: list[str], roles: dict[str, int],
               keyer: CustomerKeyer, result: ProfileImport) -> None:
    if len(values) > len(columns):
        result.errors.append(RowError(row=line, column="-", message=(
            f"{len(values)} values for {len(columns)} columns (an unquoted comma?)")))
        return

    def get(role: str) -> str:
        index = roles.get(role)
        return values[index].strip() if index is not None and index < len(values) else ""

    try:
        number = keyer.number(get("phone"))
    except PhoneNumberError as exc:
        result.errors.append(RowError(row=line, column=columns[roles["phone"]], message=str(exc)))
        return
    taken = set(roles.values())
    attributes = {columns[i]: v.strip() for i, v in enumerate(values)
                  if i not in taken and columns[i] and v.strip()}
    profile = CustomerProfile(tier=get("tier").lower() or None, name=get("name") or None,
                              language=get("language") or None, attributes=attributes)
    if profile.name and len(profile.name) > MAX_NAME_CHARS:
        result.errors.append(RowError(row=line, column="name",
                                      message=f"name longer than {MAX_NAME_CHARS} characters"))
        return
    problems = profile.problems()
    if problems:
        column, why = problems[0]
        result.errors.append(RowError(row=line, column=column, message=why))
        return
    if number in result.profiles:
        result.errors.append(RowError(row=line, column=columns[roles["phone"]], message=(
            f"number repeated from line {result.lines[number]} (the first row is kept)")))
        return
    result.profiles[number] = profile
    result.lines[number] = line


def profile_variables(profile: Mapping[str, Any], vip_tiers: list[str] | tuple[str, ...]
                      ) -> dict[str, Any]:
    """The ``customer.*`` variables a profile (as cached) gives a call: its attributes,
    name, language, tier, ``vip`` (tier in ``customers.vip_tiers``: the escalation
    policy's VIP rule then routes the call first) and its history (``calls``,
    ``tickets``, ``open_tickets``, ``orders``, ``last_contact``)."""
    out: dict[str, Any] = {}
    attributes = profile.get("attributes")
    if isinstance(attributes, Mapping):
        out.update({str(k): v for k, v in attributes.items()})
    for name in ("name", "language", "tier"):
        if profile.get(name):
            out[name] = profile[name]
    history = profile.get("history")
    if isinstance(history, Mapping):
        out.update({k: history[k] for k in ("calls", "tickets", "open_tickets", "orders",
                                            "last_contact") if history.get(k) is not None})
    tier = str(profile.get("tier") or "").lower()
    if tier:
        out["vip"] = tier in vip_tiers
    return out


class ProfileLookup:
    """The call path's view: the profile of a number from the Redis cache (no SQL)."""

    def __init__(self, cache: RedisCustomerCache, keyer: CustomerKeyer,
                 vip_tiers: list[str] | tuple[str, ...] = ("vip", "platinum")):
        self.cache = cache
        self.keyer = keyer
        self.vip_tiers = tuple(t.lower() for t in vip_tiers)

    @classmethod
    def from_settings(cls, redis: Any, settings: Any) -> ProfileLookup | None:
        """The lookup for a ``customers:`` settings section over `redis` (None without
        ``customers.secret``: no profile can be found then)."""
        if settings.secret is None:
            return None
        return cls(RedisCustomerCache(redis, settings.cache_ttl_s),
                   CustomerKeyer(settings.secret, settings.default_country), settings.vip_tiers)

    async def variables(self, raw_number: str | None) -> dict[str, Any]:
        """The customer variables for `raw_number` ({} when unknown or not a number)."""
        if not raw_number:
            return {}
        try:
            key = self.keyer.key(raw_number)
        except PhoneNumberError:
            return {}
        profile = await self.cache.get(key)
        return profile_variables(profile, self.vip_tiers) if profile else {}
