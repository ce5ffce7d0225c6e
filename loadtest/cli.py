"""Command line entry point of ``loadtest``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``loadtest`` command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="loadtest")
    parser.parse_args(argv)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
