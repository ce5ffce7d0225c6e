"""Benchmark: start-up of the command lines, beside `git --version` and `python -c pass`.

``python -m tests.bench.startup [--runs N] [--json]``: each command runs N times (default 15), in
turn with the others so that a change of machine load hits them all alike; per command the median
wall time, the median CPU time (user + system) and the largest max RSS, both from GNU time. The floor is
``python -c pass`` (the interpreter alone) and ``git --version`` (a C program); ratios are against
``python -c pass`` of the same run. ``analyzer judge`` is timed to its first answer: one window
line written, the verdict line read. ``--baseline TREE`` also times the two targets on a checkout
of an earlier revision, in the same run. Figures: docs/benchmarks/startup.md.

Targets (issue 11): ``rollouts --help`` at most 0.25 s wall, ``analyzer judge`` start-up at most
0.5 s, on this machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
TARGETS = {"rollouts --help": 0.25, "analyzer judge (first answer)": 0.5}
LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, "+Inf"]
WINDOW = json.dumps(
    {
        "rollout": "test/podinfo",
        "weight": 10,
        "baseline": {
            "le": LE,
            "buckets": [0, 3, 40, 300, 800, 1100, 1170, 1180, 1180, 1180, 1180, 1180],
            "requests": 1180,
            "errors": 4,
        },
        "canary": {
            "le": LE,
            "buckets": [0, 0, 5, 30, 90, 120, 128, 130, 130, 130, 130, 130],
            "requests": 130,
            "errors": 0,
        },
    }
)


@dataclass(frozen=True)
class Run:
    """One run of one command: wall seconds (to exit, or to the first answer), CPU seconds, max RSS."""

    wall: float
    cpu: float
    rss_kib: int


@dataclass(frozen=True)
class Figures:
    """A command's figures over all runs."""

    name: str
    argv: list[str]
    runs: int
    wall_median: float
    cpu_median: float
    rss_max_kib: int
    ratio_to_python: float = 0.0
    target: float | None = None


def _script(name: str) -> str:
    """Our console script beside this interpreter (as installed by `make venv`)."""
    path = BIN / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make venv` first")
    return str(path)


def _measure(argv: list[str], stdin_line: str | None, scratch: Path, env: dict[str, str] | None) -> Run:
    """Run ``argv`` once; with ``stdin_line``, the wall time ends at the first line it answers.

    CPU and max RSS come from GNU time (``/usr/bin/time -f``), not from our own ``wait4``: a child
    forked from this process has our RSS as its high-water mark until it execs, and the kernel
    keeps that in the child's ``ru_maxrss``; GNU time is small, so what it reports is the command's.
    """
    out = scratch / "time.txt"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [TIME, "-o", str(out), "-f", "%M %U %S", *argv],
        stdin=subprocess.PIPE if stdin_line is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    wall = math.nan
    if stdin_line is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin_line + "\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
        wall = time.perf_counter() - start
        if '"action"' not in answer:
            raise SystemExit(f"{' '.join(argv)}: unexpected answer {answer!r}")
        proc.stdin.close()
    proc.stdout.read()
    code = proc.wait(timeout=120)
    if stdin_line is None:
        wall = time.perf_counter() - start
    proc.stdout.close()
    if code != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {code}")
    rss, user, system = out.read_text().split()[-3:]
    return Run(wall, float(user) + float(system), int(rss))


Command = tuple[list[str], str | None, dict[str, str] | None]


def _baseline(tree: Path) -> dict[str, Command]:
    """The two targets' commands on an earlier checkout ``tree`` (its packages first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}

    def script(module: str) -> list[str]:
        # -P: not the working directory (this checkout) first on the path, the baseline tree
        return [sys.executable, "-P", "-c", f"import sys; from {module} import main; sys.exit(main())"]

    return {
        "rollouts --help (baseline)": ([*script("rollouts.cli"), "--help"], None, env),
        "analyzer judge (first answer) (baseline)": ([*script("analyzer.cli"), "judge"], WINDOW, env),
    }


def commands(baseline: Path | None = None) -> dict[str, Command]:
    """name -> (argv, line to send or None, environment or None)."""
    git = shutil.which("git")
    found: dict[str, Command] = {"python -c pass": ([sys.executable, "-c", "pass"], None, None)}
    if git is not None:
        found["git --version"] = ([git, "--version"], None, None)
    rollouts, analyzer, loadtest = (_script(n) for n in ("rollouts", "analyzer", "loadtest"))
    found.update(
        {
            "rollouts --help": ([rollouts, "--help"], None, None),
            "rollouts status --help": ([rollouts, "status", "--help"], None, None),
            "rollouts set-weight --help": ([rollouts, "set-weight", "--help"], None, None),
            "rollouts run --help": ([rollouts, "run", "--help"], None, None),
            "analyzer --help": ([analyzer, "--help"], None, None),
            "analyzer judge (first answer)": ([analyzer, "judge"], WINDOW, None),
            "loadtest --help": ([loadtest, "--help"], None, None),
            "loadtest serve --help": ([loadtest, "serve", "--help"], None, None),
        }
    )
    if baseline is not None:
        found.update(_baseline(baseline))
    return found


def run(runs: int, baseline: Path | None = None) -> list[Figures]:
    """Every command ``runs`` times, interleaved; their figures."""
    todo = commands(baseline)
    measured: dict[str, list[Run]] = {name: [] for name in todo}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        scratch = Path(tmp)
        for argv, line, env in todo.values():  # a warm-up each: a warm page cache is what is measured
            _measure(argv, line, scratch, env)
        for _ in range(runs):
            for name, (argv, line, env) in todo.items():
                measured[name].append(_measure(argv, line, scratch, env))
    floor = statistics.median(r.wall for r in measured["python -c pass"])
    return [
        Figures(
            name=name,
            argv=[Path(a).name if i == 0 else a for i, a in enumerate(todo[name][0])],
            runs=runs,
            wall_median=statistics.median(r.wall for r in items),
            cpu_median=statistics.median(r.cpu for r in items),
            rss_max_kib=max(r.rss_kib for r in items),
            ratio_to_python=statistics.median(r.wall for r in items) / floor,
            target=TARGETS.get(name),
        )
        for name, items in measured.items()
    ]


def table(figures: list[Figures]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| command | wall, median | CPU, median | max RSS | wall / `python -c pass` | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in figures:
        verdict = "" if f.target is None else ("met" if f.wall_median <= f.target else "MISSED")
        target = f"≤ {f.target:g} s: {verdict}" if f.target is not None else ""
        lines.append(
            f"| `{f.name}` | {f.wall_median * 1000:.0f} ms | {f.cpu_median * 1000:.0f} ms | "
            f"{f.rss_max_kib / 1024:.1f} MiB | {f.ratio_to_python:.1f}× | {target} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table (or JSON lines); exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.startup")
    parser.add_argument("--runs", type=int, default=15, help="runs per command (median)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="TREE",
        help="also time the two targets on this checkout of an earlier revision (e.g. `git archive`)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not os.access(TIME, os.X_OK):
        raise SystemExit(f"{TIME} is missing: install the Debian package `time` (`make system` does)")
    if args.baseline is not None and not (args.baseline / "rollouts" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a checkout of this repository")
    figures = run(args.runs, args.baseline)
    if args.json:
        for f in figures:
            print(json.dumps(asdict(f)))
    else:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{args.runs} runs per command, Python {sys.version.split()[0]}, load average {load}\n")
        print(table(figures))
    missed = [f.name for f in figures if f.target is not None and f.wall_median > f.target]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
