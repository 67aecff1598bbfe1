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
from looper_common.serve import command as serve_command
from looper_common.simulate import command as simulate_command


@dataclass(frozen=True, slots=True)
class Command:
    """A ``looper`` subcommand."""

    summary: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


ROLLBACK_DESCRIPTION = """\
Point a blueprint back at the policy version that was active before the current one.

The previous version is taken (and removed) from the blueprint's history in Redis;
it is refused when there is none or its entries have expired. SDK clients follow
within their pointer cache (1 s by default). The version left is marked so that
rerunning its publish does not bring it back, but the next day's publish_policies
publishes the champion again: move the champion alias if the model is at fault.

example:
  looper rollback --blueprint notification_send
"""


def _rollback_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blueprint", required=True, help="blueprint name, e.g. notification_send")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")


def _rollback(args: argparse.Namespace) -> int:
    """Roll the blueprint's active policy back; 1 when refused or Redis fails, 2 on bad settings."""
    import redis

    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.publishing.redis_policy import RollbackError, rollback

    try:
        settings = load_settings(args.env)
    except ConfigError as err:
        print(f"looper rollback: error: {err}", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(settings.redis.url, password=settings.redis.password)
    try:
        left, restored = rollback(client, args.blueprint)
    except (RollbackError, redis.RedisError) as err:
        print(f"looper rollback: error: {err}", file=sys.stderr)
        return 1
    print(f"{args.blueprint}: active policy {left} -> {restored}")
    return 0


COMMANDS: dict[str, Command] = {
    "simulate": Command(
        summary="send synthetic traffic for a blueprint through the SDK",
        description=simulate_command.DESCRIPTION,
        add_arguments=simulate_command.add_arguments,
        run=simulate_command.run,
    ),
    "rollback": Command(
        summary="point a blueprint back at its previous published policy",
        description=ROLLBACK_DESCRIPTION,
        add_arguments=_rollback_arguments,
        run=_rollback,
    ),
    "serve": Command(
        summary="serve decisions and observations over HTTP/JSON (any language)",
        description=serve_command.DESCRIPTION,
        add_arguments=serve_command.add_arguments,
        run=serve_command.run,
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
