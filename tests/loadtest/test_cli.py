"""``loadtest URL`` as a subprocess against a real target on loopback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.loadtest.run import run_loadtest
from tests.loadtest.target import Target
from tests.support import free_port, require_binary

pytestmark = pytest.mark.integration

HEY_SECTIONS = [
    "Summary:",
    "  Total:\t",
    "  Slowest:\t",
    "  Fastest:\t",
    "  Average:\t",
    "  Requests/sec:\t",
    "Response time histogram:",
    "Latency distribution:",
    "Details (average, fastest, slowest):",
    "  DNS+dialup:\t",
    "  DNS-lookup:\t",
    "  req write:\t",
    "  resp wait:\t",
    "  resp read:\t",
    "Status code distribution:",
]


def _skeleton(text: str) -> list[str]:
    """The layout of a hey summary: each line with its numbers blanked."""
    return [re.sub(r"[\d.]+|NaN", "#", line.rstrip("■")) for line in text.splitlines()]


def test_hey_format_and_exact_request_count(target: Target) -> None:
    result = run_loadtest("-n", "300", "-c", "7", f"http://127.0.0.1:{target.port}/x")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar, no chatter
    out = result.stdout
    for section in HEY_SECTIONS:
        assert section in out
    # hey's split: every worker sends n // c requests
    assert target.requests == (300 // 7) * 7
    assert f"  [200]\t{(300 // 7) * 7} responses" in out
    assert re.search(r"  99% in \d\.\d{4} secs", out)
    assert out.startswith("\nSummary:\n") and out.endswith("\n\n\n\n")


def test_layout_matches_hey_line_for_line(target: Target) -> None:
    hey = require_binary("hey", "apt-get install hey, for the side-by-side check")
    url = f"http://127.0.0.1:{target.port}/"
    theirs = subprocess.run(
        [hey, "-n", "200", "-c", "4", url], capture_output=True, text=True, check=True
    ).stdout
    ours = run_loadtest("-n", "200", "-c", "4", url).stdout
    assert _skeleton(ours) == _skeleton(theirs)


def test_json_report(target: Target) -> None:
    result = run_loadtest(
        "--json", "-n", "40", "-c", "4", "-m", "POST", "-d", "hi", f"http://127.0.0.1:{target.port}/"
    )
    report = json.loads(result.stdout)
    assert report["requests"] == 40 and report["responses"] == 40 and report["errors"] == 0
    assert report["status_codes"] == {"200": 40}
    assert 0 < report["latency"]["p50"] <= report["latency"]["p99"] <= report["latency"]["max"]


def test_status_codes_and_failures(target: Target) -> None:
    result = run_loadtest("--json", "-n", "20", "-c", "2", f"http://127.0.0.1:{target.port}/status/503")
    report = json.loads(result.stdout)
    assert report["status_codes"] == {"503": 20}
    assert report["failures"] == 20 and report["errors"] == 0
    assert result.returncode == 0  # responses arrived: like hey, a 5xx is a response, not an error


def test_csv_has_one_row_per_request(target: Target) -> None:
    result = run_loadtest("-o", "csv", "-n", "30", "-c", "3", f"http://127.0.0.1:{target.port}/")
    lines = result.stdout.strip().splitlines()
    assert (
        lines[0]
        == "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset"
    )
    assert len(lines) == 31
    assert all(line.split(",")[6] == "200" for line in lines[1:])


def test_duration_and_per_worker_rate_limit(target: Target) -> None:
    result = run_loadtest("--json", "-z", "2s", "-c", "2", "-q", "10", f"http://127.0.0.1:{target.port}/")
    report = json.loads(result.stdout)
    # hey's -q is per worker: 2 workers x 10 req/s x 2 s
    assert 36 <= report["requests"] <= 42


def test_open_model_rate(target: Target) -> None:
    result = run_loadtest(
        "--json", "--rate", "100", "-z", "2s", "-c", "5", f"http://127.0.0.1:{target.port}/"
    )
    report = json.loads(result.stdout)
    assert report["model"] == "open"
    assert 195 <= report["requests"] <= 201
    assert report["service_time"]["p50"] <= report["latency"]["p50"] + 0.002


def test_timeout_aborts_slow_requests(target: Target) -> None:
    started = time.monotonic()
    result = run_loadtest(
        "--json", "-n", "2", "-c", "1", "-t", "0.3", f"http://127.0.0.1:{target.port}/sleep/3"
    )
    report = json.loads(result.stdout)
    assert report["errors"] == 2 and report["responses"] == 0
    assert any("timeout after 0.3s" in message for message in report["error_distribution"])
    assert result.returncode == 1
    assert time.monotonic() - started < 5  # two 3-second responses were not awaited


def test_keepalive_can_be_disabled(target: Target) -> None:
    result = run_loadtest(
        "--json", "-n", "10", "-c", "1", "-disable-keepalive", f"http://127.0.0.1:{target.port}/"
    )
    assert json.loads(result.stdout)["responses"] == 10


def test_server_closing_connections_is_not_an_error(target: Target) -> None:
    result = run_loadtest("--json", "-n", "20", "-c", "2", f"http://127.0.0.1:{target.port}/close")
    report = json.loads(result.stdout)
    assert report["responses"] == 20 and report["errors"] == 0


def test_podinfo_profile_spreads_over_endpoints(target: Target) -> None:
    result = run_loadtest(
        "--json", "--profile", "podinfo", "-n", "40", "-c", "2", f"http://127.0.0.1:{target.port}"
    )
    assert json.loads(result.stdout)["responses"] == 40


def test_user_locustfile(target: Target, tmp_path: Path) -> None:
    locustfile = tmp_path / "scenario.py"
    locustfile.write_text(
        "from locust import FastHttpUser, task\n"
        "class Reader(FastHttpUser):\n"
        "    @task\n"
        "    def read(self):\n"
        "        self.client.get('/api/info')\n"
    )
    result = run_loadtest(
        "--json", "-f", str(locustfile), "-n", "30", "-c", "2", f"http://127.0.0.1:{target.port}"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["responses"] >= 30 and report["status_codes"].keys() == {"200"}


def test_processes_use_locust_master_and_workers(target: Target) -> None:
    result = run_loadtest(
        "--json", "--processes", "2", "-n", "200", "-c", "4", f"http://127.0.0.1:{target.port}/", timeout=90
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["responses"] == 200
    assert target.requests == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "10", "-z", "5s", "http://127.0.0.1:1/"], "-n and -z conflict"),
        (["not a url"], "invalid URL"),
        (["--rate", "-3", "-z", "1s", "http://127.0.0.1:1/"], "--rate must be a positive"),
        (["-z", "ten", "http://127.0.0.1:1/"], "invalid duration"),
        (["-H", "broken", "http://127.0.0.1:1/"], "could not parse"),
        (["-n", "5", "-c", "10", "http://127.0.0.1:1/"], "-n cannot be less than -c"),
        # Regression: NaN and infinity ran (no rate limit, no timeout, a run that never ends).
        (["-n", "10", "-c", "1", "-q", "nan", "http://127.0.0.1:1/"], "-q must be a finite number >= 0"),
        (["-n", "10", "-c", "1", "-t", "nan", "http://127.0.0.1:1/"], "-t must be a finite number >= 0"),
        (["-z", "inf", "http://127.0.0.1:1/"], "-z must be a positive, finite duration"),
        (["-z", "1e400", "http://127.0.0.1:1/"], "-z must be a positive, finite duration"),
        (["--rate", "inf", "-z", "1s", "http://127.0.0.1:1/"], "--rate must be a positive"),
    ],
)
def test_bad_input_is_a_clear_usage_error(args: list[str], message: str) -> None:
    result = run_loadtest(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_unreachable_target_fails_with_a_summary() -> None:
    port = free_port()
    result = run_loadtest("-n", "20", "-c", "2", f"http://127.0.0.1:{port}/")
    assert result.returncode == 1
    assert "Error distribution:" in result.stdout
    assert "connection refused" in result.stdout
    assert f"all 20 requests to http://127.0.0.1:{port}/ failed" in result.stderr


def test_locustfile_that_does_not_import(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    result = run_loadtest("-f", str(broken), "-n", "10", "-c", "1", "http://127.0.0.1:1/")
    assert result.returncode == 2
    assert "could not be imported" in result.stderr and "no_such_module_anywhere" in result.stderr


def test_batches_reach_locusts_own_stats(target: Target) -> None:
    """The lean user reports to Locust's RequestStats in batches: Locust's totals match ours."""
    script = f"""
from loadtest.engine import Recorder
from loadtest.options import RunPlan
from loadtest.runner import _drive_local, build_environment

plan = RunPlan(url="http://127.0.0.1:{target.port}/status/404", requests=60, concurrency=3)
recorder = Recorder(name=plan.url, method=plan.method)
env = build_environment(plan, recorder)
runner = env.create_local_runner()
report = _drive_local(
    plan=plan, environment=env, runner=runner, recorder=recorder, progress=None, stop_event=None
)
entry = env.stats.get(plan.url, "GET")
print(report.results.requests, env.stats.total.num_requests, entry.num_requests, entry.num_failures)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["60", "60", "60", "60"]


def test_master_and_workers_over_locusts_distributed_mode(target: Target) -> None:
    port = str(free_port())
    url = f"http://127.0.0.1:{target.port}/"
    flags = ["--rate", "200", "-z", "2s", "-c", "4", url]
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadtest",
            "--json",
            "--master",
            "--master-bind-port",
            port,
            "--expect-workers",
            "2",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "loadtest", "--worker", "--master-port", port, *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        out, err = master.communicate(timeout=60)
        assert master.returncode == 0, err
        report = json.loads(out)
        # 200 req/s in total for 2 s, whatever the split of users between the workers
        assert 390 <= report["requests"] <= 402
        assert report["model"] == "open" and report["errors"] == 0
        for worker in workers:
            assert worker.wait(timeout=20) == 0
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_all_failed_report_matches_hey_including_the_error_line() -> None:
    hey = require_binary("hey", "apt-get install hey, for the side-by-side check")
    url = f"http://127.0.0.1:{free_port()}/"
    theirs = subprocess.run(
        [hey, "-n", "20", "-c", "2", url], capture_output=True, text=True, check=True
    ).stdout
    ours = run_loadtest("-n", "20", "-c", "2", url).stdout

    def numbers_blanked(text: str) -> str:
        return re.sub(r"\d+\.\d+", "#", text)

    assert numbers_blanked(ours) == numbers_blanked(theirs)


def test_ipv6_target_is_written_with_brackets_like_hey() -> None:
    """Regression: errors read ``Get "http://::1:PORT/": dial tcp ::1:PORT`` (brackets lost)."""
    port = free_port()
    result = run_loadtest("-n", "2", "-c", "1", f"http://[::1]:{port}/")
    assert result.returncode == 1
    assert f'Get "http://[::1]:{port}/": dial tcp [::1]:{port}: ' in result.stdout
    assert f"all 2 requests to http://[::1]:{port}/ failed" in result.stderr


def test_csv_reader_that_goes_away_ends_the_run_quietly(target: Target) -> None:
    """Regression: ``loadtest -o csv URL | head -2`` printed a traceback per request and kept going."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadtest",
            "-n",
            "100000",
            "-c",
            "2",
            "-o",
            "csv",
            f"http://127.0.0.1:{target.port}/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"response-time,")
    proc.stdout.readline()
    proc.stdout.close()  # the reader is gone, as `head -2` would be
    try:
        err = proc.stderr.read()
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert code == 141, err
    assert err == b""


def test_csv_and_json_together_are_a_usage_error() -> None:
    result = run_loadtest("-n", "4", "-c", "2", "-o", "csv", "--json", "http://127.0.0.1:1/")
    assert result.returncode == 2
    assert "-o csv and --json conflict" in result.stderr and result.stdout == ""
