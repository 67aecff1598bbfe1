"""Two processes inserting overlapping rows into one partition at once insert each key once."""

from __future__ import annotations

import multiprocessing
from datetime import date

import pyarrow as pa
import pytest

from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_OBSERVATIONS, TIMESTAMP

pytestmark = pytest.mark.integration
SPEC = BRONZE_OBSERVATIONS
DAY = date(2026, 1, 5)
PARTITIONS = {"blueprint": ["bp"], "date": [DAY]}


def _rows(ids: list[str]) -> pa.Table:
    n = len(ids)
    return pa.table({
        "event_id": ids, "decision_id": ids, "blueprint": ["bp"] * n, "name": ["click"] * n,
        "value": [1.0] * n, "ts": pa.array([0] * n, pa.int64()).cast(TIMESTAMP), "date": [DAY] * n,
    })


def _insert(root: str, ids: list[str], ready, results) -> None:
    lake = Lake(root)
    lake.version(SPEC)  # the table is loaded before the race starts
    ready.wait()
    results.put(lake.insert_new(SPEC, _rows(ids), PARTITIONS))


@pytest.mark.parametrize("seeded", [False, True])
def test_two_processes_inserting_overlapping_rows_duplicate_nothing(tmp_path, seeded):
    context = multiprocessing.get_context("spawn")  # delta-rs' runtime does not survive a fork
    for trial in range(3):
        root = str(tmp_path / f"lake-{trial}")
        lake = Lake(root)
        lake.ensure_tables([SPEC])
        if seeded:  # the partition already has a file
            lake.insert_new(SPEC, _rows(["seed"]), PARTITIONS)
        first, second = [f"e{i}" for i in range(0, 30_000)], [f"e{i}" for i in range(10_000, 40_000)]
        ready, results = context.Barrier(2), context.Queue()
        workers = [context.Process(target=_insert, args=(root, ids, ready, results)) for ids in (first, second)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(300)
            assert worker.exitcode == 0
        inserted = results.get(timeout=5) + results.get(timeout=5)
        keys = Lake(root).read(SPEC, columns=["event_id"]).table["event_id"].to_pylist()
        assert len(keys) == len(set(keys)) == 40_000 + seeded
        assert inserted == 40_000
