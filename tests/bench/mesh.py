"""Benchmark: latency the local mesh adds, at 500 requests/s.

``python -m tests.bench.mesh [--seconds 5] [--rounds 3]`` starts the local stack and sends 500
evenly spaced requests/s (an open-loop generator pinned to CPU 1) alternately at the GA service
directly and through the mesh (weights 100/0, so both reach the same process), several rounds each,
in one run. Prints the medians and p99s side by side and the added median, against the 1 ms budget.
For comparison it also runs hey with 10 workers at 50 req/s each: hey's workers fire together, so
that row measures the queue behind bursts of 10 simultaneous requests, not a steady rate.
Figures: docs/benchmarks/local-stack.md.
"""

from __future__ import annotations

import argparse
import os
import statistics

from rollouts.local.stack import LocalStack, StackConfig
from tests.bench._hey import hey
from tests.bench._openloop import open_loop

BUDGET_MS = 1.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.mesh")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second in all")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    workers = 10
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the generator on CPU 1, away from the servers it measures
    runs: dict[str, list[tuple[float, float, float]]] = {"direct": [], "mesh": []}
    bursts: dict[str, tuple[float, float, float]] = {}
    with LocalStack(StackConfig(canary_weight=0)) as stack:
        urls = {"direct": stack.ga_url + "/version", "mesh": stack.mesh_url + "/version"}
        for url in urls.values():
            open_loop(url, rate=args.rate, seconds=1)  # warm-up
        for _ in range(args.rounds):
            for name, url in urls.items():
                r = open_loop(url, rate=args.rate, seconds=args.seconds)
                runs[name].append((r.rps, r.p50, r.p99))
        for name, url in urls.items():
            h = hey(url, seconds=args.seconds, concurrency=workers, rate_per_worker=args.rate / workers)
            bursts[name] = (h.rps, h.p50, h.p99)
    print(f"{'load':<22} {'path':<8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
    p50 = {}
    for name, results in runs.items():
        p50[name] = statistics.median(r[1] for r in results) * 1e3
        rps = statistics.median(r[0] for r in results)
        p99 = statistics.median(r[2] for r in results) * 1e3
        print(
            f"{'open loop, median of ' + str(args.rounds):<22} {name:<8} {rps:>7.0f}"
            f" {p50[name]:>7.2f} {p99:>7.2f}"
        )
    for name, (rps, h50, h99) in bursts.items():
        print(f"{'hey -c 10 -q 50':<22} {name:<8} {rps:>7.0f} {h50 * 1e3:>7.2f} {h99 * 1e3:>7.2f}")
    added = p50["mesh"] - p50["direct"]
    verdict = "within" if added <= BUDGET_MS else "OVER"
    print(f"added median latency: {added:.2f} ms ({verdict} the {BUDGET_MS:g} ms budget)")
    print(
        f"load average (1 min) before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )
    return 0 if added <= BUDGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
