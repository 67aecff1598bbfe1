"""Benchmark ``join_feedback`` (Spark + Delta) against the same join in DuckDB.

Generates bronze decisions and observations straight into Delta with Spark
(``range`` plus expressions), written once so every Parquet file is live. Decisions
are spread evenly over the one-day interval that ``maturity_bounds`` says matures on
run date D (with a 48h window that is day D-2; with 12h, noon D-1 to noon D), so all
of them mature on D. Observations point at every third decision (several per
decision), with delays from -10 minutes (early) to 1.25 times the longest label
window (some late), 2% orphans and 1% of a name no label reads.

Spark runs ``join_feedback(lake, blueprint, D)``; DuckDB reads the same Parquet
files and computes the same examples (matured decisions x labels, per-window
aggregation, defaults) into one Parquet file. The outputs must agree on row counts
and per-label sums (printed OK or MISMATCH).

    python bench/bench_join.py                    # 10,000,000 decisions, 5,000,000 observations
    python bench/bench_join.py --quick            # 100,000 / 50,000, a minute or two
"""

from __future__ import annotations

import argparse
import math
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, date, timedelta
from pathlib import Path

import _common as C
import duckdb
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from looper_common.contracts.blueprint import Blueprint, load_blueprint
from looper_common.labels import join as feedback
from looper_common.labels.days import maturity_bounds
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, SILVER_EXAMPLES

BLUEPRINT = "notification_send"
RUN_DATE = date(2026, 1, 3)
TARGET_RATIO = 5.0


def uuid_like(seed: Column) -> Column:
    """A 36-character id from the md5 of ``seed`` (stands in for a UUIDv7)."""
    h = F.md5(seed.cast("string"))
    return F.concat_ws("-", *(F.substring(h, a, n) for a, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))))


def decision_id(index: Column) -> Column:
    return uuid_like(F.concat(F.lit("d"), index))


def decision_ts_us(index: Column, lo_us: int, step_us: int) -> Column:
    """Decisions evenly spread inside the maturity interval ``(lo, hi]``."""
    return F.lit(lo_us) + (index + 1) * F.lit(step_us)


def make_decisions(spark: SparkSession, bp: Blueprint, n: int, lo_us: int, step_us: int, parts: int) -> DataFrame:
    i = F.col("id")
    ts = F.timestamp_micros(decision_ts_us(i, lo_us, step_us))
    send = F.abs(F.hash(i, F.lit(1))) % 100 < 40
    score = (F.abs(F.hash(i, F.lit(2))) % 1000) / 1000.0
    rows = spark.range(0, n, numPartitions=parts).select(
        decision_id(i).alias("event_id"),
        decision_id(i).alias("decision_id"),
        F.lit(bp.name).alias("blueprint"),
        F.lit(bp.version).alias("blueprint_version"),
        F.concat(F.lit("user_"), (i % 2_000_000).cast("string")).alias("unit_id"),
        ts.alias("ts"),
        F.create_map(
            F.lit("days_since_last_visit"),
            F.format_number(score * 30, 2),
            F.lit("sessions_last_7d"),
            (i % 20).cast("string"),
            F.lit("push_opt_in"),
            F.when(i % 3 == 0, "true").otherwise("false"),
            F.lit("country"),
            F.element_at(F.array(*map(F.lit, ("us", "gb", "de", "in", "br"))), (i % 5 + 1).cast("int")),
            F.lit("platform"),
            F.element_at(F.array(*map(F.lit, ("ios", "android", "web"))), (i % 3 + 1).cast("int")),
        ).alias("features"),
        F.when(send, "send").otherwise("skip").alias("action"),
        F.when(send, 0.9).otherwise(0.1).alias("propensity"),
        F.create_map(
            F.lit("send"),
            F.when(send, 0.9).otherwise(0.1),
            F.lit("skip"),
            F.when(send, 0.1).otherwise(0.9),
        ).alias("action_probs"),
        F.create_map(F.lit("send"), score, F.lit("skip"), 1 - score).alias("scores"),
        F.lit("v1").alias("policy_version"),
        F.lit(False).alias("is_default"),
        F.lit(None).cast("string").alias("default_reason"),
        F.to_date(ts).alias("date"),
        *(F.lit(None).cast("string").alias(name) for name in ("variant", "shadow_version", "shadow_action")),
        F.lit(None).cast("map<string,double>").alias("shadow_scores"),  # no challenger served beside the champion
    )
    return rows.select(*BRONZE_DECISIONS.columns)


def make_observations(
    spark: SparkSession,
    bp: Blueprint,
    n: int,
    n_decisions: int,
    lo_us: int,
    step_us: int,
    parts: int,
) -> DataFrame:
    max_delay_us = int(bp.max_window_seconds * 1.25) * 1_000_000
    j = F.col("id")
    # Every third decision gets feedback (1.5 observations each at full size), spread over
    # the whole interval; 2% of the observations point at no decision.
    with_feedback = max(1, n_decisions // 3)
    target = (j * 7919) % with_feedback * 3
    index = F.when(j % 50 == 0, F.lit(n_decisions) + j).otherwise(target)
    delay_us = F.when(j % 97 == 0, F.lit(-10 * 60_000_000)).otherwise(F.abs(F.xxhash64(j, F.lit(3))) % max_delay_us)
    ts = F.timestamp_micros(decision_ts_us(index, lo_us, step_us) + delay_us)
    name = F.when(j % 100 == 1, "open").when(j % 5 == 0, "unsubscribe").otherwise("click")
    rows = spark.range(0, n, numPartitions=parts).select(
        uuid_like(F.concat(F.lit("o"), j)).alias("event_id"),
        decision_id(index).alias("decision_id"),
        F.lit(bp.name).alias("blueprint"),
        name.alias("name"),
        F.when(j % 7 == 0, 0.0).otherwise(1.0).alias("value"),
        ts.alias("ts"),
        F.to_date(ts).alias("date"),
    )
    return rows.select(*BRONZE_OBSERVATIONS.columns)


def write_once(lake: Lake, spark: SparkSession, table, rows: DataFrame) -> None:
    lake.ensure_tables([table])
    rows.write.format("delta").mode("append").partitionBy(*table.partition_by).save(lake.path(table))


def live_parquet_files(table_path: str) -> list[str]:
    """The data files live at the table's current version (delta-rs reads the log)."""
    from deltalake import DeltaTable

    return sorted(urllib.parse.unquote(uri.removeprefix("file://")) for uri in DeltaTable(table_path).file_uris())


def duckdb_join(
    dec_files: list[str],
    obs_files: list[str],
    bp: Blueprint,
    run_date: date,
    out: Path,
    threads: int,
    memory: str,
) -> float:
    """The same examples as ``build_examples`` (same filters, windows, aggregations), to Parquet."""
    lo, hi = maturity_bounds(bp, run_date)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}; SET memory_limit = '{memory}'")
    con.execute("SET preserve_insertion_order = false")
    rules = ", ".join(
        f"('{lab.name}', '{lab.observation}', {lab.window_seconds * 1_000_000}::BIGINT, "
        f"'{lab.aggregation}', {float(lab.default)}::DOUBLE)"
        for lab in bp.labels
    )
    naive = lambda dt: dt.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")  # noqa: E731
    sql = f"""
    COPY (
      WITH rules(label, observation, window_us, aggregation, dflt) AS (VALUES {rules}),
      matured AS (
        SELECT * FROM read_parquet($dec, hive_partitioning = true)
        WHERE blueprint = '{bp.name}' AND date BETWEEN DATE '{lo.date()}' AND DATE '{hi.date()}'
          AND ts > TIMESTAMP '{naive(lo)}' AND ts <= TIMESTAMP '{naive(hi)}'
      ),
      joined AS (
        SELECT o.decision_id, r.label, r.aggregation, r.window_us, o.value, o.ts, o.event_id,
               epoch_us(o.ts) - epoch_us(m.ts) AS delay_us
        FROM read_parquet($obs, hive_partitioning = true) o
        JOIN rules r ON o.name = r.observation
        JOIN (SELECT decision_id, ts FROM matured) m ON o.decision_id = m.decision_id
        WHERE o.blueprint = '{bp.name}'
          AND o.date BETWEEN DATE '{lo.date()}' AND DATE '{run_date + timedelta(days=1)}'
      ),
      vals AS (
        SELECT decision_id, label, any_value(aggregation) AS aggregation,
               max((value <> 0)::DOUBLE) AS _any, sum(value) AS _sum, count(*) AS n_observations,
               max(value) AS _max, arg_max(value, (ts, event_id)) AS _last,
               min(delay_us) / 1e6 AS first_feedback_s
        FROM joined WHERE delay_us BETWEEN 0 AND window_us
        GROUP BY decision_id, label
      )
      SELECT m.decision_id, r.label,
             coalesce(CASE v.aggregation WHEN 'any' THEN v._any WHEN 'sum' THEN v._sum
                      WHEN 'count' THEN v.n_observations::DOUBLE WHEN 'max' THEN v._max
                      ELSE v._last END, r.dflt) AS value,
             coalesce(v.n_observations, 0) AS n_observations, v.first_feedback_s,
             m.blueprint, m.blueprint_version, m.unit_id, m.ts, m.features, m.action, m.propensity,
             m.action_probs, m.scores, m.policy_version, m.is_default, DATE '{run_date}' AS date
      FROM matured m CROSS JOIN rules r
      LEFT JOIN vals v ON v.decision_id = m.decision_id AND v.label = r.label
    ) TO '{out}' (FORMAT parquet)
    """
    start = time.perf_counter()
    con.execute(sql, {"dec": dec_files, "obs": obs_files})
    seconds = time.perf_counter() - start
    con.close()
    return seconds


SUMMARY_SQL = """
SELECT label, count(*) AS rows, count(DISTINCT decision_id) AS decisions, sum(value) AS value_sum,
       sum(n_observations) AS n_obs, count(first_feedback_s) AS with_feedback,
       round(sum(first_feedback_s), 0) AS feedback_s_sum
FROM read_parquet($files) GROUP BY label ORDER BY label
"""


def summarize(files: list[str]) -> list[tuple]:
    return [tuple(r) for r in duckdb.connect().execute(SUMMARY_SQL, {"files": files}).fetchall()]


class SparkPhases:
    """Times the writes inside ``join_feedback`` by wrapping the lake's write methods it calls."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.calls: list[tuple[str, float]] = []

    def __enter__(self) -> SparkPhases:
        self._saved = {n: getattr(self.lake, n) for n in ("replace_partition", "insert_new")}
        for name, original in self._saved.items():
            setattr(self.lake, name, self._timed(name, original))
        return self

    def _timed(self, name, original):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                table = args[0].name
                self.calls.append((f"{name}({table})", time.perf_counter() - t0))

        return timed

    def __exit__(self, *exc: object) -> None:
        for name in self._saved:
            delattr(self.lake, name)

    def phases(self, total: float) -> list[tuple[str, float]]:
        named = {
            f"replace_partition({SILVER_EXAMPLES.name})": "examples: build (join with the folded labels), write",
            "insert_new(quarantine/events)": "orphans: MERGE into quarantine",
            "replace_partition(monitoring/join_stats)": "join_stats: write",
        }
        out = [(named.get(n, n), s) for n, s in self.calls]
        out.append(
            (
                "shared obs-decision join, label folding, classify the day's observations (late/early/orphan)",
                total - sum(s for _, s in out),
            )
        )
        return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a minute or two)")
    p.add_argument("--decisions", type=int, help="decisions (default 10,000,000; quick 100,000)")
    p.add_argument("--observations", type=int, help="observations (default 5,000,000; quick 50,000)")
    p.add_argument("--duckdb-memory", default="8GB", help="DuckDB memory_limit (Spark's driver keeps its 6g)")
    p.add_argument("--keep", action="store_true", help="keep the scratch lake under /tmp")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    args.decisions = args.decisions or (100_000 if args.quick else 10_000_000)
    args.observations = args.observations or (50_000 if args.quick else 5_000_000)
    args.docs = C.docs_wanted(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bp = load_blueprint(C.ROOT / "blueprints" / f"{BLUEPRINT}.yaml")
    lo, hi = maturity_bounds(bp, RUN_DATE)
    lo_us = int(lo.timestamp()) * 1_000_000
    step_us = (int(hi.timestamp()) * 1_000_000 - lo_us) // (args.decisions + 1)
    parts = max(2, math.ceil(args.decisions / 1_500_000))
    with C.temp_dir("looper-bench-join-", args.keep) as scratch:
        spark, _ = C.spark_session(scratch, "looper-bench-join")
        lake = Lake(str(scratch / "lake"), spark=lambda: spark)
        t0 = time.perf_counter()
        write_once(
            lake,
            spark,
            BRONZE_DECISIONS,
            make_decisions(spark, bp, args.decisions, lo_us, step_us, parts),
        )
        write_once(
            lake,
            spark,
            BRONZE_OBSERVATIONS,
            make_observations(spark, bp, args.observations, args.decisions, lo_us, step_us, max(2, parts // 2)),
        )
        dec_files, obs_files = (live_parquet_files(lake.path(t)) for t in (BRONZE_DECISIONS, BRONZE_OBSERVATIONS))
        size_mb = sum(Path(f).stat().st_size for f in dec_files + obs_files) / 2**20
        print(
            f"generated {args.decisions:,} decisions and {args.observations:,} observations "
            f"({len(dec_files) + len(obs_files)} Parquet files, {size_mb:,.0f} MiB) "
            f"in {time.perf_counter() - t0:.0f} s"
        )

        # DuckDB runs before and after Spark and Spark is compared with their mean: on a
        # shared machine the load drifts over a run of minutes, and bracketing Spark keeps
        # the ratio from depending on which engine ran in the quieter minutes
        out = scratch / "duckdb_examples.parquet"
        threads = C.os.cpu_count() or 2
        duck_before = duckdb_join(dec_files, obs_files, bp, RUN_DATE, out, threads, args.duckdb_memory)
        load_before = C.os.getloadavg()[0]
        print(f"DuckDB examples (before Spark): {duck_before:.1f} s, load {load_before:.1f}")

        t0 = time.perf_counter()
        with SparkPhases(lake) as phases, C.spark_jobs(spark, "join_feedback") as jobs:
            stats = feedback.join_feedback(lake, bp, RUN_DATE)
        spark_s = time.perf_counter() - t0
        load_spark = C.os.getloadavg()[0]
        print(f"Spark join_feedback: {spark_s:.1f} s, load {load_spark:.1f}; {stats}")
        silver = lake.path(SILVER_EXAMPLES)
        spark_files = [f for f in live_parquet_files(silver) if f"date={RUN_DATE}" in f]
        conf = C.spark_conf_summary(spark)
        spark.stop()  # DuckDB gets the machine to itself, as Spark had it

        duck_after = duckdb_join(dec_files, obs_files, bp, RUN_DATE, out, threads, args.duckdb_memory)
        load_after = C.os.getloadavg()[0]
        print(f"DuckDB examples (after Spark): {duck_after:.1f} s, load {load_after:.1f}")
        duck_s = (duck_before + duck_after) / 2
        spark_sum, duck_sum = summarize(spark_files), summarize([str(out)])
    ok = spark_sum == duck_sum and sum(r[1] for r in spark_sum) == stats["examples"]
    ratio = spark_s / duck_s
    examples_s = next((s for n, s in phases.calls if SILVER_EXAMPLES.name in n), float("nan"))
    headers = [
        "label",
        "rows",
        "decisions",
        "sum(value)",
        "sum(n_observations)",
        "with feedback",
        "sum(first_feedback_s)",
    ]
    check = C.table(
        ["output"] + headers,
        [["Spark"] + [f"{v:,}" if isinstance(v, int) else v for v in r] for r in spark_sum]
        + [["DuckDB"] + [f"{v:,}" if isinstance(v, int) else v for v in r] for r in duck_sum],
    )
    timing = C.table(
        ["engine", "seconds", "ratio to DuckDB"],
        [
            ["Spark `join_feedback` (whole job)", f"{spark_s:.1f}", f"{ratio:.1f}x"],
            [
                "Spark, examples only (build + Delta write, inside the job)",
                f"{examples_s:.1f}",
                f"{examples_s / duck_s:.1f}x",
            ],
            ["DuckDB, examples to Parquet (baseline: mean of the runs before and after Spark)",
             f"{duck_s:.1f}", "1.0x"],
            ["DuckDB, run before Spark", f"{duck_before:.1f}", f"{duck_before / duck_s:.2f}x"],
            ["DuckDB, run after Spark", f"{duck_after:.1f}", f"{duck_after / duck_s:.2f}x"],
        ],
    )
    phase_table = C.table(
        ["phase of join_feedback", "seconds"],
        [[n, f"{s:.1f}"] for n, s in phases.phases(spark_s)] + [["(Spark jobs run by join_feedback)", f"{jobs[0]:,}"]],
    )
    target = C.table(
        ["target", "measured", "verdict"],
        [
            [
                f"Spark within {TARGET_RATIO:.0f}x DuckDB",
                f"{ratio:.1f}x (whole job), {examples_s / duck_s:.1f}x (examples only)",
                C.verdict(ratio <= TARGET_RATIO, f"{ratio / TARGET_RATIO:.2f}x the limit"),
            ],
            [
                "outputs agree (rows, per-label sums)",
                "OK" if ok else "MISMATCH",
                "met" if ok else "MISSED",
            ],
        ],
    )
    sizes = (
        f"Sizes: {args.decisions:,} decisions spread over ({lo:%Y-%m-%d %H:%M}, "
        f"{hi:%Y-%m-%d %H:%M}] UTC, so all mature on run date {RUN_DATE} (`{BLUEPRINT}`, "
        f"longest window {bp.max_window_seconds // 3600}h); {args.observations:,} observations; "
        f"{len(dec_files) + len(obs_files)} Parquet files, {size_mb:,.0f} MiB. Spark: {conf}; "
        f"DuckDB {duckdb.__version__}: threads={threads}, memory_limit={args.duckdb_memory}, "
        "reading the live files of the same Delta tables, once before Spark (Spark idle) and once "
        "after it (Spark stopped). 1-minute load average at the end of each run: DuckDB before "
        f"{load_before:.1f}, Spark {load_spark:.1f}, DuckDB after {load_after:.1f}. "
        f"Join statistics: matured {stats['matured_decisions']:,}, in-window observations "
        f"{stats['observations_in_window']:,}, late {stats['late_observations']:,}, early "
        f"{stats['early_observations']:,}, orphans {stats['orphan_observations']:,}."
    )
    report = "\n\n".join(
        [
            sizes,
            timing,
            "### Targets",
            target,
            "### Outputs compared",
            check,
            "### Where Spark's time goes",
            phase_table,
        ]
    )
    print(report)
    print("\nOK: the outputs match" if ok else "\nMISMATCH between Spark and DuckDB")
    if args.docs:
        C.write_section("join", "Feedback join: `join_feedback` vs DuckDB", report)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
