"""The ``rollouts report`` subcommand (argparse wiring; the work is done in :mod:`rollouts.report`).

Kept light: matplotlib and GitPython are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollouts.spec import Rollout

_RELATIVE = re.compile(r"^(?P<n>\d+)(?P<unit>[smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``--since``/``--until``: an ISO date or date-time (UTC unless it has an offset), or an age
    like ``6h``, ``2d`` (that long ago)."""
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        base = now or datetime.now(UTC)
        return base - timedelta(seconds=int(match["n"]) * _UNITS[match["unit"]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an ISO date or date-time (2026-11-29, 2026-11-29T18:00) or an age "
            f"(30m, 6h, 2d, 1w), got {value!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_parser(sub: Any) -> None:
    """Add ``report`` to the ``rollouts`` subcommands."""
    cmd = sub.add_parser(
        "report", help="HTML report (and PNG charts) of a rollout from Git history and Prometheus"
    )
    cmd.add_argument("spec", metavar="SPEC", type=Path, help="path to a Rollout spec file (or a Pipeline)")
    cmd.add_argument("--cache-dir", type=Path, default=None, help="where workspaces are cloned")
    cmd.add_argument(
        "--prometheus",
        metavar="URL",
        default=None,
        help="Prometheus base URL (default: spec.analysis.prometheus.url when the spec has one)",
    )
    cmd.add_argument(
        "--out", metavar="DIR", type=Path, default=Path("reports"), help="output directory (default: reports)"
    )
    cmd.add_argument(
        "--since", type=parse_since, default=None, help="only commits since (ISO date or 6h, 2d)"
    )
    cmd.add_argument(
        "--until",
        type=parse_since,
        default=None,
        help="only commits until; the last step ends here (default: now)",
    )
    cmd.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per Prometheus query (default: spec.analysis.prometheus.timeout, 10)",
    )
    cmd.add_argument(
        "--require-metrics",
        action="store_true",
        help="fail (exit 1, nothing written) when Prometheus cannot be queried",
    )
    cmd.set_defaults(func=run)


def _prometheus_url(args: argparse.Namespace, rollout: Rollout) -> str | None:
    if args.prometheus:
        url: str = args.prometheus
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"--prometheus must be an http:// or https:// URL, got {url!r}")
        return url
    analysis = rollout.spec.analysis
    # The spec's default URL is an in-cluster name: use the spec's URL only when it was written there.
    if "prometheus" in analysis.model_fields_set:
        return analysis.prometheus.url
    return None


def _check_writable(out: Path) -> None:
    """Raise ``ReportError`` when ``out`` could not be created or written (nothing is created)."""
    from rollouts.report import ReportError

    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ReportError(f"--out {out}: cannot write there: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ReportError(f"--out {out}: cannot write there: {existing} is not writable")


def run(args: argparse.Namespace, rollout: Rollout) -> int:
    """Build the report of ``rollout`` and write it under ``--out``; returns the exit code."""
    import git

    from rollouts.gitops import Workspace
    from rollouts.report import ReportError, build_report, report_name, write_report

    timeout: float = rollout.spec.analysis.prometheus.timeout if args.timeout is None else args.timeout
    if not 0 < timeout < math.inf:  # NaN would pass a "<= 0" check and reach every query
        raise ValueError(f"--timeout must be a positive, finite number of seconds, got {args.timeout}")
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise ValueError(
            f"--until ({args.until.isoformat()}) must be after --since ({args.since.isoformat()})"
        )
    url = _prometheus_url(args, rollout)
    _check_writable(Path(args.out))  # before minutes of Git and Prometheus work, not after
    # Only fetch: the report reads history, so a route file deleted or broken at the head is an
    # event on the page, not a reason to write no page at all.
    # Every file is read through the workspace (locked, no symbolic links); the log walk reads
    # only Git's objects. It commits nothing, so no signing key is needed (signing=None).
    with Workspace.for_spec(rollout, cache_dir=args.cache_dir, signing=None) as workspace:
        workspace.fetch()
        with git.Repo(workspace.path) as repo:
            report = build_report(
                repo,
                rollout,
                prometheus_url=url,
                since=args.since,
                until=args.until,
                timeout=timeout,
                show=workspace.show,
            )
    if not report.metrics.available:
        if args.require_metrics:
            raise ReportError(f"metrics unavailable: {report.metrics.error}; nothing written")
        print(f"rollouts: warning: metrics unavailable: {report.metrics.error}", file=sys.stderr)
    path = write_report(report.rendered, args.out, report_name(rollout))
    events = len(report.timeline.events)
    steps = len(report.metrics.steps)
    print(f"{rollout.key}: report with {events} commit(s), {steps} measured step(s): {path / 'index.html'}")
    return 0


def run_pipeline(args: argparse.Namespace) -> int:
    """``rollouts report PIPELINE.yaml``: the pipeline's lanes from every environment's Git history.

    Each environment is read as the controller reads it (its own workspace, fetched, files read
    through :meth:`~rollouts.gitops.Workspace.show`); nothing is written to any repository.
    """
    from rollouts.pipeline.plan import plan
    from rollouts.pipeline.runner import PipelineRunner, load_pipeline
    from rollouts.report import write_report
    from rollouts.report.pipeline import pipeline_timeline, render_pipeline

    if args.since is not None and args.until is not None and args.until <= args.since:
        raise ValueError(
            f"--until ({args.until.isoformat()}) must be after --since ({args.since.isoformat()})"
        )
    loaded = load_pipeline(args.spec)
    _check_writable(Path(args.out))
    now = args.until or datetime.now(UTC)
    runner = PipelineRunner.for_pipeline(loaded, cache_dir=args.cache_dir)
    runner.clock = lambda: now
    try:
        if args.until is None:  # now: with what the approval branches and requests say now
            assessed = runner.assess()
            facts, planned = list(assessed.facts), assessed.plan
        else:  # on every fact: the window only narrows the picture
            facts, _ = runner.read()
            planned = plan(loaded.pipeline, facts, now)
    finally:
        runner.close()
    shown = [_between(f, args.since, now) for f in facts]
    timeline = pipeline_timeline(runner.key, shown, planned, now=now)
    name = f"{loaded.pipeline.metadata.namespace}_{loaded.pipeline.metadata.name}"
    path = write_report(render_pipeline(timeline, generated=datetime.now(UTC)), args.out, name)
    stays = sum(len(lane.stays) for lane in timeline.lanes)
    lanes = len(timeline.lanes)
    print(f"{runner.key}: pipeline report with {lanes} lane(s), {stays} stay(s): {path / 'index.html'}")
    return 0


def _between(facts: Any, since: datetime | None, until: datetime) -> Any:
    """``facts`` with only the events from ``since`` (``None``: the beginning) to ``until``."""
    import dataclasses

    events = tuple(e for e in facts.events if (since is None or e.at >= since) and e.at <= until)
    return dataclasses.replace(facts, events=events)
