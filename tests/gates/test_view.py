"""`rollouts status` shows the approval a rollout waits for: which branch, since when, or why not."""

from __future__ import annotations

import json

from rollouts.cli import main
from rollouts.gitops import Workspace
from rollouts.gitops.approvals import propose
from rollouts.routes import Weights
from rollouts.spec import parse_spec
from tests.fixtures.gitrepo import git, guide_rollout

BRANCH = "rollouts/test/podinfo/0.2.0/step-2"


def _spec_file(tmp_path, remote):
    doc = guide_rollout(str(remote.bare), approval={"confirmTrafficIncrease": [60]})
    path = tmp_path / "rollout.yaml"
    path.write_text(json.dumps(doc))
    return path, parse_spec(doc)


def test_status_shows_the_waiting_approval_then_its_rejection(tmp_path, remote, cache, capsys) -> None:
    path, spec = _spec_file(tmp_path, remote)
    assert main(["status", str(path), "--cache-dir", str(cache)]) == 0
    assert "approval" not in capsys.readouterr().out  # nothing proposed yet: nothing awaited
    with Workspace(spec.spec.git.url, "master", cache_dir=cache) as ws:
        propose(ws, spec, Weights(40, 60), branch=BRANCH, step="2/3")
    assert main(["status", str(path), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"approval      test/podinfo waiting for approval: merge branch {BRANCH}, since " in out
    assert main(["status", str(path), "--json", "--cache-dir", str(cache)]) == 0
    approval = json.loads(capsys.readouterr().out)["approval"]
    assert approval["state"] == "waiting" and approval["branch"] == BRANCH and approval["since"]
    git(remote.bare, "branch", "-D", BRANCH)
    assert main(["status", str(path), "--cache-dir", str(cache)]) == 0
    assert f"approval rejected: branch {BRANCH} was deleted" in capsys.readouterr().out


def test_status_shows_a_rollback_awaiting_merge_with_its_verdict(tmp_path, remote, cache, capsys) -> None:
    from rollouts.gates.errors import AwaitingMergeError
    from rollouts.gates.proposals import Proposals
    from rollouts.state import CommitVerdict, WeightChange
    from tests.fixtures.gitrepo import protect_but_merges

    protect_but_merges(remote)
    doc = guide_rollout(str(remote.bare), approval={"protectedBranch": True, "directRollback": False})
    path = tmp_path / "rollout.yaml"
    path.write_text(json.dumps(doc))
    spec = parse_spec(doc)
    verdict = "latency harm at 10%: e-value 41 > 20"
    change = WeightChange(Weights(100, 0), CommitVerdict.ROLLBACK, (verdict,), step="1/3")
    with Workspace(spec.spec.git.url, "master", cache_dir=cache) as ws:
        try:
            Proposals(spec, workspace=ws).commit_weights(change, "0.2.0")
            raise AssertionError("a rollback by merge must wait")
        except AwaitingMergeError as exc:
            assert exc.wait.branch == "rollouts/test/podinfo/0.2.0/rollback"
    assert main(["status", str(path), "--cache-dir", str(cache / "status")]) == 0
    out = capsys.readouterr().out
    branch = "rollouts/test/podinfo/0.2.0/rollback"
    assert f"awaiting      test/podinfo: rollback awaiting merge: merge branch {branch}" in out
    assert f"; rollback: {verdict}" in out
    assert main(["status", str(path), "--json", "--cache-dir", str(cache / "status")]) == 0
    awaiting = json.loads(capsys.readouterr().out)["awaiting_merge"]
    assert (
        awaiting["kind"] == "rollback" and awaiting["state"] == "waiting" and awaiting["reasons"] == [verdict]
    )
    assert not (remote.bare / "refused").exists()  # never tried master
