"""Tie a helper process's life to its parent's: ``loadtest serve --parent-pid PID``.

A controller started with ``kill -9`` has no chance to stop its local load server; without a tie
the server is re-parented to PID 1, keeps listening, and each restart of the controller starts
another. Two mechanisms, because neither covers everything alone:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel sends SIGTERM the moment the parent
  dies. (It fires when the *thread* that started us ends, which for the controller is its
  long-lived scheduler thread; a server that dies early is restarted by the controller.)
* everywhere, :func:`parent_gone`: ``os.getppid()`` is no longer the parent's pid (we were
  re-parented), checked by the server every half second, and once at start for the race where
  the parent died before ``prctl`` ran.

Standard library only (ctypes); it never kills anything, it only tells the caller.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

#: ``<linux/prctl.h>``: ``PR_SET_PDEATHSIG``.
PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; True when it took.

    Linux only (``False`` elsewhere, or when libc cannot be loaded): then only :func:`parent_gone`
    ties the process to its parent.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    result: int = libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0)
    return result == 0


def parent_gone(parent_pid: int) -> bool:
    """True when this process is no longer a child of ``parent_pid`` (it died; we were re-parented)."""
    return os.getppid() != parent_pid
