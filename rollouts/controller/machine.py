"""The per-rollout state machine: one ``tick()`` per analysis interval.

Git is the state. Every tick starts from what Git says (:func:`position`, pure): the weights in the
route file, the canary revision, and our commits' trailers and times. The only thing the process
remembers between ticks is derivable (:class:`Memory`): the judge of the current step and how far it
has read, which a restarted controller rebuilds by replaying the step's windows from the metrics
(the judge is deterministic), and the pending commit of a verdict whose push failed.

One tick, top to bottom::

    Git -> position -> (start | idle | paused | analyse)
    analyse: sync gate -> load -> complete windows since the step began -> judge each ->
             promote (next step or finalize) | hold | rollback | pause, each a commit in Git

The side effects sit behind small interfaces (workspace, gate, load, metrics source, judge,
notifier, controller metrics), so the transitions read as the story they tell.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from analyzer import Judge, Verdict, Window
from rollouts.gitops import GitopsError, HumanOverrideError, RolloutState
from rollouts.load import LoadDriver, LoadRejectedError, LoadRequest, LoadUnavailableError, NoLoad
from rollouts.logs import decision
from rollouts.metrics import ControllerMetrics
from rollouts.notify import Kind, Notice
from rollouts.routes import RouteError, Weights
from rollouts.spec import Rollout
from rollouts.sync import SyncGate

log = logging.getLogger("rollouts.controller")

# -- the interfaces the machine drives ----------------------------------------------------------------


class Workspace(Protocol):
    """The Git workspace (``rollouts.gitops.Workspace``)."""

    def read_state(self, rollout: Rollout) -> RolloutState: ...

    def set_weights(
        self,
        rollout: Rollout,
        weights: Weights,
        *,
        verdict: str,
        reasons: Sequence[str] = (),
        step: str | None = None,
        expected: Weights | None = None,
        finalize: str | None = None,
        label: str | None = None,
    ) -> Any: ...

    def promote_images(
        self, rollout: Rollout, *, reasons: Sequence[str] = (), expected: Weights | None = None
    ) -> Any: ...

    def record(self, rollout: Rollout, verdict: str, reasons: Sequence[str] = ()) -> Any: ...


class MetricsUnavailableError(RuntimeError):
    """The metrics of a window could not be read (Prometheus down, query error): the same window is
    asked for again on the next tick, since Prometheus keeps it."""


class NoDataError(MetricsUnavailableError):
    """Prometheus answered, but has no usable data for the window: asking again will not help, so
    the window is passed over (and counted towards ``analysis.threshold``)."""


class MetricsSource(Protocol):
    """GA and canary metrics of one window ``[start, end)`` at canary weight ``weight``."""

    def window(self, rollout: Rollout, start: float, end: float, weight: int) -> Window: ...


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


# -- where the rollout stands, from Git alone (pure) ----------------------------------------------------

Phase = Literal["idle", "start", "progressing", "paused", "promoted", "rolledback", "finalizing"]


@dataclass(frozen=True)
class Position:
    """What Git says about the rollout: the phase, and for ``progressing`` the step being analysed."""

    phase: Phase
    weight: int
    reason: str
    since: float | None = None  # when the current step began (commit or resume time); None: unknown
    step: int = 0  # 1-based index into spec.steps of the current weight (0: not a step weight)
    adopted: bool = False  # the weight was set by someone else
    finalize: str | None = None  # finalizing: "ga-image" (copy the images) or "route-ga" (route back)


def step_label(steps: Sequence[int], weight: int) -> str | None:
    """``"2/3"`` when ``weight`` is one of ``steps``."""
    return f"{steps.index(weight) + 1}/{len(steps)}" if weight in steps else None


def next_weight(steps: Sequence[int], weight: int) -> int | None:
    """The first step above ``weight``; None after the last step."""
    return next((s for s in steps if s > weight), None)


def position(rollout: Rollout, state: RolloutState) -> Position:
    """Where the rollout stands (pure: Git's state in, a :class:`Position` out)."""
    steps = rollout.spec.steps
    weight = state.weights.canary
    last = state.last
    if state.paused:
        return Position("paused", weight, "paused by a pause or abort commit; resume to continue")
    if state.new_revision:
        return Position("start", weight, f"new canary revision {state.revision}")
    if last is None:
        if weight == 0:
            return Position("start", weight, f"canary {state.revision} has never been rolled out")
        return Position(
            "progressing",
            weight,
            f"canary at {weight}% set by someone else",
            adopted=True,
            step=_step(steps, weight),
        )
    promote_ga = rollout.spec.finalize.action == "promote-ga" and not state.human_override
    if weight == 0:
        if promote_ga and last.verdict == "finalize" and last.finalize == "route-ga":
            return Position("promoted", weight, f"GA runs {state.revision}; traffic routed back to GA")
        who = "by a human" if state.human_override else f"({last.verdict})"
        return Position("rolledback", weight, f"canary {state.revision} routed 0% {who}")
    if weight == 100:
        if promote_ga:
            # Phase 1 commits the canary's images into GA; phase 2 waits for GA, then routes back.
            since = float(last.timestamp)
            if state.ga_images != state.images:
                reason = f"canary {state.revision} serves 100%: its images go into the GA manifest"
                return Position("finalizing", weight, reason, since=since, finalize="ga-image")
            reason = f"GA manifest names {state.revision}: traffic goes back to GA once GA is ready"
            return Position("finalizing", weight, reason, since=since, finalize="route-ga")
        return Position("promoted", weight, f"canary {state.revision} serves 100%")
    since = float(last.timestamp)
    resumed = state.last_record
    if resumed is not None and resumed.verdict == "resume" and resumed.timestamp > since:
        since = float(resumed.timestamp)  # windows before a pause do not count for the step
    if state.human_override:
        return Position(
            "progressing",
            weight,
            f"canary weight {weight}% set by someone else",
            since=None,
            step=_step(steps, weight),
            adopted=True,
        )
    return Position(
        "progressing",
        weight,
        f"analysing canary {state.revision} at {weight}%",
        since=since,
        step=_step(steps, weight),
    )


def _label_weight(steps: Sequence[int], label: str | None) -> int | None:
    """The weight of a ``Rollout-Step`` label (``"2/3"`` -> ``steps[1]``); None when it does not fit."""
    try:
        index, count = (int(part) for part in (label or "").split("/"))
    except ValueError:
        return None
    return steps[index - 1] if count == len(steps) and 1 <= index <= len(steps) else None


def _step(steps: Sequence[int], weight: int) -> int:
    return steps.index(weight) + 1 if weight in steps else 0


def with_evidence(reasons: Sequence[str], evidence: Mapping[str, float] | None) -> list[str]:
    """The reasons of a commit, plus an ``Evidence: {json}`` line when the verdict had evidence
    (``rollouts report`` reads it back; sorted keys so the same verdict gives the same message)."""
    lines = list(reasons)
    if evidence:
        lines.append("Evidence: " + json.dumps({k: _plain(v) for k, v in evidence.items()}, sort_keys=True))
    return lines


def _plain(value: object) -> object:
    """JSON-able: numpy scalars become Python numbers."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def grid_start(moment: float, interval: float) -> float:
    """The first window boundary at or after ``moment``. Windows lie on one grid (multiples of the
    interval since the epoch) for every rollout, so that rollouts with the same interval ask
    Prometheus for the same window ends and one batched query per round serves them all."""
    return math.ceil(moment / interval) * interval


def ran_committed_split(window: Window, weight: int, tolerance: float = 0.1) -> bool:
    """Did the window's traffic follow the committed split? A window the cluster ran partly at the
    old weights (before the sync, or after someone else's change) is not evidence about this step.

    With few requests the share is noise, so only a clear disagreement (5 standard errors and more
    than ``tolerance``) disqualifies a window.
    """
    canary, baseline = float(window.canary.requests), float(window.baseline.requests)
    total = canary + baseline
    if total < 20:
        return True
    expected = weight / 100
    share = canary / total
    spread = 5 * math.sqrt(max(expected * (1 - expected), 1e-4) / total)
    return abs(share - expected) <= max(tolerance, spread)


# -- what one process remembers (all of it derivable) -----------------------------------------------------


@dataclass
class Memory:
    """Per-rollout memory between ticks; a restart loses nothing that Git and the metrics cannot give back."""

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
    first_seen: dict[str, float] = field(default_factory=dict)  # when a state without a time was first seen
    said: set[str] = field(default_factory=set)  # once-per-step notices already sent
    pending: Pending | None = None
    git_failures: int = 0
    git_retry_at: float = 0.0


@dataclass(frozen=True)
class Pending:
    """A decision whose commit has not reached the remote yet: retried first on the next tick."""

    verdict: Literal["promote", "rollback", "finalize", "pause"]
    weight: int
    expected: int
    reasons: tuple[str, ...]
    evidence: Mapping[str, float]


@dataclass(frozen=True)
class TickResult:
    """What a tick did, for the scheduler, the CLI and tests."""

    phase: str
    action: str  # none | start | hold | promote | finalize | rollback | pause | wait | error
    reasons: tuple[str, ...] = ()
    windows: int = 0
    commit: str | None = None
    weight: int | None = None  # the canary weight in Git after the tick (None: Git unread)


EVIDENCE_GAUGES = {
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
        judge_factory: Callable[[], Judge],
        load: LoadDriver | None = None,
        notify: Callable[[Notice], object] = lambda notice: None,
        metrics: ControllerMetrics | None = None,
        leadership: Leadership | None = None,
        clock: Callable[[], float] = time.time,
        max_git_backoff: float = 300.0,
        settle: float = 0.0,
        ga_readiness: GaReadiness | None = None,
    ) -> None:
        self.rollout = rollout
        self.key = rollout.key
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
        self.memory = Memory()
        self._weight: int | None = None  # the canary weight this tick leaves in Git (TickResult.weight)

    def close(self) -> None:
        """Stop this rollout's load job and release the load driver."""
        self._stop_load()
        self.load.close()

    # -- the tick ------------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Read Git, decide, act. Never raises for Git, metrics, load or notification trouble."""
        self._weight = None
        result = self._tick()
        return replace(result, weight=self._weight)

    def _tick(self) -> TickResult:
        now = self.clock()
        if now < self.memory.git_retry_at:
            return TickResult("unknown", "wait", ("Git backoff: retrying later",))
        try:
            state = self.workspace.read_state(self.rollout)
        except RouteError as exc:
            # A route file or canary manifest we cannot read: retrying does not help, a person must
            # fix it. (Before GitopsError: the workspace's RouteFileError is both.)
            message = f"cannot read the rollout's files in Git: {exc}"
            decision(log, self.key, "error", [message], level=logging.ERROR)
            if message not in self.memory.said:
                self.memory.said.add(message)
                self._tell(
                    Kind.ERROR, "the rollout's files in Git are unreadable; nothing is done", (str(exc),)
                )
            return TickResult("unknown", "error", (message,))
        except GitopsError as exc:
            return self._git_failed(now, f"cannot read Git: {exc}")
        self.memory.git_failures = 0
        where = position(self.rollout, state)
        self._weight = where.weight
        self.metrics.set_weight(self.key, where.weight)
        self._phase(where.phase)

        pending = self.memory.pending
        if pending is not None and where.phase == "progressing" and where.weight == pending.expected:
            return self._apply(state, pending)  # a decision whose commit failed: commit it now
        self.memory.pending = None
        if where.phase == "start" and where.weight == self.rollout.spec.steps[0]:
            # A new revision at the first step's weight: nothing to commit, analyse it from now on.
            where = Position("progressing", where.weight, where.reason, since=None, step=1)
        if where.phase == "start":
            return self._start(state, where)
        if where.phase == "finalizing":
            return self._finalize(state, where, now)
        if where.phase != "progressing":
            self._stop_load()
            return TickResult(where.phase, "none", (where.reason,))
        return self._analyse(state, where, now)

    # -- transitions --------------------------------------------------------------------------------------

    def _start(self, state: RolloutState, where: Position) -> TickResult:
        first = self.rollout.spec.steps[0]
        current = state.weights.canary
        reasons: tuple[str, ...] = (where.reason, f"step 1: canary {first}%")
        summary = f"rollout of {state.revision} started: canary {first}%"
        if current > first:
            # The canary Deployment already runs the new images: they served its traffic (all of it
            # at 100 %) from the moment the cluster applied them, before any analysis.
            reasons = (
                where.reason,
                f"the new revision was already serving {current}% before the controller acted",
                f"restart at step 1: canary {current}% -> {first}%",
            )
            summary = (
                f"new revision {state.revision} was serving {current}% unanalysed: "
                f"restarted at step 1 ({first}%)"
            )
        self._stop_load()
        self.memory = Memory(first_seen=self.memory.first_seen)
        result = self._commit(
            state, "promote", first, current, reasons, label="restart" if current > first else None
        )
        if isinstance(result, TickResult):
            return result
        self._tell(Kind.START, summary, reasons, state=state, commit=result)
        return TickResult("progressing", "start", reasons, commit=result)

    def _analyse(self, state: RolloutState, where: Position, now: float) -> TickResult:
        m = self.memory
        interval = self.rollout.spec.analysis.interval
        # A state without a commit of ours (someone else's weights) begins when we first see it.
        anchor = state.override_commit or state.head
        since = where.since if where.since is not None else m.first_seen.setdefault(anchor, now)
        if m.step_key != (state.revision, since):
            try:
                self._new_step(state, since, where)
            except MetricsUnavailableError as exc:  # the replay of earlier steps: again next tick
                return self._metrics_failed(state, where, f"replaying the rollout's earlier steps: {exc}")
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
                if now - since > self.rollout.spec.analysis.sync_timeout:
                    return self._pause(state, (f"sync gate did not open: {result.reason}",))
                return TickResult("progressing", "wait", (result.reason,))
            m.gate_open = True
            if m.gate_looks:
                # We saw the cluster catch up: windows start on the step's grid after that moment.
                m.next_window = grid_start(now, interval)
            # Open at the first look (e.g. after a restart): replay the step's windows from its start;
            # windows the cluster ran at other weights are skipped by ran_committed_split.

        # 2. load for the analysis
        problem = self._ensure_load(state, where)
        if problem is not None:
            return problem

        # 3. every complete window since the step began (a restart replays them through a fresh judge)
        judged, last = 0, None
        while m.next_window + interval + self.settle <= now:
            start, end = m.next_window, m.next_window + interval
            try:
                window = self.source.window(self.rollout, start, end, where.weight)
            except MetricsUnavailableError as exc:
                if isinstance(exc, NoDataError):
                    m.next_window = end  # this window will never have data; the next one may
                return self._metrics_failed(state, where, str(exc))
            m.errors = 0
            m.next_window = end
            if not ran_committed_split(window, where.weight):
                log.info(
                    "%s: window %.0f-%.0f did not run the committed split, skipped", self.key, start, end
                )
                continue
            assert m.judge is not None
            began = time.perf_counter()
            verdict = last = m.judge.judge(window)
            m.windows += 1
            judged += 1
            self._count(verdict, time.perf_counter() - began, where)
            if verdict.action == "rollback":
                return self._rollback(state, where, verdict)
            if verdict.action == "promote":
                return self._promote(state, where, verdict)
            if verdict.evidence.get("step_expired"):
                return self._pause(state, tuple(verdict.reasons), verdict.evidence)
        reasons = tuple(last.reasons) if last is not None else ("waiting for the next window",)
        return TickResult("progressing", "hold", reasons, windows=judged)

    def _new_step(self, state: RolloutState, since: float, where: Position) -> None:
        m = self.memory
        self._stop_load()
        if m.judge is not None and m.revision == state.revision:
            m.judge.new_step()  # rollout-wide evidence stays, per-step counters restart
        else:
            m.judge = self._rebuilt_judge(state, where)
        m.step_key, m.revision = (state.revision, since), state.revision
        m.next_window = grid_start(since, self.rollout.spec.analysis.interval)
        m.windows, m.errors, m.gate_open, m.gate_looks = 0, 0, False, 0
        m.load_down = False
        log.info(
            "%s: step at %d%% began %s", self.key, where.weight, time.strftime("%H:%M:%S", time.gmtime(since))
        )

    def _rebuilt_judge(self, state: RolloutState, where: Position) -> Judge:
        """A judge that has seen what the judge of this rollout had seen before the current step.

        After a restart (or a new revision) the process has no judge. The judge is deterministic, so
        replaying every earlier step's windows (each step runs from its commit to the next one; Git
        gives both, the grid gives the windows, Prometheus keeps them) through one judge, with
        ``new_step()`` at each boundary, rebuilds the one that was lost: the rollout-wide harm
        evidence is not reset by a restart. Each step's replay ends at its first non-hold verdict,
        as the live run did. The current step's windows are replayed by the normal loop.
        """
        judge = self.judge_factory()
        history = state.history
        if where.adopted or not history or state.last is None or history[-1].sha != state.last.sha:
            return judge  # weights not set by our commits: nothing to replay from
        steps, interval = self.rollout.spec.steps, self.rollout.spec.analysis.interval
        budget = MAX_REPLAY_WINDOWS
        for index, record in enumerate(history[:-1]):
            if index:
                judge.new_step()
            weight = _label_weight(steps, record.step)
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
                if ran_committed_split(window, weight) and judge.judge(window).action != "hold":
                    break  # the step's verdict: the live run moved on here
        if len(history) > 1:
            judge.new_step()
            log.info("%s: replayed %d earlier step(s) of %s", self.key, len(history) - 1, state.revision)
        return judge

    def _promote(self, state: RolloutState, where: Position, verdict: Verdict) -> TickResult:
        upcoming = next_weight(self.rollout.spec.steps, where.weight)
        final = upcoming is None or upcoming == 100
        pending = Pending(
            "finalize" if final else "promote",
            upcoming or 100,
            where.weight,
            tuple(verdict.reasons),
            dict(verdict.evidence),
        )
        return self._apply(state, pending)

    def _rollback(self, state: RolloutState, where: Position, verdict: Verdict) -> TickResult:
        return self._apply(
            state, Pending("rollback", 0, where.weight, tuple(verdict.reasons), dict(verdict.evidence))
        )

    def _apply(self, state: RolloutState, pending: Pending) -> TickResult:
        """Commit a decision (again, after a failed push); the commit is the transition."""
        self.memory.pending = pending
        if pending.verdict == "pause":
            return self._pause(state, pending.reasons, pending.evidence)
        sha = self._commit(
            state,
            pending.verdict,
            pending.weight,
            pending.expected,
            with_evidence(pending.reasons, pending.evidence),
        )
        if isinstance(sha, TickResult):
            return sha
        self.memory.pending = None
        self._stop_load()
        summary = {
            "promote": f"canary {state.revision} promoted: {pending.expected}% -> {pending.weight}%",
            "finalize": f"canary {state.revision} passed every step: it serves 100%",
            "rollback": f"canary {state.revision} rolled back at {pending.expected}%: 100% to stable",
        }[pending.verdict]
        kind = {"promote": Kind.STEP, "finalize": Kind.FINALIZE, "rollback": Kind.ROLLBACK}[pending.verdict]
        self._tell(kind, summary, pending.reasons, pending.evidence, state=state, commit=sha)
        done = "finalizing" if self.rollout.spec.finalize.action == "promote-ga" else "promoted"
        phase = {"promote": "progressing", "finalize": done, "rollback": "rolledback"}[pending.verdict]
        self._phase(phase)
        return TickResult(phase, pending.verdict, pending.reasons, windows=self.memory.windows, commit=sha)

    def _finalize(self, state: RolloutState, where: Position, now: float) -> TickResult:
        """``finalize: promote-ga``: GA gets the canary's images (one commit), then, once GA runs
        them and is ready, the traffic goes back to GA (a second commit). Each phase is derived from
        Git (:func:`position`), so a restart between the two commits repeats neither."""
        self._stop_load()
        if where.finalize == "ga-image":
            return self._promote_images(state, where)
        ready, seen = self._ga_ready(state)
        if not ready:
            # From the GA commit, or from when this process first saw it if that is later (the
            # clocks of Git's committer and ours may disagree; a restart only waits longer).
            seen_at = self.memory.first_seen.setdefault(state.head, now)
            since = max(where.since or seen_at, seen_at)
            if now - since > self.rollout.spec.analysis.sync_timeout:
                return self._pause(state, (f"GA did not become ready with {state.revision}: {seen}",))
            return TickResult("finalizing", "wait", (f"waiting for GA to run {state.revision}: {seen}",))
        reasons = (f"GA runs {state.revision} and is ready ({seen})", "canary 0%: traffic back to GA")
        sha = self._commit(state, "finalize", 0, where.weight, reasons, finalize="route-ga")
        if isinstance(sha, TickResult):
            return sha
        self._tell(
            Kind.FINALIZE,
            f"GA runs {state.revision}: traffic routed back to GA",
            reasons,
            state=state,
            commit=sha,
        )
        self._phase("promoted")
        return TickResult("promoted", "finalize", reasons, commit=sha)

    def _promote_images(self, state: RolloutState, where: Position) -> TickResult:
        if not self.leadership.is_leader():
            return TickResult("finalizing", "wait", ("not the leader: no commit",))
        reasons = (where.reason, f"canary keeps {where.weight}% until GA runs {state.revision}")
        try:
            result = self.workspace.promote_images(
                self.rollout, reasons=list(reasons), expected=state.weights
            )
        except HumanOverrideError as exc:
            decision(log, self.key, "adopt", [str(exc)])
            return TickResult("finalizing", "none", (str(exc),))
        except GitopsError as exc:
            return self._git_failed(self.clock(), f"cannot commit the GA images: {exc}")
        self.memory.git_failures = 0
        if result.sha is None:  # GA has them already (a commit of a run that died, or a person)
            return TickResult("finalizing", "wait", ("GA already names the canary's images",))
        self.metrics.commits.labels(rollout=self.key, verdict="finalize").inc()
        decision(log, self.key, "finalize", list(reasons), weight=where.weight, commit=result.sha)
        self._tell(
            Kind.FINALIZE,
            f"GA manifest now names {state.revision}; traffic goes back to GA once it is ready",
            reasons,
            state=state,
            commit=str(result.sha),
        )
        return TickResult("finalizing", "finalize", reasons, commit=str(result.sha))

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

    def _pause(
        self, state: RolloutState, reasons: Sequence[str], evidence: Mapping[str, float] | None = None
    ) -> TickResult:
        if not self.leadership.is_leader():
            return TickResult("progressing", "wait", ("not the leader: no commit",))
        try:
            result = self.workspace.record(self.rollout, "pause", reasons=with_evidence(reasons, evidence))
        except GitopsError as exc:
            self.memory.pending = Pending(
                "pause", state.weights.canary, state.weights.canary, tuple(reasons), {}
            )
            return self._git_failed(self.clock(), f"cannot record the pause: {exc}")
        self.memory.pending = None
        self._stop_load()
        self.metrics.commits.labels(rollout=self.key, verdict="pause").inc()
        self._phase("paused")
        self._tell(
            Kind.PAUSE,
            f"rollout paused at {state.weights.canary}%",
            reasons,
            evidence,
            state=state,
            commit=result.sha or "",
        )
        return TickResult("paused", "pause", tuple(reasons), commit=result.sha)

    def _commit(
        self,
        state: RolloutState,
        verdict: str,
        weight: int,
        expected: int,
        reasons: Sequence[str],
        *,
        finalize: str | None = None,
        label: str | None = None,
    ) -> str | TickResult:
        """Commit ``weight`` (expecting ``expected`` on the remote); the sha, or the tick's result."""
        if not self.leadership.is_leader():
            return TickResult("progressing", "wait", ("not the leader: no commit",))
        steps = self.rollout.spec.steps
        try:
            result = self.workspace.set_weights(
                self.rollout,
                Weights.for_canary(weight),
                verdict=verdict,
                reasons=list(reasons),
                # A rollback names the step it was decided at.
                step=step_label(steps, expected if verdict == "rollback" else weight),
                expected=Weights.for_canary(expected),
                finalize=finalize,
                label=label,
            )
        except HumanOverrideError as exc:
            self.memory.pending = None  # a human's weights win; the next tick adopts them
            decision(log, self.key, "adopt", [str(exc)])
            return TickResult("progressing", "none", (str(exc),))
        except GitopsError as exc:
            return self._git_failed(self.clock(), f"cannot commit {verdict}: {exc}")
        self.memory.git_failures = 0
        if result.attempts > 1:
            self.metrics.git_push_retries.labels(rollout=self.key).inc(result.attempts - 1)
        self.metrics.commits.labels(rollout=self.key, verdict=verdict).inc()
        self.metrics.set_weight(self.key, weight)
        self._weight = weight
        decision(log, self.key, verdict, list(reasons), weight=weight, commit=result.sha)
        return str(result.sha or result.head)

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
        return TickResult("unknown", "error", (message,))

    def _metrics_failed(self, state: RolloutState, where: Position, message: str) -> TickResult:
        m = self.memory
        m.errors += 1
        self.metrics.prometheus_errors.labels(rollout=self.key).inc()
        analysis = self.rollout.spec.analysis
        reasons = (f"metrics unavailable ({m.errors} of {analysis.threshold} in a row): {message}",)
        decision(log, self.key, "hold", list(reasons), level=logging.WARNING, weight=where.weight)
        if m.errors < analysis.threshold:
            return TickResult("progressing", "hold", reasons)
        if analysis.on_error == "rollback":
            return self._apply(state, Pending("rollback", 0, where.weight, reasons, {}))
        return self._pause(state, reasons)

    def _ensure_load(self, state: RolloutState, where: Position) -> TickResult | None:
        spec, m = self.rollout.spec.load, self.memory
        if spec.mode == "none":
            return None
        interval = self.rollout.spec.analysis.interval
        request = LoadRequest(
            target=str(spec.target),
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
            return self._pause(state, (f"load refused: {exc}",))
        except LoadUnavailableError as exc:
            reasons = (f"load endpoint down: {exc}",)
            decision(log, self.key, "hold", list(reasons), level=logging.WARNING)
            if not m.load_down:
                m.load_down = True
                self._tell(Kind.ERROR, "load endpoint down: analysis holds", reasons, state=state)
            return TickResult("progressing", "hold", reasons)
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
        decision(
            log,
            self.key,
            verdict.action,
            list(verdict.reasons),
            weight=where.weight,
            window=self.memory.windows,
            evidence=dict(verdict.evidence),
        )

    def _phase(self, phase: str) -> None:
        # The gauge's phases are Flagger-like; starting and finalizing are part of progressing.
        self.metrics.set_phase(self.key, "progressing" if phase in ("start", "finalizing") else phase)

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
