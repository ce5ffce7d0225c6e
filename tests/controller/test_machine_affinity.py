"""The state machine with ``sessionAffinity``: the cookie routes ride with the steps' commits."""

from __future__ import annotations

from pathlib import Path

from rollouts.gitops import Workspace
from rollouts.metrics import ControllerMetrics
from rollouts.routes import Weights, editor_for
from rollouts.routes.strategies import Request, affinity_value
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import Clock, ServiceModel, build, mesh_status, rollout_spec
from tests.fixtures.gitrepo import Remote, git, vs_with

ROUTE = "workloads/podinfo/virtual-service.yaml"


def test_a_rollout_with_session_affinity_commits_the_cookie_routes_with_each_step(
    remote: Remote, tmp_path: Path
) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), analysis={"sessionAffinity": {"cookieName": "rollouts-podinfo"}})
    editor = editor_for("VirtualService", stable="ga", canary="canary", source=ROUTE)
    holder = Request(headers=(("cookie", f"rollouts-podinfo={affinity_value('test/podinfo', '0.2.0')}"),))
    with mesh_status(remote.bare, tmp_path) as url:
        clock, model = Clock(), ServiceModel()
        machine = build(
            spec,
            workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "cache"),
            gate=LocalMeshGate(url, interval=0.01),
            model=model,
            clock=clock,
            notices=[],
            metrics=ControllerMetrics(),
        )
        actions = []
        for _ in range(40):
            clock.advance()
            actions.append(machine.tick().action)
            if actions[-1] == "finalize":
                break
    assert actions[0] == "start" and actions[-1] == "finalize" and "rollback" not in actions
    shas = git(remote.bare, "log", "--format=%H", "--grep=Rollout-Verdict", "master").split()[::-1]
    routes = [git(remote.bare, "show", f"{sha}:{ROUTE}") for sha in shas]
    steps = [editor.read(text).canary for text in routes]
    assert steps == [10, 60, 100]
    for text in routes[:2]:  # 10 % and 60 %: the cookie and the route for its holders
        table = editor.table(text)
        assert table.route(holder).weights == Weights(0, 100)
        assert "# gitops-rollouts: session affinity route" in text
    assert routes[2] == vs_with(0, 100)  # the last step removes them in the same commit
