"""Lazy public faces for the platform packages: names resolve on first use.

A package's ``__init__`` lists its public names by the submodule that defines them,
without importing those modules, so ``from looper_common.training import model_name``
does not load scikit-learn or hyperopt through a sibling it never uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, **modules: str) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``; ``modules``: submodule -> names (spaced)."""
    exports = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
