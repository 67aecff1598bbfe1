"""``looper import-logs``: logged decisions from another system into bronze, through ingestion.

A file (Parquet, or CSV with a header) of one row per decision, in the columns of
docs/import-logs.md, becomes decision events and observation events in the event
contract (docs/events-and-keys.md), with the file's actions and propensities. They are
added to the blueprint's Redis stream and drained by ``ingest_events``, so they pass
the same validation as live events: a bad row is quarantined with its reason, never
dropped, and an event already in bronze is not written twice (importing the same file
again adds nothing). Ids are derived from the file when it has no ``decision_id``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import redis

from looper_common.contracts import events, ids
from looper_common.contracts.blueprint import Blueprint
from looper_common.ingest.streams import IngestStats, ingest_events
from looper_common.lake.engine import Lake
from looper_common.sdk.redis_batches import BatchWriter

REQUIRED = ("unit", "timestamp", "action", "propensity")
FEATURE_PREFIX, OBSERVATION_PREFIX = "feature_", "obs_"
OBSERVATION_DELAY = timedelta(seconds=1)  # an observation without its own _ts column: one second after


class LogFileError(ValueError):
    """The file cannot be imported at all (unreadable, or a required column is absent); names what."""


@dataclass
class ImportStats:
    rows: int
    decisions: int  # decision events sent
    observations: int  # observation events sent
    first_date: date | None
    last_date: date | None
    ingest: IngestStats

    def summary(self) -> str:
        span = f"{self.first_date} .. {self.last_date}" if self.first_date else "no valid timestamp"
        return (f"{self.rows} rows ({span}): {self.decisions} decision and {self.observations} observation "
                f"events sent; ingestion: {self.ingest.summary()}")


def encode(event: dict) -> bytes:
    """The event's JSON; a value JSON has no type for (a date, a decimal) as its text, NaN as ``NaN``
    (which ingestion quarantines as malformed JSON, naming it)."""
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def read_logs(path: str | Path) -> pa.Table:
    """The file as an Arrow table: Parquet by its suffix (``.parquet``, ``.pq``), else CSV."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pq.read_table(path)
        else:
            table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(strings_can_be_null=True))
    except (OSError, pa.ArrowInvalid) as err:
        raise LogFileError(f"{path}: cannot read: {err}") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    has_features = "features" in table.column_names or any(c.startswith(FEATURE_PREFIX) for c in table.column_names)
    if missing or not has_features:
        need = missing + ([] if has_features else ["features (JSON) or feature_<name> columns"])
        raise LogFileError(f"{path}: missing column(s) {', '.join(need)} (have {', '.join(table.column_names)})")
    return table


def epoch_ms(value: object) -> object:
    """A timestamp cell as epoch milliseconds: a datetime (naive = UTC), ISO 8601 text, or integer ms.

    Anything else is returned as it is, for ingestion to quarantine with its reason.
    """
    if isinstance(value, datetime):
        return events.to_epoch_ms(value)
    if isinstance(value, str):
        try:
            return events.to_epoch_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return value


def _features(row: Mapping[str, object]) -> object:
    if row.get("features") is not None:
        text = row["features"]
        try:
            return json.loads(text) if isinstance(text, str) else text
        except ValueError:
            return text  # not JSON: ingestion quarantines it ("features: expected an object")
    return {k.removeprefix(FEATURE_PREFIX): v for k, v in row.items() if k.startswith(FEATURE_PREFIX)}


def _decision_id(blueprint: Blueprint, row: Mapping[str, object], index: int) -> str:
    if row.get("decision_id") is not None:
        return str(row["decision_id"])
    key = f"{blueprint.name}|{index}|{row.get('unit')}|{row.get('timestamp')}|{row.get('action')}"
    return "import-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def row_events(blueprint: Blueprint, row: Mapping[str, object], index: int, source: str) -> Iterator[dict]:
    """The decision event of one row and its observation events (``obs_<name>`` cells that are not empty)."""
    decision_id = _decision_id(blueprint, row, index)
    ts = epoch_ms(row.get("timestamp"))
    action, propensity = row.get("action"), row.get("propensity")
    probs = row.get("action_probs")
    if isinstance(probs, str):
        try:
            probs = json.loads(probs)
        except ValueError:
            pass
    yield {
        "kind": events.DECISION, "event_id": decision_id, "decision_id": decision_id,
        "blueprint": blueprint.name, "blueprint_version": blueprint.version,
        "unit_id": None if row.get("unit") is None else str(row["unit"]), "ts": ts,
        "features": _features(row), "action": action, "propensity": propensity,
        "action_probs": probs if probs is not None else {str(action): propensity},
        "scores": None, "policy_version": row.get("policy_version") or f"import:{source}", "is_default": False,
    }
    for column, value in row.items():
        if not column.startswith(OBSERVATION_PREFIX) or column.endswith("_ts") or value is None:
            continue
        name = column.removeprefix(OBSERVATION_PREFIX)
        at = epoch_ms(row.get(f"{column}_ts")) if row.get(f"{column}_ts") is not None else (
            ts + int(OBSERVATION_DELAY.total_seconds() * 1000) if isinstance(ts, int) else ts)
        number = float(value) if isinstance(value, bool) else value
        event_id = (ids.observation_event_id(decision_id, name, at, number)
                    if isinstance(at, int) and isinstance(number, int | float) else f"{decision_id}:{name}")
        yield {"kind": events.OBSERVATION, "event_id": event_id, "decision_id": decision_id,
               "blueprint": blueprint.name, "name": name, "value": number, "ts": at}


def import_logs(
    client: redis.Redis, lake: Lake, blueprints: Mapping[str, Blueprint], blueprint: str, path: str | Path, *,
    chunk_rows: int = 50_000, batch_size: int = 500_000,
) -> ImportStats:
    """Send the file's rows as events to the blueprint's stream and ingest them, ``chunk_rows`` at a time."""
    table = read_logs(path)
    bp, stream, source = blueprints[blueprint], events.stream_key(blueprint), Path(path).name
    writer = BatchWriter(client, group=events.INGEST_GROUP)
    decisions = observations = 0
    days: list[int] = []
    total = IngestStats()
    for lo in range(0, max(table.num_rows, 1), chunk_rows):
        payloads = []
        for offset, row in enumerate(table.slice(lo, chunk_rows).to_pylist()):
            for event in row_events(bp, row, lo + offset, source):
                payloads.append(encode(event))
                if event["kind"] == events.DECISION:
                    decisions += 1
                    if isinstance(event["ts"], int):
                        days.append(event["ts"] // 86_400_000)
                else:
                    observations += 1
        if payloads:
            writer.xadd(stream, events.PAYLOAD_FIELD.encode(), payloads)
        stats = ingest_events(client, lake, blueprints, streams=[stream], batch_size=batch_size)
        for name in ("events", "decisions", "observations", "quarantined", "batches"):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        total.seconds += stats.seconds
    epoch = datetime(1970, 1, 1, tzinfo=UTC).date()
    first, last = (epoch + timedelta(days=min(days)), epoch + timedelta(days=max(days))) if days else (None, None)
    return ImportStats(table.num_rows, decisions, observations, first, last, total)
