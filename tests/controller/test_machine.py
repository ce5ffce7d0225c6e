"""The state machine on real Git (bare repos), the real mesh route watcher, and the real judge."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from rollouts.controller.machine import TickResult, position
from rollouts.gitops import Workspace
from rollouts.load import ServeLoad
from rollouts.metrics import ControllerMetrics
from rollouts.notify import Kind, Notice
from rollouts.report.history import parse_message
from rollouts.sync import LocalMeshGate
from tests.controller.machinery import (
    Clock,
    Rig,
    ServiceModel,
    build,
    mesh_status,
    rig_on,
    rollout_spec,
    tick_dated,
)
from tests.fixtures.gitrepo import Remote, deployment, git, vs_with
from tests.fixtures.httpjson import json_server, make_handler
from tests.load.conforming_serve import ConformingServe
from tests.support import free_port

CANARY = "workloads/podinfo/canary-deployment.yaml"
ROUTE = "workloads/podinfo/virtual-service.yaml"


def trailers(remote: Remote, rev: str = "master") -> dict[str, str]:
    body = remote.message(rev)
    return dict(line.split(": ", 1) for line in body.splitlines() if line.startswith("Rollout"))


def our_commits(remote: Remote) -> list[dict[str, str]]:
    """Trailers of the controller's commits, oldest first."""
    shas = git(remote.bare, "log", "--format=%H", "--grep=Rollout-Verdict", "master").split()
    return [trailers(remote, sha) for sha in reversed(shas)]


@pytest.fixture
def rig(remote: Remote, tmp_path: Path) -> Iterator[Rig]:
    """Canary 0.2.0 at 0 %, never rolled out; the machine, its mesh gate and a healthy service."""
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    with rig_on(remote.bare, tmp_path, rollout_spec(str(remote.bare))) as rig:
        yield rig


def test_good_canary_walks_every_step_as_commits(rig: Rig, remote: Remote) -> None:
    results = rig.run(30, until="finalize")
    actions = [r.action for r in results]
    assert actions[0] == "start"
    assert actions.count("promote") == 1 and actions[-1] == "finalize"
    assert "rollback" not in actions
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)] == [
        ("1/3", "promote"),
        ("2/3", "promote"),
        ("3/3", "finalize"),
    ]
    assert all(c["Rollout-Revision"] == "0.2.0" for c in our_commits(remote))
    assert "weight: 0   # GA" in remote.show(ROUTE)
    assert [n.kind for n in rig.notices] == [Kind.START, Kind.STEP, Kind.FINALIZE]
    assert "non-inferiority established" in rig.notices[1].body
    registry = rig.metrics.registry
    assert registry.get_sample_value("rollouts_phase", {"rollout": "test/podinfo", "phase": "promoted"}) == 1
    assert registry.get_sample_value("rollouts_canary_weight", {"rollout": "test/podinfo"}) == 100
    assert (
        registry.get_sample_value("rollouts_verdicts_total", {"rollout": "test/podinfo", "action": "promote"})
        == 2
    )
    # nothing more to do afterwards: no commit, phase stays promoted
    before = remote.count()
    assert {r.action for r in rig.run(3)} == {"none"}
    assert remote.count() == before


def test_regressing_canary_is_rolled_back_with_the_evidence(rig: Rig, remote: Remote) -> None:
    rig.run(30, until="finalize")
    # image automation commits 0.2.1, which is twice as slow
    remote.commit_file(CANARY, deployment("podinfo-canary", "0.2.1"), "podinfo-canary: 0.2.1")
    rig.model.slowdown = 2.0
    results = rig.run(10, until="rollback")
    assert results[0].action == "start"
    assert results[-1].action == "rollback"
    last = our_commits(remote)[-1]
    assert (last["Rollout-Verdict"], last["Rollout-Step"], last["Rollout-Revision"]) == (
        "rollback",
        "1/3",
        "0.2.1",
    )
    assert "weight: 100   # GA" in remote.show(ROUTE)
    assert "evidence of harm" in remote.message("master")
    assert rig.notices[-1].kind == Kind.ROLLBACK and "evidence of harm" in rig.notices[-1].body
    # the verdict's evidence is in the commit, as `rollouts report` reads it
    evidence = rig.notices[-1].evidence
    assert evidence and f"- Evidence: {json.dumps(evidence, sort_keys=True)}\n" in remote.message("master")
    parsed = parse_message(remote.message("master")).evidence
    assert set(parsed) == set(evidence)
    for key, value in evidence.items():  # the report shows 6 significant digits
        assert (
            parsed[key] == str(value)
            if isinstance(value, bool)
            else float(parsed[key]) == pytest.approx(value, rel=1e-5)
        )
    # rolled back: idle until a new revision, no more commits
    before = remote.count()
    assert {r.action for r in rig.run(3)} == {"none"}
    assert remote.count() == before


def test_restart_at_every_tick_gives_the_same_commits_at_the_same_times(
    rig: Rig, remote: Remote, tmp_path: Path
) -> None:
    # the uninterrupted run, for reference, on a copy of the remote
    reference = [
        (round(rig.clock.now - start), r.action)
        for start in [rig.clock.now]
        for r in rig.run(30, until="finalize")
        if r.action not in ("hold", "wait", "none")
    ]
    commits = our_commits(remote)
    assert reference[-1][1] == "finalize"
    # a fresh rollout of 0.2.2, with the controller killed and restarted before every tick
    remote.commit_file(CANARY, deployment("podinfo-canary", "0.2.2"), "podinfo-canary: 0.2.2")
    remote.commit_file(ROUTE, vs_with(100, 0), "human: back to GA for the next release")
    start = rig.clock.now
    restarted = []
    for _ in range(30):
        rig.machine = rig.fresh()
        rig.clock.advance()
        result = rig.machine.tick()
        if result.action not in ("hold", "wait", "none"):
            restarted.append((round(rig.clock.now - start), result.action))
        if result.action == "finalize":
            break
    again = our_commits(remote)[len(commits) :]
    assert [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in again] == [
        ("1/3", "promote"),
        ("2/3", "promote"),
        ("3/3", "finalize"),
    ]
    assert [action for _, action in restarted] == [action for _, action in reference]


def test_metrics_unavailable_holds_then_pauses_never_promotes(rig: Rig, remote: Remote) -> None:
    assert rig.start().action == "start"  # 10 %
    rig.model.down = "Prometheus at http://127.0.0.1:9 unreachable"
    results = rig.run(5, until="pause")
    assert [r.action for r in results] == ["hold", "hold", "pause"]
    assert "metrics unavailable (3 of 3 in a row)" in results[-1].reasons[0]
    assert trailers(remote)["Rollout-Verdict"] == "pause"
    assert rig.notices[-1].kind == Kind.PAUSE
    assert (
        rig.metrics.registry.get_sample_value("rollouts_prometheus_errors_total", {"rollout": "test/podinfo"})
        == 3
    )
    # paused: nothing happens even when the metrics come back
    rig.model.down = None
    assert {r.action for r in rig.run(3)} == {"none"}
    assert "weight: 90   # GA" in remote.show(ROUTE)


def test_windows_without_data_are_passed_over_not_retried(rig: Rig, remote: Remote) -> None:
    assert rig.start().action == "start"  # 10 %
    rig.model.empty = True
    held = rig.run(2)
    assert [r.action for r in held] == ["hold", "hold"]
    assert "metrics unavailable (2 of 3 in a row)" in held[-1].reasons[0]
    starts = [start for start, _, _ in rig.model.reads]
    assert len(set(starts)) == len(starts)  # each empty window was asked for once, then passed over
    rig.model.empty = False
    results = rig.run(10, until="promote")
    assert results[-1].action == "promote"  # data again: the count restarts, no pause
    assert trailers(remote)["Rollout-Step"] == "2/3"


def test_metrics_unavailable_rolls_back_when_the_spec_says_so(remote: Remote, tmp_path: Path) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), analysis={"onError": "rollback", "threshold": 2})
    with mesh_status(remote.bare, tmp_path) as url:
        model, clock = ServiceModel(), Clock()
        machine = build(
            spec,
            workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "c"),
            gate=LocalMeshGate(url, interval=0.01),
            model=model,
            clock=clock,
            notices=[],
            metrics=ControllerMetrics(),
        )
        clock.advance()
        assert machine.tick().action == "start"
        model.down = "no data for podinfo-canary in the last 10s"
        actions = []
        for _ in range(3):
            clock.advance()
            actions.append(machine.tick().action)
    assert actions[:2] == ["hold", "rollback"]
    assert trailers(remote)["Rollout-Verdict"] == "rollback"


def test_human_override_is_adopted_and_analysis_continues(rig: Rig, remote: Remote) -> None:
    assert rig.start().action == "start"  # 10 %
    remote.commit_file(ROUTE, vs_with(60, 40), "human: 40 % canary, I am in a hurry")
    results = rig.run(10, until="promote")
    assert rig.notices[1].kind == Kind.OVERRIDE and "40%" in rig.notices[1].summary
    assert results[-1].action == "promote"
    assert (trailers(remote)["Rollout-Step"], trailers(remote)["Rollout-Verdict"]) == ("2/3", "promote")
    assert "weight: 40   # GA" in remote.show(ROUTE)


def test_git_unreachable_retries_with_backoff_and_loses_nothing(rig: Rig, remote: Remote) -> None:
    assert rig.start().action == "start"  # 10 %
    hidden = remote.bare.with_name("away.git")
    remote.bare.rename(hidden)
    try:
        results = rig.run(3)
    finally:
        hidden.rename(remote.bare)
    assert results[0].action == "error" and "cannot read Git" in results[0].reasons[0]
    assert {r.action for r in results[1:]} <= {"wait", "error"}  # backing off, not hammering
    errors = rig.metrics.registry.get_sample_value("rollouts_git_errors_total", {"rollout": "test/podinfo"})
    assert errors is not None and errors >= 1
    results = rig.run(20, until="promote")
    assert results[-1].action == "promote"  # the windows of the outage were judged afterwards


def test_push_rejected_by_the_remote_is_retried_on_the_next_tick(rig: Rig, remote: Remote) -> None:
    assert rig.start().action == "start"  # 10 %
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'remote: maintenance window' >&2\nexit 1\n")
    hook.chmod(0o755)
    try:
        results = rig.run(10, until="error")
        assert results[-1].action == "error" and "cannot commit promote" in results[-1].reasons[0]
        assert rig.machine.memory.pending is not None
    finally:
        hook.unlink()
    results = rig.run(10, until="promote")
    assert results[-1].action == "promote"
    assert [c["Rollout-Step"] for c in our_commits(remote)] == ["1/3", "2/3"]


def test_sync_gate_that_never_opens_pauses(remote: Remote, tmp_path: Path) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), analysis={"syncTimeout": "25s"})
    frozen = {
        "revision": "0" * 40,
        "branch": "master",
        "weights": {"stable": 100, "canary": 0},
        "route": {"kind": "VirtualService", "path": ROUTE},
        "error": "cannot reach the remote",
        "last_poll": 0.0,
    }
    with json_server(lambda _: (200, frozen)) as mesh:
        clock, notices = Clock(), list[Notice]()
        machine = build(
            spec,
            workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "c"),
            gate=LocalMeshGate(mesh.url, interval=0.01),
            model=ServiceModel(),
            clock=clock,
            notices=notices,
            metrics=ControllerMetrics(),
        )
        actions = []
        for _ in range(5):
            clock.advance()
            actions.append(machine.tick())
    # 10 s and 20 s after the commit the gate is still closed; at 30 s (> syncTimeout 25 s) it pauses
    assert [a.action for a in actions] == ["start", "wait", "pause", "none", "none"]
    assert "sync gate did not open" in actions[2].reasons[0]
    assert "cannot reach the remote" in actions[2].reasons[0]
    assert notices[-1].kind == Kind.PAUSE


def test_a_follower_never_commits(remote: Remote, tmp_path: Path) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare))

    class Follower:
        def is_leader(self) -> bool:
            return False

    with mesh_status(remote.bare, tmp_path) as url:
        clock = Clock()
        machine = build(
            spec,
            workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "c"),
            gate=LocalMeshGate(url, interval=0.01),
            model=ServiceModel(),
            clock=clock,
            notices=[],
            metrics=ControllerMetrics(),
            leadership=Follower(),
        )
        before = remote.count()
        clock.advance()
        assert machine.tick().action == "wait"
    assert remote.count() == before


def test_a_canary_manifest_without_images_is_a_clear_error(rig: Rig, remote: Remote) -> None:
    remote.commit_file(
        CANARY, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo-canary}\n", "oops"
    )
    before = remote.count()
    results = rig.run(2)
    assert [r.action for r in results] == ["error", "error"]
    assert f"{CANARY}: no container images found" in results[0].reasons[0]
    assert [n.kind for n in rig.notices] == [Kind.ERROR]  # told once, not every tick
    assert remote.count() == before  # nothing committed


def test_position_is_derived_from_git_alone(rig: Rig, remote: Remote) -> None:
    state = rig.workspace.read_state(rig.spec)
    assert position(rig.spec, state).phase == "start"
    rig.run(1)
    where = position(rig.spec, rig.workspace.read_state(rig.spec))
    assert (where.phase, where.weight, where.step) == ("progressing", 10, 1)
    assert (
        where.since is not None
        and abs(where.since - float(git(remote.bare, "log", "-1", "--format=%at").strip())) < 1
    )


def test_load_endpoint_down_holds_and_is_reported_once(remote: Remote, tmp_path: Path) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    token = tmp_path / "token"
    token.write_text("t0ken-for-the-load-tester")
    load_section = {
        "mode": "endpoint",
        "endpoint": "http://127.0.0.1:1",
        "tokenFile": str(token),
        "target": "http://127.0.0.1:9898/",
    }
    spec = rollout_spec(str(remote.bare), load=load_section)
    port = free_port()
    with mesh_status(remote.bare, tmp_path) as url:
        clock, notices = Clock(), list[Notice]()
        machine = build(
            spec,
            workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "c"),
            gate=LocalMeshGate(url, interval=0.01),
            model=ServiceModel(),
            clock=clock,
            notices=notices,
            metrics=ControllerMetrics(),
            load=ServeLoad(f"http://127.0.0.1:{port}", "t0ken-for-the-load-tester"),
        )
        actions = []
        for _ in range(3):
            clock.advance()
            actions.append(machine.tick())
        assert [a.action for a in actions] == ["start", "hold", "hold"]
        assert "load endpoint down" in actions[1].reasons[0]
        assert [n.kind for n in notices] == [Kind.START, Kind.ERROR]  # reported once
        # the load tester comes up: jobs start and the analysis runs
        app = ConformingServe(token="t0ken-for-the-load-tester", allow=("127.0.0.1",))
        httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(app, []))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            clock.advance()
            result = machine.tick()
        finally:
            httpd.shutdown()
            httpd.server_close()
    # the windows since the step began are judged now: a hold, or (when the grid gave it enough
    # windows) already the promotion; never the load hold again
    assert result.action in ("hold", "promote") and result.windows >= 1
    assert "load endpoint down" not in " ".join(result.reasons)
    assert len(app.jobs) == 1 and next(iter(app.jobs.values()))["target"] == "http://127.0.0.1:9898/"


def test_new_revision_while_the_canary_serves_100_is_an_honest_restart(rig: Rig, remote: Remote) -> None:
    rig.run(30, until="finalize")  # leave-canary: 0.2.0 serves 100 %
    remote.commit_file(CANARY, deployment("podinfo-canary", "0.2.1"), "podinfo-canary: 0.2.1")
    result = rig.run(1)[0]
    assert result.action == "start"
    assert remote.message("master").splitlines()[0] == "podinfo: canary 100% -> 10% (restart)"
    assert "already serving 100% before the controller acted" in remote.message("master")
    assert rig.notices[-1].kind == Kind.START and "serving 100% unanalysed" in rig.notices[-1].summary


def test_restart_mid_step_2_rebuilds_the_whole_rollouts_evidence(
    rig: Rig, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tick() -> TickResult:
        return tick_dated(rig, monkeypatch)

    rig.model.slowdown = 1.04  # a little slower: harm evidence grows but stays below the threshold
    actions: list[str] = []
    while "promote" not in actions and len(actions) < 30:
        actions.append(tick().action)
    assert actions.count("start") == 1 and "rollback" not in actions
    assert tick().action == "hold"  # mid step 2: one of its windows judged
    lost = rig.machine.memory.judge
    assert lost is not None
    rig.machine = rig.fresh()  # killed and started again, at the same moment
    assert rig.machine.tick().action == "hold"
    rebuilt = rig.machine.memory.judge
    assert rebuilt is not None
    probe = rig.model.window(rig.spec, rig.clock.now, rig.clock.now + 10, 60)
    before, after = lost.judge(probe).evidence, rebuilt.judge(probe).evidence
    assert after == before
    assert after["rollout_windows"] > after["step_windows"]  # step 1's windows are in it
