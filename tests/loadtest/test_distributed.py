"""Distributed load: workers get the plan from the master over Locust's messages (real processes)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from loadtest.cli import build_parser, given_flags, plan_from_args, worker_claims
from loadtest.options import RunPlan, contradictions
from tests.loadtest.target import Target
from tests.support import free_port

LOADTEST = [sys.executable, "-m", "loadtest"]


def _claims(*argv: str) -> dict[str, object]:
    args: argparse.Namespace = build_parser().parse_args(list(argv))
    return worker_claims(args, given_flags(list(argv)))


def _plan(*argv: str) -> RunPlan:
    return plan_from_args(build_parser().parse_args(list(argv)))


def test_a_worker_with_only_the_master_host_claims_nothing() -> None:
    assert _claims("--worker", "--master-host", "10.0.0.1", "--master-port", "5558") == {}


def test_claims_are_the_flags_given_not_the_defaults() -> None:
    claims = _claims("--worker", "-c", "20", "-m", "post", "-H", "X-A: 1", "-t", "0", "http://a.test/")
    assert claims == {
        "concurrency": 20,
        "method": "POST",
        "timeout": None,
        "url": "http://a.test/",
        "headers": {"X-A": "1"},
    }


def test_agreeing_flags_pass_and_contradicting_ones_are_named() -> None:
    plan = _plan("-z", "6s", "-c", "20", "-H", "X-A: 1", "-a", "u:secret", "http://a.test/")
    assert contradictions(_claims("--worker", "-z", "6s", "-c", "20", "-H", "X-A: 1"), plan) == []
    found = contradictions(
        _claims(
            "--worker", "-c", "10", "-disable-keepalive", "-H", "X-A: 2", "-a", "u:other", "http://b.test/"
        ),
        plan,
    )
    assert found == [
        "-a differs from the master's",
        "-c 10 (the master's: 20)",
        "header X-A: '2' (the master's: '1')",
        "-disable-keepalive off (the master's: on)",
        "URL http://b.test/ (the master's: http://a.test/)",
    ]
    assert not any("secret" in text or "other" in text for text in found)  # a password is never echoed


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target(free_port()).start()
    yield server
    server.stop()


def _popen(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LOADTEST, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _master(target: Target, expect: int, *flags: str) -> tuple[str, str, subprocess.Popen[str]]:
    """A ``--json`` master on a free port for ``expect`` workers, loading ``target``: (port, url, process)."""
    port, url = str(free_port()), f"http://127.0.0.1:{target.port}/"
    master = _popen(
        "--json", "--master", "--master-bind-port", port, "--expect-workers", str(expect), *flags, url
    )
    return port, url, master


def _reap(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.integration
def test_workers_with_only_the_master_host_run_the_masters_plan(target: Target) -> None:
    """Regression: such workers each ran their own default plan (80 responses in 0.016 s)."""
    port, _url, master = _master(target, 2, "--rate", "150", "-z", "2s", "-c", "6")
    workers = [_popen("--worker", "--master-host", "127.0.0.1", "--master-port", port) for _ in range(2)]
    try:
        out, err = master.communicate(timeout=60)
        assert master.returncode == 0, err
        report = json.loads(out)
        assert 290 <= report["requests"] <= 302, report["requests"]  # 150 req/s for 2 s in total
        assert report["model"] == "open" and report["errors"] == 0
        assert 290 <= target.requests <= 302
        for worker in workers:
            assert worker.wait(timeout=20) == 0
    finally:
        _reap(master, *workers)


@pytest.mark.integration
def test_a_contradicting_worker_is_refused_on_both_sides_and_the_run_goes_on(target: Target) -> None:
    port, url, master = _master(target, 1, "--rate", "50", "-z", "1s", "-c", "4")
    bad = _popen("--worker", "--master-port", port, "-c", "10", url)
    good = None
    try:
        _, bad_err = bad.communicate(timeout=60)
        assert bad.returncode == 2
        assert "refused this worker" in bad_err and "-c 10 (the master's: 4)" in bad_err
        assert "only --master-host" in bad_err
        assert target.requests == 0  # the refused worker sent nothing
        good = _popen("--worker", "--master-port", port)
        out, err = master.communicate(timeout=60)
        assert master.returncode == 0, err
        assert "refused worker" in err and "-c 10 (the master's: 4)" in err
        assert 45 <= json.loads(out)["requests"] <= 52
        assert good.wait(timeout=20) == 0
    finally:
        _reap(master, bad, *([good] if good else []))


@pytest.mark.integration
def test_a_worker_joining_a_running_test_is_refused_and_takes_no_users(target: Target) -> None:
    """Locust hands users to a newcomer mid-run; they would be lost and the rate fall short."""
    port, _url, master = _master(target, 1, "--rate", "50", "-z", "3s", "-c", "4")
    first = _popen("--worker", "--master-port", port)
    late = None
    try:
        deadline = time.monotonic() + 30
        while target.requests == 0:  # the run has started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        late = _popen("--worker", "--master-port", port)
        _, late_err = late.communicate(timeout=30)
        assert late.returncode == 2 and "the run has already started" in late_err
        out, err = master.communicate(timeout=60)
        assert master.returncode == 0, err
        assert 145 <= json.loads(out)["requests"] <= 152  # 50 req/s for 3 s, none lost
        assert first.wait(timeout=20) == 0
    finally:
        _reap(master, first, *([late] if late else []))


def test_a_workers_sessions_share_is_checked_too() -> None:
    plan = _plan("-z", "2s", "--sessions", "0.5", "http://a.test/")
    assert contradictions(_claims("--worker", "--sessions", "0.5"), plan) == []
    assert contradictions(_claims("--worker", "--sessions", "0.25"), plan) == [
        "--sessions 0.25 (the master's: 0.5)"
    ]
