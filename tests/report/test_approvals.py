"""Time spent waiting for approval, read from real Git: a merge commit (GitHub's message), a rebase
(author time kept, committer time the merge's), and the page's line per step, escaped."""

from __future__ import annotations

import git as gitpython
import pytest

from rollouts.report import read_timeline, read_waits, render
from rollouts.report.metrics import StepMetricsReport
from tests.fixtures.gitrepo import git, make_spec, vs_with
from tests.report.test_history_edges import commit, repo  # noqa: F401  (the fixture)

T0 = 1_700_000_000
BRANCH = "rollouts/test/podinfo/0.2.0/step-2"


def _at(monkeypatch: pytest.MonkeyPatch, when: int) -> None:
    monkeypatch.setenv("GIT_COMMITTER_DATE", f"{when} +0000")
    monkeypatch.setenv("GIT_AUTHOR_DATE", f"{when} +0000")


def _proposal(path, branch: str, canary: int, step: str, when: int, *, ref: str | None = None) -> None:
    git(path, "checkout", "--quiet", "-b", ref or branch)
    message = (
        f"podinfo: canary -> {canary}% (approval)\n\nRollout: test/podinfo\nRollout-Verdict: promote\n"
        f"Rollout-Step: {step}\nRollout-Approval: {branch}\n"
    )  # ``ref``: a Git branch named otherwise than the line (a line Git could not name)
    commit(path, vs_with(100 - canary, canary), message, when)
    git(path, "checkout", "--quiet", "master")


def test_waits_for_a_merge_and_a_rebase_are_read_from_git(repo, monkeypatch) -> None:  # noqa: F811
    _at(monkeypatch, T0)
    commit(repo, vs_with(90, 10), "podinfo: canary 10%", T0)
    _proposal(repo, BRANCH, 60, "2/3", T0 + 60)
    _at(monkeypatch, T0 + 60 + 600)  # merged ten minutes later, by pull request #7
    git(repo, "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #7 from team/{BRANCH}", BRANCH)
    last = "rollouts/test/podinfo/0.2.0/step-3"
    _proposal(repo, last, 100, "3/3", T0 + 1000)
    _at(monkeypatch, T0 + 1000 + 1500)  # rebase-merged 25 min later: a new commit, author time kept
    monkeypatch.delenv("GIT_AUTHOR_DATE")
    git(repo, "cherry-pick", "--quiet", last)
    waits = read_waits(gitpython.Repo(repo), "master")
    assert [(w.branch, w.step, w.minutes, w.request) for w in waits] == [
        (BRANCH, "2/3", 10, "#7"),
        (last, "3/3", 25, None),
    ]
    assert waits[0].landed == T0 + 660 and waits[1].landed == T0 + 2500
    timeline = read_timeline(gitpython.Repo(repo), make_spec(str(repo)))
    none = StepMetricsReport(url=None, steps=(), selection=None, error="none")
    page = render(timeline, none, generated=0, end=0, approvals=waits).html
    assert f"step 2/3: waited 10 min for approval on branch <code>{BRANCH}</code> (request #7)" in page
    assert f"step 3/3: waited 25 min for approval on branch <code>{last}</code> (request unknown)" in page


def test_no_approval_no_section_and_branch_names_are_escaped(repo, monkeypatch) -> None:  # noqa: F811
    _at(monkeypatch, T0)
    commit(repo, vs_with(90, 10), "podinfo: canary 10%", T0)
    timeline = read_timeline(gitpython.Repo(repo), make_spec(str(repo)))
    none = StepMetricsReport(url=None, steps=(), selection=None, error="none")
    assert read_waits(gitpython.Repo(repo), "master") == ()
    assert 'id="approvals"' not in render(timeline, none, generated=0, end=0).html
    odd = "rollouts/<b>x</b>"
    _proposal(repo, odd, 60, "2/3", T0 + 60, ref="odd")
    git(repo, "merge", "--quiet", "--no-ff", "-m", "merge", "odd")
    (wait,) = read_waits(gitpython.Repo(repo), "master")
    page = render(timeline, none, generated=0, end=0, approvals=(wait,)).html
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_wait_on_a_protected_branch_is_named_for_what_waited() -> None:
    from rollouts.report.approvals import ApprovalWait

    def wait(leaf: str) -> ApprovalWait:
        return ApprovalWait(f"rollouts/test/podinfo/0.2.0/{leaf}", "1/3", 0, 600, "abc", None)

    assert wait("step-2").label == "step 1/3"
    assert wait("rollback").label == "rollback" and wait("rollback").minutes == 10
    assert wait("route-ga").label == "route back to GA (finalize, stage 2 of 2)"
    assert wait("pause-1").label == "pause record"
