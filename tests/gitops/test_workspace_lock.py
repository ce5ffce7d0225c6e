"""The workspace lock (filelock): another process holding it makes a change wait, then fail with a
message naming the workspace; once it lets go, the change goes through. Real Git, real processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import rollouts.gitops.workspace as workspace_module
from rollouts.gitops import GitopsError, Workspace
from rollouts.routes import Weights

HOLD = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def _holder(lock_path: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, lock_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)


def test_a_lock_held_by_another_process_fails_the_change_naming_the_workspace(
    remote, spec, cache, monkeypatch
):
    ws = Workspace.for_spec(spec, cache_dir=cache)
    ws.read_weights(spec)  # clone once
    monkeypatch.setattr(workspace_module, "LOCK_TIMEOUT_S", 0.3)
    before = remote.head()
    proc = _holder(str(ws.path.parent / f"{ws.path.name}.lock"))
    try:
        started = time.monotonic()
        with pytest.raises(GitopsError, match="workspace is locked by another process") as caught:
            ws.set_weights(spec, Weights.for_canary(60), verdict="promote", reasons=["x"])
        assert 0.3 <= time.monotonic() - started < 10
        assert str(ws.path) in str(caught.value)
        assert remote.head() == before  # nothing pushed
    finally:
        _release(proc)
    result = ws.set_weights(spec, Weights.for_canary(60), verdict="promote", reasons=["x"])
    assert result.changed and remote.head() == result.sha


def test_a_waiting_change_goes_through_when_the_holder_lets_go(remote, spec, cache):
    ws = Workspace.for_spec(spec, cache_dir=cache)
    ws.read_weights(spec)
    proc = _holder(str(ws.path.parent / f"{ws.path.name}.lock"))
    timer = threading.Timer(0.5, _release, args=(proc,))
    timer.start()
    try:
        started = time.monotonic()
        result = ws.set_weights(spec, Weights.for_canary(60), verdict="promote", reasons=["x"])
        assert time.monotonic() - started >= 0.4  # it waited for the holder
        assert result.changed and remote.head() == result.sha
    finally:
        timer.join(timeout=30)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
