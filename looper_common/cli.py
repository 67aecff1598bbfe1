"""The ``looper`` command line: one subcommand per entry of ``COMMANDS``.

A subcommand is a pair of functions, one adding its arguments to a parser and one
running it (returning the exit code), so adding a command is one entry here; heavy
imports belong inside ``run``, keeping ``looper --help`` fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from looper_common import __version__
from looper_common.decision_science import candidate_command
from looper_common.ingest import import_command
from looper_common.lake import connect_command
from looper_common.publishing import rollback_command
from looper_common.serve import command as serve_command
from looper_common.simulate import command as simulate_command
from looper_common.training import alias_webhook_command


@dataclass(frozen=True, slots=True)
class Command:
    """A ``looper`` subcommand."""

    summary: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


PROMOTE_DESCRIPTION = """\
Point a model's alias (champion by default) at a version, as a reviewer, and record it.

The move is made in the MLflow registry and appended to gold/alias_history at the
time it is made, with who made it and why. A move made in the MLflow UI is recorded
at its time by `looper alias-webhook` (MLflow's webhooks), else by the next
evaluate_models, at the time it finds it (MLflow's registry keeps no time for an alias).
The next publish_policies serves the new champion.

example:
  looper promote --blueprint notification_send --label clicked --version 7 --reason "reviewed the OPE report"
"""


def _promote_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blueprint", required=True, help="blueprint name, e.g. notification_send")
    parser.add_argument("--label", required=True, help="the label whose model moves, e.g. clicked")
    parser.add_argument("--version", required=True, help="the registered model version to point the alias at")
    parser.add_argument("--alias", default="champion", choices=("champion", "challenger"))
    parser.add_argument("--reason", required=True, help="why, recorded in gold/alias_history")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")


def _promote(args: argparse.Namespace) -> int:
    """Move the alias in MLflow and record it; 1 when MLflow refuses, 2 on bad settings or names."""
    import getpass

    import mlflow

    from looper_common.contracts.blueprint import BlueprintError, load_blueprints
    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.jobrunner import open_lake
    from looper_common.training.registry import model_name, move_alias

    try:
        settings = load_settings(args.env)
        blueprint = load_blueprints(settings.blueprints_dir, strict=False).get(args.blueprint)
    except (ConfigError, BlueprintError) as err:
        print(f"looper promote: error: {err}", file=sys.stderr)
        return 2
    if blueprint is None or args.label not in {label.name for label in blueprint.labels}:
        print(f"looper promote: error: no label {args.label!r} in a valid blueprint {args.blueprint!r}",
              file=sys.stderr)
        return 2
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
    name = model_name(args.blueprint, args.label)
    try:
        moved = move_alias(
            open_lake(settings, "looper-promote"), name=name, alias=args.alias, version=args.version,
            actor=f"reviewer {getpass.getuser()} (looper promote)", reason=args.reason, metrics={},
            blueprint=args.blueprint, blueprint_version=blueprint.version, run_date=None,
        )
    except mlflow.exceptions.MlflowException as err:
        print(f"looper promote: error: {err.message}", file=sys.stderr)
        return 1
    print(f"{name}: {args.alias} -> version {args.version}" + ("" if moved else " (already there)"))
    return 0


SUBMIT_DESCRIPTION = """\
Run a job of jobs/ through spark-submit, as the DAG's Spark task does.

The command gets the environment's Delta jars (spark.jars_dir, fetched by `make
bootstrap`), spark.master, spark.conf and spark.python from conf/<env>.yaml. It needs
no activated virtualenv: SPARK_HOME is the installed pyspark's (unless $SPARK_HOME
already holds a Spark), and PYSPARK_PYTHON, LOOPER_HOME, LOOPER_ENV and PYTHONPATH are
set for the job. Everything after JOB goes to the job; `looper submit JOB --help` shows
its options. Exit status: the job's; 2 for an unknown job, bad settings or missing jars.

examples:
  looper submit join_feedback --blueprint notification_send --run-date 2026-01-01
  looper submit ingest_events --blueprint notification_send
  looper submit --print train_models --blueprint notification_send --run-date 2026-01-01
"""


def _submit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local. "
                             "Also given to the job unless its arguments hold --env")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print the spark-submit command instead of running it")
    parser.add_argument("job", metavar="JOB", help="a job of jobs/, e.g. join_feedback")
    parser.add_argument("job_args", metavar="ARGS", nargs=argparse.REMAINDER, help="the job's arguments")


def _submit(args: argparse.Namespace) -> int:
    """spark-submit one job; its exit status, 2 when the job, the settings or the jars are wrong."""
    import shlex
    import subprocess

    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.lake.jars import MissingJars
    from looper_common.submit import submission

    try:
        settings = load_settings(args.env)
        job_args = list(args.job_args)
        if args.env and "--env" not in job_args and not any(a.startswith("--env=") for a in job_args):
            job_args += ["--env", args.env]
        run = submission(settings, args.job, job_args)
    except (ConfigError, ValueError) as err:
        print(f"looper submit: error: {err}", file=sys.stderr)
        return 2
    except MissingJars as err:
        print(f"looper submit: error: {err.code}", file=sys.stderr)
        return 2
    if args.print_only:
        print(shlex.join(run.argv))
        return 0
    return subprocess.run(run.argv, env=run.env, cwd=settings.home).returncode


COMMANDS: dict[str, Command] = {
    "simulate": Command(
        summary="send synthetic traffic for a blueprint through the SDK",
        description=simulate_command.DESCRIPTION,
        add_arguments=simulate_command.add_arguments,
        run=simulate_command.run,
    ),
    "rollback": Command(
        summary="point a blueprint back at its previous published policy",
        description=rollback_command.DESCRIPTION,
        add_arguments=rollback_command.add_arguments,
        run=rollback_command.run,
    ),
    "promote": Command(
        summary="point a model's champion (or challenger) alias at a version and record it",
        description=PROMOTE_DESCRIPTION,
        add_arguments=_promote_arguments,
        run=_promote,
    ),
    "serve": Command(
        summary="serve decisions and observations over HTTP/JSON (any language)",
        description=serve_command.DESCRIPTION,
        add_arguments=serve_command.add_arguments,
        run=serve_command.run,
    ),
    "submit": Command(
        summary="run a job of jobs/ through spark-submit with the environment's jars and settings",
        description=SUBMIT_DESCRIPTION,
        add_arguments=_submit_arguments,
        run=_submit,
    ),
    "spark-connect": Command(
        summary="start, stop or show the local Spark Connect server the jobs share",
        description=connect_command.DESCRIPTION,
        add_arguments=connect_command.add_arguments,
        run=connect_command.run,
    ),
    "import-logs": Command(
        summary="import logged decisions (Parquet or CSV) into bronze through ingestion's checks",
        description=import_command.DESCRIPTION,
        add_arguments=import_command.add_arguments,
        run=import_command.run,
    ),
    "evaluate-policy": Command(
        summary="off-policy value of a candidate policy on the logged decisions, with an HTML report",
        description=candidate_command.DESCRIPTION,
        add_arguments=candidate_command.add_arguments,
        run=candidate_command.run,
    ),
    "alias-webhook": Command(
        summary="record reviewer alias moves from MLflow's webhooks, at the time they were made",
        description=alias_webhook_command.DESCRIPTION,
        add_arguments=alias_webhook_command.add_arguments,
        run=alias_webhook_command.run,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="looper",
        description="Looper: an end-to-end ML platform for product decisions.",
    )
    parser.add_argument("--version", action="version", version=f"looper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        child = sub.add_parser(
            name,
            help=command.summary,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process arguments), run the command, return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors: keep main() -> int
        return exit_.code if isinstance(exit_.code, int) else 2
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
