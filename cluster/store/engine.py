"""Where the durable store lives and how its schema is kept current.

`store_url` names the database (SQLAlchemy URL); unset, it is the SQLite file
``<state_dir>/callfleet.db`` (nothing to install). PostgreSQL URLs are driven by psycopg 3
whatever driver they name (``postgresql://`` becomes ``postgresql+psycopg://``).

The schema is created and upgraded by the Alembic migrations shipped inside this
package (`migrations/`), configured in code, not by an ``alembic.ini``: `migrate` works
the same from a checkout and from an installed wheel, and runs when the writer, the API
or a `callfleet records` command opens the store (``records.auto_migrate``), or by hand
with `callfleet records migrate`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url

__all__ = ["MIGRATIONS", "head_revision", "make_engine", "migrate", "normalise_url",
           "redact_url", "schema_revision"]

log = logging.getLogger("callfleet.store")

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str | URL) -> URL:
    """The URL with PostgreSQL pointed at psycopg 3 (the driver CallFleet pins)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact_url(url: str | URL) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, **options: Any) -> Engine:
    """An engine for `url`. SQLite gets its folder created, write-ahead logging (readers
    never wait for the writer) and a busy timeout; PostgreSQL a small pre-pinged pool."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30}, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 4)
    options.setdefault("max_overflow", 4)
    return create_engine(parsed, **options)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the schema to `revision`; returns the revision the database is at."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return schema_revision(engine)


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest migration this version of CallFleet ships."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
