"""Benchmark of ``loadtest`` against hey, side by side in one run (figures in docs/benchmarks/loadtest.md).

    python -m tests.bench.loadtest throughput [--seconds 10] [--rounds 3]
    python -m tests.bench.loadtest rate [--seconds 60]
    python -m tests.bench.loadtest memory [--seconds 600]
    python -m tests.bench.loadtest stall
    python -m tests.bench.loadtest distributed [--seconds 5] [-c 50]

Needs ``hey`` and ``nginx`` (Debian packages) and two cores: nginx (``worker_processes 1``) is
pinned to core 1, both load generators to core 0 (hey with GOMAXPROCS=1), one core each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support import free_port

LOADTEST = [sys.executable, "-m", "loadtest"]
FASTHTTP_LOCUSTFILE = """\
from locust import FastHttpUser, constant, task


class Plain(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
"""
NGINX_CONF = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path {dir};
  proxy_temp_path {dir};
  fastcgi_temp_path {dir};
  uwsgi_temp_path {dir};
  scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hello from nginx\\n"; }}
  }}
}}
"""


def _need(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        sys.exit(f"{name} not found: apt-get install -y {name}")
    return path


@contextlib.contextmanager
def nginx() -> Iterator[str]:
    """nginx on loopback, one worker, pinned to core 1; yields its URL."""
    binary = _need("nginx")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
        with _on_core_1([binary, "-c", str(conf), "-p", tmp], port) as url:
            yield url


@contextlib.contextmanager
def stalling_target(stall_at: float, stall_for: float) -> Iterator[str]:
    """The test target in its own process (core 1), stalling once for ``stall_for`` seconds."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.loadtest.target", str(port), str(stall_at), str(stall_for)]
    with _on_core_1(argv, port) as url:
        yield url


@contextlib.contextmanager
def _on_core_1(argv: list[str], port: int) -> Iterator[str]:
    """``argv`` as a server pinned to core 1 (the load generator keeps core 0), until exit; yields
    its URL once ``port`` accepts connections."""
    proc = subprocess.Popen(["taskset", "-c", "1", *argv])
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def hey(args: list[str]) -> str:
    """Run hey on core 0 with one Go thread; returns its output."""
    env = {**os.environ, "GOMAXPROCS": "1"}
    return subprocess.run(
        ["taskset", "-c", "0", _need("hey"), "-cpus", "1", *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout


def loadtest(args: list[str]) -> str:
    """Run loadtest on core 0; returns its output."""
    return subprocess.run(
        ["taskset", "-c", "0", *LOADTEST, "--quiet", *args], capture_output=True, text=True, check=False
    ).stdout


def rps(output: str) -> float:
    """``Requests/sec:`` from a hey-format summary."""
    match = re.search(r"Requests/sec:\t([\d.]+)", output)
    return float(match.group(1)) if match else 0.0


def percentile(output: str, p: int) -> float:
    """``p% in X secs`` from a hey-format summary."""
    match = re.search(rf"  {p}% in ([\d.]+) secs", output)
    return float(match.group(1)) if match else float("nan")


def throughput(seconds: float, rounds: int, concurrency: int) -> None:
    """Requests/s on one core against nginx on the other: hey and loadtest alternately."""
    with nginx() as url:
        hey(["-z", "1s", "-c", str(concurrency), url])  # warm up nginx
        ratios = []
        for i in range(rounds):
            h = rps(hey(["-z", f"{seconds}s", "-c", str(concurrency), url]))
            lt = rps(loadtest(["-z", f"{seconds}s", "-c", str(concurrency), url]))
            ratios.append(lt / h if h else 0.0)
            print(f"round {i + 1}: hey {h:9.0f} req/s   loadtest {lt:9.0f} req/s   ratio {ratios[-1]:.2f}")
        print(f"median ratio loadtest/hey: {sorted(ratios)[len(ratios) // 2]:.2f} (target >= 0.50)")
        # the anchor the lean user replaces: Locust's own FastHttpUser, through -f
        with tempfile.TemporaryDirectory() as tmp:
            locustfile = Path(tmp) / "fasthttp.py"
            locustfile.write_text(FASTHTTP_LOCUSTFILE)
            h = rps(hey(["-z", f"{seconds}s", "-c", str(concurrency), url]))
            fast = rps(loadtest(["-z", f"{seconds}s", "-c", str(concurrency), "-f", str(locustfile), url]))
            print(f"plain FastHttpUser: hey {h:9.0f} req/s   FastHttpUser {fast:9.0f} req/s", end="")
            print(f"   ratio {fast / h:.2f}")


def rate(seconds: float, target_rate: float) -> None:
    """Open model accuracy: achieved requests/s against the asked rate."""
    with nginx() as url:
        out = subprocess.run(
            [
                "taskset",
                "-c",
                "0",
                *LOADTEST,
                "--quiet",
                "--json",
                "--rate",
                str(target_rate),
                "-z",
                f"{seconds}s",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        report = json.loads(out)
        achieved = report["requests"] / seconds
        error = 100 * (achieved - target_rate) / target_rate
        print(
            f"--rate {target_rate:g} for {seconds:g}s: {report['requests']} requests, "
            f"{achieved:.1f} req/s over the nominal duration "
            f"({report['requests_per_second']:.1f} over the measured span), error {error:+.2f} %, "
            f"p99 {report['latency']['p99'] * 1000:.2f} ms"
        )
        # hey has no open model: the nearest is c workers limited to rate/c each
        workers = 50
        out = hey(["-z", f"{seconds:g}s", "-c", str(workers), "-q", f"{target_rate / workers:g}", url])
        print(
            f"hey -c {workers} -q {target_rate / workers:g} for {seconds:g}s: {rps(out):.1f} req/s, p99 "
            f"{percentile(out, 99) * 1000:.2f} ms"
        )


def memory(seconds: float, target_rate: float, every: float, tool: str) -> None:
    """RSS of a long run, sampled from /proc: loadtest's open model, or hey at the same rate."""
    workers = 50
    # a file, not a pipe: nobody reads a pipe while we sample, and the report outgrows its buffer
    with nginx() as url, tempfile.TemporaryFile("w+") as sink:
        if tool == "hey":
            command = [_need("hey"), "-cpus", "1", "-c", str(workers), "-q", f"{target_rate / workers:g}"]
        else:
            command = [*LOADTEST, "--quiet", "--json", "--rate", str(target_rate)]
        proc = subprocess.Popen(
            ["taskset", "-c", "0", *command, "-z", f"{seconds:g}s", url],
            stdout=sink,
            text=True,
            env={**os.environ, "GOMAXPROCS": "1"},
        )
        samples: list[tuple[float, int]] = []
        start = time.monotonic()
        while proc.poll() is None:
            with contextlib.suppress(OSError, AttributeError):
                status = Path(f"/proc/{proc.pid}/status").read_text()
                kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
                samples.append((time.monotonic() - start, kb))
                print(f"{samples[-1][0]:7.0f} s  RSS {kb / 1024:7.1f} MiB", flush=True)
            time.sleep(every)
        sink.seek(0)
        output = sink.read()
        if tool == "hey":
            print(f"{tool}: rps {rps(output):.1f}")
        else:
            report = json.loads(output)
            print(f"{tool}: requests {report['requests']}, rps {report['requests_per_second']:.1f}")
        settled = [kb for t, kb in samples if t >= 30]
        if settled:
            print(
                f"RSS after 30 s: first {settled[0] / 1024:.1f} MiB, last {settled[-1] / 1024:.1f} MiB, "
                f"max {max(settled) / 1024:.1f} MiB"
            )


def stall(seconds: float, stall_at: float) -> None:
    """A target that stalls for one second: what hey's p99 and the open model's p99 show."""
    workers, per_worker = 10, 10
    total = workers * per_worker
    with stalling_target(stall_at, 1.0) as url:
        h = hey(["-z", f"{seconds}s", "-c", str(workers), "-q", str(per_worker), url])
    with stalling_target(stall_at, 1.0) as url:
        closed = loadtest(["-z", f"{seconds}s", "-c", str(workers), "-q", str(per_worker), url])
    with stalling_target(stall_at, 1.0) as url:
        opened = loadtest(["-z", f"{seconds}s", "-c", str(workers), "--rate", str(total), url])
    print(f"{total} req/s intended for {seconds:g}s, target stalls 1 s at t={stall_at:g}s")
    for name, out in (
        ("hey -c 10 -q 10", h),
        ("loadtest -c 10 -q 10", closed),
        ("loadtest --rate 100", opened),
    ):
        slowest = re.search(r"Slowest:\t([\d.]+)", out)
        worst = float(slowest.group(1)) if slowest else float("nan")
        print(
            f"{name:22s} requests/s {rps(out):7.1f}  p50 {percentile(out, 50):.4f}  "
            f"p90 {percentile(out, 90):.4f}  p99 {percentile(out, 99):.4f}  slowest {worst:.4f}"
        )
    print("\nopen model, service time distribution")
    section = opened.split("Service time distribution", 1)[-1].split("Details", 1)[0]
    print(section.strip())


def distributed(seconds: float, concurrency: int) -> None:
    """One process against a master and two workers given only ``--master-host`` (the plan comes
    from the master), closed model, same flags, same target; the one-process run is the anchor."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.loadtest.target", str(port)]
    with _on_core_1(argv, port) as url:
        flags = ["--json", "-z", f"{seconds:g}s", "-c", str(concurrency), url]
        one = json.loads(loadtest(flags))
        master_port = str(free_port())
        master = subprocess.Popen(
            [
                *LOADTEST,
                "--quiet",
                "--master",
                "--master-bind-port",
                master_port,
                "--expect-workers",
                "2",
                *flags,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        workers = [
            subprocess.Popen([*LOADTEST, "--worker", "--master-port", master_port], stdout=subprocess.DEVNULL)
            for _ in range(2)
        ]
        out, _ = master.communicate(timeout=seconds + 120)
        for worker in workers:
            worker.wait(timeout=30)
        two = json.loads(out)
    a, b = one["requests_per_second"], two["requests_per_second"]
    print(f"1 process: {one['requests']} requests, {a:.0f} req/s (anchor)")
    print(
        f"master + 2 workers (only --master-host): {two['requests']} requests, {b:.0f} req/s ({b / a:.2f}x)"
    )


def main() -> None:
    """Parse the mode and run it."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadtest")
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--seconds", type=float, default=10)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("-c", type=int, default=50)
    r = sub.add_parser("rate")
    r.add_argument("--seconds", type=float, default=60)
    r.add_argument("--rate", type=float, default=1000)
    m = sub.add_parser("memory")
    m.add_argument("--seconds", type=float, default=600)
    m.add_argument("--rate", type=float, default=1000)
    m.add_argument("--every", type=float, default=10)
    m.add_argument("--tool", choices=["loadtest", "hey"], default="loadtest")
    s = sub.add_parser("stall")
    s.add_argument("--seconds", type=float, default=30)
    s.add_argument("--stall-at", type=float, default=10)
    d = sub.add_parser("distributed")
    d.add_argument("--seconds", type=float, default=5)
    d.add_argument("-c", type=int, default=50)
    args = parser.parse_args()
    if args.mode == "distributed":
        distributed(args.seconds, args.c)
    elif args.mode == "throughput":
        throughput(args.seconds, args.rounds, args.c)
    elif args.mode == "rate":
        rate(args.seconds, args.rate)
    elif args.mode == "memory":
        memory(args.seconds, args.rate, args.every, args.tool)
    else:
        stall(args.seconds, args.stall_at)


if __name__ == "__main__":
    main()
