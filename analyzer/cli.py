"""Command line entry point of ``analyzer``: ``judge`` (JSON lines), ``simulate`` (planner/benchmark)
and ``replay`` (the judge over past windows from Prometheus, :mod:`analyzer.replay`).

Each subcommand imports what it needs when it runs (``--help`` never loads scipy); the input lines
of ``judge`` are parsed and validated in :mod:`analyzer.lines`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from collections.abc import Collection, Iterable
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from analyzer.lines import InputError, bounded_lines, parse_window
from analyzer.policy import Policy, PolicyError

if TYPE_CHECKING:
    from analyzer.judge import Judge

__all__ = ["InputError", "build_parser", "main", "parse_window", "run_judge"]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run_judge(lines: Iterable[str], out: IO[str], policy: Policy) -> int:
    """Judge JSON lines; one JSON line out per line in, flushed at once. Returns the error count.

    Every line gets an answer, whatever it holds: a verdict, or ``{"rollout", "line", "error"}``
    (``line`` counts from 1) and judging goes on.
    """
    from analyzer.judge import Judge

    judges: dict[str, tuple[Judge, float]] = {}
    errors = 0
    for number, line in enumerate(lines, start=1):
        rollout: str | None = None
        try:
            rollout, window = parse_window(line)
            judge, last_weight = judges.get(rollout, (None, None))
            if judge is None:
                judge = Judge(policy)
            elif last_weight != window.weight:
                judge.new_step()
            verdict = judge.judge(window)
            judges[rollout] = (judge, window.weight)
            answer: dict[str, Any] = {"rollout": rollout, **verdict.to_dict()}
        except InputError as exc:
            errors += 1
            answer = {"rollout": exc.rollout, "line": number, "error": str(exc)}
        except ValueError as exc:
            # The judge's own refusals (bounds changed, tail_bound not a bound) still name the rollout.
            errors += 1
            answer = {"rollout": rollout, "line": number, "error": str(exc)}
        except Exception as exc:  # a bug must not end the stream: answer, say so on stderr, go on
            errors += 1
            traceback.print_exc(file=sys.stderr)
            answer = {"rollout": rollout, "line": number, "error": f"internal error: {type(exc).__name__}"}
        out.write(json.dumps(_json_safe(answer), allow_nan=False) + "\n")
        out.flush()
    return errors


def _load_policy(path: str | None) -> Policy:
    return Policy() if path is None else Policy.from_file(path)


def _cmd_judge(args: argparse.Namespace) -> int:
    policy = _load_policy(args.policy)
    run_judge(bounded_lines(sys.stdin), sys.stdout, policy)
    return 0


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--{name}: expected comma-separated numbers, got {text!r}") from None


def _rules(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def _cmd_simulate(args: argparse.Namespace) -> int:
    from analyzer.histogram import Histogram
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
    if args.custom:  # a custom metric's plan (docs/custom-metrics.md), instead of the built-in one
        from analyzer.simulate_custom import CustomScenario, format_plans, plan

        windows = args.max_windows or 60
        plans = [
            plan(CustomScenario.parse(c), policy, rollouts=args.rollouts, max_windows=windows, seed=args.seed)
            for c in args.custom
        ]
        print(format_plans(plans, args.interval, windows))
        return 0
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
        history_windows=args.history_windows,
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


def build_parser(load: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``analyzer`` argument parser; ``load``: build ``replay``'s full parser only when it is in
    there (default: always), so that ``analyzer --help`` and ``judge`` do not import it."""
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
        "--history-windows",
        type=int,
        default=0,
        metavar="N",
        help="GA windows before the rollout given to the judge (all traffic on GA, same drift); "
        "the controller reads policy.history_windows of them from Prometheus",
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
    sim.add_argument(
        "--custom",
        action="append",
        metavar="NAME:ga=MEAN/SD,canary=MEAN/SD[,margin=M]",
        help="plan a custom metric instead: per-window lognormal values of GA and canary (mean/sd), "
        "repeatable; how long until it is shown within its margin",
    )
    sim.set_defaults(func=_cmd_simulate)

    if load is None or "replay" in load:
        from analyzer import replay  # the judge, the query layer and scipy.stats

        replay.add_parser(sub)
    else:  # listed in `analyzer --help` without importing it (the help line is replay's own)
        sub.add_parser("replay", help=REPLAY_HELP, add_help=False)
    return parser


#: ``analyzer replay``'s help line, for the parser that does not import it (a test compares them).
REPLAY_HELP = "run the judge over past windows from Prometheus: a real rollout, or an A/A test on GA"


def main(argv: list[str] | None = None) -> int:
    """Run the ``analyzer`` command; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(load={next((w for w in argv if not w.startswith("-")), "")})
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
