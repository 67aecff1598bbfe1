"""Python rows to an Arrow table in a Spark schema, so Spark takes a batch without parsing it.

Rows carry timestamps as epoch milliseconds and dates as days since the epoch (what
``event_parsing`` computes); maps as dicts. Spark's ``createDataFrame`` of the Arrow
table then only copies columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import types as T

_SCALARS = {
    T.StringType: pa.string(),
    T.DoubleType: pa.float64(),
    T.BooleanType: pa.bool_(),
    T.LongType: pa.int64(),
}


def arrow_type(data_type: T.DataType) -> pa.DataType:
    """The Arrow type of a column of Spark type ``data_type`` (the types the lake's tables use)."""
    if isinstance(data_type, T.TimestampType):
        return pa.timestamp("us", tz="UTC")
    if isinstance(data_type, T.DateType):
        return pa.date32()
    if isinstance(data_type, T.MapType):
        return pa.map_(arrow_type(data_type.keyType), arrow_type(data_type.valueType))
    return _SCALARS[type(data_type)]


def _map_array(values: Sequence[dict | None], value_type: pa.DataType) -> pa.MapArray:
    lengths = np.fromiter((len(m) if m is not None else 0 for m in values), np.int32, len(values))
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [m for m in values if m]
    keys = pa.array(list(chain.from_iterable(present)), pa.string())
    items = pa.array(list(chain.from_iterable(m.values() for m in present)), value_type)
    mask = pa.array([m is None for m in values], pa.bool_()) if any(m is None for m in values) else None
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items, mask=mask)


def _column(values: Sequence, data_type: T.DataType) -> pa.Array:
    if isinstance(data_type, T.TimestampType):  # epoch milliseconds
        return pc.multiply(pa.array(values, pa.int64()), 1000).cast(arrow_type(data_type))
    if isinstance(data_type, T.DateType):  # days since the epoch
        return pa.array(values, pa.int32()).cast(arrow_type(data_type))
    if isinstance(data_type, T.MapType):
        return _map_array(values, arrow_type(data_type.valueType))
    return pa.array(values, arrow_type(data_type))


def rows_to_arrow(rows: Sequence[tuple], schema: T.StructType) -> pa.Table:
    """An Arrow table of ``rows`` (tuples in the schema's column order)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema.fields)
    return pa.Table.from_arrays(
        [_column(list(col), f.dataType) for col, f in zip(columns, schema.fields, strict=True)],
        names=schema.fieldNames(),
    )
