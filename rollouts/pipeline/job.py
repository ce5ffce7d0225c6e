"""A pipeline as a scheduler job, and its status for people.

``rollouts run`` ticks every environment's Rollout as usual and, beside them, one :class:`PipelineJob`
per Pipeline: each tick reads the environments from Git, plans and writes the hand-overs
(:class:`rollouts.pipeline.runner.PipelineRunner`). :func:`format_status` is what
``rollouts status PIPELINE`` prints: each environment's revision, where it stands and since when,
each transition's state and reason, where the line stopped and why, and anything out of order.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from rollouts.controller.machine import TickResult
from rollouts.metrics import ControllerMetrics
from rollouts.pipeline.plan import EnvironmentFacts, TransitionState
from rollouts.pipeline.runner import PipelineRunner, PipelineTick
from rollouts.state import Action, Phase

log = logging.getLogger("rollouts.pipeline")

#: A pipeline's job id in the scheduler (rollouts use their ``namespace/name``).
JOB_PREFIX = "pipeline:"


class PipelineJob:
    """One scheduler job per Pipeline; ticks at the shortest analysis interval of its environments."""

    def __init__(self, runner: PipelineRunner, metrics: ControllerMetrics | None = None) -> None:
        self.runner = runner
        self.metrics = metrics
        self.key = JOB_PREFIX + runner.key
        self.last: PipelineTick | None = None

    @property
    def interval(self) -> float:
        """Seconds between ticks."""
        return min(stage.rollout.spec.analysis.interval for stage in self.runner.loaded.stages)

    def tick(self) -> TickResult:
        """Read, plan and hand over; the result names what was pushed or what is awaited."""
        tick = self.runner.tick()
        self.last = tick
        if self.metrics is not None:
            states = {t.target: str(t.state) for t in tick.plan.transitions}
            for facts in tick.facts:
                state = states.get(facts.name, "source")
                self.metrics.set_pipeline_environment(
                    self.runner.key, facts.name, facts.canary_revision, state
                )
        pushed = [h for h in tick.handovers if h.outcome == "pushed"]
        reasons = tuple(
            f"{t.source} -> {t.target}: {t.state}: {t.reason}" for t in tick.plan.transitions
        ) + tuple(f"out of order: {o.reason}" for o in tick.plan.out_of_order)
        reasons += tuple(f"superseded: {h.detail}" for h in tick.handovers if h.outcome == "superseded")
        for line in reasons:
            log.info("%s: %s", self.runner.key, line)
        if pushed:
            return TickResult(Phase.PROGRESSING, Action.PROMOTE, reasons, commit=pushed[-1].sha)
        waiting = any(
            t.state not in (TransitionState.DONE, TransitionState.IDLE) for t in tick.plan.transitions
        )
        return TickResult(Phase.PROGRESSING, Action.WAIT if waiting else Action.NONE, reasons)

    def close(self) -> None:
        """Stop the Git helper processes of the job's workspaces (the job was removed or replaced)."""
        self.runner.close()


def format_status(key: str, tick: PipelineTick) -> str:
    """``rollouts status PIPELINE``: environments, transitions, stops and out-of-order findings."""
    lines = [f"pipeline      {key}", ""]
    for facts in tick.facts:
        lines.append(f"{facts.name:<14}{facts.canary_revision:<12}{_since(facts)}")
    lines.append("")
    for t in tick.plan.transitions:
        lines.append(f"{t.source} -> {t.target}: {t.state}: {t.reason}")
    if tick.plan.stops:
        lines.append("")
        for stop in tick.plan.stops[-5:]:
            lines.append(
                f"stopped       {stop.revision} in {stop.environment} at {_clock(stop.at)}: {stop.reason}"
            )
    for finding in tick.plan.out_of_order:
        lines.append(f"out of order  {finding.reason}")
    for old in tick.plan.superseded:
        lines.append(f"superseded    {old.reason}; the controller closes it on its next tick")
    return "\n".join(lines)


def _since(facts: EnvironmentFacts) -> str:
    """Where the environment's canary revision stands and since when (its newest event)."""
    events = [e for e in facts.events if e.revision == facts.canary_revision]
    if not events:
        return "not rolled out by the controller yet"
    newest = events[-1]
    words = {
        "start": "rolling out",
        "finalize": "finalized",
        "rollback": "rolled back",
        "handover": "handed over",
    }
    return f"{words[newest.kind]} since {_clock(newest.at)}"


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
