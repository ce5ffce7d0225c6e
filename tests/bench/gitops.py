"""Benchmark: one weight change against a remote with 10,000 commits, once the workspace exists.

``python -m tests.bench.gitops [--commits N] [--changes K]``. Builds a bare remote with ``git
fast-import`` (the guide's layout plus N commits spread over 200 other files, a tag every 1,000), clones
it once into a workspace, then times K weight changes (fetch, edit, commit, push) side by side with:

- the floor: the same fetch, checkout, commit and push done directly with the git CLI on a second
  clone (what any Git-based engine must pay),
- the same changes against a remote with only 100 commits (the cost must not grow with history),
- a re-clone (``--no-local``: a pack transfer as from a server): what a change would add without the
  cached workspace.

Prints medians and ratios. Figures: docs/benchmarks/gitops.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rollouts.gitops import Workspace
from rollouts.routes import Weights
from rollouts.spec import Rollout, parse_spec
from tests.fixtures.gitrepo import guide_rollout

VIRTUAL_SERVICE = """apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
spec:
  hosts:
  - podinfo
  http:
  - route:
    - destination:
        host: podinfo
        subset: ga
      weight: 100
    - destination:
        host: podinfo
        subset: canary
      weight: 0
"""
CANARY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-canary
spec:
  template:
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:0.2.0
"""
ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    """Run git; raise with its stderr on failure."""
    done = subprocess.run(["git", *args], cwd=cwd, env=ENV, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def fast_import_stream(commits: int) -> bytes:
    """A fast-import stream: the guide's files, then ``commits`` small commits to other files."""
    out: list[bytes] = []

    def blob_inline(path: str, text: str) -> None:
        data = text.encode()
        out.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")

    def commit(n: int, message: str) -> None:
        msg = message.encode()
        stamp = 1_700_000_000 + n
        out.append(
            f"commit refs/heads/master\nmark :{n}\ncommitter bench <bench@localhost> {stamp} +0000\n".encode()
        )
        out.append(f"data {len(msg)}\n".encode() + msg + b"\n")

    commit(1, "guide layout")
    blob_inline("workloads/podinfo/virtual-service.yaml", VIRTUAL_SERVICE)
    blob_inline("workloads/podinfo/canary-deployment.yaml", CANARY)
    for i in range(2, commits + 1):
        commit(i, f"change {i}")
        blob_inline(f"apps/app-{i % 200:03d}/config.yaml", f"revision: {i}\nreplicas: {i % 7 + 1}\n")
        if i % 1000 == 0:
            out.append(f"reset refs/tags/r{i}\nfrom :{i}\n\n".encode())
    return b"".join(out)


def spec_for(url: str) -> Rollout:
    """The issue's spec against ``url``."""
    return parse_spec(guide_rollout(url))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _remote(tmp: Path, name: str, commits: int) -> tuple[Path, float]:
    bare = tmp / f"{name}.git"
    git(tmp, "init", "--quiet", "--bare", "--initial-branch=master", str(bare))
    seconds = _timed(lambda: git(bare, "fast-import", "--quiet", stdin=fast_import_stream(commits)))
    return bare, seconds


def main(argv: list[str] | None = None) -> int:
    """Build the remotes, run the changes, print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.gitops")
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100, help="commits of the comparison remote")
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gitops-") as tmp_name:
        tmp = Path(tmp_name)
        big, t_build = _remote(tmp, "big", args.commits)
        small, _ = _remote(tmp, "small", args.small)
        count = int(git(big, "rev-list", "--count", "master"))
        spec, spec_small = spec_for(str(big)), spec_for(str(small))
        ws = Workspace.for_spec(spec, cache_dir=tmp / "cache")
        ws_small = Workspace.for_spec(spec_small, cache_dir=tmp / "cache")
        t_clone = _timed(lambda: ws.read_state(spec))  # the first call clones
        ws_small.read_state(spec_small)

        floor_dir = tmp / "floor"
        git(tmp, "clone", "--quiet", "--single-branch", "--no-tags", str(big), str(floor_dir))
        vs = floor_dir / "workloads/podinfo/virtual-service.yaml"

        def floor_change(i: int) -> None:
            # The bare minimum with the git CLI: fetch, reset, edit, commit, push.
            git(
                floor_dir,
                "fetch",
                "--quiet",
                "--no-tags",
                "origin",
                "+refs/heads/master:refs/remotes/origin/master",
            )
            git(floor_dir, "checkout", "--quiet", "--force", "-B", "master", "origin/master")
            new = VIRTUAL_SERVICE.replace("weight: 100", f"weight: {100 - i}").replace(
                "weight: 0", f"weight: {i}"
            )
            vs.write_text(new)
            git(floor_dir, "commit", "--quiet", "-m", f"floor {i}", "--only", "--", str(vs))
            git(floor_dir, "push", "--quiet", "origin", "HEAD:refs/heads/master")

        ours: list[float] = []
        ours_small: list[float] = []
        floor: list[float] = []
        for i in range(1, args.changes + 1):
            # Interleaved so that all three see the same machine load; each really changes weights.
            ours.append(_timed(lambda i=i: ws.set_weights(spec, Weights.for_canary(i), verdict="manual")))
            ours_small.append(
                _timed(lambda i=i: ws_small.set_weights(spec_small, Weights.for_canary(i), verdict="manual"))
            )
            floor.append(_timed(lambda i=i: floor_change(50 + i % 40)))
        t_state = statistics.median(_timed(lambda: ws.read_state(spec)) for _ in range(5))
        # --no-local: a pack transfer as from a server, not hard links.
        again = tmp / "again"
        t_reclone = _timed(
            lambda: git(tmp, "clone", "--quiet", "--no-local", "--single-branch", str(big), str(again))
        )
    med, med_small, med_floor = (statistics.median(x) for x in (ours, ours_small, floor))
    print(f"remote commits            {count:,} (built with fast-import in {t_build:.2f} s)")
    print(f"first call (clone)        {t_clone * 1e3:8.0f} ms")
    print(f"weight change, median     {med * 1e3:8.0f} ms   (max {max(ours) * 1e3:.0f} ms, n={len(ours)})")
    label = f"same, {args.small:,} commits"
    print(f"{label:<26}{med_small * 1e3:8.0f} ms   ratio {count:,}/{args.small:,}: {med / med_small:.2f}")
    print(f"git CLI floor, median     {med_floor * 1e3:8.0f} ms   ratio ours/floor {med / med_floor:.2f}")
    print(
        f"re-clone (--no-local)     {t_reclone * 1e3:8.0f} ms   (what a change would add without the cache)"
    )
    print(f"read_state, median        {t_state * 1e3:8.0f} ms")
    print(f"target < 1 s              {'met' if med < 1.0 else 'MISSED'}")
    return 0 if med < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
