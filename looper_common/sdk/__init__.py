"""What product code imports: ``LooperClient`` (``get_decision``, ``log_observations``).

Imports only the contracts, redis-py and msgspec: no pyspark, pandas, numpy, mlflow or
airflow (tests/unit/sdk/test_imports.py holds it to that).
"""

from __future__ import annotations

from looper_common.sdk.client import Decision, LooperClient, LooperError
from looper_common.sdk.exploration import replay, replay_matches

__all__ = ["Decision", "LooperClient", "LooperError", "replay", "replay_matches"]
