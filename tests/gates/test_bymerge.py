"""The pure decisions of commits by merge on a protected branch: which commits go by a branch of
ours, its name, which waiting branches hold the rollout, where one stands, and what status says."""

from __future__ import annotations

import pytest

from rollouts.gates.approval import approval_branch, proposal_branch, revision_prefix
from rollouts.gates.bymerge import MergeWait, by_merge, holds, kind_from, kind_of, leaf, standing
from rollouts.routes import Weights
from rollouts.spec_gates import ApprovalSpec
from rollouts.state import CommitVerdict, FinalizeStage, WeightChange

KINDS = ("step", "stage", "rollback", "ga-image", "route-ga", "pause")


@pytest.mark.parametrize(
    ("protected", "direct", "by_pr"),
    [
        (False, True, set()),
        (False, False, set()),  # directRollback means nothing without protectedBranch
        (True, True, set(KINDS) - {"rollback"}),
        (True, False, set(KINDS)),
    ],
)
def test_which_commits_go_by_merge(protected: bool, direct: bool, by_pr: set[str]) -> None:
    spec = ApprovalSpec.model_validate({"protectedBranch": protected, "directRollback": direct})
    assert {k for k in KINDS if by_merge(spec, k)} == by_pr  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "kind", "last"),
    [
        (WeightChange(Weights(0, 100), CommitVerdict.ROLLBACK, step="2/3"), "rollback", "rollback"),
        (WeightChange(Weights(40, 60), CommitVerdict.PROMOTE, step="2/3"), "step", "step-2"),
        (WeightChange(Weights(0, 100), CommitVerdict.FINALIZE, step="3/3"), "step", "step-3"),
        (
            WeightChange(Weights(100, 0), CommitVerdict.FINALIZE, finalize=FinalizeStage.ROUTE_GA),
            "route-ga",
            "route-ga",
        ),
        (WeightChange(Weights(100, 0), CommitVerdict.PROMOTE, step="mirror"), "stage", "mirror"),
    ],
)
def test_the_kind_and_branch_of_a_weight_commit(change: WeightChange, kind: str, last: str) -> None:
    assert kind_of(change) == kind
    assert leaf(kind_of(change), step=change.step) == last
    branch = proposal_branch("rollouts", "test", "podinfo", "0.2.0", last)
    assert branch == f"rollouts/test/podinfo/0.2.0/{last}"
    assert kind_from(branch) == kind
    assert holds(branch) == (kind != "step")  # a step's approval does not hold the analysis


def test_branch_names_share_the_steps_scheme() -> None:
    assert approval_branch("rollouts", "test", "podinfo", "0.2.0", 2) == "rollouts/test/podinfo/0.2.0/step-2"
    assert (
        revision_prefix("team/rollouts", "test", "podinfo", "0.2.0+b.1")
        == "team/rollouts/test/podinfo/0.2.0-b.1/"
    )
    assert leaf("pause", pauses=0) == "pause-1" and leaf("pause", pauses=2) == "pause-3"
    assert leaf("ga-image") == "ga-image" and kind_from("r/t/p/1/pause-3") == "pause"
    assert kind_from("r/t/p/1/rollback-2") == "rollback"  # the same revision rolled out again
    assert kind_from("r/t/p/1/mirror") == "stage" and not holds("r/t/p/1/step-12")


@pytest.mark.parametrize(
    ("landed", "exists", "review", "state"),
    [
        (True, False, None, "landed"),  # merged, branch deleted (as forges do)
        (True, True, "open", "landed"),  # the line is on the watched branch: the forge lags
        (False, True, "merged", "landed"),  # a squash that kept only the title
        (False, True, None, "waiting"),
        (False, True, "open", "waiting"),
        (False, True, "closed", "closed"),  # still holds: nothing but a merge ends the wait
        (False, False, None, None),  # deleted unmerged: no longer holds
        (False, False, "closed", None),
    ],
)
def test_where_a_branch_of_ours_stands(landed: bool, exists: bool, review, state) -> None:
    assert standing(landed=landed, exists=exists, review=review) == state


def test_what_status_says_while_a_rollback_waits_and_when_it_lands() -> None:
    branch = "rollouts/test/podinfo/0.2.0/rollback"
    reasons = ("latency harm at 10%: e-value 41 > 20", 'Evidence: {"e_harm": 41}')
    waiting = MergeWait("rollback", branch, "waiting", reasons, "https://x/pull/2", since=1000.0)
    assert waiting.text("test/podinfo", now=1180.0) == (
        f"test/podinfo: rollback awaiting merge: merge https://x/pull/2 (branch {branch}), "
        "since 1970-01-01 00:16:40Z (3 min); rollback: latency harm at 10%: e-value 41 > 20"
    )
    closed = MergeWait("rollback", branch, "closed", (), None)
    assert "closed unmerged: the rollout still holds" in closed.text("test/podinfo", now=0)
    landed = MergeWait("ga-image", branch, "landed", (), commit="0123456789abcdef")
    assert landed.text("k", now=0) == (
        f"k: GA image commit (finalize, stage 1 of 2) merged (0123456789ab): branch {branch}"
    )
