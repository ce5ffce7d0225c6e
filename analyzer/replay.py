"""``analyzer replay``: run the judge over past windows read from Prometheus.

Two questions a user asks before trusting the judge with their service:

* "What would it have decided?" — a real rollout's time range, GA and canary as the template
  selects them; the judge sees each window in turn (the weight is the split the metrics show, or
  the one given), starts a new step when that weight changes, and the answer is every window's
  verdict and the first decision.
* "How often would it roll back a canary that is no different?" — an A/A test: two pseudo-subsets
  of GA (two GA workloads or versions, or GA's pods split in two by a label such as ``pod`` or
  ``instance``) judged against each other, the range cut into consecutive pseudo-rollouts of a
  given number of windows, each with a fresh judge. Every rollback is a false rollback; their share,
  with a Clopper–Pearson upper bound, is the false-rollback rate on the user's own traffic.

It reads (three instant queries per window, through :class:`~analyzer.prometheus.MetricsReader`)
and judges; it must never write anywhere, and it refuses unbounded work: at most
:data:`MAX_WINDOWS` windows per replay. An unreachable Prometheus, an unknown template and a range
without data are errors with a message, never an empty success.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from scipy import stats

from analyzer.judge import Judge, SubsetWindow, Verdict, Window
from analyzer.policy import Policy
from analyzer.prometheus import MetricsReader, NoData, QueryTemplate, Subset, SubsetMetrics
from analyzer.prometheus.templates import SubsetField

__all__ = [
    "MAX_WINDOWS",
    "AATest",
    "Replay",
    "ReplayError",
    "ReplayedWindow",
    "Source",
    "StepSpan",
    "aa_test",
    "parse_subset",
    "parse_time",
    "replay",
    "replay_steps",
    "split_template",
    "window_ends",
]

#: The most windows one replay reads (three queries each): bounded time against a huge range.
MAX_WINDOWS = 5000
_FIELDS: tuple[SubsetField, ...] = ("namespace", "workload", "version", "service")


class ReplayError(ValueError):
    """A replay that cannot run or found nothing to judge; the message says why."""


class NoDataToJudgeError(ReplayError):
    """The range holds no window both subsets have data for."""


def parse_subset(text: str, name: str = "subset") -> Subset:
    """``namespace=test,service=podinfo,version=ga`` -> :class:`Subset`; errors name the bad key."""
    values: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise ReplayError(f"{name}: expected key=value, got {part!r}")
        if key not in _FIELDS:
            raise ReplayError(f"{name}: unknown key {key!r} (use {', '.join(_FIELDS)})")
        values[key] = value
    if "namespace" not in values:
        raise ReplayError(f"{name}: namespace= is required")
    return Subset(
        namespace=values["namespace"],
        workload=values.get("workload", ""),
        version=values.get("version", ""),
        service=values.get("service", ""),
    )


def split_template(template: QueryTemplate, label: str) -> QueryTemplate:
    """``template`` with GA's pods told apart by the metric ``label`` (``pod``, ``instance``).

    The label takes the place of the selector's ``workload`` field, so a subset whose ``workload``
    is a regex-free label value selects one pod; the template must not use ``workload`` already.
    """
    if "workload" in template.selector:
        raise ReplayError(
            f"template {template.name!r} already selects by workload; split GA by two workloads instead"
        )
    selector = {**template.selector, "workload": label}
    return QueryTemplate.model_validate(
        {**template.model_dump(), "name": f"{template.name}+{label}", "selector": selector}
    )


@dataclass(frozen=True)
class Source:
    """Where the windows come from: Prometheus (a reader), the template, GA and canary, the window."""

    reader: MetricsReader
    template: QueryTemplate
    baseline: Subset
    canary: Subset
    interval: float


@dataclass(frozen=True)
class ReplayedWindow:
    """One window of the replay: its end (unix time), the weight judged, and the verdict or why not."""

    end: float
    weight: float
    verdict: Verdict | None
    skipped: str = ""


@dataclass(frozen=True)
class Replay:
    """Every window of one (pseudo-)rollout and the first decision that is not a hold."""

    windows: list[ReplayedWindow]
    decision: ReplayedWindow | None = None

    @property
    def judged(self) -> int:
        """Windows that reached the judge."""
        return sum(1 for w in self.windows if w.verdict is not None)


@dataclass(frozen=True)
class AATest:
    """An A/A replay: pseudo-rollouts, how many were rolled back, and the rate's upper bound."""

    rollouts: list[Replay] = field(default_factory=list)

    @property
    def judged_rollouts(self) -> int:
        """Pseudo-rollouts with at least one judged window."""
        return sum(1 for r in self.rollouts if r.judged)

    @property
    def false_rollbacks(self) -> int:
        """Pseudo-rollouts the judge rolled back: all of them false."""
        return sum(
            1 for r in self.rollouts if r.decision and r.decision.verdict and _is(r.decision, "rollback")
        )

    def upper_bound(self, confidence: float = 0.95) -> float:
        """One-sided Clopper–Pearson upper bound of the false-rollback rate."""
        n, k = self.judged_rollouts, self.false_rollbacks
        if n == 0:
            return 1.0
        if k == n:
            return 1.0
        return float(stats.beta.ppf(confidence, k + 1, n - k))


def _is(window: ReplayedWindow, action: str) -> bool:
    return window.verdict is not None and window.verdict.action == action


def window_ends(start: float, end: float, interval: float) -> list[float]:
    """The ends of the whole windows of ``interval`` seconds in [start, end]."""
    if not (math.isfinite(start) and math.isfinite(end) and end > start):
        raise ReplayError(f"the range must have end > start, got {start!r} .. {end!r}")
    if not (math.isfinite(interval) and interval > 0):
        raise ReplayError(f"interval must be > 0 seconds, got {interval!r}")
    count = int((end - start) // interval)
    if count < 1:
        raise ReplayError(f"the range {end - start:g} s is shorter than one window of {interval:g} s")
    if count > MAX_WINDOWS:
        raise ReplayError(f"{count} windows of {interval:g} s in the range: at most {MAX_WINDOWS} per replay")
    return [start + (k + 1) * interval for k in range(count)]


def _read(source: Source, end: float) -> tuple[SubsetMetrics, SubsetMetrics] | str:
    """GA's and the canary's window ending at ``end``, or why one of them has no data."""
    got = source.reader.read_window(source.template, [source.baseline, source.canary], source.interval, end)
    base, can = got[source.baseline], got[source.canary]
    if isinstance(base, NoData):
        return base.reason
    if isinstance(can, NoData):
        return can.reason
    return base, can


def ga_history(
    source: Source, before: float, count: int, cache: dict[float, SubsetWindow | None] | None = None
) -> list[SubsetWindow]:
    """GA's (the source's ``baseline``) windows ending at ``before`` and earlier, oldest first, as the
    controller reads them for the judge: at most ``count``, stopping at the first without data.
    ``cache`` (window end -> window) spares the reads that consecutive pseudo-rollouts share."""
    cache = {} if cache is None else cache
    out: list[SubsetWindow] = []
    for k in range(count):
        end = before - k * source.interval
        if end not in cache:
            got = source.reader.read_window(source.template, [source.baseline], source.interval, end)
            result = got[source.baseline]
            cache[end] = (
                None if isinstance(result, NoData) or result.requests <= 0 else result.to_subset_window()
            )
        window = cache[end]
        if window is None:
            break
        out.append(window)
    return out[::-1]


def _weight(canary: SubsetMetrics, baseline: SubsetMetrics, fixed: float | None) -> float:
    if fixed is not None:
        return fixed
    total = canary.requests + baseline.requests
    return round(100.0 * canary.requests / total, 1) if total > 0 else 0.0


def _snap(weight: float, steps: Sequence[float] | None) -> float:
    if not steps:
        return weight
    return min(steps, key=lambda s: (abs(s - weight), s))


def replay(
    source: Source,
    ends: Sequence[float],
    *,
    policy: Policy | None = None,
    weight: float | None = None,
    steps: Sequence[float] | None = None,
    history_cache: dict[float, SubsetWindow | None] | None = None,
) -> Replay:
    """Judge the windows ending at ``ends`` as one rollout; stops at a rollback (the rollout ended).

    ``weight`` fixes the weight of every window; otherwise it is the canary's share of requests
    (snapped to the nearest of ``steps`` when given). A changed weight starts a new step. Raises
    :class:`~analyzer.prometheus.PrometheusError` when Prometheus cannot answer. The judge gets GA's
    ``policy.history_windows`` windows before the first one, as the controller's does.
    """
    policy = policy if policy is not None else Policy()
    history = (
        ga_history(source, ends[0] - source.interval, policy.history_windows, history_cache) if ends else []
    )
    judge = Judge(policy, steps=tuple(steps) if steps else None, history=history)
    windows: list[ReplayedWindow] = []
    decision: ReplayedWindow | None = None
    last_weight: float | None = None
    for end in ends:
        got = _read(source, end)
        if isinstance(got, str):
            windows.append(ReplayedWindow(end, math.nan, None, got))
            continue
        base, can = got
        w = _snap(_weight(can, base, weight), steps)
        try:
            window = Window(baseline=base.to_subset_window(), canary=can.to_subset_window(), weight=w)
            if last_weight is not None and w != last_weight:
                judge.new_step()
            verdict = judge.judge(window)
        except ValueError as exc:
            windows.append(ReplayedWindow(end, w, None, str(exc)))
            continue
        last_weight = w
        row = ReplayedWindow(end, w, verdict)
        windows.append(row)
        if verdict.action != "hold" and decision is None:
            decision = row
        if verdict.action == "rollback":
            break
    return Replay(windows, decision)


def aa_test(
    source: Source, ends: Sequence[float], *, rollout_windows: int, policy: Policy | None = None
) -> AATest:
    """Consecutive pseudo-rollouts of ``rollout_windows`` windows, the source's ``canary`` (GA's other
    half) judged against its ``baseline``, each with a fresh judge."""
    if rollout_windows < 1:
        raise ReplayError(f"rollout windows must be >= 1, got {rollout_windows}")
    rollouts = []
    cache: dict[float, SubsetWindow | None] = {}
    for i in range(0, len(ends), rollout_windows):
        chunk = ends[i : i + rollout_windows]
        rollouts.append(replay(source, chunk, policy=policy, history_cache=cache))
    return AATest(rollouts)


def require_data(runs: Sequence[Replay], what: str) -> None:
    """Raise :class:`ReplayError` when no window of ``runs`` reached the judge, with the reasons."""
    if any(r.judged for r in runs):
        return
    reasons = sorted({w.skipped for r in runs for w in r.windows if w.skipped})
    detail = "; ".join(reasons[:3]) if reasons else "no windows"
    raise NoDataToJudgeError(f"no data to judge for {what} in the range: {detail}")


# -- command line (``analyzer replay``; the hook in analyzer/cli.py only registers it) ----------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(text: str, now: float, name: str) -> float:
    """Unix seconds, ISO 8601 (UTC when no zone is given), ``now`` or ``now-90m`` (s, m, h, d)."""
    value = text.strip()
    if value == "now":
        return now
    if value.startswith("now-"):
        amount, unit = value[4:-1], value[-1:]
        try:
            return now - float(amount) * _UNITS[unit]
        except (KeyError, ValueError):
            raise ReplayError(f"{name}: {text!r} is not now-<number><s|m|h|d>") from None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ReplayError(f"{name}: {text!r} is not unix seconds, ISO 8601, now or now-<duration>") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``analyzer replay`` on the ``analyzer`` subparsers."""
    p = subparsers.add_parser(
        "replay",
        help="run the judge over past windows from Prometheus: a real rollout, or an A/A test on GA",
        description="Reads GA and canary (or two halves of GA with --aa) window by window from "
        "Prometheus and judges them. Exit 0 when judged; 1 when the range holds no data to judge; "
        "2 on bad input or when Prometheus cannot answer.",
    )
    p.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    p.add_argument("--template", default="podinfo", help="istio, istio-version, podinfo, or from --templates")
    p.add_argument("--templates", metavar="FILE", help="YAML file with more templates")
    p.add_argument(
        "--baseline", required=True, metavar="K=V,...", help="GA: namespace=,workload=,version=,service="
    )
    p.add_argument("--canary", required=True, metavar="K=V,...", help="canary (with --aa: GA's other half)")
    p.add_argument("--start", required=True, help="unix seconds, ISO 8601 or now-2h")
    p.add_argument("--end", default="now", help="end of the range (default: now)")
    p.add_argument("--interval", type=float, default=60.0, help="window length, seconds (default: 60)")
    p.add_argument(
        "--weight",
        type=float,
        default=None,
        help="canary weight of every window (default: the observed split)",
    )
    p.add_argument("--steps", default="", help="snap the observed weight to these steps, e.g. 10,60,100")
    p.add_argument("--split-by", metavar="LABEL", help="tell GA's pods apart by this label (pod, instance); "
                   "--baseline/--canary then take workload=<its value>")  # fmt: skip
    p.add_argument("--aa", action="store_true", help="A/A test: count false rollbacks over pseudo-rollouts")
    p.add_argument("--rollout-windows", type=int, default=20, help="windows per pseudo-rollout with --aa")
    p.add_argument("--policy", metavar="FILE", help="policy file (YAML or JSON)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per Prometheus query")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    """Run ``analyzer replay`` with parsed arguments; prints the result, returns the exit code."""
    from analyzer.prometheus import BUILTIN, PrometheusClient, PrometheusError, load_templates

    policy = Policy() if args.policy is None else Policy.from_file(args.policy)
    templates = dict(BUILTIN)
    if args.templates:
        templates.update(load_templates(Path(args.templates)))
    if args.template not in templates:
        raise ReplayError(f"unknown template {args.template!r} (known: {', '.join(sorted(templates))})")
    template = templates[args.template]
    if args.split_by:
        template = split_template(template, args.split_by)
    now = time.time()
    start, end = parse_time(args.start, now, "--start"), parse_time(args.end, now, "--end")
    ends = window_ends(start, end, args.interval)
    try:
        steps = tuple(float(x) for x in args.steps.split(",") if x.strip()) or None
    except ValueError:
        raise ReplayError(f"--steps: expected comma-separated numbers, got {args.steps!r}") from None
    source = Source(
        MetricsReader(PrometheusClient(args.prometheus, timeout=args.timeout, attempts=2)),
        template,
        parse_subset(args.baseline, "--baseline"),
        parse_subset(args.canary, "--canary"),
        args.interval,
    )
    try:
        if args.aa:
            result = aa_test(source, ends, rollout_windows=args.rollout_windows, policy=policy)
            require_data(result.rollouts, "the two GA subsets")
            _print_aa(result, args.json, sys.stdout)
        else:
            run = replay(source, ends, policy=policy, weight=args.weight, steps=steps)
            require_data([run], "GA and canary")
            _print_run(run, args.json, sys.stdout)
    except PrometheusError as exc:
        raise ReplayError(str(exc)) from None
    except NoDataToJudgeError as exc:
        print(f"analyzer replay: {exc}", file=sys.stderr)
        return 1
    return 0


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(w: ReplayedWindow) -> dict[str, object]:
    if w.verdict is None:
        return {"end": _iso(w.end), "skipped": w.skipped}
    return {"end": _iso(w.end), "weight": w.weight, **w.verdict.to_dict()}


def _print_run(run: Replay, as_json: bool, out: TextIO) -> None:
    write = out.write
    for w in run.windows:
        if as_json:
            write(json.dumps(_row(w), allow_nan=False) + "\n")
        elif w.verdict is None:
            write(f"{_iso(w.end)}  skipped: {w.skipped}\n")
        else:
            write(f"{_iso(w.end)}  weight {w.weight:g}  {w.verdict.action:<8}  {w.verdict.reasons[0]}\n")
    d = run.decision
    summary = (
        f"would have answered {d.verdict.action} at {_iso(d.end)} (weight {d.weight:g})"
        if d is not None and d.verdict is not None
        else "would have held throughout (no promotion, no rollback)"
    )
    if as_json:
        write(json.dumps({"summary": summary, "judged": run.judged, "windows": len(run.windows)}) + "\n")
    else:
        write(f"{run.judged} of {len(run.windows)} windows judged; {summary}\n")


def _print_aa(result: AATest, as_json: bool, out: TextIO) -> None:
    write = out.write
    n, k, upper = result.judged_rollouts, result.false_rollbacks, result.upper_bound()
    if as_json:
        for i, r in enumerate(result.rollouts):
            d = r.decision
            write(json.dumps({
                "pseudo_rollout": i, "judged": r.judged,
                "decision": d.verdict.action if d and d.verdict else "hold",
                "at": _iso(d.end) if d else None,
            }) + "\n")  # fmt: skip
        write(json.dumps({"pseudo_rollouts": n, "false_rollbacks": k, "rate_upper_95": upper}) + "\n")
        return
    for i, r in enumerate(result.rollouts):
        d = r.decision
        what = f"{d.verdict.action} at {_iso(d.end)}" if d and d.verdict else "held"
        write(f"pseudo-rollout {i}: {r.judged} windows judged, {what}\n")
    write(
        f"A/A: {k} false rollback(s) in {n} pseudo-rollouts "
        f"(rate {k / n if n else math.nan:.1%}, 95 % upper bound {upper:.1%})\n"
    )


@dataclass(frozen=True)
class StepSpan:
    """One step of a rollout as it ran: from ``start`` to ``end`` (unix seconds) at ``weight``."""

    start: float
    end: float
    weight: float


def replay_steps(
    source: Source,
    steps: Sequence[StepSpan],
    *,
    policy: Policy | None = None,
    rollout_steps: Sequence[float] | None = None,
    max_windows: int = MAX_WINDOWS,
) -> list[ReplayedWindow]:
    """The judge over a rollout's steps as the controller ran them: one judge, ``new_step()`` at each
    boundary, the windows of each step on its grid (from its start), each step ending at its first
    decision. Windows without data are kept with the reason; at most ``max_windows`` are read."""
    policy = policy if policy is not None else Policy()
    history = (
        ga_history(
            source, math.floor(steps[0].start / source.interval) * source.interval, policy.history_windows
        )
        if steps
        else []
    )
    judge = Judge(policy, steps=tuple(rollout_steps) if rollout_steps else None, history=history)
    out: list[ReplayedWindow] = []
    for index, step in enumerate(steps):
        if index:
            judge.new_step()
        count = int((step.end - step.start) // source.interval)
        ends = [step.start + (k + 1) * source.interval for k in range(count)]
        for end in ends[: max(max_windows - len(out), 0)]:
            got = _read(source, end)
            if isinstance(got, str):
                out.append(ReplayedWindow(end, step.weight, None, got))
                continue
            base, can = got
            try:
                verdict = judge.judge(Window(base.to_subset_window(), can.to_subset_window(), step.weight))
            except ValueError as exc:
                out.append(ReplayedWindow(end, step.weight, None, str(exc)))
                continue
            out.append(ReplayedWindow(end, step.weight, verdict))
            if verdict.action != "hold":
                break
    return out
