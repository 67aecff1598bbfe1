"""Python rows to an Arrow table in a table's schema, column by column.

Rows carry timestamps as epoch milliseconds and dates as days since the epoch (what
``ingest.parsing`` computes), maps as dicts. The result has the lake's Arrow types
(``tables.py``), so delta-rs writes it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _map_array(values: Sequence[dict | None], map_type: pa.MapType) -> pa.MapArray:
    lengths = np.fromiter((len(m) if m is not None else 0 for m in values), np.int32, len(values))
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [m for m in values if m]
    keys = pa.array(list(chain.from_iterable(present)), map_type.key_type)
    items = pa.array(list(chain.from_iterable(m.values() for m in present)), map_type.item_type)
    mask = pa.array([m is None for m in values], pa.bool_()) if any(m is None for m in values) else None
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=map_type, mask=mask)


def _column(values: Sequence, data_type: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(data_type):  # epoch milliseconds
        return pc.multiply(pa.array(values, pa.int64()), 1000).cast(data_type)
    if pa.types.is_date32(data_type):  # days since the epoch
        return pa.array(values, pa.int32()).cast(data_type)
    if pa.types.is_map(data_type):
        return _map_array(values, data_type)
    return pa.array(values, data_type)


def rows_to_arrow(rows: Sequence[tuple], schema: pa.Schema) -> pa.Table:
    """An Arrow table of ``rows`` (tuples in the schema's column order) with ``schema``."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.Table.from_arrays(
        [_column(list(col), field.type) for col, field in zip(columns, schema, strict=True)], schema=schema
    )
