"""Fixtures of the browser tests: a Chromium driven by Playwright, and one in-process floor
(tests/browser/floor.py) per module.

Chromium is Debian's (`make browser` installs it; ``playwright install`` cannot download
browsers here). Without it the tests skip, unless CALLFLEET_REQUIRE_BROWSER=1 (set by
.ci/run), which makes a missing browser a failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.runtime.redis_server import EmbeddedRedis
from tests.browser.floor import Floor
from tests.fakes.dialer import free_port

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # without these Chromium keeps trying the internet (updates, sync, field trials)
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    for name in (os.environ.get("CALLFLEET_CHROMIUM"), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    """Per module, not per session: while Playwright's sync API is open it keeps its event
    loop running on this thread, and every later test's asyncio.run() would refuse to
    start ("cannot be called from a running event loop")."""
    path = chromium_path()
    missing = None
    if path is None:
        missing = "Chromium is not installed (run `make browser`)"
    try:
        from playwright.sync_api import sync_playwright  # optional dev dependency
    except ImportError:
        missing = missing or "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("CALLFLEET_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but {missing}")
        pytest.skip(missing)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Floor]:
    tmp = Path(tmp_path_factory.mktemp("floor"))
    redis = EmbeddedRedis(tmp / "redis", free_port())
    redis.start()
    floor = Floor(redis.url, tmp)
    try:
        floor.start()
        yield floor
    finally:
        try:
            floor.stop()
        finally:
            redis.stop()
