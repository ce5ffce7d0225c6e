"""Child processes of the local stack die with their parent and leave no process group behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rollouts.local.process import ChildProcess, ProcessError


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_child_dies_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from rollouts.local.process import ChildProcess
                child = ChildProcess("sleeper", ["sleep", "60"], Path({str(tmp_path)!r}) / "log")
                print(child.pid, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        os.kill(child_pid, 0)  # alive while the parent lives
        parent.send_signal(signal.SIGKILL)  # no cleanup code of the parent can run
        parent.wait(5)
        assert _gone(child_pid), "the child outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait(5)


def test_stop_ends_the_whole_process_group(tmp_path):
    # A shell that starts a grandchild: stopping the child must end the grandchild too.
    child = ChildProcess("shell", ["sh", "-c", "sleep 60 & echo $!; wait"], tmp_path / "log")
    deadline = time.monotonic() + 5
    while not (tmp_path / "log").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int((tmp_path / "log").read_text().split()[0])
    child.stop()
    assert not child.running()
    assert _gone(grandchild)


def test_a_child_that_exits_before_ready_is_reported_with_its_log(tmp_path):
    child = ChildProcess(
        "broken", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "l"
    )
    with pytest.raises(ProcessError, match=r"(?s)broken exited with code 3.*boom"):
        child.wait_http("http://127.0.0.1:9/never", timeout=10)
    child.stop()


def test_a_missing_program_is_a_clear_error(tmp_path):
    with pytest.raises(ProcessError, match="cannot start"):
        ChildProcess("ghost", [str(tmp_path / "no-such-program")], tmp_path / "log")
