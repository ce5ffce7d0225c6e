"""One real rollout for the report tests: a bare Git remote with weight commits (ours, made by the
real Workspace, and a human's), and a real Prometheus that scraped Istio-named metrics whose traffic
changed at each commit. Built once per session (about 15 s: the steps are real time)."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import git as gitpython
import pytest
import requests

from rollouts.gitops import Workspace
from rollouts.report import read_step_metrics, read_timeline, select_subsets
from rollouts.report.metrics import StepMetricsReport
from rollouts.routes import Weights
from rollouts.spec import Rollout, load_spec
from tests.fixtures.gitrepo import DESTINATION_RULE, VIRTUAL_SERVICE, bare_remote, deployment, git, vs_with
from tests.grafana.promserver import run_prometheus
from tests.report.exporter import Traffic, serve_istio
from tests.report.scenario import EVIDENCE_JSON, HUMAN_SUBJECT, SPEC
from tests.support import free_port, require_binary

STEP_S = 3
ROUTE = "workloads/podinfo/virtual-service.yaml"
CANARY = "workloads/podinfo/canary-deployment.yaml"
GA_FAST = Traffic(requests=9, median_ms=12)
PHASES = {
    "baseline": {"ga": Traffic(requests=10, median_ms=12)},
    "10": {"ga": GA_FAST, "canary": Traffic(requests=1, median_ms=12)},
    "60": {
        "ga": Traffic(requests=4, median_ms=12),
        "canary": Traffic(requests=6, median_ms=300, errors=0.25),
    },
    "0": {"ga": Traffic(requests=10, median_ms=12)},
}


@dataclass
class Scenario:
    """The rollout as it happened: where things are and which commit is which."""

    spec_file: Path
    rollout: Rollout
    bare: Path
    cache: Path
    prometheus: str
    shas: dict[str, str] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)
    end: int = 0


def _has_data(url: str) -> bool:
    answer = requests.get(
        f"{url}/api/v1/query", params={"query": "count_over_time(istio_requests_total[10s]) > 2"}, timeout=5
    ).json()
    return bool(answer.get("data", {}).get("result"))


def _committed(repo: Path, sha: str) -> int:
    """The commit time Git recorded (on a busy machine it can be a second after we aimed)."""
    return int(git(repo, "log", "-1", "--format=%ct", sha).strip())


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def _next_second() -> None:
    """Wait for the start of the next second: commit times are whole seconds."""
    _sleep_until(int(time.time()) + 1.02)


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    require_binary("git")
    binary = require_binary("prometheus", "Debian package prometheus; `make system` installs it")
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        with serve_istio(free_port()) as exporter:
            exporter.set_phase(PHASES["baseline"])
            scrape = (
                "  - job_name: istio\n    scrape_interval: 250ms\n"
                f"    static_configs:\n      - targets: ['{exporter.address}']\n"
            )
            (root / "prom").mkdir()
            with run_prometheus(binary, root / "prom", scrape) as prom:
                yield _play(root, exporter, prom.url)


def _play(root: Path, exporter, prometheus_url: str) -> Scenario:
    # The baseline step must have data: wait for Prometheus' first scrapes before the first commit.
    deadline = time.monotonic() + 30
    while not _has_data(prometheus_url):
        assert time.monotonic() < deadline, "Prometheus scraped no Istio series in 30 s"
        time.sleep(0.1)
    remote = bare_remote(root)
    bare, human = remote.bare, remote.human
    files = {
        ROUTE: vs_with(100, 0),
        "workloads/podinfo/destination-rule.yaml": DESTINATION_RULE,
        "workloads/podinfo/ga-deployment.yaml": deployment("podinfo-ga", "0.1.0"),
        CANARY: deployment("podinfo-canary", "0.2.0"),
    }
    assert "weight: 90" in VIRTUAL_SERVICE  # vs_with rewrites the fixture's weights
    remote.seed(files, "podinfo: GA 0.1.0, canary 0.2.0 at 0%")
    git(human, "push", "--quiet", "origin", "master")
    spec_file = root / "rollout.yaml"
    spec_file.write_text(SPEC.format(url=bare, route=ROUTE, canary=CANARY))
    rollout = load_spec(spec_file)
    cache = root / "cache"
    workspace = Workspace.for_spec(rollout, cache_dir=cache)
    s = Scenario(spec_file=spec_file, rollout=rollout, bare=bare, cache=cache, prometheus=prometheus_url)
    s.shas["initial"] = git(human, "rev-parse", "HEAD").strip()
    s.times["initial"] = int(git(human, "log", "-1", "--format=%ct").strip())
    _sleep_until(s.times["initial"] + STEP_S - 0.5)

    # Each step's traffic follows its commit, never precedes it: on a loaded machine a commit can
    # take past the whole second it was aimed at, and Git's commit time is that later second. A
    # phase switched before the commit would then put canary series in the baseline step (and
    # the 60 % step's slow, failing requests in the 10 % step).
    _next_second()
    result = workspace.set_weights(
        rollout,
        Weights.for_canary(10),
        verdict="promote",
        step="1/3",
        reasons=["baseline healthy, starting the canary"],
    )
    assert result.sha is not None
    s.shas["10"], s.times["10"] = result.sha, _committed(bare, result.sha)
    exporter.set_phase(PHASES["10"])

    _sleep_until(max(s.times.values()) + STEP_S - 0.5)
    _next_second()
    result = workspace.set_weights(
        rollout,
        Weights.for_canary(60),
        verdict="promote",
        step="2/3",
        reasons=["latency non-inferior (e=25.0 >= 20)", f"Evidence: {EVIDENCE_JSON}"],
        expected=Weights.for_canary(10),
    )
    assert result.sha is not None
    s.shas["60"], s.times["60"] = result.sha, _committed(bare, result.sha)
    exporter.set_phase(PHASES["60"])

    _sleep_until(max(s.times.values()) + STEP_S - 0.5)
    # Back to 0 %: the canary's traffic stops before the human's commit (its step has none),
    # so the exporter must have counted its last canary request before that commit's second.
    exporter.set_phase(PHASES["0"])
    exporter.wait_counted()
    _next_second()
    git(human, "pull", "--quiet", "--ff-only", "origin", "master")
    (human / ROUTE).write_text(vs_with(100, 0))
    git(
        human,
        "commit",
        "--quiet",
        "-am",
        f"{HUMAN_SUBJECT}\n\nerrors look bad to me\nSigned-off-by: Human <h@x>",
    )
    git(human, "push", "--quiet", "origin", "master")
    s.shas["human"] = git(human, "rev-parse", "HEAD").strip()
    s.times["human"] = _committed(bare, s.shas["human"])

    # Not weight changes: a pause record of ours (kept) and a new canary image (left out).
    s.shas["pause"] = workspace.record(rollout, "pause", reasons=["a human rolled back"]).sha or ""
    (human / CANARY).write_text(deployment("podinfo-canary", "0.2.1"))
    git(human, "pull", "--quiet", "--ff-only", "origin", "master")
    git(human, "commit", "--quiet", "-am", "podinfo: canary 0.2.1")
    git(human, "push", "--quiet", "origin", "master")
    s.shas["image"] = git(human, "rev-parse", "HEAD").strip()

    s.end = s.times["human"] + STEP_S
    _sleep_until(s.end + 0.6)  # Prometheus has scraped past the end
    return s


@pytest.fixture(scope="module")
def measured(scenario: Scenario) -> StepMetricsReport:
    """The scenario's steps measured by the report's reader, from a fresh read of the workspace."""
    workspace = Workspace.for_spec(scenario.rollout, cache_dir=scenario.cache)
    workspace.read_weights(scenario.rollout)
    timeline = read_timeline(gitpython.Repo(workspace.path), scenario.rollout)
    return read_step_metrics(
        scenario.prometheus, timeline.steps(scenario.end), select_subsets(scenario.rollout)
    )


@dataclass(frozen=True)
class Built:
    """The report of the scenario, made by the real CLI."""

    directory: Path
    html: str
    stdout: str


@pytest.fixture(scope="session")
def built(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Built:
    from rollouts.cli import main

    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            code = main(
                [
                    "report",
                    str(scenario.spec_file),
                    "--prometheus",
                    scenario.prometheus,
                    "--out",
                    str(out),
                    "--cache-dir",
                    str(scenario.cache),
                    "--require-metrics",
                    # The last step ends at the scenario's end, not whenever the test runs.
                    "--until",
                    datetime.fromtimestamp(scenario.end, UTC).isoformat(),
                ]
            )
    assert code == 0, buffer.getvalue()
    directory = out / "test_podinfo"
    return Built(directory, (directory / "index.html").read_text(encoding="utf-8"), buffer.getvalue())
