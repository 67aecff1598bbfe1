"""The oracle table: per decision, the expected objective of every action (for OPE checks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path


def oracle_path(oracle_dir: str | Path, blueprint: str, day: date) -> Path:
    """``<oracle_dir>/<blueprint>/date=YYYY-MM-DD.parquet``."""
    return Path(oracle_dir) / blueprint / f"date={day.isoformat()}.parquet"


def write_oracle_table(
    path: Path,
    actions: Sequence[str],
    rows: Sequence[tuple[str, str, int, str, Sequence[float]]],
) -> Path:
    """Write (decision_id, unit_id, ts_ms, served action, reward per action) rows as Parquet.

    The file is written whole and then renamed, so a rerun of the day replaces it
    and a reader never sees half of it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, pa.Array] = {
        "decision_id": pa.array([r[0] for r in rows], pa.string()),
        "unit_id": pa.array([r[1] for r in rows], pa.string()),
        "ts": pa.array([r[2] for r in rows], pa.timestamp("ms", tz="UTC")),
        "action": pa.array([r[3] for r in rows], pa.string()),
    }
    for k, action in enumerate(actions):
        columns[f"reward_{action}"] = pa.array([r[4][k] for r in rows], pa.float64())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, path)
    return path
