"""Synthetic traffic for the example blueprints, sent through the real SDK (``looper simulate``)."""

from __future__ import annotations

from looper_common.simulate.base import Scenario, ScenarioError
from looper_common.simulate.scenarios import SCENARIOS, get_scenario
from looper_common.simulate.simulator import DayStats, Simulator

__all__ = ["SCENARIOS", "DayStats", "Scenario", "ScenarioError", "Simulator", "get_scenario"]
