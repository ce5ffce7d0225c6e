"""Benchmark: requests/s of the podinfo-compatible service on one core.

``python -m tests.bench.podinfo [--seconds 5]`` starts the service pinned to CPU 0 (hey runs on
CPU 1) and, in the same run, a bare aiohttp app answering the same JSON without routes, middlewares
or metrics: the anchor for what this machine's Python and aiohttp can do. Prints both throughputs,
their ratio and the verdict against the 2,000 requests/s target. Figures: docs/benchmarks/local-stack.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
import time

from rollouts.local.process import ChildProcess, free_port, python_module
from tests.bench._hey import hey

TARGET_RPS = 2000.0

_ANCHOR = textwrap.dedent(
    """
    import sys
    from aiohttp import web
    body = b'{\\n  "commit": "local",\\n  "version": "6.5.0"\\n}'
    async def version(request):
        return web.Response(body=body, content_type="application/json")
    app = web.Application()
    app.router.add_get("/version", version)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    """
)


def _pinned(argv: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *argv] if shutil.which("taskset") else argv


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.podinfo")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    import tempfile
    from pathlib import Path

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("anchor: bare aiohttp", "/version"), ("podinfo-compatible", "/version"), (
            "podinfo-compatible", "/api/info")):  # fmt: skip
            port = free_port()
            if name.startswith("anchor"):
                command = _pinned([sys.executable, "-c", _ANCHOR, str(port)])
            else:
                command = _pinned(python_module("rollouts.local.podinfo", f"--port={port}"))
            with ChildProcess(name, command, Path(tmp) / "server.log") as server:
                server.wait_http(f"http://127.0.0.1:{port}/version")
                hey(f"http://127.0.0.1:{port}{path}", seconds=1, concurrency=args.concurrency)  # warm-up
                time.sleep(0.2)
                results[(name, path)] = hey(
                    f"http://127.0.0.1:{port}{path}", seconds=args.seconds, concurrency=args.concurrency
                )
    anchor = results[("anchor: bare aiohttp", "/version")].rps
    print(f"{'server':<24} {'path':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs anchor':>9}")
    for (name, path), r in results.items():
        print(
            f"{name:<24} {path:<10} {r.rps:>8.0f} {r.p50 * 1e3:>7.2f} {r.p99 * 1e3:>7.2f}"
            f" {r.rps / anchor:>9.2f}"
        )
    worst = min(r.rps for (name, _), r in results.items() if not name.startswith("anchor"))
    verdict = "meets" if worst >= TARGET_RPS else "MISSES"
    print(
        f"podinfo-compatible, slowest path: {worst:.0f} req/s on one core:"
        f" {verdict} the {TARGET_RPS:.0f} target"
    )
    print(
        f"load average (1 min) before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )
    return 0 if worst >= TARGET_RPS else 1


if __name__ == "__main__":
    raise SystemExit(main())
