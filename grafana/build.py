"""``python -m grafana.build``: write grafana/dashboards/*.json; ``--check`` only compares."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana.dashboards import DASHBOARDS, render_json

OUTPUT = Path(__file__).resolve().parent / "dashboards"


def generated() -> dict[Path, str]:
    """Every dashboard file and the JSON the code generates for it."""
    return {OUTPUT / f"{name}.json": render_json(build()) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards (or with ``--check``, report those that differ); returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m grafana.build", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files, write nothing"
    )
    args = parser.parse_args(argv)
    stale = [path for path, text in generated().items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.name} differs from what grafana/dashboards.py generates", file=sys.stderr)
        return 1 if stale else 0
    OUTPUT.mkdir(exist_ok=True)
    for path, text in generated().items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
