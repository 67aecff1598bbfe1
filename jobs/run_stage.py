"""Run one stage's job for many blueprints in this one process (the DAG layout ``dags.layout: stage``).

Each blueprint runs the job as ``jobs/<job>.py --blueprint <name> [--run-date D]`` would,
in its own try, with the settings, blueprints and lake loaded once. A blueprint that
fails is logged with its reason and the others go on. ``--outcome FILE`` receives a JSON
document: the blueprints that succeeded (the next stage runs only those), those that
failed with the reason, and the seconds each took. A job that raises (Redis or a store
out of reach) is tried again (``--attempts``); one that exits with an error (a failed
validation) is not. Exit code 0 when every blueprint succeeded, 1 when any failed (the
outcome is written either way).

    python jobs/run_stage.py train_models --blueprints a,b,c --run-date 2026-05-02
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from looper_common.jobrunner import job_parser, run_date, setup
from looper_common.stage_runner import run_stage


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__, blueprint_required=False, with_run_date=False)
    parser.add_argument("job", help="the stage's job: a file <job>.py beside this one (e.g. train_models)")
    parser.add_argument("--blueprints", help="comma-separated blueprint names, run in this order (or --blueprint "
                        "for one; neither: every blueprint)")
    parser.add_argument("--run-date", type=run_date, help="the data interval, YYYY-MM-DD (every job but "
                        "ingest_events needs it)")
    parser.add_argument("--outcome", type=Path, help="write the outcome (JSON) to this file")
    parser.add_argument("--attempts", type=int, default=2, help="tries per blueprint while its job raises "
                        "(a job that exits with an error is not tried again; default 2)")
    parser.add_argument("--retry-delay", type=float, default=60.0, help="seconds before another try (default 60)")
    args = parser.parse_args(argv)
    ctx = setup(args, "run_stage")
    return run_stage(ctx, Path(__file__).resolve().parent, args)


if __name__ == "__main__":
    raise SystemExit(main())
