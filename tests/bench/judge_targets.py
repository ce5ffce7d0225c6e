"""Benchmark: the judge on drifting traffic vs the Flagger- and Kayenta-style rules (issue targets).

``python -m tests.bench.judge_targets [--rollouts N] [--seed S] [--reference REF] [--cells NAMES]``
simulates, on the same traffic for every rule, the cells of the issue's targets: 20 and 200
requests/s, GA σ 0.5 and 1.0, each subset's latency scale varying with log-sd 0.05 and its error
rate with CV 0.5 from window to window, steps 10 -> 60 -> 100 capped at 10 windows; the iid cells of
round 1 and at 200 requests/s; traffic that varies twice as much as the floors assume ("jumpy");
low traffic (2 requests/s); and load that changes over the rollout. The judge is run with GA's
history (``Policy().history_windows`` windows before the rollout) and without it (``judge, no
history``). ``--reference`` (a Git revision, default the round-1 judge) adds that revision's
judge as the rule ``judge@REF``, driven by this simulator on the same traffic, so "before" and
"after" are measured side by side. Prints one markdown table per cell. Figures: docs/benchmarks/analyzer.md.
"""

from __future__ import annotations

import argparse
import importlib
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from analyzer.judge import SubsetWindow
from analyzer.policy import Policy
from analyzer.simulate import (
    Decide,
    RuleSummary,
    Scenario,
    Traffic,
    _drive,
    _flagger_rule,
    _judge_rule,
    _kayenta_rule,
    _Rollout,
    _summarise,
)

ROOT = Path(__file__).resolve().parents[2]
#: The judge before issue 10 (round 1): per-request evidence, no harm margins.
ROUND_1 = "4adb928"

IDENTICAL = Scenario("identical")
OFFSET = Scenario("3 % slower", slowdown=1.03)
SLOW = Scenario("1.5x slower", slowdown=1.5)
ERRORS = Scenario("errors 0.5 -> 3 %", error_rate=0.03)
TAIL = Scenario("tail: 3 % of requests 10x", tail_share=0.03, tail_factor=10.0)
ALL = (IDENTICAL, OFFSET, SLOW, ERRORS, TAIL)
#: GA windows before the rollout (the policy's default ``history_windows``: one hour of 1-minute windows).
HISTORY = Policy().history_windows


@dataclass(frozen=True)
class Cell:
    name: str
    traffic: Traffic
    scenarios: tuple[Scenario, ...]


def _traffic(
    rate: float, sigma: float, drift: bool, load: tuple[float, ...] = (), jumpy: bool = False
) -> Traffic:
    return Traffic(
        rate=rate,
        ga_lognormal=(0.04, sigma),
        latency_drift=0.1 if jumpy else 0.05 if drift else 0.0,
        error_cv=1.0 if jumpy else 0.5 if drift else 0.0,
        load=load,
        history_windows=HISTORY,
    )


CELLS = {
    "drift-20-0.5": Cell("20 req/s, σ 0.5, drift", _traffic(20, 0.5, True), ALL),
    "drift-20-1.0": Cell("20 req/s, σ 1.0, drift", _traffic(20, 1.0, True), ALL),
    "drift-200-0.5": Cell("200 req/s, σ 0.5, drift", _traffic(200, 0.5, True), ALL),
    "drift-200-1.0": Cell("200 req/s, σ 1.0, drift", _traffic(200, 1.0, True), ALL),
    "iid-20-0.5": Cell("20 req/s, σ 0.5, iid (round 1's table)", _traffic(20, 0.5, False), ALL),
    "iid-20-1.0": Cell("20 req/s, σ 1.0, iid", _traffic(20, 1.0, False), (IDENTICAL, SLOW, ERRORS)),
    "iid-200-0.5": Cell("200 req/s, σ 0.5, iid", _traffic(200, 0.5, False), ALL),
    # Not the traffic the floors were chosen for: twice the latency drift, twice the error CV.
    "jumpy-20-0.5": Cell(
        "20 req/s, σ 0.5, jumpy (latency log-sd 0.1, error CV 1)", _traffic(20, 0.5, True, jumpy=True), ALL
    ),
    "jumpy-200-0.5": Cell(
        "200 req/s, σ 0.5, jumpy (latency log-sd 0.1, error CV 1)", _traffic(200, 0.5, True, jumpy=True), ALL
    ),
    "low-2": Cell("2 req/s, σ 0.5, drift", _traffic(2, 0.5, True), (IDENTICAL, SLOW, ERRORS, TAIL)),
    "load-200": Cell(
        "200 req/s x (1, 1, 0.5, 0.5, 2, 2, 0.25, 1), σ 0.5, drift",
        _traffic(200, 0.5, True, (1, 1, 0.5, 0.5, 2, 2, 0.25, 1)),
        (IDENTICAL, OFFSET, SLOW, ERRORS),
    ),
}

Maker = Callable[[Sequence[SubsetWindow]], tuple[Decide, Callable[[], None]]]


def without_history(make: Maker) -> Maker:
    """The same rule, given no GA history (the judge falls back on the policy's prior floors)."""
    return lambda history: make(())


def reference_judge(revision: str, policy_args: dict[str, Any]) -> Maker:
    """The judge of ``revision`` (its judge, sequential and policy modules from Git, as a package
    of their own), wrapped as a simulator rule."""
    target = Path(tempfile.mkdtemp(prefix="judge-ref-")) / "analyzer_ref"
    target.mkdir()
    (target / "__init__.py").write_text("")
    for name in ("judge", "sequential", "policy"):
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:analyzer/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for module in ("judge", "sequential", "policy"):
            source = source.replace(f"from analyzer.{module} import", f"from analyzer_ref.{module} import")
        (target / f"{name}.py").write_text(source)
    sys.path.insert(0, str(target.parent))
    judge_module: ModuleType = importlib.import_module("analyzer_ref.judge")
    policy_module: ModuleType = importlib.import_module("analyzer_ref.policy")
    policy = policy_module.Policy(**policy_args)

    def make(history: Sequence[SubsetWindow]) -> tuple[Decide, Callable[[], None]]:
        judge = judge_module.Judge(policy)

        def decide(w: Any) -> Any:
            # That revision has its own Window classes: hand it the same numbers in them.
            sub = judge_module.SubsetWindow
            v = judge.judge(
                judge_module.Window(
                    baseline=sub(w.baseline.histogram, w.baseline.requests, w.baseline.errors),
                    canary=sub(w.canary.histogram, w.canary.requests, w.canary.errors),
                    weight=w.weight,
                )
            )
            if v.action == "hold" and v.evidence.get("step_expired"):
                return "pause"
            return v.action

        return decide, judge.new_step

    return make


def run_cell(cell: Cell, rules: dict[str, Maker], rollouts: int, seed: int) -> list[RuleSummary]:
    """Every rule on every scenario of the cell, on the same traffic; at most 10 windows per step."""
    max_windows = 10 * len(cell.traffic.analysed_steps)
    out = []
    for scenario in cell.scenarios:
        for name, make in rules.items():
            outcomes = [
                _drive(_Rollout(cell.traffic, scenario, seed, i), make, max_windows) for i in range(rollouts)
            ]
            summary = _summarise(name, scenario, outcomes, cell.traffic.interval)
            out.append(summary)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _num(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.0f}"


def table(cell: Cell, summaries: Sequence[RuleSummary], seconds: float) -> str:
    """One markdown table for a cell."""
    lines = [
        f"#### {cell.name}",
        "",
        f"({len(summaries)} rule × scenario rows, {summaries[0].rollouts} rollouts each, {seconds:.0f} s)",
        "",
        "| scenario | rule | rolled back | promoted to 100 % | paused at cap | canary requests before "
        "rollback (median) | minutes to 100 % (median / p95) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries:
        minutes = (
            "–"
            if math.isnan(s.median_minutes_to_promote)
            else f"{s.median_minutes_to_promote:.0f} / {s.p95_minutes_to_promote:.0f}"
        )
        rule = f"**{s.rule}**" if s.rule == "judge" else s.rule
        lines.append(
            f"| {s.scenario} | {rule} | {_pct(s.rolled_back)} | {_pct(s.promoted)} | {_pct(s.paused)} | "
            f"{_num(s.median_canary_requests_at_rollback)} | {minutes} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--reference", default=ROUND_1, help="Git revision of a judge to compare ('' for none)"
    )
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated: " + ", ".join(CELLS))
    args = parser.parse_args(argv)
    policy = Policy(max_windows_per_step=10)
    for key in args.cells.split(","):
        cell = CELLS[key.strip()]
        judge = _judge_rule(policy, cell.traffic.steps)
        rules: dict[str, Maker] = {"judge": judge, "judge, no history": without_history(judge)}
        if args.reference:
            rules[f"judge@{args.reference}"] = reference_judge(args.reference, {"max_windows_per_step": 10})
        rules["flagger"] = _flagger_rule(0.5, 0.99, 2)
        rules["kayenta"] = _kayenta_rule(0.05)
        began = time.perf_counter()
        summaries = run_cell(cell, rules, args.rollouts, args.seed)
        print(table(cell, summaries, time.perf_counter() - began), flush=True)
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
