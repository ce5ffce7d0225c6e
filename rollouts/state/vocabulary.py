"""The words of the protocol and of the state machine: one enum per concept.

``CommitVerdict`` is what a ``Rollout-Verdict`` trailer may say; ``Phase`` is where a rollout stands
(derived from Git alone); ``Action`` is what one tick did. The controller's metrics, the machine, the
CLI and the report all use these; nothing else spells them as free strings. Enums are ``StrEnum``, so
``Phase.PROMOTED == "promoted"`` and they print as the word (logs, JSON, metric labels).

This module must never import Git, the cluster or the analyzer: it is vocabulary only.
"""

from __future__ import annotations

from enum import StrEnum


class CommitVerdict(StrEnum):
    """The ``Rollout-Verdict`` of one of our commits."""

    PROMOTE = "promote"  # the controller moved the canary to the next step (or started it)
    ROLLBACK = "rollback"  # the controller routed 100 % back to stable after evidence of harm
    ABORT = "abort"  # a person aborted: weights to stable (or an empty commit), and paused
    MANUAL = "manual"  # a person set the weights (``rollouts set-weight``/``promote``)
    FINALIZE = "finalize"  # the last step passed (100 %), or a ``finalize: promote-ga`` stage
    PAUSE = "pause"  # an empty commit: the controller (or a person) paused the rollout
    RESUME = "resume"  # an empty commit: a person resumed it


#: Verdicts of commits that set weights, and of empty commits that only record a decision.
WEIGHT_VERDICTS: tuple[CommitVerdict, ...] = (
    CommitVerdict.PROMOTE,
    CommitVerdict.ROLLBACK,
    CommitVerdict.ABORT,
    CommitVerdict.MANUAL,
    CommitVerdict.FINALIZE,
)
RECORD_VERDICTS: tuple[CommitVerdict, ...] = (CommitVerdict.PAUSE, CommitVerdict.RESUME, CommitVerdict.ABORT)
ALL_VERDICTS: tuple[CommitVerdict, ...] = tuple(dict.fromkeys(WEIGHT_VERDICTS + RECORD_VERDICTS))


class FinalizeStage(StrEnum):
    """The ``Rollout-Finalize`` trailer of ``finalize: promote-ga``'s two commits."""

    GA_IMAGE = "ga-image"  # the canary's images were copied into the GA manifest
    ROUTE_GA = "route-ga"  # GA runs them: the traffic went back to GA (canary 0 %)


class Phase(StrEnum):
    """Where a rollout stands. Derived from Git (``UNKNOWN``: Git could not be read this tick)."""

    START = "start"  # a canary revision that has not been rolled out: the first step is due
    PROGRESSING = "progressing"  # a step is being analysed
    FINALIZING = "finalizing"  # ``finalize: promote-ga`` between its two commits
    PAUSED = "paused"  # a pause or abort commit is the latest record
    PROMOTED = "promoted"  # the canary serves 100 % (or, promote-ga: GA runs it)
    ROLLEDBACK = "rolledback"  # the canary is at 0 % after a rollback (or a person's 0 %)
    UNKNOWN = "unknown"  # Git unread (backoff, error): nothing is known this tick

    @property
    def gauge(self) -> str:
        """The ``rollouts_phase`` label (Flagger-like: starting and finalizing are progressing)."""
        return Phase.PROGRESSING.value if self in (Phase.START, Phase.FINALIZING) else self.value


#: The ``phase`` label values of ``rollouts_phase``, one per reachable gauge phase.
GAUGE_PHASES: tuple[str, ...] = tuple(dict.fromkeys(p.gauge for p in Phase if p is not Phase.UNKNOWN))


class Action(StrEnum):
    """What one tick did (``TickResult.action``)."""

    NONE = "none"  # nothing to do in this phase
    START = "start"  # committed the first step
    HOLD = "hold"  # judged windows (or could not), staying at the step
    PROMOTE = "promote"  # committed the next step
    FINALIZE = "finalize"  # committed 100 %, or a promote-ga stage
    ROLLBACK = "rollback"  # committed 0 %
    PAUSE = "pause"  # recorded a pause
    WAIT = "wait"  # waiting (sync gate, GA readiness, Git backoff, not the leader)
    ERROR = "error"  # Git or the rollout's files could not be read or written
