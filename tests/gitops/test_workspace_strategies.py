"""The commit path with a strategy: session affinity is written with the weights, in one commit."""

from __future__ import annotations

import pytest

from rollouts.gitops import Workspace
from rollouts.routes import Weights, editor_for
from rollouts.routes.strategies import Request, affinity_value
from rollouts.spec import parse_spec
from tests.fixtures.gitrepo import GUIDE_ROUTE, VIRTUAL_SERVICE, git, guide_rollout

VS = "workloads/podinfo/virtual-service.yaml"


def test_session_affinity_rides_with_each_step_and_leaves_with_the_last_and_the_rollback(remote, cache):
    spec = parse_spec(
        guide_rollout(
            str(remote.bare),
            route=dict(GUIDE_ROUTE),
            analysis={
                "interval": "30s",
                "sessionAffinity": {"cookieName": "rollouts-podinfo", "primaryCookieName": "ga"},
            },
        )
    )
    editor = editor_for("VirtualService", stable="ga", canary="canary", source=VS)
    value = affinity_value("test/podinfo", "0.2.0")
    holder = Request(headers=(("cookie", f"rollouts-podinfo={value}"),))
    pinned = Request(headers=(("cookie", f"ga={value}"),))
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        step = ws.set_weights(spec, Weights.for_canary(60), verdict="promote", step="2/3")
        text = remote.show(VS)
        assert git(remote.bare, "diff", "--name-only", f"{step.sha}^", step.sha).split() == [VS]  # one commit
        table = editor.table(text)
        assert table.route(holder).weights == Weights(0, 100)
        assert table.route(pinned).weights == Weights(100, 0)
        assert table.route(Request()).weights == Weights(40, 60)
        assert f"ga={value}; Max-Age=30; Path=/" in text  # GA's pin lasts one interval
        ws.set_weights(spec, Weights.for_canary(100), verdict="finalize", step="3/3")
        assert remote.show(VS) == VIRTUAL_SERVICE.replace("weight: 90   #", "weight: 0   #").replace(
            "weight: 10\n", "weight: 100\n"
        )
        ws.set_weights(spec, Weights.for_canary(10), verdict="manual")
        assert "session affinity route" in remote.show(VS)
        ws.set_weights(spec, Weights.for_canary(0), verdict="rollback")
        assert remote.show(VS) == VIRTUAL_SERVICE.replace("weight: 90   #", "weight: 100   #").replace(
            "weight: 10\n", "weight: 0\n"
        )


def test_without_a_strategy_a_persons_set_cookie_is_left_alone(remote, spec, cache):
    text = VIRTUAL_SERVICE.replace(
        "      weight: 10\n",
        "      weight: 10\n      headers:\n        response:\n          add: {Set-Cookie: x=1}\n",
    )
    (remote.human / VS).write_text(text)
    git(remote.human, "commit", "--quiet", "-am", "a person's cookie")
    git(remote.human, "push", "--quiet", "origin", "master")
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        ws.set_weights(spec, Weights.for_canary(60), verdict="promote")
    assert remote.show(VS) == text.replace("weight: 90   #", "weight: 40   #").replace(
        "weight: 10\n", "weight: 60\n"
    )


def test_the_mirror_stage_and_its_rollback_are_commits_at_0_percent(remote, cache):
    from rollouts.spec_strategy import RouteState
    from rollouts.state import CommitVerdict, WeightChange

    spec = parse_spec(
        guide_rollout(
            str(remote.bare),
            route=dict(GUIDE_ROUTE),
            analysis={"iterations": 2, "mirror": True, "mirrorWeight": 40},
        )
    )
    editor = editor_for("VirtualService", stable="ga", canary="canary", source=VS)
    zero = Weights.for_canary(0)
    with Workspace.for_spec(spec, cache_dir=cache) as ws:
        ws.set_weights(spec, zero, verdict="rollback")
        before = remote.show(VS)
        start = WeightChange(
            zero, CommitVerdict.PROMOTE, ("mirror",), step="mirror", route=RouteState(zero, mirror=40.0)
        )
        first = ws.commit_weights(spec, start)
        assert first.sha is not None and editor.table(remote.show(VS)).default.mirror == 40.0
        assert git(remote.bare, "diff", "--name-only", f"{first.sha}^", first.sha).split() == [VS]
        # A new revision while the route is already mirrored: its start is an empty commit.
        again = ws.commit_weights(spec, start)
        assert again.sha is not None and again.sha != first.sha
        assert git(remote.bare, "diff", "--name-only", f"{again.sha}^", again.sha).split() == []
        assert "Rollout-Step: mirror" in git(remote.bare, "log", "-1", "--format=%B", again.sha)
        back = WeightChange(zero, CommitVerdict.ROLLBACK, ("slow",), step="mirror", route=RouteState(zero))
        assert ws.commit_weights(spec, back).sha is not None
        assert remote.show(VS) == before  # the mirror block removed, byte for byte
        assert ws.commit_weights(spec, back).sha is None  # nothing left to change
    with pytest.raises(ValueError, match=r"route\.weights must be the change's weights"):
        WeightChange(zero, CommitVerdict.ROLLBACK, route=RouteState(Weights.for_canary(10)))
