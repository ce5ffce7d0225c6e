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
