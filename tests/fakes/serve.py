"""Serve deployment handles without Ray: `handle.method.remote(*args)` returns an awaitable
response, as a `DeploymentHandle` does, backed by a plain Python function. Every request
is logged on the handle (`calls`), in the order `.remote` was called, and each response
can be cancelled like a `DeploymentResponse`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["FakeHandle", "FakeResponse"]


class FakeResponse:
    """What `.remote()` gives back: awaiting it runs the method (once) and returns its
    result or raises its exception."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.awaited = False
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __await__(self) -> Generator[Any, None, Any]:
        return self._run().__await__()

    async def _run(self) -> Any:
        if self.cancelled:
            raise asyncio.CancelledError("request cancelled")
        self.awaited = True
        result = self._fn(*self._args, **self._kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


class _Method:
    def __init__(self, handle: FakeHandle, name: str) -> None:
        self._handle, self._name = handle, name

    def remote(self, *args: Any, **kwargs: Any) -> FakeResponse:
        fn = self._handle._methods.get(self._name)
        if fn is None:
            raise AttributeError(f"deployment {self._handle.name!r} has no method {self._name!r}")
        response = FakeResponse(fn, args, kwargs)
        self._handle.calls.append((self._name, args, response))
        return response


class FakeHandle:
    """A deployment handle whose methods are the given functions (sync or async)."""

    def __init__(self, name: str, **methods: Callable[..., Any]) -> None:
        self.name = name
        self._methods = methods
        self.calls: list[tuple[str, tuple, FakeResponse]] = []

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self, name)

    def args_of(self, method: str) -> list[tuple]:
        return [args for name, args, _ in self.calls if name == method]
