"""The lake's one seam: every read and write of a Delta table goes through :class:`Lake`.

It picks the engine, and no other module knows which ran:

* Arrow rows (ingestion's batches, alias moves, a job's small results) are written by
  delta-rs in this process; Spark DataFrames (the delayed-feedback join) by Spark.
* A read runs on delta-rs when the Parquet it selects is at most ``local_read_max_bytes``
  (``local_read_max_mb`` in ``conf/<env>.yaml``); above that, or with 0, Spark reads it
  (the session is built on first need) and hands back the same Arrow rows.
* :meth:`Lake.map_groups` applies one Arrow function per group of rows: to the whole
  selection in this process, or through ``mapInArrow`` on Spark's executors.

So a job that needs no Spark starts no JVM, and one written over Arrow batches runs
unchanged at cluster scale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from looper_common.lake import delta
from looper_common.lake.tables import ALL_TABLES, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

Filter = delta.Filter
SessionSource = Callable[[], "SparkSession"]


def blueprint_dates(blueprint: str, first: date | None = None, last: date | None = None) -> list[Filter]:
    """Filters for ``blueprint``'s partitions dated ``first`` to ``last`` (both included, each optional)."""
    filters: list[Filter] = [("blueprint", "=", blueprint)]
    if first is not None:
        filters.append(("date", ">=", first))
    if last is not None:
        filters.append(("date", "<=", last))
    return filters


@dataclass(frozen=True)
class LakeRead:
    """Rows of a table read at ``version`` (-1: the table has no commit yet) and the engine that read them."""

    version: int
    table: pa.Table
    engine: str  # "delta-rs" or "spark"


@dataclass
class Lake:
    """Where the tables live (``<root>/<layer>/<table>``) and which engine serves each request."""

    root: str
    local_read_max_bytes: int = 64_000_000
    storage_options: Mapping[str, str] = field(default_factory=dict)
    spark: SessionSource | None = None  # a session or a LazySession; None: delta-rs only

    def path(self, spec: TableSpec) -> str:
        return f"{self.root.rstrip('/')}/{spec.name}"

    def session(self) -> SparkSession:
        if self.spark is None:
            raise RuntimeError("this lake has no Spark session configured; it reads and writes with delta-rs only")
        return self.spark()

    def _table(self, spec: TableSpec):
        table = delta.open_table(self.path(spec), self.storage_options)
        if table is None:
            delta.create(self.path(spec), spec, self.storage_options)
            table = delta.open_table(self.path(spec), self.storage_options)
        return table

    def ensure_tables(self, specs: Sequence[TableSpec] = ALL_TABLES) -> None:
        """Create every table the contracts list (empty) that does not exist yet."""
        for spec in specs:
            delta.create(self.path(spec), spec, self.storage_options)

    def version(self, spec: TableSpec) -> int:
        """The table's current Delta version (stamped on downstream runs for lineage)."""
        return self._table(spec).version()

    def selected_rows(self, spec: TableSpec, filters: Sequence[Filter] | None = None) -> int:
        """Rows in the live files the partition filters select (the Delta log's stats; nothing is read)."""
        return delta.selected_rows(self._table(spec), spec, filters)

    def read(
        self, spec: TableSpec, *, filters: Sequence[Filter] | None = None, columns: Sequence[str] | None = None
    ) -> LakeRead:
        """The live rows passing ``filters`` (partition or column filters), as Arrow in the spec's types."""
        started = time.perf_counter()
        table = self._table(spec)
        size = delta.selected_bytes(table, spec, filters)
        read = self._read(table, spec, filters, columns, self._engine(size))
        log.info("%s v%d: %d rows (%.1f MB selected) read by %s in %.2f s",
                 spec.name, read.version, read.table.num_rows, size / 1e6, read.engine, time.perf_counter() - started)
        return read

    def _read(self, table, spec: TableSpec, filters, columns, engine: str) -> LakeRead:
        if engine == "delta-rs":
            return LakeRead(table.version(), delta.read(table, spec, filters, columns), engine)
        return LakeRead(table.version(), self._spark_read(spec, table.version(), filters, columns), engine)

    def _engine(self, selected_bytes: int) -> str:
        """The choice, in one place: delta-rs up to ``local_read_max_bytes`` (or without Spark), else Spark."""
        if self.spark is None or (self.local_read_max_bytes > 0 and selected_bytes <= self.local_read_max_bytes):
            return "delta-rs"
        return "spark"

    def _spark_read(self, spec, version, filters, columns) -> pa.Table:
        from looper_common.lake import spark

        frame = self.dataframe(spec, version=version).where(spark.filter_column(filters or ()))
        rows = frame.select(*(columns or spec.columns)).toArrow()
        return delta.conform(rows, spec, columns)

    def dataframe(self, spec: TableSpec, *, version: int | None = None) -> DataFrame:
        """The table as a Spark DataFrame, for jobs that run on Spark (the delayed-feedback join)."""
        from looper_common.lake import spark

        self._table(spec)
        return spark.dataframe(self.session(), self.path(spec), version)

    def insert_new(
        self, spec: TableSpec, rows: pa.Table | DataFrame, partitions: Mapping[str, Sequence[object]]
    ) -> int:
        """Insert the rows whose key is not in the table yet; returns how many (a rerun inserts none).

        ``partitions`` lists the partition values present in ``rows`` (the MERGE reads only those).
        """
        if isinstance(rows, pa.Table):
            return delta.insert_new(self._table(spec), spec, rows, partitions)
        from looper_common.lake import spark

        self._table(spec)
        return spark.insert_new(self.path(spec), spec, rows, partitions)

    def append(self, spec: TableSpec, rows: pa.Table) -> None:
        """Append Arrow rows (new by construction, e.g. an alias move)."""
        delta.append(self._table(spec), spec, rows)

    def replace_partition(self, spec: TableSpec, rows: pa.Table | DataFrame, where: Mapping[str, object]) -> None:
        """Atomically replace the rows matching ``where`` (partition values) with ``rows``."""
        if isinstance(rows, pa.Table):
            delta.replace_partition(self._table(spec), spec, rows, where)
            return
        from looper_common.lake import spark

        self._table(spec)
        spark.replace_partition(self.path(spec), spec, rows, where)

    def map_groups(
        self,
        spec: TableSpec,
        fn: Callable[[pa.Table], pa.Table],
        *,
        key: str,
        schema: pa.Schema,
        filters: Sequence[Filter] | None = None,
        columns: Sequence[str] | None = None,
        shared: object = None,
    ) -> pa.Table:
        """``fn`` over the selected rows, all the rows of one ``key`` value in the same call.

        ``fn`` maps Arrow rows to Arrow rows of ``schema``. On delta-rs it runs once over
        the whole selection; on Spark, once per partition after a repartition by ``key``
        (``mapInArrow`` on the executors), and the results are collected. With ``shared``
        (a model, say), ``fn`` is called as ``fn(rows, shared)``; on Spark ``shared`` is
        broadcast once to the executors rather than shipped with every task (as a client of
        Spark Connect, which has no broadcast variables, it travels with ``fn``).
        """
        table = self._table(spec)
        if self._engine(delta.selected_bytes(table, spec, filters)) == "delta-rs":
            rows = self._read(table, spec, filters, columns, "delta-rs").table
            return conform_to(fn(rows) if shared is None else fn(rows, shared), schema)
        from pyspark.sql.pandas.types import from_arrow_schema

        from looper_common.lake import spark

        session = self.session()
        broadcast, shared_value = None, None
        if shared is not None and spark.is_remote(session):
            shared_value = lambda: shared  # noqa: E731  (Spark Connect has no broadcast: shipped with fn)
        elif shared is not None:
            broadcast = session.sparkContext.broadcast(shared)
            shared_value = lambda: broadcast.value  # noqa: E731

        def per_partition(batches):
            batches = list(batches)  # a partition no key hashed to has none, and no schema to build a table from
            rows = pa.Table.from_batches(batches) if batches else None
            if rows is not None and rows.num_rows:
                out = fn(rows) if shared_value is None else fn(rows, shared_value())
                yield from conform_to(out, schema).to_batches()

        frame = self.dataframe(spec).where(spark.filter_column(filters or ())).select(*(columns or spec.columns))
        try:
            return conform_to(frame.repartition(key).mapInArrow(per_partition, from_arrow_schema(schema)).toArrow(),
                              schema)
        finally:
            if broadcast is not None:
                broadcast.unpersist()


def conform_to(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows``' columns in ``schema``'s order and types."""
    return pa.Table.from_arrays([rows.column(n).cast(schema.field(n).type) for n in schema.names], schema=schema)
