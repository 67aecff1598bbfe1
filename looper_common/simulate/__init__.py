"""Synthetic traffic for the example blueprints, sent through the real SDK (``looper simulate``).

The public names are imported on first use, so ``looper --help`` does not pay for numpy.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "DayStats": "looper_common.simulate.simulator",
    "Simulator": "looper_common.simulate.simulator",
    "Scenario": "looper_common.simulate.base",
    "ScenarioError": "looper_common.simulate.base",
    "SCENARIOS": "looper_common.simulate.scenarios",
    "get_scenario": "looper_common.simulate.scenarios",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
