"""Benchmark: how much "reconcile now" shortens a step's wait for its commit to be applied.

``python -m tests.bench.reconcile [--interval S] [--pushes N]``. The local mesh (Flux's stand-in on
one machine) polls its remote every ``--interval`` seconds (Flux's GitRepository ``interval``; 1m
is common, scaled down here so the run stays short). N pushes are timed from ``git push`` to the
mesh applying the commit, side by side in one run:

- anchor: waiting for the mesh's own poll (what every step waits for today, on average about half
  the interval),
- reconcile now: the same push followed by ``POST /reconcile`` (the local twin of annotating the
  GitRepository and Kustomization with ``reconcile.fluxcd.io/requestedAt``).

Pushes are spread at random offsets within the interval, as a step's commit falls at any moment of
Flux's poll cycle. Prints medians, means and the ratio. Figures: docs/benchmarks/gitops.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from rollouts.sync.reconcile import LocalMeshReconcile
from tests.local.lonemesh import LoneMesh, lone_mesh


def _time_push(mesh: LoneMesh, canary: int, *, reconcile: bool, timeout: float) -> float:
    start = time.monotonic()
    sha = mesh.push_weight(canary)
    if reconcile:
        outcome = LocalMeshReconcile(mesh.admin_url).reconcile_now()
        if not outcome.ok:
            raise SystemExit(f"reconcile failed: {outcome.detail}")
    mesh.wait_for(sha, timeout)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=5.0, help="the mesh's poll interval (s)")
    parser.add_argument("--pushes", type=int, default=10, help="pushes per arm")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    waits: dict[str, list[float]] = {"poll": [], "reconcile": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp,
        lone_mesh(Path(tmp), args.interval) as mesh,
    ):
        canary = 0
        for _ in range(args.pushes):
            for arm in rng.sample(sorted(waits), 2):  # interleaved, in random order
                time.sleep(rng.uniform(0, args.interval))
                canary = canary % 99 + 1
                waits[arm].append(
                    _time_push(mesh, canary, reconcile=arm == "reconcile", timeout=3 * args.interval)
                )
    poll, now = waits["poll"], waits["reconcile"]
    print(f"poll interval {args.interval:g} s, {args.pushes} pushes per arm (push -> applied)")
    for name, values in (("wait for the poll (anchor)", poll), ("reconcile now", now)):
        print(
            f"  {name:28s} median {statistics.median(values):7.3f} s  mean {statistics.fmean(values):7.3f} s"
            f"  max {max(values):7.3f} s"
        )
    saved = statistics.fmean(poll) - statistics.fmean(now)
    print(
        f"  reconcile now saves {saved:.3f} s a step on average "
        f"({saved / args.interval:.2f} of the interval); mean wait ratio "
        f"{statistics.fmean(poll) / statistics.fmean(now):.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
