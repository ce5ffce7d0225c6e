"""The state machine with gates: the 60 % step waits for the merge of its approval branch (told once,
with the branch and since when; the waiting time a metric), proceeds once a person merged it (any
strategy), and a rejected approval or a passing rollback webhook is a rollback commit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rollouts.gates.step import StepGates
from rollouts.gates.webhooks import Webhooks, checksum
from rollouts.gitops import Workspace
from rollouts.local.reviewer import Reviewer
from rollouts.spec_gates import WebhookSpec
from tests.controller.machinery import Rig, rig_on, rollout_spec
from tests.controller.test_machine import ROUTE, trailers
from tests.fixtures.gitrepo import Remote, git, vs_with
from tests.gates.hookserver import HookServer
from tests.gates.hookserver import serve as serve_hooks

BRANCH = "rollouts/test/podinfo/0.2.0/step-2"


def our_commits(remote: Remote) -> list[dict[str, str]]:
    """Trailers of the controller's commits, oldest first (in topological order: a merged approval
    branch's commit has the same second as its neighbours)."""
    shas = git(remote.bare, "log", "--topo-order", "--format=%H", "--grep=Rollout-Verdict", "master").split()
    return [trailers(remote, sha) for sha in reversed(shas)]


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    yield from serve_hooks()


@contextmanager
def _rig(remote: Remote, tmp_path: Path, hooks: list[WebhookSpec] = (), **sections) -> Iterator[Rig]:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = rollout_spec(str(remote.bare), **sections)
    gates = StepGates(
        spec,
        workspace=Workspace.for_spec(spec, cache_dir=tmp_path / "cache"),
        webhooks=Webhooks(hooks, backoff=0.01),
    )
    with rig_on(remote.bare, tmp_path, spec, gates=gates) as rig:
        yield rig


def test_the_60_step_waits_for_the_merge_then_walks_on(remote: Remote, tmp_path: Path) -> None:
    with _rig(remote, tmp_path, approval={"confirmTrafficIncrease": [60]}) as rig:
        results = rig.run(30, until="wait")
        assert results[-1].action == "wait" and results[-1].weight == 10
        reason = results[-1].reasons[0]
        assert f"test/podinfo: step 2/3 waiting for approval: merge branch {BRANCH}, since " in reason
        assert git(remote.bare, "branch", "--list", BRANCH).strip()
        more = rig.run(3)
        assert {r.action for r in more} == {"wait"} and all(r.weight == 10 for r in more)
        waits = [n for n in rig.notices if "waiting for approval" in n.summary]
        assert len(waits) == 1  # told once, not every tick
        waited = rig.metrics.registry.get_sample_value(
            "rollouts_gate_waiting_seconds", {"rollout": "test/podinfo"}
        )
        assert waited is not None and waited >= 30
        Reviewer(remote.bare, tmp_path / "reviewer", delay=0).tick()  # a person merges it
        done = rig.run(30, until="finalize")
        assert done[-1].action == "finalize"
        steps = [(c["Rollout-Step"], c["Rollout-Verdict"]) for c in our_commits(remote)]
        assert steps == [("1/3", "promote"), ("2/3", "promote"), ("3/3", "finalize")]
        assert (
            rig.metrics.registry.get_sample_value(
                "rollouts_gate_waiting_seconds", {"rollout": "test/podinfo"}
            )
            == 0
        )


def test_a_deleted_approval_branch_rolls_back(remote: Remote, tmp_path: Path) -> None:
    with _rig(remote, tmp_path, approval={"confirmTrafficIncrease": True}) as rig:
        assert rig.run(30, until="wait")[-1].action == "wait"
        git(remote.bare, "branch", "-D", BRANCH)
        results = rig.run(3, until="rollback")
        assert results[-1].action == "rollback"
        assert "approval rejected: branch" in results[-1].reasons[0]
        assert "weight: 100   # GA" in remote.show(ROUTE)
        assert our_commits(remote)[-1]["Rollout-Verdict"] == "rollback"


def test_a_passing_rollback_webhook_rolls_back(remote: Remote, tmp_path: Path, hooks: HookServer) -> None:
    hooks.flaky = 1  # not asking at the start (503), asking at the next step (200)
    spec_hook = WebhookSpec(name="manual", type="rollback", url=hooks.url + "/flaky")
    with _rig(remote, tmp_path, hooks=[spec_hook]) as rig:
        results = rig.run(30, until="rollback")
        assert results[0].action == "start"
        assert results[-1].action == "rollback"
        assert results[-1].reasons == ("webhook manual (rollback) asked for a rollback",)
        assert "weight: 100   # GA" in remote.show(ROUTE)


def test_a_failing_pre_rollout_holds_then_stops_the_start(
    remote: Remote, tmp_path: Path, hooks: HookServer
) -> None:
    spec_hook = WebhookSpec(name="acceptance", type="pre-rollout", url=hooks.url + "/forbidden")
    with _rig(remote, tmp_path, hooks=[spec_hook], analysis={"threshold": 3}) as rig:
        results = rig.run(3)
        assert [r.action for r in results[:2]] == ["wait", "wait"]
        assert "(failed check 2 of 3)" in results[1].reasons[0]
        assert results[2].action == "pause" and "(3 failed checks, threshold 3)" in results[2].reasons[0]
        assert "weight: 100   # GA" in remote.show(ROUTE)  # never started: no traffic to the canary
        assert our_commits(remote)[-1]["Rollout-Verdict"] == "pause"
        assert {r.action for r in rig.run(3)} <= {"none"}  # paused: no more calls, no more commits


def _bodies(hooks: HookServer, path: str) -> list[dict[str, object]]:
    return [body for p, body in hooks.calls if p == path]


def test_rollout_hooks_run_at_each_analysis_interval_with_flaggers_payload(
    remote: Remote, tmp_path: Path, hooks: HookServer
) -> None:
    spec_hook = WebhookSpec(name="smoke", type="rollout", url=hooks.url + "/ok", metadata={"cmd": "hey"})
    with _rig(remote, tmp_path, hooks=[spec_hook]) as rig:
        results = rig.run(40, until="finalize")
        assert results[-1].action == "finalize"
        calls = _bodies(hooks, "/ok")
        analysing = [r for r in results[1:] if r.action in ("hold", "promote", "finalize")]
        assert calls and len(calls) >= len(analysing)  # once per tick of the analysis, no less
        assert calls[0] == {
            "name": "podinfo",
            "namespace": "test",
            "phase": "Progressing",
            "checksum": checksum("test/podinfo", "0.2.0"),
            "metadata": {"cmd": "hey"},
        }


def test_a_failing_rollout_hook_holds_then_rolls_back_at_the_threshold(
    remote: Remote, tmp_path: Path, hooks: HookServer
) -> None:
    failing = WebhookSpec(name="smoke", type="rollout", url=hooks.url + "/forbidden")
    after = WebhookSpec(name="cleanup", type="post-rollout", url=hooks.url + "/ok")
    with _rig(remote, tmp_path, hooks=[failing, after], analysis={"threshold": 3}) as rig:
        results = rig.run(30, until="rollback")
        assert results[0].action == "start"
        held = [r for r in results if r.action == "hold" and "webhook smoke (rollout)" in r.reasons[0]]
        assert [
            ("failed check 1 of 3" in r.reasons[0], "failed check 2 of 3" in r.reasons[0]) for r in held
        ] == [
            (True, False),
            (False, True),
        ]
        assert results[-1].action == "rollback"
        assert "HTTP 403: Forbidden" in results[-1].reasons[0]
        assert "(3 failed checks, threshold 3)" in results[-1].reasons[0]
        assert "weight: 100   # GA" in remote.show(ROUTE)
        assert [b["phase"] for b in _bodies(hooks, "/ok")] == ["Failed"]  # post-rollout, once


def test_a_failing_post_rollout_hook_does_not_change_the_outcome(
    remote: Remote, tmp_path: Path, hooks: HookServer
) -> None:
    after = WebhookSpec(name="cleanup", type="post-rollout", url=hooks.url + "/forbidden")
    with _rig(remote, tmp_path, hooks=[after]) as rig:
        results = rig.run(40, until="finalize")
        assert results[-1].action == "finalize" and results[-1].weight == 100
        assert [b["phase"] for b in _bodies(hooks, "/forbidden")] == ["Succeeded"]
        assert our_commits(remote)[-1]["Rollout-Verdict"] == "finalize"
        assert {r.action for r in rig.run(2)} <= {"none"}  # promoted: not called again
        assert len(_bodies(hooks, "/forbidden")) == 1


def test_event_hooks_see_every_notice_and_a_hanging_one_is_bounded_by_its_timeout(
    remote: Remote, tmp_path: Path, hooks: HookServer
) -> None:
    told = WebhookSpec(name="chat", type="event", url=hooks.url + "/ok")
    hanging = WebhookSpec(name="slow", type="event", url=hooks.url + "/hang", timeout=0.5)
    with _rig(remote, tmp_path, hooks=[told, hanging]) as rig:
        began = time.monotonic()
        first = rig.run(1)[0]
        took = time.monotonic() - began
        assert first.action == "start"
        assert 0.5 <= took < 3.0  # the hanging hook's 0.5 s timeout, plus the tick itself
        results = rig.run(40, until="finalize")
        assert results[-1].action == "finalize"
        events = _bodies(hooks, "/ok")
        assert len(events) == len(rig.notices) >= 3  # one per notice
        messages = [e["metadata"]["eventMessage"] for e in events]  # type: ignore[index]
        assert messages == [n.summary for n in rig.notices]
        assert {e["metadata"]["eventType"] for e in events} == {"Normal"}  # type: ignore[index]
