"""Contracts every stage shares: blueprints, settings, events, ids and the Redis key layout.

Light on purpose (pydantic and PyYAML only): the SDK and every job import it.
"""

from __future__ import annotations

from looper_common.contracts.blueprint import Blueprint, BlueprintError, load_blueprint, load_blueprints
from looper_common.contracts.config import ConfigError, Settings, load_settings

__all__ = [
    "Blueprint", "BlueprintError", "ConfigError", "Settings", "load_blueprint", "load_blueprints", "load_settings",
]
