"""``analyzer replay`` against the real Prometheus of the local stack (podinfo-compatible services).

An A/A test on two GA workloads (same build, random delays as the variation), a real rollout in
which the canary is slower and fails often (the fault flags), and the three ways a replay cannot
run: Prometheus unreachable, an unknown template, a range without data.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import pytest

from analyzer.cli import main
from analyzer.prometheus import BUILTIN
from analyzer.replay import ReplayError, parse_subset, parse_time, split_template, window_ends
from rollouts.local.process import free_port
from rollouts.local.stack import LocalStack, ServiceOptions, StackConfig
from tests.local.traffic import send
from tests.support import require_binary

pytestmark = pytest.mark.integration

DELAY = ("--random-delay", "--random-delay-unit=ms", "--random-delay-min=5", "--random-delay-max=30")
GA = ServiceOptions(version="6.5.0", args=DELAY)
BASELINE = "namespace=test,service=podinfo,version=ga"
CANARY = "namespace=test,service=podinfo,version=canary"
INTERVAL = 2.0


def _traffic(stack: LocalStack, seconds: int, per_second: int = 40) -> tuple[float, float]:
    """Steady requests through the mesh for ``seconds``; the range that covers them (scraped)."""
    start = time.time()
    for tick in range(seconds):
        send(stack, ["/version"] * per_second)
        time.sleep(max(0.0, start + tick + 1 - time.time()))
    end = time.time()
    time.sleep(2 * stack.config.scrape_interval + 0.5)  # the last samples are in Prometheus
    return start, end


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    require_binary("prometheus", "apt-get install prometheus")
    require_binary("git")
    # The canary runs GA's build: an A/A pair of workloads until a test replaces it.
    config = StackConfig(ga=GA, canary=ServiceOptions(version="6.5.0", args=DELAY), poll_interval=0.25)
    with LocalStack(config) as running:
        running.wait_for_revision(running.set_canary_weight(50, "A/A: half the traffic each"))
        send(running, ["/version"] * 40)  # every series exists before a measured range starts
        time.sleep(2)
        yield running


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["replay", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


@pytest.fixture(scope="module")
def aa_range(stack: LocalStack) -> tuple[float, float]:
    return _traffic(stack, 12)


def test_aa_test_on_two_ga_workloads_counts_no_false_rollback(
    stack: LocalStack, aa_range: tuple[float, float], capsys: pytest.CaptureFixture[str]
) -> None:
    start, end = aa_range
    code, out, err = _run(
        capsys,
        "--prometheus", stack.prometheus_url, "--template", "podinfo",
        "--baseline", BASELINE, "--canary", CANARY,
        "--start", f"{start:.3f}", "--end", f"{end:.3f}", "--interval", str(INTERVAL),
        "--aa", "--rollout-windows", "3", "--json",
    )  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in out]
    summary = rows[-1]
    assert summary["pseudo_rollouts"] >= 2  # 12 s of traffic in 2 s windows, 3 per pseudo-rollout
    assert summary["false_rollbacks"] == 0
    assert 0 < summary["rate_upper_95"] < 1
    assert all(r["judged"] >= 1 for r in rows[:-1] if "pseudo_rollout" in r)


def test_replay_of_a_slow_failing_canary_would_have_rolled_back(
    stack: LocalStack, aa_range: tuple[float, float], capsys: pytest.CaptureFixture[str]
) -> None:
    slow = ServiceOptions(version="6.5.1", args=(*DELAY, "--latency-factor=4", "--error-rate=0.3"))
    stack.restart_service("canary", slow)
    try:
        start, end = _traffic(stack, 8)
        code, out, err = _run(
            capsys,
            "--prometheus", stack.prometheus_url, "--baseline", BASELINE, "--canary", CANARY,
            "--start", f"{start:.3f}", "--end", f"{end:.3f}", "--interval", str(INTERVAL), "--json",
        )  # fmt: skip
    finally:
        stack.restart_service("canary", ServiceOptions(version="6.5.0", args=DELAY))
    assert code == 0, err
    rows = [json.loads(line) for line in out]
    judged = [r for r in rows if "action" in r]
    assert judged, rows
    assert judged[-1]["action"] == "rollback"
    # The observed split of a 50 % route (increase() over 2 s of 1 s scrapes extrapolates: loose).
    weights = sorted(r["weight"] for r in judged)
    assert 30 <= weights[len(weights) // 2] <= 70, weights
    assert rows[-1]["summary"].startswith("would have answered rollback")


def test_unreachable_prometheus_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = _run(
        capsys, "--prometheus", url, "--baseline", BASELINE, "--canary", CANARY,
        "--start", "now-1m", "--interval", "30", "--timeout", "1",
    )  # fmt: skip
    assert code == 2
    assert "did not answer" in err and url in err
    assert out == []


def test_unknown_template_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        capsys, "--prometheus", "http://127.0.0.1:9", "--template", "nope",
        "--baseline", BASELINE, "--canary", CANARY, "--start", "now-1m",
    )  # fmt: skip
    assert code == 2
    assert "unknown template 'nope'" in err and "podinfo" in err


def test_a_range_without_data_says_so(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "--prometheus", stack.prometheus_url,
        "--baseline", "namespace=test,service=podinfo,version=nothing", "--canary", CANARY,
        "--start", "now-20s", "--interval", "5",
    )  # fmt: skip
    assert code == 1
    assert "no data to judge" in err and "version='nothing'" in err
    assert out == []


def test_argument_parsing_errors_name_the_problem() -> None:
    with pytest.raises(ReplayError, match="unknown key 'pod'"):
        parse_subset("namespace=test,pod=x")
    with pytest.raises(ReplayError, match="namespace= is required"):
        parse_subset("service=podinfo")
    assert parse_time("now-2m", 1000.0, "--start") == 880.0
    assert parse_time("1970-01-01T00:01:40", 0.0, "--start") == 100.0
    with pytest.raises(ReplayError, match="--end"):
        parse_time("yesterday", 0.0, "--end")
    assert window_ends(0.0, 10.0, 3.0) == [3.0, 6.0, 9.0]
    with pytest.raises(ReplayError, match="at most"):
        window_ends(0.0, 1e9, 1.0)
    with pytest.raises(ReplayError, match="shorter than one window"):
        window_ends(0.0, 1.0, 60.0)
    by_pod = split_template(BUILTIN["podinfo"], "instance")
    assert by_pod.selector["workload"] == "instance" and "instance" in by_pod.render(
        "requests", [parse_subset("namespace=t,service=s,version=ga,workload=127.0.0.1:1")], 60
    )
    with pytest.raises(ReplayError, match="already selects by workload"):
        split_template(BUILTIN["istio"], "pod")
    assert not math.isnan(parse_time("now", 5.0, "--end"))
