"""Command line entry point of ``analyzer``: ``judge`` (JSON lines), ``simulate`` (planner/benchmark)
and ``replay`` (the judge over past windows from Prometheus, :mod:`analyzer.replay`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import asdict
from typing import IO, Any

from analyzer.histogram import Histogram
from analyzer.judge import Judge, SubsetWindow, Window
from analyzer.policy import Policy, PolicyError


class InputError(ValueError):
    """A malformed input line; the message names the field."""


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"{name} must be a number, got {json.dumps(value)}")
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{name} is not a number: {value!r}") from None
    except OverflowError:  # a JSON integer beyond float range: a message, not a traceback
        raise InputError(f"{name} is too large: {value}") from None


def _histogram_error(message: str, side: str) -> str:
    """Histogram messages speak of bounds/counts; the input calls them le/buckets."""
    renamed = message.replace("counts", "buckets").replace("bounds", "le")
    if message.startswith(("counts", "bounds")):
        return f"{side}.{renamed}"
    return f"{side}.{'le' if 'bound' in message else 'buckets'}: {message}"


def _subset(data: Any, side: str) -> SubsetWindow:
    if not isinstance(data, dict):
        raise InputError(f"{side} must be an object with le, buckets, requests, errors")
    unknown = sorted(set(data) - {"le", "buckets", "requests", "errors"})
    if unknown:
        raise InputError(f"{side}: unknown key {unknown[0]!r}")
    for key in ("le", "buckets", "requests", "errors"):
        if key not in data:
            raise InputError(f"{side}.{key} is missing")
    for key in ("le", "buckets"):
        if not isinstance(data[key], list):
            raise InputError(f"{side}.{key} must be a list")
    le = [_number(v, f"{side}.le[{i}]") for i, v in enumerate(data["le"])]
    buckets = [_number(v, f"{side}.buckets[{i}]") for i, v in enumerate(data["buckets"])]
    try:
        histogram = Histogram.from_cumulative(le, buckets)
    except ValueError as exc:
        raise InputError(_histogram_error(str(exc), side)) from None
    requests = _number(data["requests"], f"{side}.requests")
    errors = _number(data["errors"], f"{side}.errors")
    try:
        return SubsetWindow(histogram, requests, errors)
    except ValueError as exc:
        raise InputError(f"{side}.{exc}") from None


def parse_window(line: str) -> tuple[str | None, Window]:
    """Parse one input line into (rollout id, Window); raises ``InputError`` naming the field."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise InputError("each line must be a JSON object")
    rollout = data.get("rollout")
    rollout_id = rollout if isinstance(rollout, str) else None
    try:
        if rollout_id is None or not rollout_id:
            raise InputError("rollout must be a non-empty string")
        unknown = sorted(set(data) - {"rollout", "weight", "baseline", "canary"})
        if unknown:
            raise InputError(f"unknown key {unknown[0]!r}")
        if "weight" not in data:
            raise InputError("weight is missing")
        weight = _number(data["weight"], "weight")
        baseline = _subset(data.get("baseline"), "baseline")
        canary = _subset(data.get("canary"), "canary")
        if baseline.histogram.bounds != canary.histogram.bounds:
            raise InputError("canary.le differs from baseline.le: both subsets need the same bucket bounds")
        try:
            return rollout_id, Window(baseline=baseline, canary=canary, weight=weight)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    except InputError as exc:
        exc.rollout = rollout_id  # type: ignore[attr-defined]
        raise


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run_judge(lines: Iterable[str], out: IO[str], policy: Policy) -> int:
    """Judge JSON lines; one JSON line out per line in, flushed at once. Returns the error count."""
    judges: dict[str, tuple[Judge, float]] = {}
    errors = 0
    for line in lines:
        rollout: str | None = None
        try:
            rollout, window = parse_window(line)
            assert rollout is not None
            judge, last_weight = judges.get(rollout, (None, None))
            if judge is None:
                judge = Judge(policy)
            elif last_weight != window.weight:
                judge.new_step()
            verdict = judge.judge(window)
            judges[rollout] = (judge, window.weight)
            answer: dict[str, Any] = {"rollout": rollout, **verdict.to_dict()}
        except (InputError, ValueError) as exc:
            errors += 1
            # The judge's own refusals (bounds changed, tail_bound not a bound) still name the rollout.
            answer = {"rollout": getattr(exc, "rollout", rollout), "error": str(exc)}
        out.write(json.dumps(_json_safe(answer), allow_nan=False) + "\n")
        out.flush()
    return errors


def _load_policy(path: str | None) -> Policy:
    return Policy() if path is None else Policy.from_file(path)


def _cmd_judge(args: argparse.Namespace) -> int:
    policy = _load_policy(args.policy)
    run_judge(sys.stdin, sys.stdout, policy)
    return 0


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--{name}: expected comma-separated numbers, got {text!r}") from None


def _rules(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def _cmd_simulate(args: argparse.Namespace) -> int:
    from analyzer.simulate import (
        DEFAULT_SCENARIOS,
        PODINFO_BOUNDS,
        Scenario,
        Traffic,
        format_report,
        lognormal_probabilities,
        run_simulation,
    )

    policy = _load_policy(args.policy)
    ga_histogram = None
    if args.ga_histogram:
        try:
            with open(args.ga_histogram) as fh:
                data = json.load(fh)
            ga_histogram = Histogram.from_cumulative(data["le"], data["buckets"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"--ga-histogram {args.ga_histogram}: {exc}") from None
        bounds = ga_histogram.bounds
        probabilities = tuple(c / ga_histogram.total for c in ga_histogram.counts)
    else:
        bounds = (*_floats(args.buckets, "buckets"), math.inf) if args.buckets else PODINFO_BOUNDS
        probabilities = tuple(
            float(p) for p in lognormal_probabilities(bounds, args.ga_median, args.ga_sigma)
        )
    if args.max_windows is not None:
        policy = policy.model_copy(update={"max_windows_per_step": args.max_windows})
    traffic = Traffic(
        rate=args.rate,
        interval=args.interval,
        steps=_floats(args.steps, "steps"),
        bounds=bounds,
        ga_probabilities=probabilities,
        ga_error_rate=args.ga_error_rate,
        ga_histogram=ga_histogram,
        latency_drift=args.drift_latency,
        error_cv=args.drift_errors,
        load=_floats(args.load, "load"),
        ga_lognormal=None if ga_histogram is not None else (args.ga_median, args.ga_sigma),
    )
    scenarios = [Scenario.parse(s) for s in args.scenario] if args.scenario else list(DEFAULT_SCENARIOS)
    summaries = run_simulation(
        traffic,
        scenarios,
        policy=policy,
        rollouts=args.rollouts,
        seed=args.seed,
        flagger_p99=args.flagger_p99,
        flagger_success=args.flagger_success,
        flagger_threshold=args.flagger_threshold,
        flagger_immediate=args.flagger_immediate,
        kayenta_alpha=args.kayenta_alpha,
        rules=_rules(args.rules),
    )
    if args.json:
        for s in summaries:
            print(json.dumps(_json_safe(asdict(s))))
    else:
        print(format_report(summaries, traffic, policy))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``analyzer`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="analyzer", description="Canary statistics: judge windows, plan rollouts."
    )
    sub = parser.add_subparsers(dest="command")
    judge = sub.add_parser(
        "judge",
        help="judge windows: JSON lines on stdin, one verdict line per input line on stdout",
        description="Reads one JSON object per line: {rollout, weight, baseline: {le, buckets, requests, "
        "errors}, canary: {...}}; buckets are cumulative counts of this window. Evidence accumulates per "
        "rollout; a changed weight starts a new step. Malformed lines answer {rollout, error} and judging "
        "goes on.",
    )
    judge.add_argument("--policy", metavar="FILE", help="policy file (YAML or JSON); defaults otherwise")
    judge.set_defaults(func=_cmd_judge)

    sim = sub.add_parser(
        "simulate",
        help="simulate rollouts: this judge vs Flagger- and Kayenta-style rules on the same traffic",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument("--rate", type=float, default=20.0, help="total requests per second")
    sim.add_argument("--interval", type=float, default=60.0, help="analysis window, seconds")
    sim.add_argument("--steps", default="10,60,100", help="canary weights, comma-separated")
    sim.add_argument(
        "--buckets", default="", help="finite bucket bounds (s), comma-separated; default podinfo's"
    )
    sim.add_argument("--ga-median", type=float, default=0.04, help="GA latency lognormal median, seconds")
    sim.add_argument(
        "--ga-sigma", type=float, default=0.5, help="GA latency lognormal sigma (of log seconds)"
    )
    sim.add_argument(
        "--ga-histogram", metavar="FILE", help='GA latency as JSON {"le": [...], "buckets": [...]}'
    )
    sim.add_argument("--ga-error-rate", type=float, default=0.005, help="GA error rate (fraction)")
    sim.add_argument(
        "--scenario",
        action="append",
        metavar="NAME[:latency=F,errors=R,tail=S,tailx=K]",
        help="canary scenario, repeatable: every request F times slower, error rate R, a share S of "
        "requests K (default 10) times slower; default: identical, latency x1.5, errors 3%%",
    )
    sim.add_argument(
        "--drift-latency",
        type=float,
        default=0.0,
        metavar="LOGSD",
        help="per window and subset, log-sd of the latency scale (0.05: about 5 %% from window to window)",
    )
    sim.add_argument(
        "--drift-errors",
        type=float,
        default=0.0,
        metavar="CV",
        help="per window and subset, coefficient of variation of the error rate (gamma, mean 1)",
    )
    sim.add_argument(
        "--load",
        default="",
        metavar="F1,F2,...",
        help="multipliers of --rate for the rollout's windows 1, 2, ... (the last one repeats)",
    )
    sim.add_argument(
        "--max-windows",
        type=int,
        default=None,
        help="max_windows_per_step for the judge (default: the policy's)",
    )
    sim.add_argument("--rollouts", type=int, default=1000, help="rollouts per scenario and rule")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--policy", metavar="FILE", help="policy file for this project's judge")
    sim.add_argument("--flagger-p99", type=float, default=0.5, help="Flagger-style p99 ceiling, seconds")
    sim.add_argument("--flagger-success", type=float, default=0.99, help="Flagger-style minimum success rate")
    sim.add_argument(
        "--flagger-threshold", type=int, default=2, help="Flagger-style failed checks before rollback"
    )
    sim.add_argument(
        "--flagger-immediate",
        action="store_true",
        help="Flagger-style rollback in the check that reaches the threshold, not at the next one",
    )
    sim.add_argument("--kayenta-alpha", type=float, default=0.05, help="Kayenta-style per-window test level")
    sim.add_argument("--rules", default="judge,flagger,kayenta", help="rules to simulate, comma-separated")
    sim.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    sim.set_defaults(func=_cmd_simulate)

    from analyzer import replay

    replay.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``analyzer`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
    except (PolicyError, ValueError) as exc:
        print(f"analyzer {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
