"""``approval: merge`` on real Git: the hand-over waits on a branch of ours (and its pull request on
the recorded GitHub API) and counts once a person merges it, whatever the merge strategy.

The world is the pipeline tests' two bare remotes; the forge is :mod:`tests.forge.forgeapi` on
loopback. Every check reads the bare remotes themselves (``git`` on them), never the runner's cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollouts.forge import ForgeConfig, forge_for
from rollouts.forge.base import Retry
from rollouts.gitops import Workspace
from rollouts.pipeline import TransitionState, plan
from rollouts.pipeline.job import format_status
from rollouts.pipeline.runner import PipelineRunner, load_pipeline
from tests.fixtures.gitrepo import GUIDE_CANARY, Remote, git
from tests.forge.forgeapi import TOKEN, ForgeApi
from tests.forge.forgeapi import serve as serve_forge
from tests.pipeline.world import deployment, walk

BRANCH = "rollouts/pipeline/test/podinfo/production/0.2.0"
BRANCH_021 = "rollouts/pipeline/test/podinfo/production/0.2.1"


@pytest.fixture
def forge_api() -> Iterator[ForgeApi]:
    yield from serve_forge()


def forge(api: ForgeApi, kind: str = "github"):
    repository = "org/cluster" if kind == "github" else "group/cluster"
    cfg = ForgeConfig(kind=kind, repository=repository, token=TOKEN, url=api.base)
    return forge_for(cfg, retry=Retry(attempts=2, backoff=0.01, sleep=lambda s: None), timeout=5)


def merge_pipeline(specs: Path, promotion: str = "approval: merge"):
    text = (specs / "pipeline.yaml").read_text().replace("soak: 10m", promotion)
    (specs / "pipeline.yaml").write_text(text)
    return load_pipeline(specs / "pipeline.yaml")


def runner(
    loaded, cache: Path, now: datetime, api: ForgeApi | None = None, kind: str = "github"
) -> PipelineRunner:
    """A runner as a (re)started controller makes it: its own workspaces on ``cache``."""
    workspaces = {s.name: Workspace.for_spec(s.rollout, cache_dir=cache) for s in loaded.stages}
    forges = {"production": forge(api, kind)} if api is not None else {}
    return PipelineRunner(loaded, workspaces, clock=lambda: now, forges=forges)


def branches(remote: Remote) -> list[str]:
    return git(remote.bare, "branch", "--list", "rollouts/*", "--format=%(refname:short)").split()


def handovers(remote: Remote) -> list[str]:
    """The hand-over commits reachable from master."""
    out = git(remote.bare, "log", "--format=%H", "--grep=Rollout-Verdict: handover", "master")
    return out.split()


def merge(remote: Remote, branch: str, how: str) -> None:
    """A person merges ``branch`` into master the way a forge's button would."""
    git(remote.human, "pull", "--quiet", "origin", "master")
    git(remote.human, "fetch", "--quiet", "origin", branch)
    if how == "merge-commit":
        git(
            remote.human,
            "merge",
            "--quiet",
            "--no-ff",
            "-m",
            f"Merge pull request #1 from org/{branch}",
            "FETCH_HEAD",
        )
    elif how == "fast-forward":
        git(remote.human, "merge", "--quiet", "--ff-only", "FETCH_HEAD")
    elif how == "rebase":  # a person's commit landed first: the forge replays ours on top (a new sha)
        (remote.human / "README.md").write_text("notes\n")
        git(remote.human, "add", "README.md")
        git(remote.human, "commit", "--quiet", "-m", "docs: a note")
        git(remote.human, "cherry-pick", "FETCH_HEAD")
    else:  # squash, GitLab's default template: the title only, none of our trailers
        git(remote.human, "merge", "--quiet", "--squash", "FETCH_HEAD")
        git(remote.human, "commit", "--quiet", "-m", "podinfo-prod: hand 0.2.0 over (#1)")
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")


URLS = {
    "github": "https://github.com/org/cluster/pull/1",
    "gitlab": "https://gitlab.example/group/cluster/-/merge_requests/1",
}


@pytest.mark.parametrize(
    ("how", "kind"),
    [("merge-commit", "github"), ("squash", "gitlab"), ("fast-forward", None), ("rebase", None)],
)
def test_the_handover_waits_for_its_merge_then_counts_once(world, forge_api, tmp_path, how, kind) -> None:
    loaded, workspaces, _staging, production, specs = world
    loaded = merge_pipeline(specs)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    now = datetime.now(UTC) + timedelta(minutes=1)
    before = production.head()
    api = forge_api if kind else None  # fast-forward, rebase: Git alone, no forge
    where = URLS[kind] if kind else f"branch {BRANCH}"

    first = runner(loaded, tmp_path / "c1", now, api, kind or "github").tick()
    assert [h.outcome for h in first.handovers] == ["proposed"], first.handovers
    assert first.handovers[0].detail == f"merge {where} to hand it over"
    assert production.head() == before  # the watched branch is untouched: production has not started
    assert branches(production) == [BRANCH]
    message = git(production.bare, "log", "-1", "--format=%B", BRANCH)
    for line in ("Rollout-Verdict: handover", "Rollout-Source: staging", f"Rollout-Approval: {BRANCH}"):
        assert line in message
    assert "podinfo:0.2.0" in git(production.bare, "show", f"{BRANCH}:{GUIDE_CANARY}")
    if kind:
        request = (forge_api.pulls if kind == "github" else forge_api.mrs)[1]
        body = request.get("body") or request["description"]
        assert "0.2.0 passed staging: finalized in" in body and "hand 0.2.0 over" in request["title"]
        assert "- ok" in body  # staging's own evidence, from its finalize commit

    # A restarted controller (a fresh process, same cache) finds the branch and the request again.
    again = runner(loaded, tmp_path / "c1", now, api, kind or "github")
    tick = again.tick()
    (t,) = tick.plan.transitions
    assert t.state is TransitionState.AWAITING_APPROVAL and t.review_url == (URLS[kind] if kind else None)
    assert tick.handovers == () and forge_api.creates() == (1 if kind else 0)
    assert branches(production) == [BRANCH]
    status = format_status(again.key, again.assess())
    branch = f" (branch {BRANCH})" if kind else ""
    assert (
        "staging -> production: awaiting-approval: 0.2.0 waits for approval to enter production: "
        f"merge {where}{branch}, since " in status
    )
    assert production.head() == before

    merge(production, BRANCH, how)
    forge_api.merge(1)
    done = again.tick()
    assert done.plan.transitions[0].state is TransitionState.DONE, done.plan.transitions[0].reason
    assert done.handovers == ()
    assert "podinfo:0.2.0" in production.show(GUIDE_CANARY)
    assert len(handovers(production)) == (0 if how == "squash" else 1)
    fresh = runner(loaded, tmp_path / "c2", now, api, kind or "github").tick()  # a fresh cache too
    assert fresh.handovers == () and fresh.plan.transitions[0].state is TransitionState.DONE
    assert forge_api.creates() == (1 if kind else 0)


def test_rollouts_approve_points_at_the_branch(world, tmp_path) -> None:
    loaded, _workspaces, _staging, production, specs = world
    loaded = merge_pipeline(specs)
    before = production.head()
    with pytest.raises(ValueError, match=f"approval: merge\\): merge branch {BRANCH} "):
        runner(loaded, tmp_path / "c", datetime.now(UTC)).approve("production", "0.2.0")
    assert production.head() == before


def test_a_closed_request_blocks_the_revision_from_production(world, forge_api, tmp_path) -> None:
    loaded, workspaces, _staging, production, specs = world
    loaded = merge_pipeline(specs)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    now = datetime.now(UTC) + timedelta(minutes=1)
    r = runner(loaded, tmp_path / "c", now, forge_api)
    assert [h.outcome for h in r.tick().handovers] == ["proposed"]
    forge_api.close(1)
    before = production.head()
    for cache in ("c", "fresh"):  # the forge remembers the request: a fresh cache knows it too
        tick = runner(loaded, tmp_path / cache, now, forge_api).tick()
        (t,) = tick.plan.transitions
        assert t.state is TransitionState.BLOCKED
        assert t.reason == (
            "approval rejected: https://github.com/org/cluster/pull/1 was closed without merging; "
            "0.2.0 stays out of production"
        )
        assert tick.handovers == ()
    assert production.head() == before and forge_api.creates() == 1 and branches(production) == [BRANCH]
    status = format_status(r.key, r.assess())
    assert (
        "staging -> production: blocked: approval rejected: https://github.com/org/cluster/pull/1" in status
    )


def test_a_deleted_branch_blocks_and_is_not_proposed_again(world, tmp_path) -> None:
    loaded, workspaces, _staging, production, specs = world
    loaded = merge_pipeline(
        specs, "{approval: merge, windows: [{days: [Mon, Tue, Wed, Thu, Fri, Sat, Sun]}]}"
    )
    walk(workspaces["staging"], loaded.stages[0].rollout)
    now = datetime.now(UTC) + timedelta(minutes=1)
    r = runner(loaded, tmp_path / "c", now)  # no forge: Git alone
    tick = r.tick()
    assert [h.outcome for h in tick.handovers] == ["proposed"]
    assert tick.handovers[0].detail == f"merge branch {BRANCH} to hand it over"
    waiting = r.assess().plan.transitions[0]
    assert (
        waiting.state is TransitionState.AWAITING_APPROVAL
        and f"merge branch {BRANCH}, since" in waiting.reason
    )
    git(production.bare, "branch", "-D", BRANCH)
    for _ in range(2):
        (t,) = runner(loaded, tmp_path / "c", now).tick().plan.transitions
        assert t.state is TransitionState.BLOCKED
        assert t.reason == (
            f"approval rejected: branch {BRANCH} was deleted before its merge; 0.2.0 stays out of production"
        )
    assert branches(production) == [] and handovers(production) == []


def test_a_change_between_plan_and_proposal_wins(world, tmp_path) -> None:
    loaded, workspaces, _staging, production, specs = world
    loaded = merge_pipeline(specs)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    r = runner(loaded, tmp_path / "c", datetime.now(UTC) + timedelta(hours=1))
    facts, manifests = r.read()
    (ready,) = plan(loaded.pipeline, facts, r.clock()).ready
    assert ready.via_branch
    production.commit_file(GUIDE_CANARY, deployment("0.1.6"), "pin")  # after the read, before the branch
    outcome = r._hand_over(ready, manifests["production"], facts)
    assert outcome.outcome == "yielded" and "changed while handing over 0.2.0" in outcome.detail
    assert branches(production) == []  # no branch proposes over the person's change


def test_a_newer_revision_supersedes_the_open_request(world, forge_api, tmp_path) -> None:
    """On GitLab this time (python-gitlab; PyGithub paces its writes by a second each)."""
    loaded, workspaces, staging, production, specs = world
    loaded = merge_pipeline(specs)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    now = datetime.now(UTC) + timedelta(minutes=1)
    r = runner(loaded, tmp_path / "c", now, forge_api, "gitlab")
    assert [h.outcome for h in r.tick().handovers] == ["proposed"]
    # Image automation brings 0.2.1 to staging, which passes too, while !1 (0.2.0) is still open.
    staging.commit_file(GUIDE_CANARY, deployment("0.2.1"), "chore: bump podinfo to 0.2.1")
    walk(workspaces["staging"], loaded.stages[0].rollout)

    mr1 = "https://gitlab.example/group/cluster/-/merge_requests/1"
    status = format_status(r.key, r.assess())
    assert (
        f"superseded    {mr1} (0.2.0 into production) is superseded: "
        "staging finalized 0.2.1 since; the controller closes it on its next tick" in status
    )
    tick = r.tick()
    assert [h.outcome for h in tick.handovers] == ["superseded", "proposed"], tick.handovers
    assert tick.handovers[0].detail.endswith(f"closed {mr1}, deleted branch {BRANCH}")
    assert forge_api.mrs[1]["state"] == "closed"
    assert "staging finalized 0.2.1 since" in forge_api.comments[1][0]
    assert branches(production) == [BRANCH_021] and forge_api.mrs[2]["source_branch"] == BRANCH_021
    # Restarted: nothing more to close, one request for 0.2.1, and the status says where it stands.
    again = runner(loaded, tmp_path / "c", now, forge_api, "gitlab")
    tick = again.tick()
    assert tick.handovers == () and tick.plan.superseded == () and forge_api.creates() == 2
    (t,) = tick.plan.transitions
    assert t.state is TransitionState.AWAITING_APPROVAL and t.revision == "0.2.1"
    assert "superseded" not in format_status(again.key, again.assess())
    assert handovers(production) == []


def test_the_forge_down_only_delays_the_request(world, forge_api, tmp_path) -> None:
    loaded, workspaces, _staging, production, specs = world
    loaded = merge_pipeline(specs)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    now = datetime.now(UTC) + timedelta(minutes=1)
    forge_api.fail = [503] * 6  # every attempt of this tick's calls (two each)
    first = runner(loaded, tmp_path / "c", now, forge_api, "gitlab").tick()
    assert [h.outcome for h in first.handovers] == ["proposed"]
    assert (
        first.handovers[0].detail == f"merge branch {BRANCH} to hand it over"
    )  # proposed in Git all the same
    assert branches(production) == [BRANCH] and forge_api.creates() == 0
    forge_api.fail = []
    later = runner(loaded, tmp_path / "c", now, forge_api, "gitlab").tick()
    assert [(h.outcome, h.detail) for h in later.handovers] == [
        ("proposed", f"merge {URLS['gitlab']} to hand it over")
    ]
    assert (
        forge_api.creates() == 1 and "0.2.0 passed staging: finalized in" in forge_api.mrs[1]["description"]
    )
    assert branches(production) == [BRANCH]
