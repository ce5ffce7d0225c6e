"""The pipeline's shell on real Git: two environments in two repositories, hand-overs as commits.

Each environment is a bare remote laid out like the guide's repo; the staging rollout's history is
written through the real Workspace (the commits the controller makes), and the runner reads it back,
plans and hands over into production's repository.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from rollouts.pipeline import TransitionState
from rollouts.pipeline.errors import PipelineSpecError
from rollouts.pipeline.runner import load_pipeline
from tests.fixtures.gitrepo import GUIDE_CANARY, git
from tests.pipeline.world import deployment, runner_at, walk


def test_a_finalized_revision_soaks_then_is_handed_over_once(world):
    loaded, workspaces, staging, production, _ = world
    walk(workspaces["staging"], loaded.stages[0].rollout)
    finalized_at = datetime.fromtimestamp(int(git(staging.bare, "log", "-1", "--format=%ct", "master")), UTC)

    tick = runner_at(loaded, workspaces, finalized_at + timedelta(minutes=5)).tick()
    (transition,) = tick.plan.transitions
    assert transition.state is TransitionState.SOAKING, transition.reason
    assert tick.handovers == ()
    before = production.count()

    later = runner_at(loaded, workspaces, finalized_at + timedelta(minutes=11))
    tick = later.tick()
    assert [h.outcome for h in tick.handovers] == ["pushed"]
    assert production.count() == before + 1
    manifest = production.show(GUIDE_CANARY)
    assert 'podinfo:0.2.0 # {"$imagepolicy": "test:podinfo"}' in manifest  # the marker is kept
    assert manifest == deployment("0.2.0")  # only the image scalar changed
    message = production.message("master")
    assert message.startswith("podinfo-prod: production canary 0.1.0 -> 0.2.0 (handover from staging)")
    for trailer in (
        "Rollout-Pipeline: test/podinfo",
        "Rollout-Environment: production",
        "Rollout-Source: staging",
        "Rollout-Revision: 0.2.0",
        "Rollout-Verdict: handover",
    ):
        assert trailer in message
    assert "Rollout: " not in message  # not a record of production's rollout
    # The next tick (a restart, say) sees it done and commits nothing.
    tick = later.tick()
    assert tick.plan.transitions[0].state is TransitionState.DONE
    assert tick.handovers == () and production.count() == before + 1


def test_a_rollback_stops_the_line_and_the_status_says_where(world):
    loaded, workspaces, _staging, production, _ = world
    walk(workspaces["staging"], loaded.stages[0].rollout, finish="rollback")
    before = production.count()
    tick = runner_at(loaded, workspaces, datetime.now(UTC) + timedelta(hours=1)).tick()
    # Nothing was finalized: production never hears of 0.2.0.
    assert tick.plan.transitions[0].state is TransitionState.IDLE
    assert [(s.revision, s.environment) for s in tick.plan.stops] == [("0.2.0", "staging")]
    assert "evidence of harm 216" in tick.plan.stops[0].reason
    assert production.count() == before


def test_a_person_pinning_production_wins_and_is_reported(world):
    loaded, workspaces, _staging, production, _ = world
    walk(workspaces["staging"], loaded.stages[0].rollout)
    time.sleep(1.1)  # commit times have a resolution of one second: the pin comes after the finalize
    production.commit_file(GUIDE_CANARY, deployment("0.1.5"), "pin production to 0.1.5")
    before = production.count()
    tick = runner_at(loaded, workspaces, datetime.now(UTC) + timedelta(hours=1)).tick()
    (transition,) = tick.plan.transitions
    assert transition.state is TransitionState.PINNED
    assert "0.1.5" in transition.reason and "Human" in transition.reason
    assert production.count() == before


def test_a_change_between_plan_and_push_wins(world):
    loaded, workspaces, _staging, production, _ = world
    walk(workspaces["staging"], loaded.stages[0].rollout)
    runner = runner_at(loaded, workspaces, datetime.now(UTC) + timedelta(hours=1))
    facts, manifests = runner.read()
    # A person pins production after the runner read it, before it commits.
    production.commit_file(GUIDE_CANARY, deployment("0.1.6"), "pin")
    from rollouts.pipeline import plan

    ready = plan(loaded.pipeline, facts, runner.clock()).ready
    assert len(ready) == 1
    result = runner._hand_over(ready[0], manifests["production"], facts)
    assert result.outcome == "yielded" and "changed while handing over" in result.detail
    assert "0.1.6" in production.show(GUIDE_CANARY)


def test_approval_by_command(world):
    loaded, workspaces, _staging, production, specs = world
    text = (specs / "pipeline.yaml").read_text().replace("soak: 10m", "approval: command")
    (specs / "pipeline.yaml").write_text(text)
    loaded = load_pipeline(specs / "pipeline.yaml")
    walk(workspaces["staging"], loaded.stages[0].rollout)
    runner = runner_at(loaded, workspaces, datetime.now(UTC) + timedelta(minutes=1))
    assert runner.tick().plan.transitions[0].state is TransitionState.AWAITING_APPROVAL
    first = runner.approve("production", "0.2.0", ["go ahead"])
    assert first.changed and "Rollout-Verdict: approve" in production.message("master")
    assert not runner.approve("production", "0.2.0").changed  # approved already: no second record
    tick = runner.tick()
    assert [h.outcome for h in tick.handovers] == ["pushed"]
    with pytest.raises(ValueError, match="no environment 'qa'"):
        runner.approve("qa", "0.2.0")


def test_bad_environment_rollout_is_named(world, tmp_path):
    _, _, _, _, specs = world
    (specs / "production.yaml").write_text("kind: Rollout\n")
    with pytest.raises(PipelineSpecError, match=r"spec\.environments\[1\]\.rollout: .*production\.yaml"):
        load_pipeline(specs / "pipeline.yaml")


def test_status_and_approve_commands(world, capsys):
    from rollouts.cli import main

    loaded, workspaces, _staging, production, specs = world
    text = (specs / "pipeline.yaml").read_text().replace("soak: 10m", "approval: command")
    (specs / "pipeline.yaml").write_text(text)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    cache = ["--cache-dir", str(specs.parent / "cli-cache")]
    assert main(["status", str(specs / "pipeline.yaml"), *cache]) == 0
    out = capsys.readouterr().out
    assert "pipeline      test/podinfo" in out
    assert "staging       0.2.0       finalized since" in out
    assert "staging -> production: awaiting-approval: 0.2.0 awaits approval" in out
    before = production.count()
    args = ["approve", str(specs / "pipeline.yaml"), "--environment", "production", "--revision", "0.2.0"]
    assert main([*args, *cache, "--reason", "change ticket 42"]) == 0
    assert "pushed" in capsys.readouterr().out
    assert production.count() == before + 1 and "- change ticket 42" in production.message("master")
    assert main([*args, *cache]) == 0
    assert "approved already" in capsys.readouterr().out
    assert production.count() == before + 1
    assert (
        main(["approve", str(specs / "pipeline.yaml"), "--environment", "qa", "--revision", "1", *cache]) == 1
    )
    assert "no environment 'qa'" in capsys.readouterr().err


def test_rollouts_run_ticks_the_pipeline_beside_its_rollouts(world, capsys):
    from rollouts.cli import main

    loaded, workspaces, _staging, production, specs = world
    text = (specs / "pipeline.yaml").read_text().replace("soak: 10m", "soak: 1s")
    (specs / "pipeline.yaml").write_text(text)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    time.sleep(1.1)  # the soak
    closed = "http://127.0.0.1:9"  # no mesh answers: the rollouts wait at their sync gate
    args = [
        "run",
        "--once",
        "--mesh",
        closed,
        str(specs / "pipeline.yaml"),
        "--cache-dir",
        str(specs.parent / "run"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pipeline:test/podinfo: progressing promote" in out, out
    assert "test/podinfo:" in out and "test/podinfo-prod:" in out  # both environments' rollouts ran
    assert "(handover from staging)" in production.message("master")


def test_the_job_sets_where_each_environment_stands(world):
    from rollouts.metrics import ControllerMetrics
    from rollouts.pipeline.job import PipelineJob

    loaded, workspaces, _staging, _production, _ = world
    metrics = ControllerMetrics()
    job = PipelineJob(runner_at(loaded, workspaces, datetime.now(UTC)), metrics)
    result = job.tick()
    assert result.action == "none"  # staging finalized nothing yet
    value = metrics.registry.get_sample_value
    labels = {"pipeline": "test/podinfo", "environment": "production", "revision": "0.1.0", "state": "idle"}
    assert value("rollouts_pipeline_revision", labels) == 1
    walk(workspaces["staging"], loaded.stages[0].rollout)
    job.runner.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)
    assert job.tick().action == "wait"  # soaking
    assert value("rollouts_pipeline_revision", labels) is None  # the old series is gone
    assert value("rollouts_pipeline_revision", {**labels, "state": "soaking"}) == 1
    assert (
        value(
            "rollouts_pipeline_revision",
            {**labels, "environment": "staging", "revision": "0.2.0", "state": "source"},
        )
        == 1
    )


# Nine levels of nine-element aliases: a few hundred bytes that expand to 9**9 nodes.
ALIAS_BOMB = (
    "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
    + "kind: Pipeline\nspec: {environments: *a8}\n"
).encode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ALIAS_BOMB, "pipeline.yaml"),
        (b"kind: Pipeline\nkind: Pipeline\n", "duplicate"),
        (b"kind: Pipeline\nx: \xff\n", "not UTF-8"),
        (b"[" * 3000, "pipeline.yaml"),
    ],
)
def test_hostile_pipeline_files_are_named_errors(tmp_path, text, message):
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(text)
    with pytest.raises(PipelineSpecError) as err:
        load_pipeline(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert len(str(err.value)) < 2000  # never the whole input
