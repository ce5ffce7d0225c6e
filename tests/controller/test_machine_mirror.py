"""The state machine with ``analysis.mirror`` or ``match``: the mirror (or A/B match) stage at 0 % is
the rollout's first commit, judged on the mirrored copies (or the matching requests), then the
weight steps; a rollback removes the block in one commit; a restarted controller resumes the stage
from Git alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollouts.gitops import Workspace
from rollouts.metrics import ControllerMetrics
from rollouts.notify import Notice
from rollouts.routes import editor_for
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import Clock, Rig, ServiceModel, build, mesh_status, rollout_spec
from tests.controller.test_machine import our_commits
from tests.fixtures.gitrepo import Remote, git, vs_with

ROUTE = "workloads/podinfo/virtual-service.yaml"
EDITOR = editor_for("VirtualService", stable="ga", canary="canary", source=ROUTE)


def _rig(remote: Remote, tmp_path: Path, model: ServiceModel | None = None, **sections: Any) -> Iterator[Rig]:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    analysis = {"iterations": 5, "mirror": True, "mirrorWeight": 50, **sections.pop("analysis", {})}
    spec = rollout_spec(str(remote.bare), analysis=analysis, **sections)
    workspace = Workspace.for_spec(spec, cache_dir=tmp_path / "cache")
    with mesh_status(remote.bare, tmp_path) as url:
        gate = LocalMeshGate(url, interval=0.01)
        clock, metrics = Clock(), ControllerMetrics()
        model = model or ServiceModel(mirrored=50.0)
        notices: list[Notice] = []
        machine = build(
            spec, workspace=workspace, gate=gate, model=model, clock=clock, notices=notices, metrics=metrics
        )
        yield Rig(machine, model, clock, notices, metrics, workspace, spec, gate)


@pytest.fixture
def rig(remote: Remote, tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(remote, tmp_path)


@pytest.fixture
def bluegreen(remote: Remote, tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(remote, tmp_path, steps=[100])


MATCH = [{"headers": {"x-user": {"exact": "beta"}}}]


@pytest.fixture
def ab(remote: Remote, tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(remote, tmp_path, ServiceModel(matched=30.0), analysis={"mirror": False, "match": MATCH})


def routes(remote: Remote) -> list[str]:
    """The route file at each of the controller's commits, oldest first."""
    shas = git(remote.bare, "log", "--format=%H", "--grep=Rollout-Verdict", "master").split()[::-1]
    return [git(remote.bare, "show", f"{sha}:{ROUTE}") for sha in shas]


def test_the_mirror_stage_is_committed_judged_for_the_iterations_then_the_steps(
    rig: Rig, remote: Remote
) -> None:
    results = rig.run(40, until="finalize")
    actions = [r.action for r in results]
    assert actions[0] == "start" and actions[-1] == "finalize" and "rollback" not in actions
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("mirror", "promote"),
        ("1/3", "promote"),
        ("2/3", "promote"),
        ("3/3", "finalize"),
    ]
    texts = routes(remote)
    mirrored = EDITOR.table(texts[0])
    assert EDITOR.read(texts[0]).canary == 0 and mirrored.default.mirror == 50.0
    assert all(EDITOR.table(t).default.mirror is None for t in texts[1:])
    assert texts[1] == vs_with(90, 10)  # the mirror block goes with the first step, byte for byte
    # The mirror stage lasted at least the iterations: windows judged before the first step.
    first_step = next(i for i, r in enumerate(results) if r.action == "promote")
    assert results[first_step].windows >= 5  # windows judged in the stage when it was promoted
    # (A promote before that is a hold naming the iterations: tests/controller/test_decide.py.)
    assert rig.notices[0].summary.endswith("50% of GA's requests mirrored to the canary")
    # The mirrored copies reached the judge: the reads of the mirror stage were at weight 0.
    assert rig.model.reads[0][2] == 0


def test_a_rollback_in_the_mirror_stage_removes_the_mirror_in_one_commit(rig: Rig, remote: Remote) -> None:
    rig.model.slowdown = 4.0
    rig.run(1)
    assert status_of(rig)[0].startswith("position      progressing, mirror stage (canary 0%, GA's requests")
    results = rig.run(20, until="rollback")
    assert results[-1].action == "rollback"
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("mirror", "promote"),
        ("mirror", "rollback"),
    ]
    assert remote.show(ROUTE) == vs_with(100, 0)  # back to the file before the rollout, byte for byte
    assert "rolled back at the mirror stage" in rig.notices[-1].summary
    after = rig.run(3)
    assert {r.phase for r in after} == {"rolledback"} and len(our_commits(remote)) == 2


def test_a_restart_in_the_mirror_stage_resumes_it_from_git(rig: Rig, remote: Remote) -> None:
    first = rig.run(3)
    assert first[0].action == "start" and all(r.action != "promote" for r in first)
    rig.machine.close()
    rig.machine = rig.fresh()  # a new process: only Git and Prometheus (the model) remember
    results = rig.run(40, until="finalize")
    assert results[0].phase == "progressing" and results[0].action in ("hold", "wait")
    assert [c["Rollout-Step"] for c in our_commits(remote)] == ["mirror", "1/3", "2/3", "3/3"]
    assert EDITOR.read(remote.show(ROUTE)).canary == 100


def test_blue_green_by_mirroring_switches_0_to_100_in_one_commit(bluegreen: Rig, remote: Remote) -> None:
    results = bluegreen.run(40, until="finalize")
    assert results[-1].action == "finalize"
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("mirror", "promote"),
        ("1/1", "finalize"),
    ]
    texts = routes(remote)
    assert texts[1] == vs_with(0, 100)


def test_the_ab_stage_commits_the_match_route_then_the_steps_without_it(ab: Rig, remote: Remote) -> None:
    from rollouts.routes import Weights
    from rollouts.routes.strategies import Request

    results = ab.run(40, until="finalize")
    assert results[-1].action == "finalize" and "rollback" not in [r.action for r in results]
    assert [c["Rollout-Step"] for c in our_commits(remote)] == ["match", "1/3", "2/3", "3/3"]
    texts = routes(remote)
    beta = Request(headers=(("x-user", "beta"),))
    table = EDITOR.table(texts[0])
    assert table.route(beta).weights == Weights(0, 100) and table.route(Request()).weights == Weights(100, 0)
    assert texts[1] == vs_with(90, 10)  # the match route removed with the first step, byte for byte
    first_step = next(i for i, r in enumerate(results) if r.action == "promote")
    assert results[first_step].windows >= 5  # the iterations


def test_a_rollback_in_the_ab_stage_removes_the_match_route(ab: Rig, remote: Remote) -> None:
    ab.model.slowdown = 4.0
    ab.run(1)
    assert status_of(ab)[1] == {"stage": "match", "phase": "progressing"}
    results = ab.run(20, until="rollback")
    assert results[-1].action == "rollback"
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("match", "promote"),
        ("match", "rollback"),
    ]
    assert remote.show(ROUTE) == vs_with(100, 0)
    assert "rolled back at the match stage" in ab.notices[-1].summary


PREVIEW = {"name": "podinfo-preview", "url": "http://podinfo-preview.test:9898/"}


@pytest.fixture
def preview(remote: Remote, tmp_path: Path) -> Iterator[Rig]:
    # The analysis load reaches the canary through its preview Service; GA serves every user.
    model = ServiceModel(mirrored=30.0)
    yield from _rig(
        remote, tmp_path, model, steps=[100], analysis={"mirror": False, "previewService": PREVIEW}
    )


def test_blue_green_on_the_preview_service_judges_at_0_then_switches_in_one_commit(
    preview: Rig, remote: Remote
) -> None:
    results = preview.run(40, until="finalize")
    assert results[-1].action == "finalize" and "rollback" not in [r.action for r in results]
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("preview", "promote"),
        ("1/1", "finalize"),
    ]
    texts = routes(remote)
    assert texts == [vs_with(100, 0), vs_with(0, 100)]  # no route change in the preview: one switch
    first_step = next(i for i, r in enumerate(results) if r.action == "finalize")
    assert results[first_step].windows >= 5  # the iterations, judged at weight 0
    assert {weight for _, _, weight in preview.model.reads[:5]} == {0}
    assert "preview Service podinfo-preview" in preview.notices[0].summary


def test_a_rollback_in_the_preview_stage_is_a_commit_and_users_never_left_ga(
    preview: Rig, remote: Remote
) -> None:
    preview.model.slowdown = 4.0
    results = preview.run(20, until="rollback")
    assert results[-1].action == "rollback"
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("preview", "promote"),
        ("preview", "rollback"),
    ]
    assert remote.show(ROUTE) == vs_with(100, 0)
    assert "rolled back at the preview stage: 100% to stable" in preview.notices[-1].summary
    assert {r.phase for r in preview.run(3)} == {"rolledback"} and len(our_commits(remote)) == 2


POST = {
    "iterations": 3,
    "stableService": {"name": "podinfo-stable", "url": "http://podinfo-stable.test:9898/"},
}


@pytest.fixture
def post(remote: Remote, tmp_path: Path) -> Iterator[Rig]:
    model = ServiceModel(mirrored=30.0, ga_own=30.0)
    analysis = {"mirror": False, "previewService": PREVIEW, "postPromotionAnalysis": POST}
    yield from _rig(remote, tmp_path, model, steps=[100], analysis=analysis)


def test_post_promotion_analysis_judges_the_switched_version_then_finalizes(
    post: Rig, remote: Remote
) -> None:
    results = post.run(60, until="finalize")
    assert results[-1].action == "finalize" and "rollback" not in [r.action for r in results]
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("preview", "promote"),
        ("1/1", "promote"),  # the switch: judged again
        ("1/1", "finalize"),  # an empty commit: the switched version passed
    ]
    assert routes(remote) == [vs_with(100, 0), vs_with(0, 100), vs_with(0, 100)]
    switch = next(i for i, r in enumerate(results) if r.action == "promote")
    assert sum(r.windows for r in results[switch + 1 :]) >= 3  # postPromotionAnalysis.iterations


def status_of(rig: Rig) -> tuple[str, dict[str, Any]]:
    """``rollouts status``'s position line and its JSON ``position``, from Git."""
    from rollouts.cli import format_status, stage_of

    state = rig.workspace.read_state(rig.spec)
    line = next(x for x in format_status(rig.spec, state).splitlines() if x.startswith("position"))
    return line, {"stage": stage_of(rig.spec, state.position), "phase": state.position.phase}


def test_harm_after_the_switch_switches_back_in_one_commit_with_the_reason(post: Rig, remote: Remote) -> None:
    post.run(2)
    line, position = status_of(post)
    assert position == {"stage": "preview", "phase": "progressing"}
    assert line.startswith("position      progressing, blue/green preview (canary 0%, the load on its")
    results = post.run(40, until="promote")
    assert [c["Rollout-Step"] for c in our_commits(remote)] == ["preview", "1/1"]
    line, position = status_of(post)
    assert position == {"stage": "switched", "phase": "progressing"}
    assert "blue/green switched (canary 100%, postPromotionAnalysis): analysing canary" in line
    post.model.slowdown = 4.0  # the switched version degrades under every user's traffic
    results = post.run(20, until="rollback")
    assert results[-1].action == "rollback"
    commits = our_commits(remote)
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in commits] == [
        ("preview", "promote"),
        ("1/1", "promote"),
        ("1/1", "rollback"),
    ]
    assert remote.show(ROUTE) == vs_with(100, 0)  # switched back 100 -> 0, byte for byte
    assert status_of(post)[1] == {"stage": None, "phase": "rolledback"}
    body = git(remote.bare, "log", "-1", "--format=%B", "master")
    assert "canary 100% -> 0%" in body
    assert "postPromotionAnalysis: harm after the switch, switched back 100% -> 0%" in body
    assert "evidence of harm" in body
    assert "switched back after the blue/green switch" in post.notices[-1].summary
    assert {r.phase for r in post.run(3)} == {"rolledback"} and len(our_commits(remote)) == 3


def test_blue_green_by_a_header_match_switches_0_to_100_in_one_commit(remote: Remote, tmp_path: Path) -> None:
    for rig in _rig(
        remote, tmp_path, ServiceModel(matched=30.0), steps=[100], analysis={"mirror": False, "match": MATCH}
    ):
        results = rig.run(40, until="finalize")
        assert results[-1].action == "finalize"
        assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
            ("match", "promote"),
            ("1/1", "finalize"),
        ]
        assert routes(remote)[1] == vs_with(0, 100)  # the match route and GA's share go in one commit
