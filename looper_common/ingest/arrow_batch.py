"""A parsed batch as Arrow tables; a row Arrow refuses is quarantined with the error, not the batch stopped.

The parser's checks are meant to leave nothing Arrow cannot hold; this is the net
under them. When a table's rows fail to convert, each row is converted alone, and the
ones that fail move to the quarantine with the error's class and message.
"""

from __future__ import annotations

import pyarrow as pa

from looper_common.ingest.parsing import ParsedBatch, TableRows, quarantine_entry
from looper_common.lake.arrow_rows import rows_to_arrow
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE, TableSpec

TABLES: tuple[tuple[TableSpec, str], ...] = (
    (BRONZE_DECISIONS, "decisions"), (BRONZE_OBSERVATIONS, "observations"), (QUARANTINE, "quarantine"),
)


def _failing_rows(rows: TableRows, spec: TableSpec) -> dict[str, Exception]:
    failing = {}
    for row in rows.rows:
        try:
            rows_to_arrow([row], spec.schema)
        except Exception as err:  # noqa: BLE001 - the row's own failure, reported as its reason
            failing[row[0]] = err
    return failing


def _safe_quarantine_row(row: tuple, err: Exception) -> tuple:
    """A quarantine row Arrow refused, with every text made storable and the error added to its reason."""
    def text(value: object) -> object:
        return value.encode("utf-8", "replace").decode() if isinstance(value, str) else value

    return (text(row[0]), text(row[1]), text(row[2]), f"{text(row[3])}; {type(err).__name__}: {err}",
            text(row[4]), row[5], row[6] if isinstance(row[6], int) else 0)


def to_tables(batch: ParsedBatch, names: set[str] | None = None) -> dict[str, pa.Table]:
    """Table name -> Arrow rows of the batch (tables with rows only; only ``names`` if given)."""
    tables = {}
    for spec, attr in TABLES:
        rows: TableRows = getattr(batch, attr)
        if names is not None and spec.name not in names:
            continue
        if not rows.rows:
            continue
        try:
            tables[spec.name] = rows_to_arrow(rows.rows, spec.schema)
            continue
        except Exception:  # noqa: BLE001 - find the rows that fail, below
            failing = _failing_rows(rows, spec)
        if spec is QUARANTINE:
            rows.rows = [_safe_quarantine_row(r, failing[r[0]]) if r[0] in failing else r for r in rows.rows]
        else:
            for row in rows.remove(set(failing)):
                err = failing[row[0]]
                stream, stream_id, payload = batch.payloads[row[0]]
                quarantine_entry(batch, stream, stream_id, payload, [f"{type(err).__name__}: {err}"])
        if rows.rows:
            tables[spec.name] = rows_to_arrow(rows.rows, spec.schema)
    return tables
