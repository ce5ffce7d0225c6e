"""The commit protocol: what one of our commits means, and the rollout's state derived from Git.

Git is the state. Every decision of the controller, and every hand-made change through the CLI, is
one commit on the rollout's branch; this package is the only place that writes or reads those
messages (:mod:`rollouts.state.message`) and the only place that turns what Git holds into a phase
(:func:`derive`). ``rollouts.gitops`` is plumbing (fetch, read, commit, push, lock); the machine, the
CLI and the report use this package's words.

One commit, as the controller writes it::

    podinfo: canary 10% -> 60% (promote)          <- subject

    - non-inferiority established at weight 10 ... <- reasons, one "- " line each
    - Evidence: {"e_harm_latency": 0.42, ...}      <- the verdict's figures (sorted JSON), if any

    Rollout: test/podinfo                          <- trailers: the last paragraph
    Rollout-Step: 2/3
    Rollout-Revision: 0.2.0
    Rollout-Verdict: promote

Subject
    ``<name>: canary <before>% -> <after>% (<verdict or label>)`` for a commit that sets weights
    (the label ``restart`` when a new revision that already served traffic is put back to step 1);
    ``<name>: GA <before> -> <revision> (finalize)`` for ``finalize: promote-ga``'s image commit;
    ``<name>: <verdict> rollout`` for an empty commit (pause, resume, abort). The subject is for
    people; nothing reads it back to decide.

Body
    One ``- reason`` line per reason (line breaks inside a reason are folded, so a reason can never
    start a line that reads as a trailer), then, when the judge's verdict had figures, one
    ``- Evidence: {json}`` line: a flat JSON object with sorted keys (e-values, counts,
    ``step_expired``). ``rollouts report`` shows it; the controller never reads it back.

Trailers (always in this order; Git reads them with ``%(trailers)``)
    ``Rollout``
        the rollout's ``namespace/name``. A commit is *ours* for a rollout only when its trailer
        paragraph names it; a ``Rollout:`` line elsewhere in a body does not count.
    ``Rollout-Step``
        ``i/n``: the weight is ``spec.steps[i-1]`` of ``n`` steps (a rollback names the step it was
        decided at). ``1/n`` with ``promote`` marks the start of a rollout of a revision.
    ``Rollout-Revision``
        the canary revision (the first image's tag) on the commit's head, when readable.
    ``Rollout-Verdict``
        :class:`CommitVerdict`: ``promote``, ``rollback``, ``finalize``, ``manual``, ``abort`` set
        weights (``abort`` may also be empty); ``pause``, ``resume`` (and an empty ``abort``) only
        record a decision. The newest pause/resume/abort decides whether the rollout is paused.
    ``Rollout-Finalize``
        ``ga-image`` or ``route-ga``: the two commits of ``finalize: promote-ga``
        (:class:`FinalizeStage`).

From these, :func:`derive` computes :class:`RolloutState` (pure; :class:`GitFacts` in), whose
:attr:`RolloutState.position` is the :class:`Phase` and step. This package must never run Git,
read files, or look at a clock.
"""

from rollouts.state.change import WeightChange
from rollouts.state.derive import (
    GitFacts,
    Position,
    Record,
    RolloutState,
    derive,
    last_weight_record,
    latest_record,
    position,
    position_of,
    record_of,
)
from rollouts.state.errors import MessageError
from rollouts.state.message import (
    Message,
    evidence_line,
    format_message,
    ga_subject,
    label_weight,
    next_weight,
    parse_message,
    record_subject,
    step_label,
    weights_subject,
    with_evidence,
)
from rollouts.state.vocabulary import (
    ALL_VERDICTS,
    GAUGE_PHASES,
    RECORD_VERDICTS,
    WEIGHT_VERDICTS,
    Action,
    CommitVerdict,
    FinalizeStage,
    Phase,
)

__all__ = [
    "ALL_VERDICTS",
    "GAUGE_PHASES",
    "RECORD_VERDICTS",
    "WEIGHT_VERDICTS",
    "Action",
    "CommitVerdict",
    "FinalizeStage",
    "GitFacts",
    "Message",
    "MessageError",
    "Phase",
    "Position",
    "Record",
    "RolloutState",
    "WeightChange",
    "derive",
    "evidence_line",
    "format_message",
    "ga_subject",
    "label_weight",
    "last_weight_record",
    "latest_record",
    "next_weight",
    "parse_message",
    "position",
    "position_of",
    "record_of",
    "record_subject",
    "step_label",
    "weights_subject",
    "with_evidence",
]
