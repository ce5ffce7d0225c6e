"""Public names of a package loaded on first use (PEP 562): the package's ``__getattr__`` and
``__dir__`` from a mapping of name -> defining module.

Written out rather than through a lazy-loading library: it is one mapping and two functions, and
mypy reads the packages' real imports (under ``TYPE_CHECKING``). Never imports anything itself
until a name is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], names: Callable[[], Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a public name to its module;
    ``names`` returns the package's own globals (for ``dir()``)."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def dir_() -> list[str]:
        return sorted({*names(), *exports})

    return getattr_, dir_
