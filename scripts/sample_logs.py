"""Write a randomized experiment's logged decisions for a blueprint as CSV or Parquet (docs/import-logs.md).

example: .venv/bin/python scripts/sample_logs.py --blueprint notification_send --out var/sample_logs.csv
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blueprint", default="notification_send", help="blueprint with a simulator scenario")
    parser.add_argument("--users", type=int, default=2000, help="decisions per day (default %(default)s)")
    parser.add_argument("--days", type=int, default=3, help="days of decisions (default %(default)s)")
    parser.add_argument("--start-date", type=date.fromisoformat, default=date(2026, 1, 1), metavar="YYYY-MM-DD",
                        help="the first day (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of users, actions and outcomes")
    parser.add_argument("--out", required=True, help="output file: .parquet for Parquet, else CSV")
    args = parser.parse_args(argv)

    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from looper_common.contracts.blueprint import load_blueprints
    from looper_common.contracts.config import load_settings
    from looper_common.simulate.logged_sample import randomized_sample

    blueprint = load_blueprints(load_settings().blueprints_dir)[args.blueprint]
    table = randomized_sample(blueprint, users=args.users, days=args.days, start=args.start_date, seed=args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    (pq.write_table if args.out.endswith(".parquet") else pa_csv.write_csv)(table, args.out)
    print(f"{table.num_rows} logged decisions of a uniform random policy -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
