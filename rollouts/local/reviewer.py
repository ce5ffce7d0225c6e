"""A reviewer for the local stack: merges the controller's approval branches as a person would.

The demo's approval scenario shows a step waiting for its merge; on one machine there is no forge,
so this thread plays the person: it watches the bare remote for branches under the approval prefix,
waits ``delay`` seconds (so the wait is visible), then merges each into the watched branch with a
merge commit (or a squash, or a rebase-like cherry-pick), in a clone of its own, and pushes.

It only ever merges; it never force-pushes, and it stops by its event (``stop()``), bounded by its
poll interval. It must never run against anything but the local stack's own repository.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger("rollouts.local.reviewer")
Strategy = Literal["merge", "squash", "rebase"]
_PERSON = {
    "GIT_AUTHOR_NAME": "Demo Reviewer",
    "GIT_AUTHOR_EMAIL": "reviewer@demo.invalid",
    "GIT_COMMITTER_NAME": "Demo Reviewer",
    "GIT_COMMITTER_EMAIL": "reviewer@demo.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


@dataclass
class Reviewer:
    """Merges approval branches of ``repo`` (a bare repository) into ``branch`` after ``delay`` s."""

    repo: Path
    workdir: Path
    branch: str = "master"
    prefix: str = "rollouts/"
    delay: float = 5.0
    strategy: Strategy = "merge"
    poll: float = 0.5
    on_merge: Callable[[str, float], None] = lambda branch, waited: None
    merged: list[str] = field(default_factory=list)
    _seen: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd or self.workdir,
            env={**os.environ, **_PERSON},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def branches(self) -> list[str]:
        """Approval branches on the remote now."""
        out = self._git(
            "for-each-ref", "--format=%(refname:short)", f"refs/heads/{self.prefix}", cwd=self.repo
        )
        return [line.strip() for line in out.splitlines() if line.strip()]

    def merge(self, name: str) -> None:
        """Merge ``name`` into the watched branch now (in our clone) and push."""
        if not (self.workdir / ".git").is_dir():
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--quiet", str(self.repo), str(self.workdir), cwd=self.workdir.parent)
        self._git(
            "fetch", "--quiet", "origin", f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
        )
        self._git("fetch", "--quiet", "origin", f"+refs/heads/{name}:refs/remotes/origin/{name}")
        self._git("checkout", "--quiet", "--force", "-B", self.branch, f"origin/{self.branch}")
        theirs = f"origin/{name}"
        if self.strategy == "merge":
            self._git("merge", "--quiet", "--no-ff", "-m", f"Merge branch '{name}' (approved)", theirs)
        elif self.strategy == "squash":
            body = self._git("log", "-1", "--format=%B", theirs)
            self._git("merge", "--quiet", "--squash", theirs)
            self._git("commit", "--quiet", "-m", f"{body.splitlines()[0]} (approved)\n\n* {body}")
        else:
            self._git("cherry-pick", theirs)
        self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}")
        self._git("push", "--quiet", "origin", f":refs/heads/{name}")  # delete it, as forges do on merge

    def tick(self, now: float | None = None) -> None:
        """One look: note new branches, merge those seen ``delay`` seconds ago."""
        now = time.monotonic() if now is None else now
        for name in self.branches():
            first = self._seen.setdefault(name, now)
            if now - first >= self.delay and name not in self.merged:
                self.merge(name)
                self.merged.append(name)
                self.on_merge(name, now - first)
                log.info("reviewer merged %s after %.1fs", name, now - first)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.tick()
            except (RuntimeError, subprocess.SubprocessError) as exc:
                log.warning("reviewer: %s", exc)

    def start(self) -> Reviewer:
        """Review in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="reviewer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (within one poll)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
