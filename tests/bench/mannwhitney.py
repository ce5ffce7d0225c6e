"""Benchmark: Mann–Whitney from bucket counts vs scipy on the expanded samples.

``python -m tests.bench.mannwhitney [--requests N]``: two million requests per side by default, GA
lognormal (median 40 ms, sigma 0.5) and a canary 0.2 % slower (so the p-value is neither 0 nor 1),
binned in podinfo's buckets. Prints both timings, the ratio, and that both give the same U and
p-value. Figures: docs/benchmarks/analyzer.md.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
from scipy import stats

from analyzer.mannwhitney import mann_whitney

PODINFO = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _best_of(repeats: int, fn: Callable[[], object]) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.mannwhitney")
    parser.add_argument("--requests", type=int, default=2_000_000, help="requests per side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slowdown", type=float, default=1.002, help="canary latency factor")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    edges = [0.0, *PODINFO, math.inf]
    ga = np.histogram(rng.lognormal(math.log(0.04), 0.5, args.requests), bins=edges)[0]
    canary = np.histogram(args.slowdown * rng.lognormal(math.log(0.04), 0.5, args.requests), bins=edges)[0]
    values = np.arange(ga.size, dtype=float)
    xs, ys = np.repeat(values, canary), np.repeat(values, ga)

    ours = mann_whitney(canary, ga)
    ref = stats.mannwhitneyu(xs, ys, alternative="two-sided", use_continuity=True, method="asymptotic")
    t_ours = _best_of(max(args.repeats, 20), lambda: mann_whitney(canary, ga))
    t_scipy = _best_of(args.repeats, lambda: stats.mannwhitneyu(xs, ys, method="asymptotic"))
    print(f"requests per side      {args.requests:,}")
    print(f"buckets                {ga.size}")
    u_ref, p_ref = float(ref.statistic), float(ref.pvalue)
    print(f"scipy (expanded)       {t_scipy * 1e3:10.1f} ms   U={u_ref:.6e}  p={p_ref:.6e}")
    print(f"analyzer (buckets)     {t_ours * 1e3:10.3f} ms   U={ours.statistic:.6e}  p={ours.pvalue:.6e}")
    print(f"speed-up               {t_scipy / t_ours:10.0f}x")
    same = math.isclose(ours.statistic, float(ref.statistic), rel_tol=1e-9) and math.isclose(
        ours.pvalue, float(ref.pvalue), rel_tol=1e-6, abs_tol=1e-300
    )
    print(f"same U and p-value     {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
