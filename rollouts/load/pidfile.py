"""Pid files of local load servers, and the clean-up of the ones a dead controller left behind.

``loadtest serve`` dies with its controller (``--parent-pid``, see ``loadtest.lifeline``), but a
server from an older version, from a platform without ``PR_SET_PDEATHSIG``, or one stuck past its
SIGTERM can outlive a ``kill -9`` of its controller. Each local load server has a pid file here;
at start a controller stops the servers whose controller is gone.

It must never kill a process that is not one of ours: a pid is only signalled when the process
still has the start time recorded in its file (no pid reuse), its command line is a ``loadtest
serve``, and the controller that started it is no longer alive. Anything it cannot verify (no
``/proc``, a file it cannot read) is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("rollouts.load")

PREFIX = "loadtest-serve-"


def default_dir() -> Path:
    """``$TMPDIR/gitops-rollouts-<uid>``: private to this user."""
    return Path(tempfile.gettempdir()) / f"gitops-rollouts-{os.getuid()}"


def _private_dir(path: Path) -> bool:
    """Create ``path`` (0700) if needed; True when it is a real directory owned by us, not shared."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    if len(fields) < 20 or fields[0] == "Z":
        return None  # a zombie is dead already
    return int(fields[19])


def _is_loadtest_serve(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode(errors="replace") for a in argv if a]
    named = any(Path(w).name == "loadtest" for w in words) or "loadtest" in words  # script or -m
    return named and "serve" in words


def _alive(pid: int) -> bool:
    if start_time(pid) is not None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path("/proc").is_dir()  # no /proc: trust kill(0)


@dataclass(frozen=True)
class PidFile:
    """One server's record: its pid and start time, and the controller (parent) that started it."""

    path: Path
    pid: int
    started: int | None
    parent: int

    def remove(self) -> None:
        """Delete the file (gone already is fine)."""
        self.path.unlink(missing_ok=True)


def record(directory: Path, pid: int, parent: int) -> PidFile | None:
    """Write the pid file of server ``pid``, started by ``parent``; None when the directory is unusable."""
    if not _private_dir(directory):
        log.warning("%s is not a private directory: local load servers get no pid file", directory)
        return None
    entry = PidFile(directory / f"{PREFIX}{pid}.json", pid, start_time(pid), parent)
    temporary = entry.path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": pid, "started": entry.started, "parent": parent}))
    temporary.replace(entry.path)
    return entry


def _read(path: Path) -> PidFile | None:
    try:
        data = json.loads(path.read_text())
        return PidFile(path, int(data["pid"]), data["started"], int(data["parent"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def reap_stale(directory: Path, *, grace: float = 3.0) -> list[int]:
    """Stop the load servers in ``directory`` whose controller is gone; the pids stopped.

    A file whose server is no longer running is removed; a server whose controller lives is left
    alone (another controller on this machine); a server that cannot be verified as ours is left
    alone and its file removed. SIGTERM, then SIGKILL after ``grace`` seconds.
    """
    if not directory.is_dir() or not _private_dir(directory):
        return []
    stopped = []
    for path in sorted(directory.glob(f"{PREFIX}*.json")):
        entry = _read(path)
        if entry is None:
            continue
        if _alive(entry.parent):
            continue
        ours = (
            entry.started is not None
            and start_time(entry.pid) == entry.started
            and _is_loadtest_serve(entry.pid)
        )
        if ours:
            log.warning("stopping local load server %d left by controller %d", entry.pid, entry.parent)
            _terminate(entry.pid, entry.started, grace)
            stopped.append(entry.pid)
        entry.remove()
    return stopped


def _terminate(pid: int, started: int | None, grace: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if start_time(pid) != started:
            return
        time.sleep(0.05)
    if start_time(pid) == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
