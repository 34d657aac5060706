"""Package re-exports loaded on first use (PEP 562).

A package whose `__init__` imported every name it offers made each of its light modules
(a settings section, say) cost the whole package: importing `configs.settings` once
loaded the knowledge base's numpy search and the script runtime's HTTP client. A package
instead lists its names once, module by module, and lets `lazy_exports` load each from its
module the first time it is asked for."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: dict[str, Any],
                 modules: dict[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """The `__getattr__` for `package` (its `globals()`): each name in `modules`
    ({module: names}) is imported from its module when first used, then kept."""
    where = {name: module for module, names in modules.items() for name in names}
    package["__all__"] = sorted(where)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        package[name] = value
        return value

    return __getattr__
