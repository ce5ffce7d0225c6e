"""Command line entry point of ``analyzer``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``analyzer`` command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="analyzer")
    parser.parse_args(argv)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
