"""Kill the controller during a hand-over, then start it again: one hand-over commit, one start.

A real ``rollouts run --once`` in its own process group hands 0.2.0 over from staging to production.
A hook on production's bare repository holds the hand-over's push: ``pre-receive`` before the branch
moves (the push never lands), ``post-receive`` after it moved (it landed, the controller never heard).
The test SIGKILLs the process group by its id while the hook holds, removes the hook, and runs the
controller again, twice. Production must hold exactly one hand-over commit, and production's rollout
must start 0.2.0 exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rollouts.state import CommitVerdict, FinalizeStage, format_message
from tests.fixtures.gitrepo import Remote, git
from tests.forge.forgeapi import TOKEN, ForgeApi
from tests.forge.forgeapi import serve as serve_forge
from tests.pipeline.world import walk

CLOSED = "http://127.0.0.1:9"  # no mesh answers: the rollouts wait at their sync gate
HOOK = """#!/bin/sh
# Hold a pipeline hand-over's push (and only that): mark that it is here, then wait to be killed.
while read old new ref; do
  if git log -1 --format=%B "$new" | grep -q "^Rollout-Verdict: handover"; then
    : > "{marker}"
    sleep 60
  fi
done
exit 0
"""


def run_once(specs: Path, cache: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "rollouts.cli", "run", "--once", "--mesh", CLOSED]
    argv += [str(specs / "pipeline.yaml"), "--cache-dir", str(cache), "--log-level", "WARNING"]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def commits(bare: Path, *trailers: str) -> list[str]:
    """The commits of master whose message holds every one of ``trailers`` (``Key: value``)."""
    found = []
    for sha in git(bare, "rev-list", "master").split():
        message = git(bare, "log", "-1", "--format=%B", sha)
        if all(f"\n{t}\n" in f"\n{message}\n" for t in trailers):
            found.append(sha)
    return found


def seed_finalized(remote: Remote, revision: str) -> None:
    """Production runs ``revision`` finalized already: the record a finished rollout leaves."""
    message = format_message(
        "test/podinfo-prod",
        f"podinfo-prod: {revision} runs on GA",
        verdict=CommitVerdict.FINALIZE,
        reasons=[f"seeded by the test: production runs {revision}, finalized"],
        step="3/3",
        revision=revision,
        finalize=FinalizeStage.ROUTE_GA,
    )
    git(remote.human, "pull", "--quiet", "--ff-only", "origin", "master")
    git(remote.human, "commit", "--quiet", "--allow-empty", "-m", message)
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")


@pytest.mark.parametrize("hook", ["pre-receive", "post-receive"])
def test_killed_during_a_handover_then_restarted(world, tmp_path: Path, hook: str) -> None:
    loaded, workspaces, _staging, production, specs = world
    text = (specs / "pipeline.yaml").read_text().replace("soak: 10m", "soak: 1s")
    (specs / "pipeline.yaml").write_text(text)
    seed_finalized(production, "0.1.0")
    walk(workspaces["staging"], loaded.stages[0].rollout)
    time.sleep(1.1)  # the soak
    marker = tmp_path / "held"
    script = production.bare / "hooks" / hook
    script.write_text(HOOK.format(marker=marker))
    script.chmod(0o755)
    cache = tmp_path / "run"

    proc = run_once(specs, cache)
    deadline = time.monotonic() + 90
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    held = marker.exists()
    os.killpg(proc.pid, signal.SIGKILL)  # the controller, its git push and the receiving side
    output = proc.communicate(timeout=30)[0]
    assert held, f"the hand-over's push never reached the hook:\n{output}"
    assert proc.returncode == -signal.SIGKILL
    script.unlink()
    landed = commits(production.bare, "Rollout-Verdict: handover")
    assert len(landed) == (1 if hook == "post-receive" else 0)

    for _ in range(2):  # started again, and once more: a restart must never repeat anything
        again = run_once(specs, cache)
        output = again.communicate(timeout=120)[0]
        assert again.returncode == 0, output

    handovers = commits(production.bare, "Rollout-Pipeline: test/podinfo", "Rollout-Verdict: handover")
    assert len(handovers) == 1, handovers
    assert "podinfo:0.2.0" in production.show("workloads/podinfo/canary-deployment.yaml")
    starts = commits(
        production.bare,
        "Rollout: test/podinfo-prod",
        "Rollout-Revision: 0.2.0",
        "Rollout-Step: 1/3",
        "Rollout-Verdict: promote",
    )
    assert len(starts) == 1, git(production.bare, "log", "--format=%h %s%n%b", "master") + output


@pytest.fixture
def forge_api() -> Iterator[ForgeApi]:
    yield from serve_forge()


def test_killed_while_proposing_a_merge_then_restarted(world, tmp_path: Path, forge_api: ForgeApi) -> None:
    """``approval: merge``: the branch push landed, the controller died before it heard (and before
    the pull request). Restarted twice while the request waits: one branch, one request, production
    untouched. Merged: one hand-over on production's branch, and its rollout starts 0.2.0."""
    loaded, workspaces, _staging, production, specs = world
    text = (specs / "pipeline.yaml").read_text().replace("soak: 10m", "{soak: 1s, approval: merge}")
    (specs / "pipeline.yaml").write_text(text)
    token = tmp_path / "forge-token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    prod = yaml.safe_load((specs / "production.yaml").read_text())
    prod["spec"]["approval"] = {
        "forge": {
            "kind": "github",
            "repository": "org/cluster",
            "url": forge_api.base,
            "tokenFile": str(token),
        }
    }
    (specs / "production.yaml").write_text(yaml.safe_dump(prod))
    seed_finalized(production, "0.1.0")
    walk(workspaces["staging"], loaded.stages[0].rollout)
    time.sleep(1.1)  # the soak
    marker = tmp_path / "held"
    script = production.bare / "hooks" / "post-receive"
    script.write_text(HOOK.format(marker=marker))
    script.chmod(0o755)
    cache = tmp_path / "run"
    master = production.head()

    proc = run_once(specs, cache)
    deadline = time.monotonic() + 90
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    held = marker.exists()
    os.killpg(proc.pid, signal.SIGKILL)
    output = proc.communicate(timeout=30)[0]
    assert held, f"the proposal's push never reached the hook:\n{output}"
    script.unlink()
    branch = "rollouts/pipeline/test/podinfo/production/0.2.0"
    listed = git(production.bare, "branch", "--list", "rollouts/*", "--format=%(refname:short)").split()
    assert listed == [branch] and forge_api.creates() == 0

    for _ in range(2):  # waiting for the merge: restarts repeat nothing
        again = run_once(specs, cache)
        output = again.communicate(timeout=120)[0]
        assert again.returncode == 0, output
    listed = git(production.bare, "branch", "--list", "rollouts/*", "--format=%(refname:short)").split()
    assert listed == [branch] and forge_api.creates() == 1, output
    assert production.head() == master  # nothing on production's watched branch before the merge

    git(production.human, "pull", "--quiet", "origin", "master")
    git(production.human, "fetch", "--quiet", "origin", branch)
    git(production.human, "merge", "--quiet", "--no-ff", "-m", "Merge pull request #1", "FETCH_HEAD")
    git(production.human, "push", "--quiet", "origin", "HEAD:master")
    forge_api.merge(1)
    again = run_once(specs, cache)  # the merged hand-over is done; production's rollout starts
    output = again.communicate(timeout=120)[0]
    assert again.returncode == 0, output
    handovers = commits(production.bare, "Rollout-Pipeline: test/podinfo", "Rollout-Verdict: handover")
    starts = commits(
        production.bare, "Rollout: test/podinfo-prod", "Rollout-Revision: 0.2.0", "Rollout-Step: 1/3"
    )
    assert len(handovers) == 1 and len(starts) == 1, output
    assert forge_api.creates() == 1
