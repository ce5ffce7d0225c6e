"""What the Grafana tests read from the live run (``conftest.live``): Prometheus, and what the
controller did."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import git

from rollouts.controller.machine import TickResult
from rollouts.local.stack import LocalStack
from tests.grafana.promserver import Prometheus

TOTAL = 'istio_requests_total{reporter="destination", destination_workload_namespace="test"}'


@dataclass(frozen=True)
class Live:
    """What the tests read: Prometheus, and what the controller did."""

    prometheus: Prometheus
    ticks: list[TickResult]
    served: Counter[tuple[str, int]]  # (subset that answered, status) -> requests
    pipeline: TickResult  # the pipeline job's tick


CANARY_PATH = "workloads/podinfo/canary-deployment.yaml"


def commit_file(stack: LocalStack, path: str, text: str, message: str) -> None:
    """Commit ``text`` at ``path`` on the stack's remote, as image automation would."""
    scratch = Path(tempfile.mkdtemp(prefix="clone-", dir=stack.directory))
    try:
        repo = git.Repo.clone_from(str(stack.repo_path), scratch, branch=stack.config.branch)
        with repo.config_writer() as writer:
            writer.set_value("user", "name", "image automation")
            writer.set_value("user", "email", "flux@example.com")
        (scratch / path).parent.mkdir(parents=True, exist_ok=True)
        (scratch / path).write_text(text)
        repo.git.add(path)
        repo.git.commit("-m", message)
        repo.git.push("origin", f"HEAD:refs/heads/{stack.config.branch}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
