"""The gates of a step end to end: real Git (bare remote, a person merging), real webhook servers and
the recorded forge API on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rollouts.forge import ForgeConfig, forge_for
from rollouts.forge.base import Retry
from rollouts.gates.step import StepGates
from rollouts.gates.webhooks import Webhooks
from rollouts.gitops import Workspace
from rollouts.routes import Weights
from rollouts.spec import parse_spec
from rollouts.spec_gates import WebhookSpec
from tests.fixtures.gitrepo import Remote, git, guide_rollout
from tests.forge.forgeapi import TOKEN, ForgeApi
from tests.forge.forgeapi import serve as serve_forge
from tests.gates.hookserver import HookServer
from tests.gates.hookserver import serve as serve_hooks

pytestmark = pytest.mark.integration
BRANCH = "rollouts/test/podinfo/0.2.0/step-2"


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    yield from serve_hooks()


@pytest.fixture
def forge_api() -> Iterator[ForgeApi]:
    yield from serve_forge()


def rollout(remote: Remote, **sections):
    return parse_spec(guide_rollout(str(remote.bare), **sections))


def gates(spec, cache, *, hooks=(), forge=None, threshold=None) -> StepGates:
    ws = Workspace(spec.spec.git.url, "master", cache_dir=cache, backoff=0.01)
    return StepGates(
        spec, workspace=ws, webhooks=Webhooks(hooks, backoff=0.01), forge=forge, threshold=threshold
    )


def hook(server: HookServer, path: str, kind: str) -> WebhookSpec:
    return WebhookSpec.model_validate({"name": path.strip("/"), "type": kind, "url": server.url + path})


def test_no_gate_proceeds(remote, cache) -> None:
    assert gates(rollout(remote), cache).check(1, Weights(40, 60), "0.2.0").action == "proceed"


def test_confirm_hooks_hold_where_flagger_calls_them(remote, cache, hooks) -> None:
    spec = rollout(remote)
    g = gates(
        spec,
        cache,
        hooks=[
            hook(hooks, "/forbidden", "confirm-promotion"),
            hook(hooks, "/ok", "confirm-traffic-increase"),
        ],
    )
    assert g.check(1, Weights(40, 60), "0.2.0").action == "proceed"  # confirm-promotion: last step only
    held = g.check(2, Weights(0, 100), "0.2.0")
    assert held.action == "wait"
    assert (
        held.reason == "test/podinfo: waiting for webhook forbidden (confirm-promotion): HTTP 403: Forbidden"
    )
    assert hooks.paths() == ["/ok", "/ok", "/forbidden"]


def test_a_failing_pre_rollout_holds_then_rolls_back(remote, cache, hooks) -> None:
    g = gates(rollout(remote), cache, hooks=[hook(hooks, "/forbidden", "pre-rollout")], threshold=3)
    first, second = g.check(0, Weights(90, 10), "0.2.0"), g.check(0, Weights(90, 10), "0.2.0")
    assert (first.action, second.action) == ("wait", "wait")
    assert "(failed check 2 of 3)" in second.reason
    third = g.check(0, Weights(90, 10), "0.2.0")
    assert third.action == "rollback" and "(3 failed checks, threshold 3)" in third.reason
    assert g.check(0, Weights(90, 10), "0.2.1").action == "wait"  # a new revision starts counting again


def test_a_passing_rollback_hook_rolls_back(remote, cache, hooks) -> None:
    g = gates(rollout(remote), cache, hooks=[hook(hooks, "/ok", "rollback")])
    verdict = g.check(1, Weights(40, 60), "0.2.0")
    assert verdict.action == "rollback" and verdict.reason == "webhook ok (rollback) asked for a rollback"


def _forge(api: ForgeApi):
    cfg = ForgeConfig(kind="github", repository="org/cluster", token=TOKEN, url=api.base)
    return forge_for(cfg, retry=Retry(attempts=3, backoff=0.01, sleep=lambda s: None), timeout=5)


def test_approval_by_merge_with_a_pull_request(remote, cache, forge_api) -> None:
    spec = rollout(remote, approval={"confirmTrafficIncrease": [60]})
    g = gates(spec, cache, forge=_forge(forge_api))
    before = remote.head()
    waiting = g.check(1, Weights(40, 60), "0.2.0", reasons=("step 1/3 passed: no harm at 10%",))
    assert waiting.action == "wait" and remote.head() == before
    assert (
        waiting.approval is not None
        and waiting.approval.review_url == "https://github.com/org/cluster/pull/1"
    )
    assert f"merge https://github.com/org/cluster/pull/1 (branch {BRANCH}), since " in waiting.reason
    assert "step 1/3 passed" in forge_api.pulls[1]["body"]
    assert g.check(1, Weights(40, 60), "0.2.0").action == "wait" and forge_api.creates() == 1
    # A person merges the request (squash), the forge says merged.
    git(remote.human, "pull", "--quiet", "origin", "master")
    git(remote.human, "fetch", "--quiet", "origin", BRANCH)
    git(remote.human, "merge", "--quiet", "--squash", "FETCH_HEAD")
    git(remote.human, "commit", "--quiet", "-m", "podinfo: canary 60% (#1)")  # GitLab-style: title only
    git(remote.human, "push", "--quiet", "origin", "master")
    forge_api.merge(1)
    approved = g.check(1, Weights(40, 60), "0.2.0")
    assert approved.action == "proceed", approved.reason
    # The step's own commit is then a no-op: the weights are already there.
    assert not g.workspace.set_weights(spec, Weights(40, 60), verdict="promote").changed


def test_a_closed_request_is_a_rollback(remote, cache, forge_api) -> None:
    spec = rollout(remote, approval={"confirmTrafficIncrease": True})
    g = gates(spec, cache, forge=_forge(forge_api))
    assert g.check(1, Weights(40, 60), "0.2.0").action == "wait"
    forge_api.close(1)
    verdict = g.check(1, Weights(40, 60), "0.2.0")
    assert verdict.action == "rollback"
    assert verdict.reason.endswith(
        "approval rejected: https://github.com/org/cluster/pull/1 was closed without merging"
    )


def test_a_deleted_branch_is_a_rollback_also_after_a_restart(remote, cache) -> None:
    spec = rollout(remote, approval={"confirmPromotion": True})
    assert gates(spec, cache).check(2, Weights(0, 100), "0.2.0").action == "wait"
    git(remote.bare, "branch", "-D", "rollouts/test/podinfo/0.2.0/step-3")
    assert gates(spec, cache).check(2, Weights(0, 100), "0.2.0").action == "rollback"  # a new process
    assert git(remote.bare, "branch", "--list", "rollouts/*").strip() == ""  # not proposed again


def test_the_forge_down_does_not_block_the_git_approval(remote, cache, forge_api) -> None:
    spec = rollout(remote, approval={"confirmTrafficIncrease": [60]})
    forge_api.fail = [503] * 50
    g = gates(spec, cache, forge=_forge(forge_api))
    assert g.check(1, Weights(40, 60), "0.2.0").action == "wait"  # proposed in Git all the same
    git(remote.human, "pull", "--quiet", "origin", "master")
    git(remote.human, "fetch", "--quiet", "origin", BRANCH)
    git(remote.human, "merge", "--quiet", "--no-ff", "-m", "merge", "FETCH_HEAD")
    git(remote.human, "push", "--quiet", "origin", "master")
    assert g.check(1, Weights(40, 60), "0.2.0").action == "proceed"


def test_rollout_hooks_count_during_analysis_and_post_rollout_is_told(remote, cache, hooks) -> None:
    g = gates(
        rollout(remote),
        cache,
        hooks=[
            hook(hooks, "/forbidden", "rollout"),
            hook(hooks, "/ok", "post-rollout"),
            hook(hooks, "/ok", "event"),
        ],
        threshold=2,
    )
    assert g.during_analysis("0.2.0").action == "wait"
    assert g.during_analysis("0.2.0").action == "rollback"
    g.finished("0.2.0", succeeded=False)
    g.event("0.2.0", "rolled back: webhook forbidden failed", warning=True)
    bodies = [body for path, body in hooks.calls if path == "/ok"]
    assert bodies[0]["phase"] == "Failed"
    assert (
        bodies[1]["metadata"]["eventType"] == "Warning"
        and "rolled back" in bodies[1]["metadata"]["eventMessage"]
    )


def test_weights_a_person_already_set_need_no_approval(remote, cache) -> None:
    spec = rollout(remote, approval={"confirmTrafficIncrease": [60]})
    from tests.fixtures.gitrepo import vs_with

    remote.commit_file("workloads/podinfo/virtual-service.yaml", vs_with(40, 60), "a person sets 60%")
    verdict = gates(spec, cache).check(1, Weights(40, 60), "0.2.0")
    assert verdict.action == "proceed" and "already there" in verdict.reason
    assert git(remote.bare, "branch", "--list", "rollouts/*").strip() == ""
