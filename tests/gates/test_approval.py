"""Approval as a merge: which steps wait, our branch's name, and recognising our change on the watched
branch whatever the merge strategy (real Git: merge commit, squash, rebase), never by SHA."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rollouts.gates.approval import (
    ApprovalFacts,
    approval_branch,
    approval_line,
    carries,
    decide,
    gated,
    landed,
)
from rollouts.routes import Weights
from rollouts.spec_gates import ApprovalSpec
from tests.fixtures.gitrepo import bare_remote, git

BRANCH = "rollouts/test/podinfo/0.2.0/step-2"
STEPS = [10, 60, 100]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, [False, False, False]),
        ({"confirmRollout": True}, [True, False, False]),
        ({"confirmTrafficIncrease": [60]}, [False, True, False]),
        ({"confirmTrafficIncrease": True}, [False, True, True]),
        ({"confirmPromotion": True}, [False, False, True]),
    ],
)
def test_which_steps_wait(spec: dict[str, object], expected: list[bool]) -> None:
    approval = ApprovalSpec.model_validate(spec)
    assert [gated(approval, STEPS, i) for i in range(3)] == expected


def test_branch_names_are_safe_refs() -> None:
    assert approval_branch("rollouts", "test", "podinfo", "0.2.0", 2) == BRANCH
    odd = approval_branch("rollouts", "test", "podinfo", "sha256:ab..cd@{x} y~^.lock", 3)
    done = subprocess.run(["git", "check-ref-format", f"refs/heads/{odd}"], check=False)
    assert done.returncode == 0, odd
    assert ".." not in odd and "@{" not in odd and " " not in odd and not odd.endswith(".lock")


def _message() -> str:
    return (
        "podinfo: canary 10% -> 60% (promote)\n\n- non-inferiority established at weight 10\n\n"
        "Rollout: test/podinfo\nRollout-Step: 2/3\nRollout-Revision: 0.2.0\nRollout-Verdict: promote\n"
        f"{approval_line(BRANCH)}\n"
    )


def _approval_branch(tmp_path: Path):
    remote = bare_remote(tmp_path)
    remote.seed({"route.yaml": "canary: 10\n"}, "seed")
    git(remote.human, "push", "--quiet", "origin", "master")
    git(remote.human, "checkout", "--quiet", "-b", BRANCH)
    (remote.human / "route.yaml").write_text("canary: 60\n")
    git(remote.human, "commit", "--quiet", "-am", _message())
    ours = git(remote.human, "rev-parse", "HEAD").strip()
    git(remote.human, "checkout", "--quiet", "master")
    # Someone else's commit on master meanwhile, so every strategy makes new SHAs.
    (remote.human / "other.txt").write_text("x\n")
    git(remote.human, "add", "other.txt")
    git(remote.human, "commit", "--quiet", "-m", "unrelated change")
    return remote, ours


def _log(cwd: Path) -> list[tuple[str, str]]:
    out = git(cwd, "log", "--format=%H%x1f%B%x1e", "master")
    return [tuple(chunk.strip("\n").split("\x1f", 1)) for chunk in out.split("\x1e") if chunk.strip()]


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
def test_our_change_is_recognised_whatever_the_merge_strategy(tmp_path: Path, strategy: str) -> None:
    remote, ours = _approval_branch(tmp_path)
    assert landed(_log(remote.human), BRANCH) is None  # not merged yet
    human = remote.human
    if strategy == "merge":
        git(human, "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #12 from org/{BRANCH}", BRANCH)
    elif strategy == "squash":
        git(human, "merge", "--quiet", "--squash", BRANCH)
        body = "* " + _message().replace("\n", "\n", 1)  # GitHub: the title, then each commit's message
        git(
            human,
            "commit",
            "--quiet",
            "-m",
            f"podinfo: canary 60% (approval) (#12)\n\n{body}\nCo-authored-by: A <a@x>",
        )
    else:
        git(human, "cherry-pick", "--allow-empty", BRANCH)  # what a rebase merge does to each commit
    found = landed(_log(human), BRANCH)
    assert found is not None
    if strategy != "merge":
        assert found != ours  # a new SHA: recognised by the line, not the SHA
    assert (human / "route.yaml").read_text() == "canary: 60\n"


def test_the_line_must_be_ours_exactly() -> None:
    assert carries(_message(), BRANCH)
    assert carries("squash\n\n* " + approval_line(BRANCH), BRANCH)
    assert not carries(_message(), BRANCH + "-other")
    assert not carries("mentions Rollout-Approval: in passing " + BRANCH, BRANCH)


def facts(**kw) -> ApprovalFacts:
    base = {
        "branch": BRANCH,
        "expected": Weights(40, 60),
        "current": Weights(90, 10),
        "landed_commit": None,
        "branch_exists": True,
        "review_url": "https://github.com/org/cluster/pull/12",
        "opened_at": 1764580000.0,
    }
    return ApprovalFacts(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "state", "reason"),
    [
        ({}, "waiting", "waiting for approval: merge https://github.com/org/cluster/pull/12"),
        ({"review": "open"}, "waiting", "waiting for approval"),
        ({"landed_commit": "a" * 40, "current": Weights(40, 60)}, "approved", "approved: https://"),
        ({"review": "merged", "current": Weights(40, 60)}, "approved", "merged"),
        ({"landed_commit": "b" * 40}, "dropped", "the merge dropped our change"),
        ({"review": "merged"}, "dropped", "does not carry its weights (canary 60% expected, 10% found)"),
        (
            {"review": "closed"},
            "rejected",
            "approval rejected: https://github.com/org/cluster/pull/12 was closed",
        ),
        (
            {"branch_exists": False, "review_url": None},
            "rejected",
            f"approval rejected: branch {BRANCH} was deleted before its merge",
        ),
    ],
)
def test_decide(kw: dict[str, object], state: str, reason: str) -> None:
    status = decide(facts(**kw))
    assert status.state == state and reason in status.reason
    assert status.since == 1764580000.0 and status.branch == BRANCH
