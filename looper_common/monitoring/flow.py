"""Data flow: feedback and ingestion freshness, delays, maturity, late/orphan/quarantined rates, streams, Redis."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from looper_common.contracts import events, redis_conn
from looper_common.monitoring.metrics import Metric


def day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def feedback_flow(
    day: date, observation_ts: pa.ChunkedArray, decisions: int, observations_today: int,
    examples: pa.Table, join_stats: pa.Table, quarantined: int, watermark: datetime | None = None,
) -> list[Metric]:
    """Freshness at the end of ``day`` and the join's rates.

    ``observation_ts``: times of the observations of the last days (the newest sets the
    age); ``examples``: silver examples matured on ``day``; ``join_stats``: its row of
    ``monitoring/join_stats`` (none when the join has not run); ``quarantined``: the
    blueprint's quarantined events dated ``day``; ``watermark``: ingestion's recorded
    watermark (``monitoring/ingest_watermark``), None when the blueprint has none.
    ``ingest_watermark_age_h`` is how many hours the watermark stands before the day's
    end (0 once it has passed it: everything that arrived during the day is in the lake).
    """
    end = day_end(day)
    newest = pc.max(observation_ts).as_py() if len(observation_ts) else None
    age = None if newest is None else (end - newest).total_seconds() / 3600
    out = [Metric("feedback_age_h", age, None, f"newest observation {newest}"),
           Metric("observations", float(observations_today))]
    if watermark is not None:
        behind = max(0.0, (end - watermark).total_seconds() / 3600)
        out.append(Metric("ingest_watermark_age_h", behind, None, f"watermark {watermark.isoformat()}"))
    delays = pc.drop_null(examples["first_feedback_s"]).to_numpy(zero_copy_only=False) if examples.num_rows else []
    for name, q in (("feedback_delay_median_s", 50), ("feedback_delay_p95_s", 95)):
        out.append(Metric(name, float(np.percentile(delays, q)) if len(delays) else None))
    if join_stats.num_rows:
        row = join_stats.to_pylist()[0]
        in_window, late = row["observations_in_window"], row["late_observations"]
        seen = in_window + late + row["orphan_observations"] + row["early_observations"]
        out.append(Metric("matured_decisions", float(row["matured_decisions"])))
        out.append(Metric("matured_share", row["matured_decisions"] / decisions if decisions else None, None,
                          "matured today / decided today"))
        out.append(Metric("late_rate", late / (in_window + late) if in_window + late else None))
        out.append(Metric("orphan_rate", row["orphan_observations"] / seen if seen else None))
    events_today = decisions + observations_today
    out.append(Metric("quarantine_rate", quarantined / (events_today + quarantined)
                      if events_today + quarantined else None, None, f"{quarantined} quarantined"))
    return out


def redis_health(client: redis.Redis, blueprint: str) -> list[Metric]:
    """The blueprint stream's length and ingestion lag, and Redis memory used (share of maxmemory)."""
    stream = events.stream_key(blueprint)
    out = [Metric("stream_length", float(client.xlen(stream)))]
    groups = client.xinfo_groups(stream) if client.exists(stream) else []
    for group in groups:
        name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
        if name == events.INGEST_GROUP:
            out.append(Metric("stream_pending", float(group["pending"])))
            lag = group.get("lag")
            out.append(Metric("stream_lag", None if lag is None else float(lag), None, "entries not yet read"))
    # on a cluster, the fullest primary: it refuses writes first
    nodes = [(float(m["used_memory"]), float(m.get("maxmemory", 0))) for m in redis_conn.info_values(client, "memory")]
    used, limit = max(nodes, key=lambda n: (n[0] / n[1] if n[1] else 0.0, n[0]))
    out.append(Metric("redis_memory_bytes", used))
    out.append(Metric("redis_memory_share", used / limit if limit else None, None,
                      "of maxmemory" if limit else "no maxmemory set"))
    return out


SDK_TOTALS = ("sdk_events_dropped_total", "sdk_events_sent_total")


def _count(fields: dict, name: str) -> float:
    raw = fields.get(name.encode(), fields.get(name, 0))
    try:
        return float(int(raw))
    except (TypeError, ValueError):  # a hand-edited hash: counted as nothing, not a crash
        return 0.0


def sdk_delivery(client: redis.Redis, blueprint: str, previous: dict[str, float]) -> list[Metric]:
    """Events the SDK gave up (buffer full, or unsent at close) since the previous monitored day.

    Reads the totals every SDK process adds to ``events.sdk_stats_key(blueprint)``;
    ``previous`` holds the totals that day's monitor recorded (``SDK_TOTALS``; empty on the
    first day, when everything counted so far is new). A total below the previous one
    (the hash was reset) counts from zero. No metric when no SDK has reported yet.
    """
    fields = client.hgetall(events.sdk_stats_key(blueprint))
    if not fields:
        return []
    totals = {"sdk_events_dropped_total": _count(fields, "events_dropped"),
              "sdk_events_sent_total": _count(fields, "events_sent")}
    new = {}
    for name, total in totals.items():
        before = previous.get(name)
        new[name] = total - before if before is not None and before <= total else total
    dropped, sent = new["sdk_events_dropped_total"], new["sdk_events_sent_total"]
    since = "since the previous monitored day" if previous else "all the SDK has counted"
    return [
        Metric("sdk_events_dropped", dropped, None, f"{since}; {totals['sdk_events_dropped_total']:.0f} in all"),
        Metric("sdk_dropped_share", dropped / (dropped + sent) if dropped + sent else None, None,
               f"dropped / (sent + dropped), {since}"),
        *(Metric(name, total) for name, total in totals.items()),
    ]
