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
from looper_common.simulate import command as simulate_command


@dataclass(frozen=True, slots=True)
class Command:
    """A ``looper`` subcommand."""

    summary: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "simulate": Command(
        summary="send synthetic traffic for a blueprint through the SDK",
        description=simulate_command.DESCRIPTION,
        add_arguments=simulate_command.add_arguments,
        run=simulate_command.run,
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
