"""The judge's evidence window by window, for the report: the rollout's steps replayed through one judge.

Why: the commits carry the evidence at each decision only; a person reading the report wants to see
how each harm and non-inferiority e-process moved towards its threshold, window by window, to see
why a step was promoted, held or rolled back. The judge is deterministic, so judging the step
windows again from Prometheus (as the controller does after a restart, with
:func:`analyzer.replay.replay_steps`) gives the figures it saw.

It only reads; Prometheus failures become ``error`` (the report says so), never an exception, and
at most :data:`MAX_WINDOWS` windows are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.prometheus import MetricsReader, PrometheusClient, PrometheusError
from analyzer.replay import ReplayedWindow, Source, StepSpan, replay_steps
from rollouts.report.history import Step
from rollouts.report.metrics import Selection
from rollouts.spec import Rollout

#: Windows the report judges at most (three queries each).
MAX_WINDOWS = 600


@dataclass(frozen=True)
class EvidenceTrace:
    """The judged windows (oldest first), or why there are none."""

    windows: tuple[ReplayedWindow, ...] = ()
    error: str | None = None

    @property
    def judged(self) -> tuple[ReplayedWindow, ...]:
        """The windows that reached the judge."""
        return tuple(w for w in self.windows if w.verdict is not None)


def read_evidence(
    url: str | None,
    steps: Sequence[Step],
    selection: Selection,
    rollout: Rollout,
    *,
    timeout: float = 10.0,
) -> EvidenceTrace:
    """Replay the steps whose canary weight is below 100 % through the rollout's judge."""
    if not url:
        return EvidenceTrace(error="no Prometheus URL was given (--prometheus)")
    analysis = rollout.spec.analysis
    spans = [StepSpan(s.start, s.end, float(s.weights.canary)) for s in steps if 0 < s.weights.canary < 100]
    source = Source(
        MetricsReader(PrometheusClient(url, timeout=timeout, attempts=2)),
        selection.template,
        selection.stable,
        selection.canary,
        float(analysis.interval),
    )
    try:
        windows = replay_steps(
            source,
            spans,
            policy=analysis.policy,
            rollout_steps=tuple(float(x) for x in rollout.spec.steps),
            max_windows=MAX_WINDOWS,
        )
    except PrometheusError as exc:
        return EvidenceTrace(error=str(exc))
    return EvidenceTrace(tuple(windows))
