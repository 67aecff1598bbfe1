"""Delta tables read and written in this process through delta-rs (the ``deltalake`` package).

The Delta project's own Rust implementation: log replay with checkpoints, conflict
checks on commit, column statistics on every file, local paths and object stores
alike. Only :mod:`looper_common.lake.engine` calls these functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from looper_common.contracts.errors import OperatorError
from looper_common.lake.tables import TableSpec

log = logging.getLogger(__name__)

Filter = tuple[str, str, object]  # (column, "=" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "md5<", value)
COMMIT_ATTEMPTS = 5  # a MERGE that lost a race with another writer reads the new version and runs again


class SchemaMigrationError(OperatorError):
    """An existing table cannot gain a column of its contract without rewriting its rows."""


class LakeCredentialsError(OSError):
    """The lake is on an object store and no credentials were found (the message says where to set them)."""


def open_table(uri: str, storage_options: Mapping[str, str] | None = None) -> DeltaTable | None:
    """The table at ``uri``, or None when it has no commit yet."""
    try:
        return DeltaTable(uri, storage_options=dict(storage_options or {}))
    except TableNotFoundError:
        return None
    except OSError as err:
        # without keys, delta-rs asks the cloud's instance metadata service for some: its token URL in the error
        if "/latest/api/token" in str(err):
            raise LakeCredentialsError(
                f"{uri}: no object store credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
                "environment (the cluster in a box: eval \"$(scripts/cluster.sh env)\"); delta-rs then found "
                f"none but the instance metadata service: {str(err).splitlines()[0]}") from err
        raise


def create(uri: str, spec: TableSpec, storage_options: Mapping[str, str] | None = None) -> None:
    """Create ``spec`` empty at ``uri`` unless it exists; set declared properties it lacks."""
    options = dict(storage_options or {})
    table = open_table(uri, options)
    if table is None:
        try:
            DeltaTable.create(
                uri, spec.schema, mode="ignore", partition_by=list(spec.partition_by) or None,
                configuration=dict(spec.properties) or None, storage_options=options,
            )
            return
        except CommitFailedError:  # another job created it first
            table = DeltaTable(uri, storage_options=options)
    current = table.metadata().configuration
    missing = {k: v for k, v in spec.properties if current.get(k) != v}
    if missing:
        table.alter.set_table_properties(missing)
    _add_new_columns(table, spec)


def _add_new_columns(table: DeltaTable, spec: TableSpec) -> None:
    """Add the spec's nullable columns a table created before them lacks (older rows read them as null)."""
    present = set(_arrow_schema(table).names)
    required = [f.name for f in spec.schema if f.name not in present and not f.nullable]
    if required:  # older rows would have no value for it: a migration has to write one
        raise SchemaMigrationError(
            f"{spec.name} at {table.table_uri} lacks the non-nullable column(s) {', '.join(required)} of its "
            "contract; only nullable columns are added to an existing table (its older rows read them as null): "
            "rewrite the table with the new column(s) filled in, or declare them nullable")
    new = [f for f in spec.schema if f.name not in present and f.nullable]
    if new:
        log.info("%s: adding column(s) %s (older rows read them as null)", spec.name, ", ".join(f.name for f in new))
        from deltalake.schema import Field as DeltaField

        table.alter.add_columns([DeltaField.from_arrow(f) for f in new])


def _arrow_schema(table: DeltaTable) -> pa.Schema:
    return pa.schema(table.schema().to_arrow())


def conform(table: pa.Table, spec: TableSpec, columns: Sequence[str] | None) -> pa.Table:
    """``table``'s columns in the spec's types and order (nullability as declared)."""
    names = list(columns) if columns is not None else spec.columns
    schema = pa.schema([spec.schema.field(n) for n in names])
    return pa.Table.from_arrays([table.column(n).cast(schema.field(n).type) for n in names], schema=schema)


def selected_bytes(table: DeltaTable, spec: TableSpec, filters: Sequence[Filter] | None) -> int:
    """Parquet bytes of the live files whose partition values pass the partition filters."""
    return _selected(table, spec, filters, "size_bytes")


def selected_rows(table: DeltaTable, spec: TableSpec, filters: Sequence[Filter] | None) -> int:
    """Rows of the live files whose partition values pass the partition filters (from the log's file stats)."""
    return _selected(table, spec, filters, "num_records")


def _selected(table: DeltaTable, spec: TableSpec, filters: Sequence[Filter] | None, stat: str) -> int:
    actions = _arrow_table(table.get_add_actions(flatten=True))
    keep = None
    for column, op, value in filters or ():
        if column not in spec.partition_by:
            continue
        values = actions.column(f"partition.{column}")
        if op == "in":
            test = pc.is_in(values, pa.array(list(value), values.type))
        else:
            test = getattr(pc, _COMPARE[op])(values, pa.scalar(value, values.type))
        keep = test if keep is None else pc.and_(keep, test)
    values = actions.column(stat) if keep is None else actions.filter(keep).column(stat)
    return int(pc.sum(values).as_py() or 0)


_COMPARE = {"=": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal"}


def _arrow_table(data) -> pa.Table:
    """A delta-rs (arro3) result as a pyarrow Table, through the Arrow C stream (``pa.table`` would import pandas)."""
    return pa.RecordBatchReader.from_stream(data).read_all()


def _sql_literal(value: object) -> str:
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


SAMPLE_OP = "md5<"  # (key, "md5<", hex prefix): rows whose key's MD5 (lowercase hex) starts below the prefix


def sample_filter(key: str, fraction: float, digits: int = 8) -> Filter:
    """A filter keeping about ``fraction`` of the distinct values of ``key``, the same ones on every engine.

    By the MD5 of the key, so the sample is a function of the key alone: every label
    row of a decision is in it or none is, a rerun picks the same rows, and delta-rs and
    Spark (both have ``md5``) pick the same ones.
    """
    bound = min(max(int(fraction * 16**digits), 1), 16**digits)
    return (key, SAMPLE_OP, f"{bound:0{digits}x}" if bound < 16**digits else "g" * digits)


def where_sql(filters: Sequence[Filter] | None, alias: str = "") -> str:
    """The filters ``[(column, op, value)]`` as a SQL condition (``TRUE`` without filters)."""
    terms = []
    for column, op, value in filters or ():
        name = f'{alias}"{column}"'
        if op == "in":
            terms.append(f"{name} IN ({', '.join(_sql_literal(v) for v in value)})" if value else "FALSE")
        elif op == SAMPLE_OP:
            terms.append(f"substr(md5(CAST({name} AS VARCHAR)), 1, {len(str(value))}) < {_sql_literal(value)}")
        else:
            terms.append(f"{name} {'<>' if op == '!=' else op} {_sql_literal(value)}")
    return " AND ".join(terms) or "TRUE"


def read(
    table: DeltaTable, spec: TableSpec, filters: Sequence[Filter] | None, columns: Sequence[str] | None
) -> pa.Table:
    """The live rows that pass ``filters``, at the table's loaded version (delta-rs' SQL engine, DataFusion)."""
    names = ", ".join(f'"{c}"' for c in (columns or spec.columns))
    result = QueryBuilder().register("t", table).execute(f"SELECT {names} FROM t WHERE {where_sql(filters)}")
    return conform(_arrow_table(result), spec, columns)


def insert_new(table: DeltaTable, spec: TableSpec, rows: pa.Table, partitions: Mapping[str, Sequence[object]]) -> int:
    """Insert the rows whose key is not in the table yet (an insert-only MERGE); returns how many.

    ``partitions`` lists partition values present in ``rows``, so the MERGE reads only
    those partitions of the table. Rerunning with the same rows inserts nothing.
    """
    condition = " AND ".join(
        [f"t.{k} = s.{k}" for k in spec.key]
        + [where_sql([(c, "in", list(values))], "t.") for c, values in partitions.items() if values]
    )
    source = conform(rows, spec, None)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            metrics = (
                table.merge(source, condition, source_alias="s", target_alias="t")
                .when_not_matched_insert_all()
                .execute()
            )
            return int(metrics["num_target_rows_inserted"])
        except CommitFailedError as err:
            if attempt == COMMIT_ATTEMPTS:
                raise
            log.warning("%s: MERGE lost a race with another writer (%s); retrying on the new version", spec.name, err)
            time.sleep(0.1 * attempt)
            table.update_incremental()
    raise AssertionError("unreachable")


def append(table: DeltaTable, spec: TableSpec, rows: pa.Table) -> None:
    """Append ``rows`` (a blind append: the caller's rows are new by construction)."""
    write_deltalake(table, conform(rows, spec, None), mode="append")


def replace_partition(table: DeltaTable, spec: TableSpec, rows: pa.Table, where: Mapping[str, object]) -> None:
    """Atomically replace the rows matching ``where`` (column = value) with ``rows``."""
    predicate = where_sql([(column, "=", value) for column, value in where.items()])
    write_deltalake(table, conform(rows, spec, None), mode="overwrite", predicate=predicate)
