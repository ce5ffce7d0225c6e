"""``rollouts report``: what happened during a rollout, from the Git history and Prometheus.

>>> from rollouts.report import build_report, write_report
>>> report = build_report(repo, rollout, prometheus_url="http://127.0.0.1:9090")  # doctest: +SKIP
>>> write_report(report.rendered, Path("reports"), report_name(rollout))          # doctest: +SKIP
PosixPath('reports/test_podinfo')

The parts: :mod:`.history` (timeline from Git), :mod:`.metrics` (per-step figures from Prometheus),
:mod:`.render` (HTML and PNG charts). See docs/report.md.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git

from rollouts.report.approvals import ApprovalWait, read_waits
from rollouts.report.errors import HistoryError, MetricsConfigError, ReportError
from rollouts.report.evidence import EvidenceTrace, read_evidence
from rollouts.report.history import Event, Show, Step, Timeline, parse_message, read_timeline
from rollouts.report.metrics import (
    Selection,
    StepMetrics,
    StepMetricsReport,
    SubsetData,
    read_step_metrics,
    select_subsets,
)
from rollouts.report.render import Chart, RenderedReport, render
from rollouts.spec import Rollout

__all__ = [
    "ApprovalWait",
    "Chart",
    "Event",
    "EvidenceTrace",
    "HistoryError",
    "MetricsConfigError",
    "RenderedReport",
    "Report",
    "ReportError",
    "Selection",
    "Step",
    "StepMetrics",
    "StepMetricsReport",
    "SubsetData",
    "Timeline",
    "build_report",
    "parse_message",
    "read_evidence",
    "read_step_metrics",
    "read_timeline",
    "read_waits",
    "render",
    "report_name",
    "select_subsets",
    "write_report",
]


@dataclass(frozen=True)
class Report:
    """Everything a report is made of: the timeline, the metrics and the rendered page."""

    timeline: Timeline
    metrics: StepMetricsReport
    rendered: RenderedReport


def build_report(
    repo: git.Repo,
    rollout: Rollout,
    *,
    prometheus_url: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: float | None = None,
    timeout: float = 10.0,
    selection: Selection | None = None,
    show: Show | None = None,
) -> Report:
    """Read the timeline from ``repo``, the step metrics from Prometheus, and render the page.

    Commits after ``until`` are left out and the last step ends there (default: ``now``, the current
    time). Prometheus failures do not raise: the report says that metrics were unavailable (see
    :attr:`StepMetricsReport.error`).
    """
    generated = int(time.time() if now is None else now)
    end = int(until.timestamp()) if until is not None else generated
    timeline = read_timeline(repo, rollout, since=since, until=until, show=show)
    try:
        selection = selection or select_subsets(rollout)
    except MetricsConfigError as exc:
        metrics = StepMetricsReport(url=prometheus_url, steps=(), selection=None, error=str(exc))
    else:
        metrics = read_step_metrics(prometheus_url, timeline.steps(end), selection, timeout=timeout)
    evidence = None
    if metrics.available and metrics.selection is not None:
        evidence = read_evidence(
            prometheus_url, timeline.steps(end), metrics.selection, rollout, timeout=timeout
        )
    approvals = read_waits(repo, timeline.head)
    if until is not None:
        approvals = tuple(a for a in approvals if a.landed <= end)
    if since is not None:
        approvals = tuple(a for a in approvals if a.landed >= since.timestamp())
    rendered = render(timeline, metrics, generated=generated, end=end, evidence=evidence, approvals=approvals)
    return Report(timeline, metrics, rendered)


def report_name(rollout: Rollout) -> str:
    """The report's directory name: ``<namespace>_<name>`` (``_`` never occurs in a namespace)."""
    return f"{rollout.metadata.namespace}_{rollout.metadata.name}"


def write_report(rendered: RenderedReport, out: Path, name: str) -> Path:
    """Write ``index.html`` and the chart PNGs to ``out/name`` and return that directory.

    All or nothing: the files go to a temporary directory inside ``out`` that is renamed into place
    (replacing an older report of the same rollout), so a failure leaves no partial report behind.
    """
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=out))
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
    final = out / name
    old: Path | None = None
    try:
        (tmp / "index.html").write_text(rendered.html, encoding="utf-8")
        for chart in rendered.charts:
            (tmp / chart.name).write_bytes(chart.png)
        tmp.chmod(0o755)  # mkdtemp makes it 0700; a report is meant to be read
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=out))
            final.rename(old / name)
        tmp.rename(final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / name).exists() and not final.exists():
            (old / name).rename(final)  # put the previous report back
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise ReportError(f"--out {out}: cannot write the report: {exc.strerror or exc}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
