"""``make bench`` / ``python -m tests.bench``: lists by default, runs named benchmarks, bounded."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.bench", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_a_name_it_lists_every_benchmark_and_runs_none():
    done = _bench()
    assert done.returncode == 0, done.stderr
    modules = sorted(p.stem for p in (ROOT / "tests" / "bench").glob("*.py") if not p.stem.startswith("_"))
    assert len(modules) >= 5
    for name in modules:
        assert f"  {name} " in done.stdout
    assert "make bench BENCH_ARGS=gitops" in done.stdout
    assert "==" not in done.stdout  # nothing was run


def test_a_named_benchmark_runs_with_its_own_options():
    done = _bench("mannwhitney", "--", "--requests", "5000", "--repeats", "1")
    assert done.returncode == 0, done.stderr
    assert "requests per side      5,000" in done.stdout and "same U and p-value     True" in done.stdout


def test_unknown_names_and_timeouts_fail_clearly():
    done = _bench("nope", "gitops")
    assert done.returncode == 2 and "unknown benchmark nope" in done.stderr and "gitops" in done.stderr
    start = time.monotonic()
    done = _bench("--timeout", "0.2", "mannwhitney")  # importing scipy alone takes longer than that
    assert done.returncode == 1 and "mannwhitney timed out after 0.2s" in done.stderr
    assert time.monotonic() - start < 30
