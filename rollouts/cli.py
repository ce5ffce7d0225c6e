"""Command line entry point of ``rollouts``."""

from __future__ import annotations

import argparse
import sys


def _schema(_args: argparse.Namespace) -> int:
    from rollouts.spec import schema_text

    sys.stdout.write(schema_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``rollouts`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="rollouts", description="GitOps progressive delivery")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    schema = sub.add_parser("schema", help="print the JSON schema of a Rollout spec")
    schema.set_defaults(func=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``rollouts`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
