"""Insert-only writes to a Delta table from Arrow: what an insert-only MERGE does, without Spark's row writer.

On two cores Spark spends ~20 s per million bronze rows converting Arrow to rows and
as much again encoding Parquet (docs/benchmarks.md); pyarrow writes the same files
in a tenth of the time. ``insert_new_rows`` keeps the MERGE's contract in one Delta
transaction: it lists the files of the partitions the rows can touch from the log
at the transaction's version (recorded as read, so a concurrent commit to them makes
this one fail instead of duplicating),
reads their key column, drops the rows already present, writes the rest as Parquet
and commits them with Delta's own ``OptimisticTransaction``. Tables it cannot
read that way (deletion vectors, column mapping, a lake that is not a local path)
return None and the caller MERGEs with Spark.

``append_rows`` is the blind append of a few rows (an alias move) by a job that has no
Spark session at all: the same Parquet files, committed by creating the next commit
file of the log under Delta's mutual exclusion for local file systems (never
overwriting one), for tables simple enough to be written that way (``_appendable``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import date
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from looper_common.lake.delta_log import latest_version, live_files, local_root, replay
from looper_common.lake.tables import Lake, TableSpec


def _has_log(root: str) -> bool:
    """Whether the table has a commit (``Lake.ensure`` costs a snapshot load per call; this a listing)."""
    try:
        return any(name.endswith((".json", ".parquet")) for name in os.listdir(os.path.join(root, "_delta_log")))
    except FileNotFoundError:
        return False


def _seq(jvm, items):
    java = jvm.java.util.ArrayList()
    for item in items:
        java.add(item)
    return jvm.scala.jdk.javaapi.CollectionConverters.asScala(java).toList()


def _write_operation(spark: SparkSession, partition_by: tuple[str, ...]):
    """``DeltaOperations.Write(Append, Some(partitionBy), None, ...)``, whatever its arity in this Delta."""
    jvm = spark._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    write = jvm.java.lang.Class.forName("org.apache.spark.sql.delta.DeltaOperations$Write", True, loader)
    ctor = write.getConstructors()[0]
    args = spark.sparkContext._gateway.new_array(jvm.java.lang.Object, ctor.getParameterCount())
    args[0] = jvm.org.apache.spark.sql.SaveMode.Append
    args[1] = jvm.scala.Option.apply(_seq(jvm, partition_by))
    for i in range(2, len(args)):
        args[i] = jvm.scala.Option.empty()
    return ctor.newInstance(args)


def _sql_value(column: str, value: object) -> str:
    if column == "date":
        return f"DATE'{value}'"
    return "'" + str(value).replace("'", "''") + "'"


def _partition_filter(spark: SparkSession, partitions: dict[str, list]):
    predicate = " AND ".join(
        f"{column} IN ({', '.join(_sql_value(column, v) for v in values)})" for column, values in partitions.items()
    )
    return spark._jsparkSession.sessionState().sqlParser().parseExpression(predicate or "true")


def _texts(values) -> dict[str, str]:
    """Partition values as the log spells them."""
    return {c: v.isoformat() if isinstance(v, date) else str(v) for c, v in values.items()}


def existing_keys(root: str, files: list[dict], key: str, cache: dict[str, pa.Array] | None = None) -> pa.Array | None:
    """The key column of ``files`` (the live files of the touched partitions).

    Data files never change, so ``cache`` (path -> keys, kept by the caller for a run)
    saves reading again what an earlier batch read or wrote.
    """
    cache = {} if cache is None else cache
    columns = []
    for add in files:
        path = unquote(add["path"])
        full = path if os.path.isabs(path) else os.path.join(root, path)
        if full not in cache:
            cache[full] = pq.read_table(full, columns=[key]).column(0).combine_chunks()
        columns.append(cache[full])
    return pa.chunked_array(columns).combine_chunks() if columns else None


def write_files(
    root: str, table: TableSpec, rows: pa.Table, cache: dict[str, pa.Array] | None = None
) -> list[dict]:
    """One Parquet file per partition of ``rows`` (partition columns in the path, as Spark lays them out)."""
    if not table.partition_by:
        relative = f"part-{uuid.uuid4()}.c000.snappy.parquet"
        pq.write_table(rows, os.path.join(root, relative), compression="snappy")
        stat = os.stat(os.path.join(root, relative))
        return [{
            "path": relative, "partitionValues": {}, "size": stat.st_size,
            "modificationTime": int(stat.st_mtime * 1000), "dataChange": True,
            "stats": json.dumps({"numRecords": rows.num_rows}),
        }]
    adds = []
    keys = rows.select(list(table.partition_by)).group_by(list(table.partition_by)).aggregate([])
    for values in keys.to_pylist():
        mask = None
        for column, value in values.items():
            match = pc.equal(rows[column], pa.scalar(value, rows.schema.field(column).type))
            mask = match if mask is None else pc.and_(mask, match)
        part = rows.filter(mask).drop_columns(list(table.partition_by))
        texts = _texts(values)
        relative = "/".join(f"{c}={texts[c]}" for c in table.partition_by) + f"/part-{uuid.uuid4()}.c000.snappy.parquet"
        full = os.path.join(root, relative)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        pq.write_table(part, full, compression="snappy")
        if cache is not None:
            cache[full] = part.column(table.key[0]).combine_chunks()
        stat = os.stat(full)
        adds.append({
            "path": relative, "partitionValues": texts, "size": stat.st_size,
            "modificationTime": int(stat.st_mtime * 1000), "dataChange": True,
            "stats": json.dumps({"numRecords": part.num_rows}),
        })
    return adds


def commit_files(spark: SparkSession, txn, table: TableSpec, adds: list[dict]) -> None:
    """Commit ``adds`` in ``txn`` as an append (Delta checks conflicts with what it read)."""
    actions = spark._jvm.org.apache.spark.sql.delta.actions.Action
    txn.commit(
        _seq(spark._jvm, [actions.fromJson(json.dumps({"add": add})) for add in adds]),
        _write_operation(spark, table.partition_by),
    )


def insert_new_rows(
    spark: SparkSession,
    lake: Lake,
    table: TableSpec,
    rows: pa.Table,
    partitions: dict[str, list],
    key_cache: dict[str, pa.Array] | None = None,
) -> int | None:
    """Insert the rows whose key is not in the table yet; None if the table needs a Spark MERGE instead.

    ``rows`` are unique by key and carry dates as ``date32``; ``partitions`` lists the
    partition values present in them (every partition column); ``key_cache`` keeps
    the keys of data files already read or written, across calls.
    """
    root = local_root(lake.path(table))
    if root is None or set(partitions) != set(table.partition_by):
        return None
    if not _has_log(root):
        lake.ensure(spark, table)
    txn = spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, root).startTransaction()
    if txn.protocol().minReaderVersion() > 1:  # deletion vectors, column mapping: Spark reads those
        return None
    texts = {c: {_texts({c: v})[c] for v in vs} for c, vs in partitions.items()}
    touched = live_files(root, txn.snapshot().version(), texts)
    if touched is None or any(add.get("deletionVector") for add in touched):
        return None
    # What filterFiles would record: a concurrent commit to these partitions fails this one.
    txn.trackReadPredicates(_seq(spark._jvm, [_partition_filter(spark, partitions)]), True, True)
    (key,) = table.key
    present = existing_keys(root, touched, key, key_cache)
    if present is not None:
        rows = rows.filter(pc.invert(pc.is_in(rows[key], value_set=present)))
    if rows.num_rows == 0:
        return 0
    commit_files(spark, txn, table, write_files(root, table, rows, key_cache))
    return rows.num_rows


# What a blind append may meet and still be written here: reader version 1 and writer version 2
# (append-only tables and NOT NULL invariants, which ``append_rows`` checks itself). Anything
# newer (CHECK constraints, generated or identity columns, column mapping, table features such
# as in-commit timestamps or row tracking) is Spark's to write.
MAX_WRITER_VERSION = 2
ENGINE_INFO = "looper-delta-append (pyarrow)"


def _appendable(state, table: TableSpec) -> str | None:
    """Why the table at ``state`` cannot take a blind append written here (None: it can)."""
    protocol, metadata = state.protocol, state.metadata
    if int(protocol.get("minReaderVersion", 1)) > 1 or int(protocol.get("minWriterVersion", 1)) > MAX_WRITER_VERSION:
        return f"protocol {protocol}"
    if any(key.startswith("delta.constraints.") for key in metadata.get("configuration", {})):
        return "CHECK constraints"
    if "delta.invariants" in metadata.get("schemaString", "") or "delta.generationExpression" in metadata.get(
            "schemaString", ""):
        return "column invariants or generated columns"
    if T.StructType.fromJson(json.loads(metadata["schemaString"])) != table.schema:
        return "a schema other than the table spec's"
    if list(metadata.get("partitionColumns") or []) != list(table.partition_by):
        return f"partition columns {metadata.get('partitionColumns')}"
    return None


def _commit_json(root: str, version: int, actions: list[dict]) -> bool:
    """Write commit ``version`` if no other writer has: Delta's mutual exclusion on a local file system."""
    log_dir = os.path.join(root, "_delta_log")
    target = os.path.join(log_dir, f"{version:020d}.json")
    staged = os.path.join(log_dir, f".{version:020d}.json.{uuid.uuid4()}.tmp")
    with open(staged, "w", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(action, separators=(",", ":")) + "\n" for action in actions))
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(staged, target)  # fails if the version exists: never overwrites a commit
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(staged)


def _create_actions(table: TableSpec) -> list[dict]:
    """The protocol and metadata of a new table, as Spark's ``Lake.ensure`` would create it."""
    return [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {"metaData": {
            "id": str(uuid.uuid4()), "format": {"provider": "parquet", "options": {}},
            "schemaString": table.schema.json(), "partitionColumns": list(table.partition_by),
            "configuration": dict(table.properties), "createdTime": int(time.time() * 1000),
        }},
    ]


def append_rows(lake: Lake, table: TableSpec, rows: pa.Table, *, max_attempts: int = 10) -> int | None:
    """Append ``rows`` (Arrow, in the table's types) to a local table, creating it if need be, without Spark.

    A blind append: one Parquet file per partition and one commit with their ``add``
    actions (and, for a new table, its protocol and metadata), retried at the next
    version when another writer committed first: appends never conflict with appends;
    a protocol or metadata change in between ends the attempt with an error. Returns
    the number of rows appended, or None when Spark must write them: a lake that is not
    a local path, or a table whose protocol, constraints, schema or partitioning this
    writer does not handle (``_appendable``). Null in a NOT NULL column raises, as
    Delta's invariant check does.
    """
    root = local_root(lake.path(table))
    if root is None:
        return None
    for field in table.schema.fields:
        if not field.nullable and rows.column(field.name).null_count:
            raise ValueError(f"{table.name}: column {field.name!r} is NOT NULL; "
                             f"{rows.column(field.name).null_count} row(s) have null")
    version = latest_version(root)
    if version is not None:
        state = replay(root, version)
        if state is None or _appendable(state, table) is not None:
            return None
    elif rows.num_rows == 0:
        return 0
    version = -1 if version is None else version
    os.makedirs(os.path.join(root, "_delta_log"), exist_ok=True)
    adds = write_files(root, table, rows.select(table.schema.fieldNames())) if rows.num_rows else []
    for _ in range(max_attempts):
        commit_info = {
            "timestamp": int(time.time() * 1000), "operation": "WRITE",
            "operationParameters": {"mode": "Append", "partitionBy": json.dumps(list(table.partition_by))},
            "readVersion": version, "isolationLevel": "Serializable", "isBlindAppend": True,
            "operationMetrics": {"numFiles": str(len(adds)), "numOutputRows": str(rows.num_rows),
                                 "numOutputBytes": str(sum(a["size"] for a in adds))},
            "engineInfo": ENGINE_INFO, "txnId": str(uuid.uuid4()),
        }
        if version < 0:
            del commit_info["readVersion"]
        actions = [{"commitInfo": commit_info}, *(_create_actions(table) if version < 0 else ()),
                   *({"add": a} for a in adds)]
        if _commit_json(root, version + 1, actions):
            return rows.num_rows
        version += 1  # another writer took it: append after it unless it changed the table
        with open(os.path.join(root, "_delta_log", f"{version:020d}.json"), encoding="utf-8") as commit:
            changed = any(key in json.loads(line) for line in commit for key in ("metaData", "protocol"))
        if changed and (version > 0 or _appendable(replay(root, 0), table) is not None):
            raise RuntimeError(f"{table.name}: another writer changed the table (version {version}) "
                               "while this job appended to it; rerun the job")
    raise RuntimeError(f"{table.name}: {max_attempts} other writers committed first; rerun the job")
