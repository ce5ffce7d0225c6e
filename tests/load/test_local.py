"""The local load server never outlives its controller: ``kill -9`` of a real parent, stale pid files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollouts.load import LoadRequest, LocalLoad, pidfile
from tests.loadtest.target import Target
from tests.support import free_port

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")]

LOADTEST = str(Path(sys.executable).with_name("loadtest"))

PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rollouts.load import LoadRequest, LocalLoad

    load = LocalLoad(pid_dir=Path(sys.argv[1]))
    job = load.start(LoadRequest(target=sys.argv[2], duration=60, rate=20))
    print(load.pid, job, flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target(free_port()).start()
    yield server
    server.stop()


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pidfile.start_time(pid) is None:
            return True
        time.sleep(0.05)
    return False


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_kill_9_of_the_controller_ends_its_load_server(tmp_path: Path, target: Target) -> None:
    """Regression: the server was re-parented to PID 1 and kept listening (and loading)."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path), f"http://127.0.0.1:{target.port}/"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().split()
        server = int(line[0])
        assert line[1].startswith("job-")
        assert pidfile.start_time(server) is not None
        assert [p.name for p in tmp_path.glob("loadtest-serve-*.json")] == [f"loadtest-serve-{server}.json"]
        time.sleep(0.5)
        sent = target.requests
        assert sent > 0  # the job is really loading the target
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _gone_within(server, 5), f"load server {server} outlived its controller"
        settled = target.requests
        time.sleep(0.5)
        assert target.requests == settled  # and the load stopped with it
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for path in tmp_path.glob("loadtest-serve-*.json"):
            leftover = int(json.loads(path.read_text())["pid"])
            if pidfile.start_time(leftover) is not None:
                os.kill(leftover, signal.SIGKILL)


def _serve(port: int) -> subprocess.Popen[bytes]:
    """A ``loadtest serve`` without ``--parent-pid``: what an older controller left running."""
    return subprocess.Popen(
        [LOADTEST, "serve", "--host", "127.0.0.1", "--port", str(port), "--allow", "127.0.0.1"],
        env={**os.environ, "LOADTEST_TOKEN": "t" * 24},
        stderr=subprocess.DEVNULL,
    )


def _write(directory: Path, pid: int, parent: int) -> Path:
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / f"loadtest-serve-{pid}.json"
    path.write_text(json.dumps({"pid": pid, "started": pidfile.start_time(pid), "parent": parent}))
    return path


def test_stale_servers_of_dead_controllers_are_stopped_at_start(tmp_path: Path, target: Target) -> None:
    pids = tmp_path / "pids"
    orphan = _serve(free_port())  # its controller died: stopped
    sibling = _serve(free_port())  # its controller (this test) lives: left alone
    stranger = subprocess.Popen(["sleep", "30"])  # a recycled pid, not a loadtest serve: left alone
    load = LocalLoad(pid_dir=pids)
    try:
        time.sleep(0.5)
        _write(pids, orphan.pid, _dead_pid())
        _write(pids, sibling.pid, os.getpid())
        stranger_file = _write(pids, stranger.pid, _dead_pid())
        (pids / "loadtest-serve-garbage.json").write_text("{not json")
        job = load.start(LoadRequest(target=f"http://127.0.0.1:{target.port}/", duration=5, rate=5))
        assert job is not None
        assert orphan.wait(timeout=10) is not None
        assert sibling.poll() is None and stranger.poll() is None
        assert not stranger_file.exists()
        assert load.pid is not None and (pids / f"loadtest-serve-{load.pid}.json").exists()
    finally:
        ours = load.pid
        load.close()
        for proc in (orphan, sibling, stranger):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert ours is not None and not (pids / f"loadtest-serve-{ours}.json").exists()


def test_a_shared_pid_directory_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert pidfile.record(shared, os.getpid(), os.getpid()) is None
    assert pidfile.reap_stale(shared) == []


def test_serve_exits_when_its_parent_is_already_gone(tmp_path: Path) -> None:
    result = subprocess.run(
        [LOADTEST, "serve", "--port", str(free_port()), "--allow", "x", "--parent-pid", str(_dead_pid())],
        env={**os.environ, "LOADTEST_TOKEN": "t" * 24},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "is gone" in result.stderr
