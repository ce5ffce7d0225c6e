"""The per-rollout state machine: one ``tick()`` per analysis interval, read -> observe -> decide -> act.

Git is the state. Every tick starts from what Git says (:class:`RolloutState`, derived purely by
:func:`rollouts.state.derive`, whose ``position`` is the phase). The machine then observes what that
phase needs (the sync gate, the load, the windows since the step began, judged one by one; GA's
readiness), asks :func:`rollouts.controller.decide.decide` once what to do (pure), and acts on the
one :class:`~rollouts.controller.decide.Decision` (:meth:`Machine.act`: a commit, a pause record, or
nothing). A failed Git write raises inside ``act`` and becomes the tick's result there.

The only thing the process remembers between ticks is derivable (:class:`Memory`): the judge of the
current step and how far it has read, which a restarted controller rebuilds by replaying the step's
windows from the metrics (the judge is deterministic), and a decision whose push failed.

One tick, top to bottom::

    Git -> state.position -> observe (gate, load, windows -> judge) -> decide -> act
    act: promote (next step or finalize) | rollback | pause | GA images | stay, each write a commit

On a protected branch (``spec.approval.protectedBranch``) every write goes by a branch of ours
through the gates' :class:`~rollouts.gates.proposals.Proposals`, and a tick first asks whether one
of ours still waits for its merge: then the rollout holds (no analysis, no step), whatever the
process remembers, because the branch is on the remote.

The side effects sit behind small interfaces (workspace, gate, load, metrics source, judge,
notifier, controller metrics), so the transitions read as the story they tell.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from analyzer import Judge, SubsetWindow, Verdict, Window
from rollouts.controller.decide import (
    Commit,
    Decision,
    Pause,
    Pending,
    Progress,
    PromoteImages,
    Stay,
    decide,
    grid_start,
    load_target,
    ran_committed_split,
    retries,
    rollback_commit,
)
from rollouts.controller.errors import MetricsUnavailableError, NoDataError
from rollouts.controller.segment import noted
from rollouts.gates.bymerge import kind_of
from rollouts.gates.errors import AwaitingMergeError
from rollouts.gitops import (
    CommitResult,
    GitError,
    HumanOverrideError,
    RecordResult,
    RepoFileError,
    RolloutState,
)
from rollouts.load import LoadDriver, LoadRejectedError, LoadRequest, LoadUnavailableError, NoLoad
from rollouts.logs import decision
from rollouts.metrics import ControllerMetrics
from rollouts.notify import Kind, Notice
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.state import (
    Action,
    CommitVerdict,
    FinalizeStage,
    Phase,
    Position,
    WeightChange,
    label_weight,
    next_weight,
    position,
    step_label,
    with_evidence,
)
from rollouts.state.message import PRELUDE_STEPS, SWITCHED_STAGE
from rollouts.sync import SyncGate

if TYPE_CHECKING:
    from rollouts.gates.bymerge import MergeWait
    from rollouts.gates.step import StepGates

__all__ = [
    "EVIDENCE_GAUGES",
    "MAX_REPLAY_WINDOWS",
    "AlwaysLeader",
    "GaReadiness",
    "Leadership",
    "Machine",
    "Memory",
    "MetricsSource",
    "MetricsUnavailableError",
    "NoDataError",
    "Phase",
    "Position",
    "TickResult",
    "Workspace",
    "grid_start",
    "next_weight",
    "position",
    "ran_committed_split",
    "step_label",
    "with_evidence",
]

log = logging.getLogger("rollouts.controller")
# Notices sent to ``event`` webhooks as Flagger's ``eventType: Warning``.
_WARNINGS = frozenset({Kind.ROLLBACK, Kind.PAUSE, Kind.ERROR, Kind.HOLD})

# -- the interfaces the machine drives ----------------------------------------------------------------


class Workspace(Protocol):
    """The Git workspace (``rollouts.gitops.Workspace``, or its cached wrapper)."""

    def read_state(self, rollout: Rollout) -> RolloutState: ...

    def commit_weights(self, rollout: Rollout, change: WeightChange) -> CommitResult: ...

    def promote_images(
        self, rollout: Rollout, *, reasons: Sequence[str] = (), expected: Weights | None = None
    ) -> CommitResult: ...

    def record(self, rollout: Rollout, verdict: str, reasons: Sequence[str] = ()) -> RecordResult: ...


class MetricsSource(Protocol):
    """GA and canary metrics of one window ``[start, end)`` at canary weight ``weight``."""

    def window(self, rollout: Rollout, start: float, end: float, weight: int) -> Window: ...


@runtime_checkable
class GaHistory(Protocol):
    """GA's windows before a rollout (the judge's history, :mod:`analyzer.history`), newest first."""

    def history(self, rollout: Rollout, before: float, interval: float, count: int) -> list[SubsetWindow]: ...


class Leadership(Protocol):
    """Only the leader commits (``rollouts.kube.LeaderElector``)."""

    def is_leader(self) -> bool: ...


class GaReadiness(Protocol):
    """``finalize: promote-ga``: does the cluster run GA with the images its manifest in Git names
    (``state.ga_images``), and is it ready? ``(ready, what was seen, in words)``."""

    def ga_ready(self, rollout: Rollout, state: RolloutState) -> tuple[bool, str]: ...


class AlwaysLeader:
    """One controller, no election (one machine, or one replica)."""

    def is_leader(self) -> bool:
        """Always True."""
        return True


# -- what one process remembers (all of it derivable) -----------------------------------------------------


@dataclass
class Memory:
    """Per-rollout memory between ticks; a restart loses nothing that Git and the metrics cannot give back.

    ``first_seen`` holds one entry: when the state the rollout is in now (a head or someone else's
    commit, which carries no time of ours) was first seen; older ones are dropped.
    """

    step_key: tuple[str, float] | None = None  # (revision, step start)
    revision: str | None = None
    judge: Judge | None = None
    next_window: float = 0.0  # start of the next window to judge
    windows: int = 0
    errors: int = 0  # consecutive windows whose metrics could not be read
    gate_open: bool = False
    gate_looks: int = 0  # looks at a closed gate in this step
    load_job: str | None = None
    load_down: bool = False
    first_seen: dict[str, float] = field(default_factory=dict)
    said: set[str] = field(default_factory=set)  # once-per-step notices already sent
    pending: Pending | None = None
    git_failures: int = 0
    git_retry_at: float = 0.0
    waiting_since: float | None = None  # a gate (webhook or approval) holds the next step since then

    def seen(self, anchor: str, now: float) -> float:
        """When ``anchor`` was first seen (now, if it is new); forgets every other anchor."""
        moment = self.first_seen.get(anchor, now)
        self.first_seen = {anchor: moment}
        return moment


@dataclass(frozen=True)
class TickResult:
    """What a tick did, for the scheduler, the CLI and tests."""

    phase: Phase
    action: Action
    reasons: tuple[str, ...] = ()
    windows: int = 0
    commit: str | None = None
    weight: int | None = None  # the canary weight in Git after the tick (None: Git unread)


EVIDENCE_GAUGES = {
    ("combined", "harm"): "e_harm",
    ("latency", "harm"): "e_harm_latency",
    ("errors", "harm"): "e_harm_errors",
    ("tail", "harm"): "e_harm_tail",
    ("latency", "safety"): "e_safety_latency",
    ("errors", "safety"): "e_safety_errors",
    ("tail", "safety"): "e_safety_tail",
}


# How many windows of the earlier steps a restarted controller replays to rebuild the rollout's judge
# (a few per step in practice; max_windows_per_step bounds a step). Beyond it the oldest evidence is
# not rebuilt, which is logged: the judge then holds less harm evidence than the lost one did.
MAX_REPLAY_WINDOWS = 1000


class Machine:
    """The state machine of one rollout. ``tick()`` is called once per ``analysis.interval``."""

    def __init__(
        self,
        rollout: Rollout,
        *,
        workspace: Workspace,
        gate: SyncGate,
        metrics_source: MetricsSource,
        judge_factory: Callable[[Sequence[SubsetWindow]], Judge],
        load: LoadDriver | None = None,
        notify: Callable[[Notice], object] = lambda notice: None,
        metrics: ControllerMetrics | None = None,
        leadership: Leadership | None = None,
        clock: Callable[[], float] = time.time,
        max_git_backoff: float = 300.0,
        settle: float = 0.0,
        ga_readiness: GaReadiness | None = None,
        gates: StepGates | None = None,
    ) -> None:
        self.rollout = rollout
        self.key = rollout.key
        # Session affinity: returning users stay where they were served (see ran_committed_split).
        self._sticky = rollout.spec.analysis.session_affinity is not None
        self.workspace = workspace
        self.gate = gate
        self.source = metrics_source
        self.judge_factory = judge_factory
        self.load = load or NoLoad()
        self.notify = notify
        self.metrics = metrics or ControllerMetrics()
        self.metrics.track(self.key)  # every series exists (at 0) before the first scrape
        self.leadership = leadership or AlwaysLeader()
        self.clock = clock
        self.max_git_backoff = max_git_backoff
        self.settle = settle  # seconds after a window's end before its data is complete (scrape lag)
        # promote-ga: the sync gate shows the GA commit applied; this says GA runs it and is ready.
        self.ga_readiness = ga_readiness
        # Webhooks and approvals asked before a step's commit (rollouts/gates/step.py).
        self.gates = gates
        self.memory = Memory()

    @property
    def interval(self) -> float:
        """Seconds between ticks: the rollout's analysis interval (the scheduler's job period)."""
        return self.rollout.spec.analysis.interval

    def close(self) -> None:
        """Stop this rollout's load job and release the load driver."""
        self._stop_load()
        self.load.close()

    # -- the tick ------------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Read Git, observe, decide, act. Never raises for Git, metrics, load or notification trouble."""
        now = self.clock()
        if now < self.memory.git_retry_at:
            return TickResult(Phase.UNKNOWN, Action.WAIT, ("Git backoff: retrying later",))
        try:
            state = self.workspace.read_state(self.rollout)
        except RepoFileError as exc:
            return self._unreadable(exc)
        except GitError as exc:
            return self._git_failed(now, f"cannot read Git: {exc}")
        self.memory.git_failures = 0
        where = state.position
        self.metrics.set_weight(self.key, where.weight)
        self._phase(where.phase)
        if not retries(state, self.memory.pending):
            self.memory.pending = None
        held = self._held_by_merge(state)
        if held is not None:
            return held
        progress, windows = self._observe(state, now)
        return self.act(state, decide(self.rollout, state, progress, windows))

    def _unreadable(self, exc: RepoFileError) -> TickResult:
        """A route file or canary manifest we cannot read: retrying does not help, a person must fix
        it. Told once per message."""
        message = f"cannot read the rollout's files in Git: {exc}"
        decision(log, self.key, "error", [message], level=logging.ERROR)
        if message not in self.memory.said:
            self.memory.said.add(message)
            self._tell(Kind.ERROR, "the rollout's files in Git are unreadable; nothing is done", (str(exc),))
        return TickResult(Phase.UNKNOWN, Action.ERROR, (message,))

    # -- observing: what the phase needs to be decided -----------------------------------------------------

    def _observe(self, state: RolloutState, now: float) -> tuple[Progress, tuple[Verdict, ...]]:
        where, m = state.position, self.memory
        if m.pending is not None:
            return Progress(now, pending=m.pending), ()
        if where.phase == Phase.FINALIZING:
            self._stop_load()
            if where.finalize != FinalizeStage.ROUTE_GA:
                return Progress(now), ()
            # From the GA commit, or from when this process first saw it if that is later (the
            # clocks of Git's committer and ours may disagree; a restart only waits longer).
            seen_at = m.seen(state.head, now)
            since = max(where.since or seen_at, seen_at)
            return Progress(now, since=since, ga=self._ga_ready(state)), ()
        if where.phase != Phase.PROGRESSING:
            return Progress(now), ()
        return self._observe_step(state, where, now)

    def _observe_step(
        self, state: RolloutState, where: Position, now: float
    ) -> tuple[Progress, tuple[Verdict, ...]]:
        """The step being analysed: its judge, the sync gate, the load, then every complete window
        since the step began, judged until one is not a hold (a restart replays them through a fresh
        judge)."""
        m = self.memory
        interval = self.rollout.spec.analysis.interval
        # A state without a commit of ours (someone else's weights) begins when we first see it.
        anchor = state.override_commit or state.head
        since = where.since if where.since is not None else m.seen(anchor, now)
        if m.step_key != (state.revision, since):
            try:
                self._new_step(state, since, where)
            except MetricsUnavailableError as exc:  # the replay of earlier steps: again next tick
                return self._metrics_failed(
                    now, since, where, f"replaying the rollout's earlier steps: {exc}"
                ), ()
        if where.adopted and f"override:{anchor}" not in m.said:
            m.said.add(f"override:{anchor}")
            self._tell(
                Kind.OVERRIDE,
                f"canary weight {where.weight}% set by someone else: adopted",
                (where.reason,),
                state=state,
                commit=state.override_commit or "",
            )

        # 1. the sync gate: no window before the cluster runs the committed weights
        if not m.gate_open:
            result = self.gate.wait(Weights.for_canary(where.weight), state.head, timeout=0)
            if not result.opened:
                m.gate_looks += 1
                return Progress(now, since=since, gate_closed=result.reason), ()
            m.gate_open = True
            if m.gate_looks:
                # We saw the cluster catch up: windows start on the step's grid after that moment.
                m.next_window = grid_start(now, interval)
            # Open at the first look (e.g. after a restart): replay the step's windows from its start;
            # windows the cluster ran at other weights are skipped by ran_committed_split.

        # 2. load for the analysis
        trouble = self._ensure_load(state, now, since)
        if trouble is not None:
            return trouble, ()

        # 3. Flagger's ``rollout`` webhooks, once per interval, before the windows are judged
        if self.gates is not None and self.gates.webhooks.of("rollout"):
            check = self.gates.during_analysis(state.revision)
            if check.action != "proceed":
                return Progress(
                    now,
                    since=since,
                    step_windows=m.windows,
                    check_failed=check.reason,
                    checks_exhausted=check.action == "rollback",
                ), ()

        # 4. every complete window since the step began
        verdicts: list[Verdict] = []
        while m.next_window + interval + self.settle <= now:
            start, end = m.next_window, m.next_window + interval
            try:
                window = self.source.window(self.rollout, start, end, where.weight)
            except MetricsUnavailableError as exc:
                if isinstance(exc, NoDataError):
                    m.next_window = end  # this window will never have data; the next one may
                return self._metrics_failed(now, since, where, str(exc)), tuple(verdicts)
            m.errors = 0
            m.next_window = end
            # In the stages at 0 % and after a blue/green switch the canary's share is not the weight.
            mirrored = where.stage in (*PRELUDE_STEPS, SWITCHED_STAGE)
            if not ran_committed_split(window, where.weight, sticky=self._sticky, mirrored=mirrored):
                log.info(
                    "%s: window %.0f-%.0f did not run the committed split, skipped", self.key, start, end
                )
                continue
            assert m.judge is not None
            began = time.perf_counter()
            verdict = noted(m.judge.judge(window), window)
            m.windows += 1
            verdicts.append(verdict)
            self._count(verdict, time.perf_counter() - began, where)
            if verdict.action != "hold":
                break
        return Progress(now, since=since, step_windows=m.windows), tuple(verdicts)

    def _metrics_failed(self, now: float, since: float, where: Position, message: str) -> Progress:
        m = self.memory
        m.errors += 1
        self.metrics.prometheus_errors.labels(rollout=self.key).inc()
        threshold = self.rollout.spec.analysis.threshold
        reason = f"metrics unavailable ({m.errors} of {threshold} in a row): {message}"
        decision(log, self.key, "hold", [reason], level=logging.WARNING, weight=where.weight)
        return Progress(now, since=since, step_windows=m.windows, metrics_error=reason, errors=m.errors)

    def _new_step(self, state: RolloutState, since: float, where: Position) -> None:
        m = self.memory
        self._stop_load()
        if m.judge is not None and m.revision == state.revision:
            m.judge.new_step()  # rollout-wide evidence stays, per-step counters restart
        else:
            m.judge = self._rebuilt_judge(state, where, since)
        m.step_key, m.revision = (state.revision, since), state.revision
        m.next_window = grid_start(since, self.rollout.spec.analysis.interval)
        m.windows, m.errors, m.gate_open, m.gate_looks = 0, 0, False, 0
        m.load_down = False
        log.info(
            "%s: step at %d%% began %s", self.key, where.weight, time.strftime("%H:%M:%S", time.gmtime(since))
        )

    def _ga_history(self, began: float) -> list[SubsetWindow]:
        """GA's windows before ``began`` on the analysis grid (``policy.history_windows`` of them at
        most), oldest first; none when the source cannot tell (the judge then uses its prior)."""
        count = self.rollout.spec.analysis.policy.history_windows
        if count <= 0 or not isinstance(self.source, GaHistory):
            return []
        interval = self.rollout.spec.analysis.interval
        last_end = math.floor(began / interval) * interval  # the last whole window before it began
        windows = self.source.history(self.rollout, last_end, interval, count)
        log.info("%s: %d GA window(s) before the rollout read for the judge", self.key, len(windows))
        return windows[::-1]

    def _rebuilt_judge(self, state: RolloutState, where: Position, since: float) -> Judge:
        """A judge that has seen what the judge of this rollout had seen before the current step.

        After a restart (or a new revision) the process has no judge. The judge is deterministic, so
        replaying every earlier step's windows (each step runs from its commit to the next one; Git
        gives both, the grid gives the windows, Prometheus keeps them) through one judge, with
        ``new_step()`` at each boundary, rebuilds the one that was lost: the rollout-wide harm
        evidence is not reset by a restart. Each step's replay ends at its first non-hold verdict,
        as the live run did. The current step's windows are replayed by the normal loop.
        """
        history = state.history
        ours = not (where.adopted or not history or state.last is None or history[-1].sha != state.last.sha)
        # GA's windows before the rollout began (its first commit; adopted weights: this step).
        judge = self.judge_factory(self._ga_history(float(history[0].timestamp) if ours else since))
        if not ours:
            return judge  # weights not set by our commits: nothing to replay from
        steps, interval = self.rollout.spec.steps, self.rollout.spec.analysis.interval
        budget = MAX_REPLAY_WINDOWS
        for index, record in enumerate(history[:-1]):
            if index:
                judge.new_step()
            weight = label_weight(steps, record.step)
            end = float(history[index + 1].timestamp)
            start = grid_start(float(record.timestamp), interval)
            while weight is not None and start + interval <= end:
                if budget == 0:
                    log.warning(
                        "%s: replay stopped after %d windows; older evidence is not rebuilt",
                        self.key,
                        MAX_REPLAY_WINDOWS,
                    )
                    judge.new_step()
                    return judge
                budget -= 1
                try:
                    window = self.source.window(self.rollout, start, start + interval, weight)
                except NoDataError:
                    start += interval
                    continue
                start += interval
                mirrored = record.step in PRELUDE_STEPS
                if ran_committed_split(
                    window, weight, sticky=self._sticky, mirrored=mirrored
                ) and judge.judge(window).action in (
                    "promote",
                    "rollback",
                ):
                    break  # the step's verdict: the live run moved on here
        if len(history) > 1:
            judge.new_step()
            log.info("%s: replayed %d earlier step(s) of %s", self.key, len(history) - 1, state.revision)
        return judge

    def _ga_ready(self, state: RolloutState) -> tuple[bool, str]:
        """The cluster applied the GA commit (the sync gate at the head) and GA is ready with it."""
        gate = self.gate.wait(state.weights, state.head, timeout=0)
        if not gate.opened:
            return False, gate.reason
        if self.ga_readiness is None:
            return True, gate.reason
        try:
            return self.ga_readiness.ga_ready(self.rollout, state)
        except Exception as exc:  # a probe that fails says "not ready", never ends the tick
            return False, f"GA readiness unknown: {exc}"

    def _held_by_merge(self, state: RolloutState) -> TickResult | None:
        """A protected branch: a commit of ours waiting on a branch of ours holds the rollout (no
        step, no analysis; the decision stays on record in that commit). Told once when it lands."""
        proposals = self.gates.proposals if self.gates is not None else None
        if proposals is None:
            return None
        try:
            wait = proposals.outstanding(state.revision, open_missing=self.leadership.is_leader())
        except (GitError, RepoFileError) as exc:
            return self._git_failed(self.clock(), f"cannot read our branches: {exc}")
        if wait is None:
            return None
        if wait.state == "landed":
            kind = {"rollback": Kind.ROLLBACK, "pause": Kind.PAUSE}.get(wait.kind, Kind.FINALIZE)
            text = wait.text(self.key, self.clock())
            decision(log, self.key, "merged", [text], commit=wait.commit)
            self._tell(kind, text, wait.reasons, state=state, commit=wait.commit or "")
            if self.gates is not None and wait.kind in ("rollback", "route-ga"):
                self.gates.finished(state.revision, succeeded=wait.kind == "route-ga")
            return None  # Git now says where the rollout stands: this tick goes on from there
        return self._awaiting_merge(state, wait)

    def _awaiting_merge(self, state: RolloutState, wait: MergeWait) -> TickResult:
        """Hold while ``wait`` is not merged: told once, the wait counted as a gate's."""
        now = self.clock()
        text = wait.text(self.key, now)
        decision(log, self.key, "wait", [text], weight=state.weights.canary)
        if f"merge:{wait.branch}" not in self.memory.said:
            self.memory.said.add(f"merge:{wait.branch}")
            kind = {"rollback": Kind.ROLLBACK, "pause": Kind.PAUSE}.get(wait.kind, Kind.HOLD)
            self._tell(kind, text, (text, *wait.reasons), state=state)
        since = wait.since if wait.since is not None else now
        self.metrics.set_waiting(self.key, max(0.0, now - since))
        phase = Phase.FINALIZING if wait.kind in ("ga-image", "route-ga") else state.position.phase
        return TickResult(phase, Action.WAIT, (text,), weight=state.weights.canary)

    # -- acting: the one decision of the tick ------------------------------------------------------------

    def act(self, state: RolloutState, chosen: Decision) -> TickResult:
        """Carry out ``chosen``: the only place the machine writes to Git. Leadership is checked here,
        once, before any write (it may have been lost since the scheduler asked)."""
        where = state.position
        if isinstance(chosen, Stay):
            if chosen.stop_load:
                self._stop_load()
            return TickResult(
                chosen.phase, chosen.action, chosen.reasons, chosen.windows, weight=where.weight
            )
        if isinstance(chosen, Commit) and chosen.restart:
            self._stop_load()
            self.memory = Memory(first_seen=self.memory.first_seen)
        if not self.leadership.is_leader():
            waiting = Phase.FINALIZING if isinstance(chosen, PromoteImages) else Phase.PROGRESSING
            return TickResult(waiting, Action.WAIT, ("not the leader: no commit",), weight=where.weight)
        if isinstance(chosen, Pause):
            return self._record_pause(state, chosen)
        if isinstance(chosen, PromoteImages):
            return self._promote_images(state, chosen)
        gated = self._gated(state, chosen)
        if isinstance(gated, TickResult):
            return gated
        return self._commit(state, gated)

    def _gated(self, state: RolloutState, chosen: Commit) -> Commit | TickResult:
        """Ask the gates before a step's commit (a promote or the last step, not a rollback): go on
        with ``chosen``, hold (waiting for a webhook or a merge), or roll back instead."""
        change, steps = chosen.change, self.rollout.spec.steps
        stepping = (
            change.verdict in (CommitVerdict.PROMOTE, CommitVerdict.FINALIZE) and change.finalize is None
        )
        if self.gates is None or not stepping or change.weights.canary not in steps:
            return chosen
        index = steps.index(change.weights.canary)
        try:
            verdict = self.gates.check(index, change.weights, chosen.revision, reasons=chosen.reasons)
        except (GitError, RepoFileError) as exc:  # a broken file or Git: retried with backoff
            return self._git_failed(self.clock(), f"cannot read the approval of step {index + 1}: {exc}")
        where, now = state.position, self.clock()
        if verdict.action != "wait":
            self.memory.waiting_since = None
            self.metrics.set_waiting(self.key, 0.0)
        if verdict.action == "proceed":
            return chosen
        if verdict.action == "rollback" and where.weight == 0:
            # Nothing to roll back (e.g. pre-rollout failed before the first step): a pause records
            # why the rollout did not start, until a person resumes it.
            return self._record_pause(state, Pause((verdict.reason,), where.weight, state.revision))
        if verdict.action == "rollback":
            decision(log, self.key, "rollback", [verdict.reason], weight=where.weight)
            return rollback_commit(self.rollout, state, (verdict.reason,))
        if verdict.action == "override":
            decision(log, self.key, "adopt", [verdict.reason])
            return TickResult(Phase.PROGRESSING, Action.NONE, (verdict.reason,), weight=where.weight)
        decision(log, self.key, "wait", [verdict.reason], weight=where.weight)
        awaited = verdict.reason.split(", since ")[0]  # the thing awaited, without the clock
        if awaited not in self.memory.said:  # told once per thing awaited
            self.memory.said.add(awaited)
            self._tell(Kind.STEP, verdict.reason, (verdict.reason,), state=state)
        if self.memory.waiting_since is None:
            since = verdict.approval.since if verdict.approval and verdict.approval.since else now
            self.memory.waiting_since = min(since, now)
        self.metrics.set_waiting(self.key, now - self.memory.waiting_since)
        return TickResult(Phase.PROGRESSING, Action.WAIT, (verdict.reason,), weight=where.weight)

    def _commit(self, state: RolloutState, chosen: Commit) -> TickResult:
        change, verdict = chosen.change, chosen.change.verdict
        self.memory.pending = chosen if chosen.retry else None
        proposals = self.gates.proposals if self.gates is not None else None
        try:
            if proposals is not None and proposals.applies(kind_of(change)):
                result = proposals.commit_weights(change, chosen.revision)
            else:
                result = self.workspace.commit_weights(self.rollout, change)
        except AwaitingMergeError as exc:
            self.memory.pending = None  # the branch on the remote holds the rollout from now on
            return self._awaiting_merge(state, exc.wait)
        except HumanOverrideError as exc:
            self.memory.pending = None  # a human's weights win; the next tick adopts them
            decision(log, self.key, "adopt", [str(exc)])
            return TickResult(Phase.PROGRESSING, Action.NONE, (str(exc),), weight=state.weights.canary)
        except (GitError, RepoFileError) as exc:
            return self._git_failed(self.clock(), f"cannot commit {verdict}: {exc}")
        self.memory.pending = None
        self.memory.git_failures = 0
        weight = change.weights.canary
        if result.attempts > 1:
            self.metrics.git_push_retries.labels(rollout=self.key).inc(result.attempts - 1)
        self.metrics.commits.labels(rollout=self.key, verdict=verdict).inc()
        self.metrics.set_weight(self.key, weight)
        decision(log, self.key, verdict, list(change.reasons), weight=weight, commit=result.sha)
        sha = str(result.sha or result.head)
        if chosen.action != Action.START:
            self._stop_load()
        self._tell(chosen.kind, chosen.summary, chosen.reasons, chosen.evidence, state=state, commit=sha)
        self._phase(chosen.phase)
        if self.gates is not None and chosen.phase in (Phase.PROMOTED, Phase.ROLLEDBACK):
            # Flagger's ``post-rollout`` hooks: the rollout ended; a failure is only logged.
            self.gates.finished(state.revision, succeeded=chosen.phase == Phase.PROMOTED)
        windows = self.memory.windows if chosen.retry else 0
        return TickResult(
            chosen.phase, chosen.action, chosen.reasons, windows=windows, commit=sha, weight=weight
        )

    def _promote_images(self, state: RolloutState, chosen: PromoteImages) -> TickResult:
        reasons = chosen.reasons
        proposals = self.gates.proposals if self.gates is not None else None
        try:
            if proposals is not None and proposals.applies("ga-image"):
                result = proposals.promote_images(
                    state.revision, reasons=list(reasons), expected=state.weights
                )
            else:
                result = self.workspace.promote_images(
                    self.rollout, reasons=list(reasons), expected=state.weights
                )
        except AwaitingMergeError as exc:
            return self._awaiting_merge(state, exc.wait)
        except HumanOverrideError as exc:
            decision(log, self.key, "adopt", [str(exc)])
            return TickResult(Phase.FINALIZING, Action.NONE, (str(exc),), weight=chosen.weight)
        except (GitError, RepoFileError) as exc:
            return self._git_failed(self.clock(), f"cannot commit the GA images: {exc}")
        self.memory.git_failures = 0
        if result.sha is None:  # GA has them already (a commit of a run that died, or a person)
            return TickResult(
                Phase.FINALIZING, Action.WAIT, ("GA already names the canary's images",), weight=chosen.weight
            )
        self.metrics.commits.labels(rollout=self.key, verdict=CommitVerdict.FINALIZE).inc()
        decision(log, self.key, "finalize", list(reasons), weight=chosen.weight, commit=result.sha)
        self._tell(
            Kind.FINALIZE,
            f"GA manifest now names {state.revision}; traffic goes back to GA once it is ready",
            reasons,
            state=state,
            commit=result.sha,
        )
        return TickResult(Phase.FINALIZING, Action.FINALIZE, reasons, commit=result.sha, weight=chosen.weight)

    def _record_pause(self, state: RolloutState, chosen: Pause) -> TickResult:
        proposals = self.gates.proposals if self.gates is not None else None
        reasons = with_evidence(chosen.reasons, chosen.evidence)
        try:
            if proposals is not None and proposals.applies("pause"):
                result = proposals.record(state.revision, CommitVerdict.PAUSE, reasons)
            else:
                result = self.workspace.record(self.rollout, CommitVerdict.PAUSE, reasons=reasons)
        except AwaitingMergeError as exc:
            self.memory.pending = None
            self._stop_load()  # a pause stops the analysis load at once, merged or not
            return self._awaiting_merge(state, exc.wait)
        except (GitError, RepoFileError) as exc:
            self.memory.pending = chosen
            return self._git_failed(self.clock(), f"cannot record the pause: {exc}")
        self.memory.pending = None
        self._stop_load()
        self.metrics.commits.labels(rollout=self.key, verdict=CommitVerdict.PAUSE).inc()
        self._phase(Phase.PAUSED)
        self._tell(
            Kind.PAUSE,
            f"rollout paused at {state.weights.canary}%",
            chosen.reasons,
            chosen.evidence,
            state=state,
            commit=result.sha or "",
        )
        return TickResult(
            Phase.PAUSED, Action.PAUSE, chosen.reasons, commit=result.sha, weight=state.weights.canary
        )

    # -- trouble ---------------------------------------------------------------------------------------

    def _git_failed(self, now: float, message: str) -> TickResult:
        m = self.memory
        m.git_failures += 1
        self.metrics.git_errors.labels(rollout=self.key).inc()
        delay = min(self.max_git_backoff, self.rollout.spec.analysis.interval * 2 ** (m.git_failures - 1))
        m.git_retry_at = now + delay
        decision(log, self.key, "retry", [message, f"retrying in {delay:.0f}s"], level=logging.WARNING)
        if m.git_failures == 3:
            self._tell(Kind.ERROR, "Git is unreachable; retrying with backoff", (message,))
        return TickResult(Phase.UNKNOWN, Action.ERROR, (message,))

    def _ensure_load(self, state: RolloutState, now: float, since: float) -> Progress | None:
        """Keep the analysis load running; None, or the :class:`Progress` that says what went wrong."""
        spec, m = self.rollout.spec.load, self.memory
        if spec.mode == "none":
            return None
        interval = self.rollout.spec.analysis.interval
        request = LoadRequest(
            target=str(load_target(self.rollout, state.position.stage)),
            duration=interval * 30,
            rate=spec.rate,
            concurrency=spec.concurrency,
            method=spec.method,
            headers=dict(spec.headers),
        )
        try:
            # Every tick: a step can outlast one job (more windows than its duration), so renew it.
            m.load_job = self.load.ensure_running(m.load_job, request, renew_within=2 * interval)
        except LoadRejectedError as exc:
            return Progress(now, since=since, load_refused=str(exc))
        except LoadUnavailableError as exc:
            reasons = (f"load endpoint down: {exc}",)
            decision(log, self.key, "hold", list(reasons), level=logging.WARNING)
            if not m.load_down:
                m.load_down = True
                self._tell(Kind.ERROR, "load endpoint down: analysis holds", reasons, state=state)
            return Progress(now, since=since, load_down=str(exc))
        m.load_down = False
        return None

    def _stop_load(self) -> None:
        job, self.memory.load_job = self.memory.load_job, None
        if job is not None:
            try:
                self.load.stop(job)
            except (LoadUnavailableError, LoadRejectedError) as exc:
                log.warning("%s: stopping load job %s: %s", self.key, job, exc)

    # -- reporting --------------------------------------------------------------------------------------

    def _count(self, verdict: Verdict, seconds: float, where: Position) -> None:
        self.metrics.verdict(self.key, verdict.action, seconds)
        for (test, kind), key in EVIDENCE_GAUGES.items():
            if key in verdict.evidence:
                self.metrics.set_evidence(self.key, test, kind, verdict.evidence[key])
        for kind in ("harm", "safety"):
            if f"{kind}_threshold" in verdict.evidence:
                self.metrics.set_threshold(self.key, kind, verdict.evidence[f"{kind}_threshold"])
        decision(
            log,
            self.key,
            verdict.action,
            list(verdict.reasons),
            weight=where.weight,
            window=self.memory.windows,
            evidence=dict(verdict.evidence),
        )

    def _phase(self, phase: Phase) -> None:
        self.metrics.set_phase(self.key, phase)

    def _tell(
        self,
        kind: Kind,
        summary: str,
        reasons: Sequence[str],
        evidence: Mapping[str, float] | None = None,
        *,
        state: RolloutState | None = None,
        commit: str = "",
    ) -> None:
        evidence = evidence or {}
        notice = Notice(
            self.key,
            kind,
            summary,
            tuple(reasons),
            dict(evidence),
            revision=state.revision if state else "",
            commit=commit,
        )
        try:
            self.notify(notice)
        except Exception:  # a notification must never stop a rollout
            log.exception("%s: notification failed", self.key)
        if self.gates is not None:
            # Flagger's ``event`` hooks see every notice; best effort, bounded by each hook's timeout.
            try:
                self.gates.event(notice.revision, summary, warning=kind in _WARNINGS)
            except Exception:
                log.exception("%s: event webhook failed", self.key)
