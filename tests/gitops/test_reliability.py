"""Reliability against real remotes: concurrent writers, a kill between commit and push."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rollouts.gitops import Workspace
from rollouts.routes import Weights
from tests.fixtures.gitrepo import GIT_ENV, git

VS = "workloads/podinfo/virtual-service.yaml"
ROOT = Path(__file__).resolve().parents[2]

# Another process (Flux's image automation, say) pushing image bumps to the same branch as fast as
# it can, retrying its own rejected pushes; it writes the sha of each push that landed.
BUMPER = textwrap.dedent(
    """
    import pathlib, subprocess, sys, time
    bare, work, stop, log = map(pathlib.Path, sys.argv[1:5])
    def git(*args, check=True):
        return subprocess.run(["git", *args], cwd=work, capture_output=True, text=True, check=check)
    subprocess.run(["git", "clone", "--quiet", str(bare), str(work)], check=True)
    path = work / "workloads/podinfo/canary-deployment.yaml"
    deadline = time.monotonic() + 60
    n = 0
    while not stop.exists() and time.monotonic() < deadline and n < 500:
        n += 1
        for _ in range(50):
            git("fetch", "--quiet", "origin")
            git("reset", "--quiet", "--hard", "origin/master")
            text = path.read_text()
            old = text.split("podinfo:", 1)[1].split(" ", 1)[0]
            path.write_text(text.replace("podinfo:" + old, f"podinfo:0.3.{n}", 1))
            git("commit", "--quiet", "-am", f"image bump 0.3.{n}")
            if git("push", "--quiet", "origin", "HEAD:master", check=False).returncode == 0:
                with log.open("a") as out:
                    out.write(git("rev-parse", "HEAD").stdout)
                break
        time.sleep(0.2)  # image automation pushes every few minutes; this is far harsher
    """
)


@pytest.mark.slow
@pytest.mark.integration
def test_concurrent_writers_lose_nothing(remote, spec, cache, tmp_path):
    stop, log = tmp_path / "stop", tmp_path / "bumps.log"
    bumper = subprocess.Popen(
        [sys.executable, "-c", BUMPER, str(remote.bare), str(tmp_path / "bumper"), str(stop), str(log)],
        env={**os.environ, **GIT_ENV, "GIT_AUTHOR_NAME": "flux", "GIT_COMMITTER_NAME": "flux"},
    )
    try:
        deadline = time.monotonic() + 10
        while not log.exists() and time.monotonic() < deadline:  # let the bumper get going
            time.sleep(0.02)
        ws = Workspace.for_spec(spec, cache_dir=cache, max_attempts=20, backoff=0.2)
        results = [
            ws.set_weights(spec, Weights.for_canary(w), verdict="promote", reasons=[f"change {w}"])
            for w in range(11, 61)
        ]
    finally:
        stop.touch()
        bumper.wait(timeout=60)
    assert bumper.returncode == 0
    head = remote.head()
    ours = [r.sha for r in results]
    bumps = log.read_text().split()
    assert len(ours) == 50 and all(ours) and len(set(ours)) == 50
    assert bumps, "the other writer never pushed"
    for sha in ours + bumps:  # no commit lost
        git(remote.bare, "merge-base", "--is-ancestor", sha, head)
    assert git(remote.bare, "rev-list", "--merges", head) == ""
    assert remote.count() == 1 + 50 + len(bumps)
    # Every update of the branch was a fast-forward (the remote's reflog).
    updates = (remote.bare / "logs/refs/heads/master").read_text().splitlines()
    for line in updates:
        old, new = line.split()[:2]
        if set(old) != {"0"}:
            git(remote.bare, "merge-base", "--is-ancestor", old, new)
    assert "weight: 40   # GA" in remote.show(VS) and "      weight: 60\n" in remote.show(VS)
    assert sum(r.attempts for r in results) >= 50
    print(json.dumps({"bumps": len(bumps), "retries": sum(r.attempts for r in results) - 50}))


KILLER = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    from rollouts.gitops import Workspace
    from rollouts.routes import Weights
    from rollouts.spec import load_spec
    spec, cache, when = load_spec(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    class Killed(Workspace):
        def _push(self):
            if when == "after":
                super()._push()
            os.kill(os.getpid(), signal.SIGKILL)  # the controller dies right here
    workspace = Killed.for_spec(spec, cache_dir=cache)
    workspace.set_weights(spec, Weights.for_canary(60), verdict="promote", step="2/3")
    """
)

SPEC = """apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {{name: podinfo, namespace: test}}
spec:
  git: {{url: {url}, branch: master}}
  route: {{kind: VirtualService, path: workloads/podinfo/virtual-service.yaml, stable: ga, canary: canary}}
  canary: {{path: workloads/podinfo/canary-deployment.yaml}}
  steps: [10, 60, 100]
"""


def run_killed(tmp_path, remote, cache, when):
    spec_file = tmp_path / "rollout.yaml"
    spec_file.write_text(SPEC.format(url=remote.bare))
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(spec_file), str(cache), when],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_killed_between_commit_and_push_converges(remote, spec, cache, tmp_path):
    before = remote.head()
    run_killed(tmp_path, remote, cache, "before")
    assert remote.head() == before  # the commit never left the machine
    ws = Workspace.for_spec(spec, cache_dir=cache)
    assert git(ws.path, "rev-list", "--count", "origin/master..HEAD").strip() == "1"  # its unpushed commit
    result = ws.set_weights(spec, Weights.for_canary(60), verdict="promote", step="2/3")
    assert result.changed and remote.count() == 2 and remote.head() == result.sha
    assert git(remote.bare, "rev-parse", f"{result.sha}^").strip() == before
    assert ws.read_state(spec).weights == Weights(40, 60)


def test_killed_after_push_does_not_commit_twice(remote, spec, cache, tmp_path):
    run_killed(tmp_path, remote, cache, "after")
    pushed = remote.head()
    assert remote.count() == 2 and "Rollout-Verdict: promote" in remote.message(pushed)
    # The controller reruns the step it did not see finish, expecting the weights from before it.
    result = Workspace.for_spec(spec, cache_dir=cache).set_weights(
        spec, Weights.for_canary(60), verdict="promote", step="2/3", expected=Weights(90, 10)
    )
    assert not result.changed and result.head == pushed and remote.head() == pushed and remote.count() == 2
