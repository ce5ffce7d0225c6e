"""``python -m tests.bench [--timeout S] [NAME ...] [-- ARGS ...]`` (``make bench BENCH_ARGS=...``).

Without a name: lists the benchmarks (first line of each module's docstring) and how to run one;
nothing runs, because several take minutes. With names: runs each as ``python -m
tests.bench.NAME ARGS`` in its own process group, killed after ``--timeout`` seconds, one after
the other; exit 0 only when every one exited 0.
"""

from __future__ import annotations

import argparse
import ast
import os
import pkgutil
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 1800.0  # the longest documented run (loadtest memory, 600 s) with room to spare


def benchmarks(directory: Path = HERE) -> dict[str, str]:
    """Benchmark name -> first line of its docstring; read with ``ast`` so nothing heavy is imported."""
    found: dict[str, str] = {}
    for module in pkgutil.iter_modules([str(directory)]):
        if module.name.startswith("_") or module.ispkg:
            continue
        source = (directory / f"{module.name}.py").read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        found[module.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return dict(sorted(found.items()))


def listing(names: dict[str, str]) -> str:
    """The list of benchmarks and how to run one."""
    width = max((len(name) for name in names), default=0)
    lines = ["Benchmarks (each prints its figures side by side with its anchor; see docs/benchmarks/):"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, summary in names.items()]
    lines += [
        "",
        "Run one (or several):  make bench BENCH_ARGS=gitops",
        "  with its own options: make bench BENCH_ARGS='gitops -- --commits 1000'",
        "  directly:             python -m tests.bench.gitops --help",
        f"Each run is killed after --timeout seconds (default {DEFAULT_TIMEOUT:g}).",
    ]
    return "\n".join(lines)


def run_one(name: str, args: list[str], timeout: float) -> int:
    """Run ``python -m tests.bench.<name> args``; its exit code, or 124 when it timed out."""
    # Its own session: a timeout kills the benchmark and every server it started, not just python.
    process = subprocess.Popen(
        [sys.executable, "-m", f"tests.bench.{name}", *args], cwd=HERE.parents[1], start_new_session=True
    )
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        print(f"tests.bench: {name} timed out after {timeout:g}s", file=sys.stderr)
        return 124
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        raise


def main(argv: list[str] | None = None) -> int:
    """List the benchmarks, or run the named ones; exit 2 on an unknown name."""
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description="List or run the benchmarks.")
    parser.add_argument("names", metavar="NAME", nargs="*", help="benchmarks to run (none: list them)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per benchmark")
    args = parser.parse_args(argv)
    known = benchmarks()
    if not args.names:
        print(listing(known))
        return 0
    unknown = [name for name in args.names if name not in known]
    if unknown:
        print(
            f"tests.bench: unknown benchmark {', '.join(unknown)} (known: {', '.join(known)})",
            file=sys.stderr,
        )
        return 2
    if args.timeout <= 0:
        print(f"tests.bench: --timeout must be positive, got {args.timeout:g}", file=sys.stderr)
        return 2
    failed = []
    for name in args.names:
        print(f"== tests.bench.{name} {' '.join(extra)}".rstrip(), flush=True)
        if run_one(name, extra, args.timeout) != 0:
            failed.append(name)
    if failed:
        print(f"tests.bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
