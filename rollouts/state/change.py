"""What one weight commit changes and says: :class:`WeightChange`, written by the machine and the CLI,
committed by the workspace.

It is the message's content before the message exists: the new weights, the verdict and reasons,
the step label and the ``Rollout-Finalize`` stage; plus ``expected``, the weights its author
believes are live (others on the remote are a person's and win), and ``route``, the strategy
state to apply with the weights (the mirror block of the mirror stage, or none of it). It must
never touch Git.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollouts.routes import Weights
from rollouts.spec_strategy import RouteState
from rollouts.state.errors import MessageError
from rollouts.state.message import format_message, weights_subject
from rollouts.state.vocabulary import WEIGHT_VERDICTS, CommitVerdict, FinalizeStage


@dataclass(frozen=True)
class WeightChange:
    """One commit that sets the route's weights.

    ``label`` replaces the verdict in the subject's parentheses (``restart``); ``finalize`` adds
    the ``Rollout-Finalize`` trailer (``finalize: promote-ga``'s second commit). ``route``: the
    route state the commit applies (weights, match, mirror; :func:`rollouts.spec_strategy.apply_state`);
    None: only the weights change. Its weights must be ``weights``. With a ``route``, a commit whose
    weights stay (the mirror stage at 0 %, the rollback that removes it) is still a change.
    ``record_unchanged``: commit (an empty commit) even when the route is already in this state: a
    verdict whose route does not change (the preview stage's rollback, the end of a blue/green
    post-promotion analysis at 100 %).
    """

    weights: Weights
    verdict: CommitVerdict
    reasons: tuple[str, ...] = ()
    step: str | None = None
    expected: Weights | None = None
    finalize: FinalizeStage | None = None
    label: str | None = None
    route: RouteState | None = None
    record_unchanged: bool = False

    def __post_init__(self) -> None:
        if self.route is not None and self.route.weights != self.weights:
            raise ValueError("route.weights must be the change's weights")
        if self.verdict not in WEIGHT_VERDICTS:
            raise MessageError(
                f"verdict must be one of {', '.join(WEIGHT_VERDICTS)}, got {str(self.verdict)!r}"
            )
        object.__setattr__(self, "verdict", CommitVerdict(self.verdict))
        if self.finalize is not None:
            object.__setattr__(self, "finalize", FinalizeStage(self.finalize))
        object.__setattr__(self, "reasons", tuple(self.reasons))

    def message(self, rollout_key: str, name: str, before: Weights, revision: str | None) -> str:
        """The commit message for a change from ``before`` (``revision``: the canary's, if known)."""
        subject = weights_subject(name, before.canary, self.weights.canary, self.label or self.verdict)
        return format_message(
            rollout_key,
            subject,
            verdict=self.verdict,
            reasons=self.reasons,
            step=self.step,
            revision=revision,
            finalize=self.finalize,
        )
