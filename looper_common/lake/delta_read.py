"""Small Delta tables read into Arrow from the transaction log, without a Spark session.

Validate, train, evaluate, tune and publish each want a few thousand rows as pandas on
a day of the demo, and Spark's first Delta read in a fresh driver JVM costs them 10-15 s (log
replay as a Spark job, file filtering, a query compiled on first use) where the
table's log and Parquet files take pyarrow well under a second. :func:`read_table`
reads a table's live files at its latest version, keeps the partitions a predicate
selects and returns them with the Delta version read. It returns None, and the caller
reads with Spark, whenever it is not the simple case: a lake that is not a local path,
a table whose protocol needs more than reader version 1 (deletion vectors, column
mapping, v2 checkpoints) and a selection of more than ``max_bytes`` of Parquet (what
Spark should scan, not one Python process).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import types as T

from looper_common.lake.arrow_rows import arrow_type
from looper_common.lake.delta_log import latest_version, local_root, replay
from looper_common.lake.tables import Lake, TableSpec

log = logging.getLogger(__name__)

PartitionFilter = Callable[[Mapping[str, str]], bool]  # the log's partition values (text) -> keep the file


def blueprint_dates(blueprint: str, first: date | None = None, last: date | None = None) -> PartitionFilter:
    """The files of ``blueprint``'s partitions dated ``first`` to ``last`` (both included, each optional)."""
    low, high = (first.isoformat() if first else ""), (last.isoformat() if last else "9999-12-31")
    return lambda values: values.get("blueprint") == blueprint and low <= (values.get("date") or "") <= high


@dataclass(frozen=True)
class ArrowRead:
    """Rows of a table read at ``version`` (empty when the table has no commit yet: version -1)."""

    version: int
    table: pa.Table


def arrow_schema(spec: TableSpec, columns: Iterable[str] | None = None) -> pa.Schema:
    """The table's columns (all, or ``columns`` in that order) as Arrow fields."""
    fields = {f.name: f for f in spec.schema.fields}
    names = list(columns) if columns is not None else list(fields)
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise KeyError(f"{spec.name} has no column(s) {unknown} (it has {list(fields)})")
    return pa.schema([pa.field(n, arrow_type(fields[n].dataType), fields[n].nullable) for n in names])


def _partition_value(text: str | None, data_type: T.DataType) -> object:
    if text is None or text == "":
        return None
    if isinstance(data_type, T.DateType):
        return date.fromisoformat(text)
    return text


def _read_file(root: str, add: dict, spec: TableSpec, schema: pa.Schema) -> pa.Table:
    path = unquote(add["path"])
    full = path if os.path.isabs(path) else os.path.join(root, path)
    # a file written before a nullable column was added lacks it: null, as Spark reads it
    present = set(pq.read_schema(full).names)
    data = [f.name for f in schema if f.name not in spec.partition_by and f.name in present]
    # Spark writes timestamps as INT96 by default, pyarrow (ingestion) as int64 microseconds
    table = pq.read_table(full, columns=data, coerce_int96_timestamp_unit="us")
    columns = []
    for field in schema:
        if field.name in spec.partition_by:
            data_type = next(f.dataType for f in spec.schema.fields if f.name == field.name)
            value = _partition_value(add["partitionValues"].get(field.name), data_type)
            columns.append(pa.repeat(pa.scalar(value, field.type), table.num_rows))
        elif field.name in present:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def read_table(
    lake: Lake,
    spec: TableSpec,
    *,
    where: PartitionFilter | None = None,
    columns: Iterable[str] | None = None,
    max_bytes: int | None = None,
) -> ArrowRead | None:
    """The live rows of ``spec`` in the partitions ``where`` keeps; None when Spark must read it.

    ``where`` receives each file's partition values as the log writes them (text,
    dates as ``YYYY-MM-DD``). A table without a commit reads as empty. ``max_bytes``
    defaults to the lake's ``pyarrow_max_bytes``.
    """
    max_bytes = lake.pyarrow_max_bytes if max_bytes is None else max_bytes
    root = local_root(lake.path(spec))
    if root is None or max_bytes <= 0:
        return None
    started = time.perf_counter()
    schema = arrow_schema(spec, columns)
    version = latest_version(root)
    if version is None:
        return ArrowRead(-1, schema.empty_table())
    state = replay(root, version)
    if state is None:
        return None
    if int(state.protocol.get("minReaderVersion", 1)) > 1:
        log.info("%s: protocol %s needs Spark to read it", spec.name, state.protocol)
        return None
    files = [add for add in state.files.values() if where is None or where(add["partitionValues"])]
    size = sum(int(add.get("size") or 0) for add in files)
    if size > max_bytes:
        log.info("%s: %d files, %.0f MB selected: more than the %.0f MB read without Spark",
                 spec.name, len(files), size / 1e6, max_bytes / 1e6)
        return None
    if any(add.get("deletionVector") for add in files):
        return None
    parts = [_read_file(root, add, spec, schema) for add in files]
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    log.info("%s v%d: %d rows from %d files (%.1f MB) read without Spark in %.2f s",
             spec.name, version, table.num_rows, len(files), size / 1e6, time.perf_counter() - started)
    return ArrowRead(version, table)
