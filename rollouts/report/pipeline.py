"""A pipeline's report: one lane per environment, each revision's way through it, from Git history.

``rollouts report PIPELINE.yaml`` reads every environment's facts the way the controller does
(:meth:`rollouts.pipeline.runner.PipelineRunner.read`: each environment's own repository, through its
workspace) and draws them as a timeline: per environment a lane, per revision a bar from the time it
entered the environment (the pipeline's hand-over commit, or for the first environment the rollout's
start) to the time it was finalized or rolled back, with a mark for every start, finalize, rollback
and hand-over, and a table of the same with the times. The plan (what each transition waits for, and
where the line stopped) is written below the lanes.

:func:`pipeline_timeline` is pure (facts in, lanes out); :func:`render_pipeline` fills the Jinja2
template ``pipeline.html.j2`` with autoescape on (every value from Git is user input). This module
must never read Git or files itself, and never build markup in Python strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from rollouts.pipeline.plan import EnvironmentFacts, Event, PipelinePlan
from rollouts.report.render import CSP, RenderedReport, _environment

#: Colours of the marks and bars, by event kind or outcome.
KIND_COLORS = {
    "start": "#ff7f0e",
    "finalize": "#2ca02c",
    "rollback": "#d62728",
    "handover": "#1f77b4",
}
OUTCOME_COLORS = {"finalized": "#9ccc9c", "rolled back": "#f4a3a3", "rolling out": "#ffd08a"}
TEMPLATE = "pipeline.html.j2"


@dataclass(frozen=True)
class Mark:
    """One event on a lane; ``left`` is its place on the time axis in percent."""

    kind: str
    revision: str
    at: datetime
    sha: str
    reason: str
    left: float


@dataclass(frozen=True)
class Stay:
    """One revision's time in one environment.

    ``entered``: the hand-over into this environment (or, without one, the rollout's first start);
    ``started``/``ended``: the rollout's first start and its finalize or rollback (``None`` while it
    runs); ``outcome`` is ``rolling out``, ``finalized`` or ``rolled back``; ``handed_over``: when the
    next environment received it (``None``: not yet, or this is the last). ``left``/``width``: the
    bar, in percent of the time axis.
    """

    revision: str
    entered: datetime
    started: datetime | None
    ended: datetime | None
    outcome: str
    reason: str
    handed_over: datetime | None
    left: float
    width: float


@dataclass(frozen=True)
class Lane:
    """One environment: the revision its canary manifest names now, its stays and its marks."""

    environment: str
    canary_revision: str
    stays: tuple[Stay, ...]
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class PipelineTimeline:
    """Every lane on one time axis from ``start`` to ``end``."""

    key: str
    lanes: tuple[Lane, ...]
    start: datetime
    end: datetime
    transitions: tuple[str, ...]
    stops: tuple[str, ...]


def pipeline_timeline(
    key: str, facts: Sequence[EnvironmentFacts], planned: PipelinePlan, *, now: datetime
) -> PipelineTimeline:
    """The lanes of ``facts`` (pipeline order) on one axis ending at ``now`` (pure)."""
    times = [e.at for f in facts for e in f.events]
    start = min(times, default=now)
    end = max([now, *times])
    span = max((end - start).total_seconds(), 1.0)

    def place(at: datetime) -> float:
        return round(100.0 * (at - start).total_seconds() / span, 2)

    lanes: list[Lane] = []
    for index, env in enumerate(facts):
        following = facts[index + 1] if index + 1 < len(facts) else None
        stays = tuple(
            _stay(revision, env.events, following, end, place) for revision in _revisions(env.events)
        )
        marks = tuple(Mark(e.kind, e.revision, e.at, e.sha, e.reason, place(e.at)) for e in env.events)
        lanes.append(Lane(env.name, env.canary_revision, stays, marks))
    transitions = tuple(f"{t.source} -> {t.target}: {t.state}: {t.reason}" for t in planned.transitions)
    stops = tuple(
        f"{s.revision} stopped in {s.environment} at {_when(s.at)}: {s.reason}" for s in planned.stops
    ) + tuple(f"out of order: {o.reason}" for o in planned.out_of_order)
    return PipelineTimeline(key, tuple(lanes), start, end, transitions, stops)


def _revisions(events: Sequence[Event]) -> list[str]:
    """The revisions of ``events`` in the order they first appear."""
    seen: dict[str, None] = {}
    for event in events:
        seen.setdefault(event.revision, None)
    return list(seen)


def _stay(
    revision: str,
    events: Sequence[Event],
    following: EnvironmentFacts | None,
    end: datetime,
    place: Callable[[datetime], float],
) -> Stay:
    mine = [e for e in events if e.revision == revision]
    handover = next((e.at for e in mine if e.kind == "handover"), None)
    started = next((e.at for e in mine if e.kind == "start"), None)
    entered = handover or started or mine[0].at
    last = next((e for e in reversed(mine) if e.kind in ("finalize", "rollback")), None)
    outcome = {"finalize": "finalized", "rollback": "rolled back"}[last.kind] if last else "rolling out"
    ended = last.at if last else None
    handed_over = None
    if following is not None:
        handed_over = next(
            (e.at for e in following.events if e.revision == revision and e.kind == "handover"), None
        )
    left = place(entered)
    right = place(ended or end)
    return Stay(
        revision=revision,
        entered=entered,
        started=started,
        ended=ended,
        outcome=outcome,
        reason=last.reason if last else "",
        handed_over=handed_over,
        left=left,
        width=max(round(right - left, 2), 0.4),  # an instant still shows
    )


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "–"


def render_pipeline(timeline: PipelineTimeline, *, generated: datetime) -> RenderedReport:
    """The page of ``timeline`` (no charts: the lanes are HTML and CSS)."""
    environment = _environment()
    environment.filters["at"] = _when
    page = environment.get_template(TEMPLATE).render(
        title=f"Pipeline {timeline.key}",
        csp=Markup(CSP),  # our constant, not input
        timeline=timeline,
        generated=_when(generated),
        kind_colors=KIND_COLORS,
        outcome_colors=OUTCOME_COLORS,
    )
    return RenderedReport(html=page)
