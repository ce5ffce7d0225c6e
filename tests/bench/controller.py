"""Benchmark: one controller, N rollouts, real Prometheus, real Git: queries and CPU per round.

``python -m tests.bench.controller [--rollouts 200] [--rounds 3]`` starts a real Prometheus scraping
an exporter of Istio's standard metrics for N services (GA 9 req/s, canary 1 req/s, same latency),
builds one bare Git repo holding N route files and canary manifests (every canary at 10 %), and runs
N real state machines (Git workspace, local-mesh sync gate, real judge) through rounds of ticks:

- **batched**: one shared ``PrometheusSource`` and Git read once per round through ``HeadCache``
  (what ``rollouts run`` does);
- **per rollout** (the anchor, same run): every rollout its own source (its own queries) and its
  own full Git read (fetch and parse) every tick.

Per round it reports Prometheus queries (counted by Prometheus itself), wall time, this process's CPU
(the controller: state machines, judge, query parsing, HTTP) and the CPU of its child processes
(``git``). Figures: docs/benchmarks/controller.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from analyzer import Judge, Policy, SubsetWindow
from analyzer.prometheus import MetricsReader, PrometheusClient
from rollouts.controller.gitcache import CachedWorkspace, HeadCache
from rollouts.controller.machine import Machine
from rollouts.controller.scheduler import Scheduler
from rollouts.controller.source import PrometheusSource
from rollouts.gitops import Workspace
from rollouts.local.process import ChildProcess, free_port
from rollouts.local.prometheus import PrometheusServer, ScrapeTarget
from rollouts.local.stack import guide_virtual_service
from rollouts.metrics import ControllerMetrics
from rollouts.spec import Rollout, parse_spec
from rollouts.sync import LocalMeshGate
from tests.bench.prometheus_batch import query_requests
from tests.fixtures.gitrepo import bare_remote, git

BOUNDS_MS = ("0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "+Inf")
SHARE = (0.0, 0.01, 0.1, 0.3, 0.7, 0.9, 0.97, 0.99, 0.995, 0.999, 1.0)
LABELS = ["reporter", "destination_workload", "destination_workload_namespace", "response_code"]


class Exporter(Collector):
    """Istio's metrics of N services: GA 9 req/s and canary 1 req/s (a 10 % split), same latency."""

    def __init__(self, services: int) -> None:
        self.services, self.started = services, time.time()

    def collect(self) -> Iterator[Metric]:
        elapsed = time.time() - self.started
        requests = CounterMetricFamily("istio_requests", "requests", labels=LABELS)
        duration = HistogramMetricFamily("istio_request_duration_milliseconds", "duration", labels=LABELS)
        for i in range(self.services):
            for subset, rate in (("ga", 9.0), ("canary", 1.0)):
                for code, share in (("200", 0.999), ("500", 0.001)):
                    labels = ["destination", f"app-{i:03d}-{subset}", "bench", code]
                    n = rate * elapsed * share
                    requests.add_metric(labels, n)
                    buckets = [(b, n * s) for b, s in zip(BOUNDS_MS, SHARE, strict=True)]
                    duration.add_metric(labels, buckets, sum_value=n * 30.0)
        yield requests
        yield duration


def canary_manifest(name: str) -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}-canary, namespace: bench}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app:0.2.0\n"
    )


def build_repo(root: Path, services: int) -> Path:
    """A bare repo with N route files at 10 % and N canary manifests, in one commit."""
    remote = bare_remote(root)
    files: dict[str, str] = {}
    for i in range(services):
        name = f"app-{i:03d}"
        files[f"apps/{name}/vs.yaml"] = guide_virtual_service(10, namespace="bench", service=name)
        files[f"apps/{name}/canary.yaml"] = canary_manifest(name)
    remote.seed(files, "seed")
    git(remote.human, "push", "--quiet", "origin", "master")
    return remote.bare


def spec(i: int, url: str, prometheus: str, interval: float) -> Rollout:
    name = f"app-{i:03d}"
    return parse_spec({
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "git": {"url": url, "branch": "master"},
            "route": {"kind": "VirtualService", "path": f"apps/{name}/vs.yaml",
                      "stable": "ga", "canary": "canary"},
            "canary": {"path": f"apps/{name}/canary.yaml"},
            "steps": [10, 60, 100],
            "analysis": {"interval": f"{interval:g}s", "prometheus": {"url": prometheus}},
        },
    })  # fmt: skip


def workspace(rollout: Rollout, cache: Path, heads: HeadCache | None) -> Workspace | CachedWorkspace:
    """The rollout's workspace; with ``heads``, Git is read once per round (what ``rollouts run`` does)."""
    plain = Workspace.for_spec(rollout, cache_dir=cache)
    return plain if heads is None else CachedWorkspace(plain, heads)


def status_server(bare: Path) -> tuple[ThreadingHTTPServer, str]:
    """``/status`` of a mesh that has applied the remote's head with every route at 90/10."""
    import git

    repo = git.Repo(bare)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "revision": repo.commit("master").hexsha,
                    "weights": {"stable": 90, "canary": 10},
                    "error": None,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run both ways and print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.controller")
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--export-on", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.export_on is not None:  # the exporter child: serve until killed
        registry = CollectorRegistry()
        registry.register(Exporter(args.rollouts))
        start_http_server(args.export_on, addr="127.0.0.1", registry=registry)
        threading.Event().wait()
    logging.getLogger("rollouts").setLevel(logging.ERROR)  # 200 "no data yet" holds per round otherwise
    # The exporter runs in its own process: in ours, a busy round would starve Prometheus' scrapes.
    port = free_port()
    exporter = ChildProcess(
        "exporter",
        [
            sys.executable,
            "-m",
            "tests.bench.controller",
            "--rollouts",
            str(args.rollouts),
            "--export-on",
            str(port),
        ],
        Path(tempfile.gettempdir()) / "bench-controller-exporter.log",
    )
    exporter.wait_http(f"http://127.0.0.1:{port}/metrics", timeout=30)
    rows: list[tuple[str, int, float, float, float, float, int]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp,
        PrometheusServer([ScrapeTarget("istio", f"127.0.0.1:{port}")], scrape_interval=1.0) as prom,
    ):
        root = Path(tmp)
        bare = build_repo(root, args.rollouts)
        httpd, status = status_server(bare)
        specs = [spec(i, str(bare), prom.url, args.interval) for i in range(args.rollouts)]
        for way in ("batched", "per rollout"):
            shared = PrometheusSource(MetricsReader(PrometheusClient(prom.url, timeout=30)))
            heads = HeadCache()
            scheduler = Scheduler()
            judged = 0
            for rollout in specs:
                source = (
                    shared
                    if way == "batched"
                    else PrometheusSource(MetricsReader(PrometheusClient(prom.url)))
                )
                source.register(rollout)
                policy = Policy()

                def judge(history: Sequence[SubsetWindow], p: Policy = policy) -> Judge:
                    return Judge(p, history=history)

                scheduler.add(Machine(
                    rollout, workspace=workspace(rollout, root / "cache", heads if way == "batched" else None),  # noqa: E501
                    gate=LocalMeshGate(status), metrics_source=source,
                    judge_factory=judge, metrics=ControllerMetrics(), settle=1.5,
                ))  # fmt: skip
            scheduler.run_once()  # first look: adopt the 10 % split, open the gates
            # Windows start at the next boundary; round k comes when window k is complete (+ settle).
            first_end = math.ceil(time.time() / args.interval) * args.interval + args.interval
            for round_no in range(1, args.rounds + 1):
                boundary = first_end + (round_no - 1) * args.interval + 1.6
                time.sleep(max(0.0, boundary - time.time()))
                queries, cpu, kids, began = (
                    query_requests(prom.url),
                    time.process_time(),
                    children_cpu(),
                    time.perf_counter(),
                )
                results = scheduler.run_once()
                wall = time.perf_counter() - began
                cpu, kids = time.process_time() - cpu, children_cpu() - kids
                served = query_requests(prom.url) - queries
                judged = sum(r.windows for r in results.values() if r is not None)
                rows.append((way, round_no, served, wall, cpu, kids, judged))
            scheduler.stop()
        httpd.shutdown()
    exporter.stop()
    print(
        f"{args.rollouts} rollouts, {args.interval:g}s windows, real Prometheus and Git;"
        " a round = one tick each"
    )
    header = ("way", "round", "queries", "wall s", "cpu s", "git cpu s", "windows judged")
    print(f"{header[0]:<12} " + " ".join(f"{h:>{len(h) + 2}}" for h in header[1:]))
    for way, round_no, served, wall, cpu, kids, judged in rows:
        print(f"{way:<12} {round_no:>7} {served:>9.0f} {wall:>8.2f} {cpu:>7.2f} {kids:>11.2f} {judged:>16}")
    batched = [r for r in rows if r[0] == "batched"]
    single = [r for r in rows if r[0] == "per rollout"]

    def mean(rs: list[tuple[str, int, float, float, float, float, int]], k: int) -> float:
        return sum(float(r[k]) for r in rs) / len(rs)

    print(
        f"queries per round: batched {mean(batched, 2):.0f}, per rollout {mean(single, 2):.0f} "
        f"(ratio {mean(single, 2) / max(mean(batched, 2), 1):.0f}x)"
    )
    print(
        f"controller CPU per round: batched {mean(batched, 4):.2f} s, per rollout {mean(single, 4):.2f} s "
        f"(ratio {mean(single, 4) / max(mean(batched, 4), 1e-9):.2f}x); "
        f"git child CPU {mean(batched, 5):.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
