"""Event ids a batch shares with the tables: the same event is a no-op, a different one a conflict.

The insert-only MERGE (``Lake.insert_new``) reads only the partitions a batch touches,
so on its own the same ``event_id`` with a ``ts`` on another date would be a second
bronze row. Before the MERGE, each table's ``event_id``s within ``horizon_days`` of the
batch's dates are read; a batch row whose id is there with the same values (the same
event sent again, or a batch replayed after a crash) is dropped, one with other values
is quarantined as ``duplicate_event_id_conflict``. For quarantine rows the payload is
what is compared (the arrival date and the reason may differ on a resend); a different
payload under a quarantined id is kept under ``<event_id>#payload:<its hash>``.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from looper_common.contracts import event_rules
from looper_common.ingest.parsing import ParsedBatch, TableRows, conflict
from looper_common.lake import delta
from looper_common.lake.arrow_rows import rows_to_arrow
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE, TableSpec

_EPOCH = date(1970, 1, 1)
_MIN_DAY, _MAX_DAY = event_rules.MIN_TS_MS // event_rules.DAY_MS, event_rules.MAX_TS_MS // event_rules.DAY_MS


def _dates(days: set[int], horizon_days: int) -> list[date]:
    lo, hi = max(min(days) - horizon_days, _MIN_DAY), min(max(days) + horizon_days, _MAX_DAY)
    return [_EPOCH + timedelta(days=d) for d in range(lo, hi + 1)]


def _existing(lake: Lake, spec: TableSpec, rows: TableRows, horizon_days: int) -> pa.Table | None:
    """The table's rows (all columns) whose event_id is in ``rows``, within the horizon; None if none."""
    table = delta.open_table(lake.path(spec), lake.storage_options)
    if table is None:
        return None
    parts = rows.partitions
    filters = [("date", "in", _dates(parts["date"], horizon_days))]
    if "blueprint" in parts:
        filters.insert(0, ("blueprint", "in", sorted(parts["blueprint"])))
    ids = pa.array(list(rows.seen), pa.string())
    found = delta.read(table, spec, filters, ["event_id", "date"])
    found = found.filter(pc.is_in(found["event_id"], value_set=ids))
    if not found.num_rows:
        return None
    dates = sorted(set(found["date"].to_pylist()))
    full = delta.read(table, spec, [*filters[:-1], ("date", "in", dates)], None)
    return full.filter(pc.is_in(full["event_id"], value_set=found["event_id"]))


def _compared(row: dict, spec: TableSpec) -> object:
    if spec is QUARANTINE:
        return row["payload"]
    return {k: (sorted(v) if isinstance(v, list) else v) for k, v in row.items()}


def settle_known_ids(lake: Lake, batch: ParsedBatch, horizon_days: int) -> tuple[int, set[str]]:
    """Drop or quarantine the batch's rows whose event_id a table holds already.

    Returns how many were dropped as already there, and the names of the tables whose rows changed.
    """
    dropped, changed = 0, set()
    for spec, rows in ((BRONZE_DECISIONS, batch.decisions), (BRONZE_OBSERVATIONS, batch.observations),
                       (QUARANTINE, batch.quarantine)):
        if not rows.rows:
            continue
        existing = _existing(lake, spec, rows, horizon_days)
        if existing is None:
            continue
        before = {r["event_id"]: _compared(r, spec) for r in existing.to_pylist()}
        mine = rows.remove(set(before))
        changed.add(spec.name)
        ours = rows_to_arrow(mine, spec.schema).to_pylist()
        for row, tuple_row in zip(ours, mine, strict=True):
            event_id = row["event_id"]
            if _compared(row, spec) == before[event_id]:
                dropped += 1
            elif spec is QUARANTINE:
                digest = hashlib.blake2b((row["payload"] or "").encode(), digest_size=8).hexdigest()
                key = f"{event_id}#payload:{digest}"  # the same key when the same entry is replayed
                rows.add(key, (key, *tuple_row[1:]), (tuple_row[-1],))
            else:
                stream, stream_id, payload = batch.payloads[event_id]
                conflict(batch, stream, stream_id, payload, event_id, " already in " + spec.name)
                changed.add(QUARANTINE.name)
    return dropped, changed
