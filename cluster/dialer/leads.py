"""Leads: importing them from CSV and ordering them for dialling.

An import never fails as a whole because of a few bad rows: each row is validated on its
own, bad rows come back as `RowError`s with their spreadsheet row number (the header is
row 1), duplicates (same E.164 number) are reported and dropped, and the good rows are
kept. Only a file that cannot be read as a lead list at all (no phone column, not CSV)
raises `LeadFileError`.

Recognised columns (case-insensitive): ``phone`` (or number, phone_number, msisdn,
telephone), ``lead_id`` (or id), ``name`` / ``first_name`` / ``last_name``,
``timezone`` (or tz), ``region`` (or state), ``tier`` (or spending_tier, segment),
``vip``, ``country``. Every other column is kept as a string variable the bot script
can use.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from cluster.dialer.phone import PhoneNumberError, guess_timezone, normalise_e164, valid_timezone

__all__ = [
    "ConversionScorer",
    "Lead",
    "LeadFileError",
    "LeadImport",
    "RowError",
    "parse_leads_csv",
    "priority_score",
]

_ALIASES = {
    "phone": ("phone", "number", "phone_number", "msisdn", "telephone", "tel"),
    "lead_id": ("lead_id", "id"),
    "name": ("name", "full_name"),
    "first_name": ("first_name", "firstname"),
    "last_name": ("last_name", "lastname", "surname"),
    "timezone": ("timezone", "tz", "time_zone"),
    "region": ("region", "state"),
    "tier": ("tier", "spending_tier", "segment"),
    "vip": ("vip",),
    "country": ("country",),
}
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"", "0", "false", "no", "n"}
MAX_VARIABLE_CHARS = 1_000
_LEAD_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch: "$" allows a trailing newline


class LeadFileError(ValueError):
    """The file as a whole cannot be imported (not CSV, no phone column, too big)."""


class Lead(BaseModel):
    """One person to call. `phone` is E.164; `timezone` is where their calling window is
    measured, and `tz_source` says whether it came from the file, the number or the
    campaign default."""

    model_config = ConfigDict(extra="forbid")

    id: str
    phone: str
    name: str = ""
    timezone: str
    tz_source: str = Field(description="column | number | default")
    region: str = ""
    tier: str = ""
    vip: bool = False
    variables: dict[str, str] = Field(default_factory=dict)
    row: int | None = Field(None, description="row of the import file it came from")


class RowError(BaseModel):
    """A rejected row: its number in the file (header = 1), the column, and why."""

    row: int
    column: str
    message: str


class LeadImport(BaseModel):
    """The outcome of reading one CSV file."""

    leads: list[Lead] = Field(default_factory=list)
    errors: list[RowError] = Field(default_factory=list)
    duplicate_rows: list[int] = Field(default_factory=list, description="rows dropped as repeats")
    rows: int = Field(0, description="data rows read")

    def summary(self) -> dict[str, int]:
        return {"rows": self.rows, "accepted": len(self.leads), "rejected": len(self.errors),
                "duplicates": len(self.duplicate_rows)}


class ConversionScorer(Protocol):
    """A trained conversion model: the probability (0-1) that calling `lead` converts.
    Registered by the training side; the dialer only needs this call."""

    def __call__(self, lead: Lead) -> float: ...


def lead_id_for(phone: str) -> str:
    """A stable id for a lead without one: a short hash of its number (so ids in logs and
    records do not reveal the number)."""
    return "L" + hashlib.sha256(phone.encode()).hexdigest()[:12]


def parse_leads_csv(
    text: str,
    default_country: str = "US",
    default_timezone: str = "America/New_York",
    known_phones: Iterable[str] = (),
    max_rows: int = 1_000_000,
) -> LeadImport:
    """Read a lead CSV. `known_phones` (E.164) are leads the campaign already has: rows
    repeating them count as duplicates, so importing the same file twice adds nothing."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise LeadFileError("the lead file is empty; expected a header row with a phone column") from None
    except csv.Error as exc:
        raise LeadFileError(f"not a readable CSV file: {exc}") from None
    columns = [name.strip().lower() for name in header]
    roles = _column_roles(columns)
    if "phone" not in roles:
        raise LeadFileError(f"no phone column in the header ({', '.join(columns) or 'empty'}); "
                            f"expected one of: {', '.join(_ALIASES['phone'])}")
    result = LeadImport()
    seen_phones = set(known_phones)
    seen_ids: dict[str, str] = {}
    row_number = 1
    try:
        for values in reader:
            row_number += 1
            if not any(value.strip() for value in values):
                continue  # blank line
            result.rows += 1
            if result.rows > max_rows:
                raise LeadFileError(f"more than {max_rows} data rows; split the file")
            lead = _parse_row(row_number, values, columns, roles, default_country,
                              default_timezone, result.errors)
            if lead is None:
                continue
            if lead.phone in seen_phones:
                result.duplicate_rows.append(row_number)
                continue
            if seen_ids.get(lead.id, lead.phone) != lead.phone:
                result.errors.append(RowError(row=row_number, column="lead_id",
                                              message="lead_id already used for another number"))
                continue
            seen_ids[lead.id] = lead.phone
            seen_phones.add(lead.phone)
            result.leads.append(lead)
    except csv.Error as exc:
        raise LeadFileError(f"CSV syntax error near row {row_number}: {exc}") from None
    return result


def priority_score(lead: Lead, tier_priority: list[str], conversion: float | None = None) -> float:
    """Dial order key, lower first: VIPs and earlier tiers of `tier_priority` first, then,
    within a tier, a higher predicted conversion first."""
    if lead.vip:
        rank = 0
    elif lead.tier in tier_priority:
        rank = tier_priority.index(lead.tier) + 1
    else:
        rank = len(tier_priority) + 1
    chance = 0.0 if conversion is None else min(1.0, max(0.0, float(conversion)))
    return rank * 10.0 + (1.0 - chance)


def _column_roles(columns: list[str]) -> dict[str, int]:
    roles: dict[str, int] = {}
    for role, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in columns:
                roles[role] = columns.index(alias)
                break
    return roles


def _parse_row(row: int, values: list[str], columns: list[str], roles: dict[str, int],
               default_country: str, default_timezone: str,
               errors: list[RowError]) -> Lead | None:
    if len(values) > len(columns):
        errors.append(RowError(row=row, column="*", message=f"{len(values)} fields but the "
                               f"header has {len(columns)}; check for an unquoted comma"))
        return None

    def get(role: str) -> str:
        index = roles.get(role)
        return values[index].strip() if index is not None and index < len(values) else ""

    raw_phone = get("phone")
    if not raw_phone:
        errors.append(RowError(row=row, column=columns[roles["phone"]], message="phone is empty"))
        return None
    country = get("country").upper() or default_country
    try:
        phone = normalise_e164(raw_phone, country)
    except PhoneNumberError as exc:
        errors.append(RowError(row=row, column=columns[roles["phone"]], message=str(exc)))
        return None
    zone, source = get("timezone"), "column"
    if zone and not valid_timezone(zone):
        errors.append(RowError(row=row, column=columns[roles["timezone"]],
                               message=f"unknown IANA time zone {zone[:64]!r} (e.g. America/Chicago)"))
        return None
    if not zone:
        zone, source = guess_timezone(phone) or "", "number"
    if not zone:
        zone, source = default_timezone, "default"
    vip_text = get("vip").lower()
    if vip_text not in _TRUE | _FALSE:
        errors.append(RowError(row=row, column=columns[roles["vip"]],
                               message=f"vip must be yes/no (or true/false, 1/0), got {vip_text[:20]!r}"))
        return None
    name = get("name") or " ".join(p for p in (get("first_name"), get("last_name")) if p)
    used = set(roles.values())
    variables = {column: values[index].strip()[:MAX_VARIABLE_CHARS]
                 for index, column in enumerate(columns)
                 if index not in used and index < len(values) and column}
    lead_id = get("lead_id")
    if lead_id and not _LEAD_ID.fullmatch(lead_id):
        errors.append(RowError(row=row, column=columns[roles["lead_id"]],
                               message="lead_id must be 1-64 letters, digits, '.', '_' or '-'"))
        return None
    tier = get("tier").lower()
    return Lead(
        id=lead_id or lead_id_for(phone), phone=phone, name=name, timezone=zone,
        tz_source=source, region=get("region"), tier=tier,
        vip=vip_text in _TRUE or tier == "vip", variables=variables, row=row,
    )
