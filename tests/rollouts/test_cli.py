"""The ``rollouts`` commands against a real bare remote."""

from __future__ import annotations

import json

import pytest

from rollouts.cli import EXIT_OVERRIDE, main
from tests.fixtures.gitrepo import git, vs_with

SPEC = """apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata:
  name: podinfo
  namespace: test
spec:
  git:
    url: {url}
    branch: master
  route:
    kind: VirtualService
    path: workloads/podinfo/virtual-service.yaml
    stable: ga
    canary: canary
  canary:
    path: workloads/podinfo/canary-deployment.yaml
  steps: [10, 60, 100]
"""
VS = "workloads/podinfo/virtual-service.yaml"


@pytest.fixture
def spec_file(tmp_path, remote):
    path = tmp_path / "rollout.yaml"
    path.write_text(SPEC.format(url="remote.git"))  # a local path, relative to the spec file
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_set_weight_status_pause_resume_abort(capsys, remote, spec_file, cache, monkeypatch):
    monkeypatch.chdir(cache.parent)
    cache = cache.name  # a relative cache dir works too
    code, out, err = run(
        capsys, "set-weight", spec_file, "60", "--cache-dir", cache, "--reason", "looks good"
    )
    assert (code, err) == (0, "")
    assert out.startswith("test/podinfo: canary 10% -> 60%: pushed ")
    message = remote.message(remote.head())
    assert message.startswith("podinfo: canary 10% -> 60% (manual)\n\n- looks good\n")
    assert "Rollout-Step: 2/3\n" in message and "Rollout-Verdict: manual\n" in message

    code, out, _ = run(capsys, "set-weight", spec_file, "60", "--cache-dir", cache)
    assert code == 0 and "nothing to commit" in out

    code, out, _ = run(capsys, "status", spec_file, "--json", "--cache-dir", cache)
    state = json.loads(out)
    assert code == 0 and state["weights"] == {"stable": 40, "canary": 60}
    assert state["last"]["verdict"] == "manual" and state["paused"] is False and state["revision"] == "0.2.0"
    assert state["position"] == {
        "phase": "progressing",
        "stage": "step 2/3",
        "step": 2,
        "weight": 60,
        "reason": "analysing canary 0.2.0 at 60%",
    }
    assert (
        "position      progressing, step 2/3 (60%): analysing canary 0.2.0 at 60%"
        in run(capsys, "status", spec_file, "--cache-dir", cache)[1]
    )

    assert run(capsys, "pause", spec_file, "--cache-dir", cache)[0] == 0
    code, out, _ = run(capsys, "status", spec_file, "--cache-dir", cache)
    assert (
        "paused        yes" in out and "ga 40%, canary 60%" in out and "last commit   manual step 2/3" in out
    )
    assert "position      paused: paused by a pause" in out
    assert run(capsys, "resume", spec_file, "--cache-dir", cache)[0] == 0

    count = remote.count()
    code, out, _ = run(
        capsys, "abort", spec_file, "--cache-dir", cache, "--author", "Jane Ops <jane@example.com>"
    )
    assert code == 0 and "abort: canary 60% -> 0%" in out
    assert remote.count() == count + 1 and "weight: 0\n" in remote.show(VS)
    assert git(remote.bare, "log", "-1", "--format=%an <%ae>").strip() == "Jane Ops <jane@example.com>"
    assert json.loads(run(capsys, "status", spec_file, "--json", "--cache-dir", cache)[1])["paused"] is True
    # Aborting again: weights are already at stable and the rollout is aborted: no commit.
    assert run(capsys, "abort", spec_file, "--cache-dir", cache)[0] == 0 and remote.count() == count + 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set-weight", "{spec}", "101"], "WEIGHT must be between 0 and 100, got 101"),
        (["set-weight", "{spec}", "ten"], "WEIGHT must be an integer 0-100, got 'ten'"),
    ],
)
def test_usage_errors(capsys, spec_file, remote, argv, message):
    before = remote.head()
    with pytest.raises(SystemExit) as info:
        main([a.format(spec=spec_file) for a in argv])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert remote.head() == before


def test_errors_exit_non_zero_and_push_nothing(capsys, tmp_path, remote, spec_file, cache):
    before = remote.head()
    code, _, err = run(capsys, "set-weight", tmp_path / "nope.yaml", "10", "--cache-dir", cache)
    assert code == 1 and "nope.yaml: cannot read" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.format(url="remote.git").replace("[10, 60, 100]", "[10, 600]"))
    code, _, err = run(capsys, "status", bad, "--cache-dir", cache)
    assert code == 1 and f"{bad}: spec.steps[1]: must be between 1 and 100" in err
    unreachable = tmp_path / "gone.yaml"
    unreachable.write_text(SPEC.format(url="https://bob:t0ps3cret@127.0.0.1:9/org/cluster.git"))
    code, _, err = run(capsys, "status", unreachable, "--cache-dir", cache)
    assert code == 1 and "spec.git.url: must not contain credentials" in err and "t0ps3cret" not in err
    unreachable.write_text(SPEC.format(url="https://127.0.0.1:9/org/cluster.git"))
    code, _, err = run(capsys, "set-weight", unreachable, "10", "--cache-dir", cache)
    assert code == 1 and "https://127.0.0.1:9/org/cluster.git (master): git clone failed" in err
    remote.commit_file(VS, vs_with(90, 20), "bad sum")
    code, _, err = run(capsys, "set-weight", spec_file, "60", "--cache-dir", cache)
    assert (
        code == 1
        and "virtual-service.yaml: VirtualService test/podinfo http[0]: weights must sum to 100" in err
    )
    assert remote.count() == 2 and remote.head() != before  # only the human's commit


def test_human_override_has_its_own_exit_code(capsys, remote, spec_file, cache):
    # The controller's last commit set 60%; a human then set 0%: `set-weight` still works (it is a
    # human too), and the status shows the override.
    assert run(capsys, "set-weight", spec_file, "60", "--cache-dir", cache)[0] == 0
    remote.commit_file(VS, vs_with(100, 0), "all to GA by hand")
    code, out, _ = run(capsys, "status", spec_file, "--cache-dir", cache)
    assert code == 0 and "human change  yes, by " in out
    assert EXIT_OVERRIDE == 3
