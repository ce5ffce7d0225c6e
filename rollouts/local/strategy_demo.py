"""The strategies on the local stack, judged: A/B by header, mirroring, blue/green.

``python -m rollouts.local.strategy_demo --scenario ab|mirror|bluegreen [--slow]`` starts the local
stack, commits the strategy's route states to its Git remote one stage at a time (the route editors'
smallest edits, through :func:`rollouts.spec_strategy.apply_state`), drives load that fits the
strategy (``loadtest`` subprocesses: one carrying the A/B header, one not), reads each analysis
window of GA and canary from the real Prometheus and lets the analyzer's judge decide: promote
(the next stage), rollback (every block removed, weight 0), or hold. ``--slow`` makes the canary
three times slower, so the judge rolls it back.

This is a walkthrough of the strategies, not the controller: it never decides anything itself
beyond following the judge's verdict, and it must never be used to run a real rollout (no sync gate
beyond the mesh's applied revision, no pause, no resume after a restart). ``rollouts run`` drives
the A/B, mirror and blue/green stages itself (``analysis.match`` / ``mirror`` / ``previewService``
with ``iterations``; see docs/strategies.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer import Judge, Policy, Window
from analyzer.prometheus import ISTIO, MetricsReader, NoData, PrometheusClient, Subset, WindowRequest
from rollouts.local.stack import LocalStack, ServiceOptions, StackConfig
from rollouts.spec_strategy import (
    RouteState,
    Stage,
    StrategySpec,
    apply_state,
    load_misses_match,
    plan,
    rollback_state,
)

SCENARIOS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    # name: (spec.analysis strategy fields, spec.steps)
    "ab": ({"iterations": 3, "match": [{"headers": {"x-user": {"exact": "beta"}}}]}, (100,)),
    "mirror": ({"iterations": 3, "mirror": True}, (50, 100)),
    "bluegreen": ({"iterations": 3, "mirror": True}, (100,)),
}
#: The header the A/B load carries.
SEGMENT = {"x-user": "beta"}
BASE = ("--random-delay", "--random-delay-min=5", "--random-delay-max=25", "--random-delay-unit=ms")


@dataclass
class Outcome:
    """What happened: one line per stage and window, and how it ended."""

    scenario: str
    ended: str = "held"  # "promoted" | "rolled back" | "held"
    lines: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)


class Walkthrough:
    """One scenario on a running stack."""

    def __init__(
        self,
        stack: LocalStack,
        scenario: str,
        *,
        window: float = 3.0,
        max_windows: int = 20,
        rate: float = 100.0,
        policy: Policy | None = None,
        out: Callable[[str], None] = print,
        load_headers: list[dict[str, str]] | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
        fields, steps = SCENARIOS[scenario]
        self.stack = stack
        self.scenario = scenario
        self.strategy = StrategySpec.model_validate(fields)
        self.stages: tuple[Stage, ...] = plan(self.strategy, steps)
        self.window = window
        self.max_windows = max_windows
        self.rate = rate
        self.policy = policy or Policy(min_windows=2, min_canary_requests=50)
        self.out = out
        self.load_headers = load_headers
        self.reader = MetricsReader(PrometheusClient(stack.prometheus_url))
        ns = stack.config.namespace
        self.subsets = {
            "ga": Subset(ns, workload=stack.workload("ga")),
            "canary": Subset(ns, workload=stack.workload("canary")),
        }

    def run(self) -> Outcome:
        """Every stage in order while the judge promotes; a rollback ends it."""
        outcome = Outcome(self.scenario)
        judge = Judge(self.policy)
        match = self.strategy.to_match()
        target = self.stack.mesh_url + "/version"
        if match is not None and all(load_misses_match(match, target, h) for h in self._load_headers()):
            # The canary will get no requests: say so; the judge holds on every window (no data).
            reason = load_misses_match(match, target, {})
            outcome.lines.append(f"hold: {reason}")
            self.out(f"hold: {reason}")
        self._warm_up()
        loads = self._start_load(target)
        try:
            self._wait_for_load()
            for index, stage in enumerate(self.stages):
                self._commit(stage.state, f"{self.scenario}: {stage.name}", outcome)
                if index:
                    judge.new_step()
                if stage.state.weights.canary == 100:
                    outcome.ended = "promoted"
                    return outcome
                action = self._judge_stage(judge, stage, outcome)
                if action == "rollback":
                    self._commit(rollback_state(), f"{self.scenario}: rollback", outcome)
                    outcome.ended = "rolled back"
                    return outcome
                if action != "promote":
                    outcome.ended = "held"
                    return outcome
            outcome.ended = "promoted"
            return outcome
        finally:
            for process in loads:
                process.terminate()
            for process in loads:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)

    # -- parts ---------------------------------------------------------------------------------

    def _warm_up(self, requests: int = 100) -> None:
        """A few requests straight to both services (not through the mesh, so not in Istio's
        metrics): a service's very first answers are slower, and only GA would otherwise be warm."""
        import urllib.request

        for url in (self.stack.ga_url, self.stack.canary_url):
            for _ in range(requests):
                with urllib.request.urlopen(url + "/version", timeout=10) as response:
                    response.read()

    def _load_headers(self) -> list[dict[str, str]]:
        """One load per entry: the A/B segment and everyone else, or everyone."""
        if self.load_headers is not None:
            return self.load_headers
        return [SEGMENT, {}] if self.strategy.match else [{}]

    def _start_load(self, target: str) -> list[subprocess.Popen[bytes]]:
        sets = self._load_headers()
        processes = []
        for headers in sets:
            flags = [f"-H={name}: {value}" for name, value in headers.items()]
            command = [
                sys.executable,
                "-m",
                "loadtest",
                "-z",
                "3600s",
                "-c",
                "4",
                "--rate",
                str(self.rate / len(sets)),
            ]
            processes.append(
                subprocess.Popen(
                    [*command, *flags, target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        return processes

    def _wait_for_load(self, timeout: float = 90.0) -> None:
        """Until GA's requests show in Prometheus (``loadtest`` takes seconds to start on a busy
        machine): windows before that would be empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            end = time.time()
            ga = self.reader.read([WindowRequest(self.subsets["ga"], ISTIO, self.window, end)])[0]
            if not isinstance(ga, NoData) and ga.requests > 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"no load reached GA within {timeout:.0f}s")

    def _commit(self, state: RouteState, message: str, outcome: Outcome) -> None:
        sha = self.stack.edit_route(lambda editor, text: apply_state(editor, text, state), message)
        self.stack.wait_for_revision(sha, timeout=30)
        line = f"commit {sha[:8]} {message}: canary {state.weights.canary}%"
        line += "".join(
            f", {what}"
            for what, on in (("match", state.match), ("mirror", state.mirror), ("affinity", state.affinity))
            if on
        )
        outcome.lines.append(line)
        self.out(line)

    def _judge_stage(self, judge: Judge, stage: Stage, outcome: Outcome) -> str:
        """Windows until the judge rolls back, or promotes after at least ``stage.windows``
        (the iterations) windows; a hold after ``max_windows``."""
        time.sleep(self.stack.config.scrape_interval * 2)  # the new revision's first requests scraped
        for number in range(1, self.max_windows + 1):
            time.sleep(self.window)
            window = self._read(stage.state.weights.canary)
            if window is None:
                verdict_action, reasons = "hold", ["no data in this window"]
            else:
                verdict = judge.judge(window)
                verdict_action, reasons = verdict.action, list(verdict.reasons)
            if verdict_action == "promote" and number < (stage.windows or 0):
                verdict_action = "hold"
                reasons = [f"iteration {number} of {stage.windows}", *reasons]
            outcome.verdicts.append(verdict_action)
            line = f"  window {number} ({stage.name}): {verdict_action}: {'; '.join(reasons)[:160]}"
            outcome.lines.append(line)
            self.out(line)
            if verdict_action in ("promote", "rollback"):
                return verdict_action
        return "hold"

    def _read(self, weight: int) -> Window | None:
        from analyzer import Histogram, SubsetWindow

        end = time.time() - self.stack.config.scrape_interval
        requests = [WindowRequest(self.subsets[s], ISTIO, self.window, end) for s in ("ga", "canary")]
        ga, canary = self.reader.read(requests)
        if isinstance(ga, NoData):
            return None
        if isinstance(canary, NoData):  # no canary request in the window: the judge holds on it
            canary_window = SubsetWindow(histogram=Histogram.empty(ga.histogram.bounds), requests=0, errors=0)
        else:
            canary_window = canary.to_subset_window()
        return Window(baseline=ga.to_subset_window(), canary=canary_window, weight=weight)


def stack_config(slow: bool) -> StackConfig:
    """GA and canary like the demo's versions; ``slow``: the canary is three times slower."""
    canary_args = (*BASE, "--latency-factor=3") if slow else BASE
    return StackConfig(
        ga=ServiceOptions(version="0.1.0", args=BASE),
        canary=ServiceOptions(version="0.2.0", args=canary_args),
        poll_interval=0.25,
    )


def demo(
    scenario: str,
    *,
    slow: bool = False,
    window: float = 3.0,
    rate: float = 100.0,
    out: Callable[[str], None] = print,
) -> Outcome:
    """Start the stack, walk ``scenario``, print the repo's log; the outcome."""
    with LocalStack(stack_config(slow)) as stack:
        outcome = Walkthrough(stack, scenario, window=window, rate=rate, out=out).run()
        out(f"{scenario}: {outcome.ended}")
        log = ["git", "--git-dir", str(stack.repo_path), "log", "--oneline", stack.config.branch]
        out(subprocess.run(log, capture_output=True, text=True, check=False, timeout=30).stdout.rstrip())
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rollouts.local.strategy_demo --scenario ab|mirror|bluegreen [--slow]``."""
    parser = argparse.ArgumentParser(
        prog="python -m rollouts.local.strategy_demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="ab")
    parser.add_argument("--slow", action="store_true", help="a canary three times slower: rolled back")
    parser.add_argument("--window", type=float, default=3.0, help="seconds per analysis window (default 3)")
    parser.add_argument("--rate", type=float, default=100.0, help="load in requests/s (default 100)")
    args = parser.parse_args(argv)
    outcome = demo(args.scenario, slow=args.slow, window=args.window, rate=args.rate)
    return 0 if outcome.ended != "held" else 1


if __name__ == "__main__":
    raise SystemExit(main())
