"""`callfleet customers`: customer profiles (VIP tier, name, language, attributes) filed
under a keyed hash of the number.

    callfleet customers import FILE.csv [--dry-run]   bad rows listed by line, good rows kept
    callfleet customers show NUMBER [--json]          the profile and its history, masked

The CSV needs a phone column (phone, number, phone_number, msisdn, mobile); tier (or
vip_tier), name and language (or lang) are read as such, every other column becomes an
attribute (``orders``: the customer's order count). Imported profiles are written to the
durable store and to the Redis cache the call path reads (when a cluster's Redis is
reachable; else run the import again once it is). The profile key is
``customers.secret`` (default: ``<state_dir>/customer-secret``, created on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.markup import escape

from cluster.cli.common import (
    CliError,
    console,
    out,
    redis_url,
    redis_url_option,
    reports_errors,
)
from cluster.cli.records import _open, _store_errors
from cluster.dialer.customers import CustomerKeyer, parse_profiles_csv
from cluster.dialer.leads import LeadFileError
from cluster.dialer.phone import PhoneNumberError
from cluster.records.customers import RedisCustomerCache
from cluster.runtime.fork_secret import with_customer_secret
from cluster.store.masking import mask_number


def _user_errors() -> tuple[type[Exception], ...]:
    return (LeadFileError, PhoneNumberError)


def _keyer(settings) -> CustomerKeyer:
    settings = with_customer_secret(settings)
    return CustomerKeyer(settings.customers.secret, settings.customers.default_country)


async def _cache(url: str, ttl_s: int, docs: dict[str, dict[str, Any]]) -> None:
    import redis.asyncio as aioredis  # only when there is something to cache

    client = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        await RedisCustomerCache(client, ttl_s).put_many(docs)
    finally:
        await client.aclose()


@reports_errors(_user_errors, unavailable=_store_errors)
def cmd_import(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError  # heavy enough: only for the import

    from cluster.store.customers import CustomerStore, cache_doc  # heavy: SQLAlchemy

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {type(exc).__name__}") from None
    store, settings = _open(args)
    try:
        keyer = _keyer(settings)
        result = parse_profiles_csv(text, keyer)
        for error in result.errors:
            console.print(f"[yellow]line {error.row}[/yellow], {escape(error.column)}: "
                          f"{escape(error.message)}", highlight=False)
        rows = {keyer.key(number): {**profile.model_dump(), "phone_masked": mask_number(number)}
                for number, profile in result.profiles.items()}
        if args.dry_run:
            out.print(f"{len(rows)} profile(s) would be imported, {len(result.errors)} "
                      "row(s) rejected (dry run)")
            return 0 if not result.errors else 2
        customers = CustomerStore(store)
        customers.put_many(rows, source="csv")
        docs = {key: cache_doc(row, customers.history(key, None, row))
                for key, row in rows.items()}
    finally:
        store.close()
    try:
        asyncio.run(_cache(redis_url(args), settings.customers.cache_ttl_s, docs))
        cached = "and cached for calls"
    except (RedisError, OSError, CliError) as exc:
        cached = f"not cached for calls ({type(exc).__name__}: import again once Redis runs)"
    out.print(f"{len(rows)} profile(s) imported {cached}; {len(result.errors)} row(s) "
              f"rejected of {result.rows}")
    return 0 if not result.errors else 2


@reports_errors(_user_errors, unavailable=_store_errors)
def cmd_show(args: argparse.Namespace) -> int:
    from cluster.store.customers import CustomerStore  # heavy: SQLAlchemy
    from cluster.store.export import jsonable  # heavy: SQLAlchemy

    store, settings = _open(args)
    try:
        keyer = _keyer(settings)
        number = keyer.number(args.number)
        customers = CustomerStore(store)
        row = customers.get(keyer.key(number))
        if row is None:
            raise CliError(f"no profile for {mask_number(number)}")
        history = customers.history(row["key"], number, row)
    finally:
        store.close()
    doc = {**jsonable({k: v for k, v in row.items() if k != "key"}),
           "phone_masked": mask_number(number), "history": jsonable(history)}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for name in ("phone_masked", "tier", "name", "language", "source", "updated_at"):
        out.print(f"[bold]{name}[/bold]: {escape(str(doc.get(name) or '-'))}")
    for name, value in (doc.get("attributes") or {}).items():
        out.print(f"[bold]{escape(name)}[/bold]: {escape(str(value))}")
    out.print("[bold]history[/bold]: " + ", ".join(
        f"{k} {v}" for k, v in doc["history"].items() if v is not None))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("customers", help="customer profiles: VIP tier, history",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="customers_command", required=True, metavar="ACTION")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store-url", metavar="URL",
                       help="database (default: store_url from the settings)")

    s = sub.add_parser("import", parents=[store, redis_url_option()],
                       help="profiles from a CSV file")
    s.add_argument("file", metavar="FILE.csv")
    s.add_argument("--dry-run", action="store_true", help="check the file, write nothing")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("show", parents=[store], help="one customer's profile (masked)")
    s.add_argument("number")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)
