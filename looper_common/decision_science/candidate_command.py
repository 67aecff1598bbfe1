"""``looper evaluate-policy``: its arguments and how it runs (an entry of ``looper_common.cli.COMMANDS``)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Estimate a candidate policy's value on the blueprint's logged decisions (the matured
examples of silver/examples: imported or live) with IPS, SNIPS, DM and DR, each with a
bootstrap interval and its lift over the logged policy, and write the HTML report.

--policy is `model` (the blueprint's policy over the registered champion, with its
tuned params), a JSON file of policy params for the champion ({"threshold": 0.3}), or
a CSV/Parquet file with decision_id and either action or prob_<action> for every
action. DM and DR need a registered champion of the objective label as reward model;
without one, IPS and SNIPS only. Exit status: 0 estimated; 1 nothing to evaluate or a
bad policy; 2 bad settings or an unknown blueprint.

example:
  looper evaluate-policy --blueprint notification_send --policy always_send.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from looper_common.jobrunner import run_date

    parser.add_argument("--blueprint", required=True, help="blueprint whose logged decisions to use")
    parser.add_argument("--policy", required=True, metavar="FILE|model", help="the candidate policy (see above)")
    parser.add_argument("--from", dest="since", type=run_date, default=None, metavar="YYYY-MM-DD",
                        help="first matured date to use (default: all)")
    parser.add_argument("--to", dest="until", type=run_date, default=None, metavar="YYYY-MM-DD",
                        help="last matured date to use (default: all)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    parser.add_argument("--report", default=None, metavar="PATH",
                        help="where to write the HTML report (default var/reports/<blueprint>-policy.html)")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")


def run(args: argparse.Namespace) -> int:
    """OPE of one candidate policy; prints the estimates and writes the report."""
    import os

    from looper_common.decision_science.candidate import CandidateError, evaluate_candidate
    from looper_common.decision_science.logged import OPEError
    from looper_common.jobrunner import setup

    try:
        ctx = setup(args, "looper evaluate-policy")
    except SystemExit as err:  # bad settings or an unknown blueprint: setup's one line
        print(err, file=sys.stderr)
        return 2
    blueprint = ctx.blueprints[args.blueprint]
    models, params = _champion(ctx.settings, blueprint)
    try:
        evaluated = evaluate_candidate(ctx.lake, blueprint, args.policy, models, params=params,
                                       since=args.since, until=args.until, n_bootstrap=args.bootstrap)
    except (CandidateError, OPEError, OSError, ValueError) as err:
        print(f"looper evaluate-policy: error: {err}", file=sys.stderr)
        return 1
    path = args.report or os.path.join(ctx.settings.home, "var", "reports", f"{blueprint.name}-policy.html")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        out.write(evaluated.html)
    result = evaluated.result
    print(f"{blueprint.name}: {evaluated.decisions} logged decisions matured {evaluated.first_date} .. "
          f"{evaluated.last_date}; candidate {evaluated.policy}")
    for row in result.table():
        lift = "" if row["lift"] is None else (f"  lift {row['lift']:+.4f} "
                                               f"({row['lift_lower']:+.4f} .. {row['lift_upper']:+.4f})")
        print(f"  {row['policy']:<9} {row['estimator']:<5} {row['value']:.4f} "
              f"({row['lower']:.4f} .. {row['upper']:.4f}){lift}")
    print(f"report: {path}")
    return 0


def _champion(settings, blueprint) -> tuple[dict[str, object], dict | None]:
    """The champion models by label and the objective champion's tuned params (empty, None without one)."""
    import json

    import mlflow

    from looper_common.decision_science.champion_tuning import champion_models
    from looper_common.training.registry import CHAMPION, configure_mlflow, model_name

    configure_mlflow(settings, blueprint.name)
    models = champion_models(blueprint)
    if blueprint.objectives.maximize not in models:
        return models, None
    version = mlflow.MlflowClient().get_model_version_by_alias(
        model_name(blueprint.name, blueprint.objectives.maximize), CHAMPION)
    tuned = version.tags.get("policy_params")
    return models, json.loads(tuned) if tuned else None
