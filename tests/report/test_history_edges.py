"""Histories the controller did not write: broken route files, files that come later, long logs."""

from __future__ import annotations

import git as gitpython
import pytest

from rollouts.report import read_timeline, render
from rollouts.report.metrics import StepMetricsReport
from rollouts.routes import Weights
from tests.fixtures.gitrepo import DESTINATION_RULE, git, make_spec, vs_with
from tests.support import require_binary

ROUTE = "workloads/podinfo/virtual-service.yaml"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    require_binary("git")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    git(tmp_path, "init", "--quiet", "--initial-branch=master", str(tmp_path / "repo"))
    path = tmp_path / "repo"
    (path / "README").write_text("cluster\n")
    git(path, "add", ".")
    git(path, "commit", "--quiet", "-m", "start")  # before the route file exists
    return path


def commit(path, text, message, when):
    (path / ROUTE).parent.mkdir(parents=True, exist_ok=True)
    (path / ROUTE).write_text(text)
    (path / "workloads/podinfo/destination-rule.yaml").write_text(DESTINATION_RULE)
    git(path, "add", ".")
    env_date = f"{when} +0000"
    git(path, "-c", "user.name=Human", "commit", "--quiet", "-m", message, f"--date={env_date}")


def test_a_broken_route_file_is_an_event_with_the_error(repo, monkeypatch):
    monkeypatch.setenv("GIT_COMMITTER_DATE", "1700000000 +0000")
    commit(repo, vs_with(100, 0), "add the route", 1_700_000_000)
    monkeypatch.setenv("GIT_COMMITTER_DATE", "1700000100 +0000")
    commit(repo, "spec: [unclosed\n", "oops", 1_700_000_100)
    monkeypatch.setenv("GIT_COMMITTER_DATE", "1700000200 +0000")
    commit(repo, vs_with(80, 20), "fix it, canary at 20", 1_700_000_200)
    timeline = read_timeline(gitpython.Repo(repo), make_spec(str(repo)))
    assert [e.subject for e in timeline.events] == ["add the route", "oops", "fix it, canary at 20"]
    added, broken, fixed = timeline.events
    assert (added.before, added.after) == (None, Weights(100, 0)) and added.error is None
    assert broken.after is None and (broken.error or "").startswith(f"{ROUTE}: malformed YAML")
    assert (fixed.before, fixed.after) == (None, Weights(80, 20))
    steps = timeline.steps(1_700_000_300)
    assert [(s.weights.canary, s.start, s.end) for s in steps] == [
        (0, 1_700_000_000, 1_700_000_200),
        (20, 1_700_000_200, 1_700_000_300),
    ]
    page = render(
        timeline, StepMetricsReport(url=None, steps=(), selection=None, error="none"), generated=0, end=0
    ).html
    assert f"{ROUTE}: malformed YAML" in page  # shown in the commit's row


def test_only_the_newest_commits_are_read_and_the_page_says_so(repo, monkeypatch):
    for i in range(6):
        monkeypatch.setenv("GIT_COMMITTER_DATE", f"{1_700_000_000 + i} +0000")
        commit(repo, vs_with(100 - 10 * i, 10 * i), f"canary {10 * i}", 1_700_000_000 + i)
    timeline = read_timeline(gitpython.Repo(repo), make_spec(str(repo)), max_commits=4)
    assert [e.subject for e in timeline.events] == ["canary 20", "canary 30", "canary 40", "canary 50"]
    assert timeline.truncated and timeline.notes == ("only the newest 4 commits were read",)
    assert timeline.events[0].before == Weights(90, 10)
