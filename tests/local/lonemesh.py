"""The local mesh alone (no Prometheus, no services) following a bare repo: for what only the Git side
of the mesh needs (its poll and its ``POST /reconcile``). No pytest here: the benchmark imports it."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollouts.local.mesh import Destination, MeshConfig
from rollouts.local.process import ChildProcess, free_port, python_module
from rollouts.local.stack import guide_virtual_service
from tests.fixtures.gitrepo import Remote, bare_remote, git

ROUTE = "workloads/podinfo/virtual-service.yaml"


@dataclass
class LoneMesh:
    """A running mesh process and the remote it follows."""

    remote: Remote
    admin_url: str

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.admin_url + "/status", timeout=5) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def push_weight(self, canary: int) -> str:
        """A human's commit of the route file with ``canary`` percent, pushed; returns its sha."""
        (self.remote.human / ROUTE).write_text(guide_virtual_service(canary))
        git(self.remote.human, "commit", "--quiet", "-am", f"canary {canary}%")
        git(self.remote.human, "push", "--quiet", "origin", f"HEAD:{self.remote.branch}")
        return git(self.remote.human, "rev-parse", "HEAD").strip()

    def wait_for(self, sha: str, timeout: float) -> float:
        """Seconds until the mesh applies ``sha``; raises TimeoutError after ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.status()["revision"] == sha:
                return time.monotonic() - start
            time.sleep(0.01)
        raise TimeoutError(f"the mesh did not apply {sha[:12]} in {timeout}s")


@contextmanager
def lone_mesh(root: Path, poll_interval: float) -> Iterator[LoneMesh]:
    """Seed a bare repo under ``root`` with the guide's route, start the mesh on it, stop it by pid."""
    remote = bare_remote(root)
    remote.seed({ROUTE: guide_virtual_service(0)}, "podinfo: canary 0%")
    git(remote.human, "push", "--quiet", "origin", remote.branch)
    unused = free_port()  # no backend runs: only the Git side of the mesh is exercised
    admin = free_port()
    config = MeshConfig(
        port=free_port(),
        admin_port=admin,
        repo=str(remote.bare),
        path=ROUTE,
        stable=Destination(name="ga", url=f"http://127.0.0.1:{unused}", workload="podinfo", version="ga"),
        canary=Destination(
            name="canary", url=f"http://127.0.0.1:{unused}", workload="podinfo-canary", version="canary"
        ),
        poll_interval=poll_interval,
    )
    path = root / "mesh.json"
    path.write_text(config.model_dump_json())
    mesh = ChildProcess("mesh", python_module("rollouts.local.mesh", f"--config={path}"), root / "mesh.log")
    try:
        admin_url = f"http://127.0.0.1:{admin}"
        mesh.wait_http(admin_url + "/readyz", timeout=30)
        yield LoneMesh(remote, admin_url)
    finally:
        mesh.stop()
