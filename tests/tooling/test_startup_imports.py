"""The command lines start light: each subcommand imports only what it needs.

``rollouts --help``, ``rollouts status`` and ``rollouts set-weight`` (their ``--help`` and a real run
against a real Git remote) never import scipy, numpy, matplotlib, the controller, the demo or the
local stack; ``analyzer --help`` no statistics; ``loadtest --help`` and ``loadtest serve --help`` no
Locust. Checked in a fresh interpreter by the modules it holds after the command (an import check,
not a timing test: the figures are in docs/benchmarks/startup.md, from tests/bench/startup.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rollouts.cli import HEAVY_COMMANDS, build_parser
from tests.analyzer.test_cli import _line
from tests.fixtures.gitrepo import GUIDE_CANARY, GUIDE_ROUTE, bare_remote, git, guide_rollout
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
#: Module prefixes a light command must not import.
HEAVY = (
    "scipy",
    "numpy",
    "matplotlib",
    "pandas",
    "locust",
    "gevent",
    "kubernetes",
    "apscheduler",
    "prometheus_api_client",
    "rich",
    "jinja2",
    "rollouts.controller.run",
    "rollouts.controller.machine",
    "rollouts.controller.demo",
    "rollouts.local",
    "rollouts.report",
    "analyzer.judge",
    "analyzer.simulate",
)
# Runs one command's main() in a fresh interpreter, then prints the heavy modules it holds.
PROBE = """
import json, sys
module, argv, heavy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
main = __import__(module, fromlist=["main"]).main
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps({"code": code, "heavy": loaded}), file=sys.__stderr__)
"""


def heavy_modules(module: str, argv: list[str], heavy: tuple[str, ...] = HEAVY) -> tuple[int, list[str]]:
    """(exit code, heavy modules loaded) of ``module.main(argv)`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, json.dumps(argv), json.dumps(heavy)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["heavy"]


@pytest.mark.parametrize(
    "argv", [["--help"], ["status", "--help"], ["set-weight", "--help"], ["promote", "--help"], []]
)
def test_rollouts_help_imports_nothing_heavy(argv: list[str]) -> None:
    code, loaded = heavy_modules("rollouts.cli", argv)
    assert code in (0, 2)
    assert loaded == []


VIRTUAL_SERVICE = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: podinfo, namespace: test}
spec:
  hosts: [podinfo]
  http:
    - route:
        - destination: {host: podinfo, subset: ga}
          weight: 90
        - destination: {host: podinfo, subset: canary}
          weight: 10
"""
CANARY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo-canary, namespace: test}
spec:
  template:
    spec:
      containers:
        - name: podinfod
          image: ghcr.io/stefanprodan/podinfo:0.2.0
"""


def test_status_and_set_weight_run_against_real_git_without_heavy_imports(tmp_path: Path) -> None:
    require_binary("git")
    remote = bare_remote(tmp_path)
    remote.seed({GUIDE_ROUTE["path"]: VIRTUAL_SERVICE, GUIDE_CANARY: CANARY}, "podinfo at 10%")
    git(remote.human, "push", "--quiet", "origin", "master")
    spec = tmp_path / "rollout.yaml"
    spec.write_text(json.dumps(guide_rollout(str(remote.bare))))
    common = [str(spec), "--cache-dir", str(tmp_path / "cache")]
    assert heavy_modules("rollouts.cli", ["status", *common, "--json"]) == (0, [])
    assert heavy_modules("rollouts.cli", ["set-weight", *common, "60", "--reason", "by hand"]) == (0, [])
    assert "weight: 60" in git(remote.bare, "show", f"master:{GUIDE_ROUTE['path']}")


def helps(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    """Subcommand -> its help line, as ``--help`` lists them."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in sub._choices_actions}


def test_the_stub_of_a_heavy_command_carries_its_real_help_line() -> None:
    full, light = helps(build_parser()), helps(build_parser(load=()))
    assert set(HEAVY_COMMANDS) <= set(full) and full == light
    run = subprocess.run(
        [sys.executable, "-m", "rollouts.cli", "run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and "--flux-kustomization" in run.stdout


@pytest.mark.parametrize("argv", [["--help"], ["judge", "--help"], ["simulate", "--help"]])
def test_analyzer_help_imports_no_statistics(argv: list[str]) -> None:
    assert heavy_modules("analyzer.cli", argv) == (0, [])


def test_analyzer_judge_answers_without_scipy() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            "analyzer.cli",
            json.dumps(["judge"]),
            json.dumps(["scipy", "analyzer.replay"]),
        ],
        cwd=ROOT,
        input=_line("test/podinfo") + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert json.loads(done.stdout)["action"] == "hold"
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"code": 0, "heavy": []}


def test_the_replay_stub_carries_its_real_help_line() -> None:
    from analyzer.cli import build_parser as analyzer_parser

    assert helps(analyzer_parser()) == helps(analyzer_parser(load=()))
    assert "replay" in helps(analyzer_parser())


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"]])
def test_loadtest_help_imports_no_locust(argv: list[str]) -> None:
    assert heavy_modules("loadtest.cli", argv, ("locust", "gevent", "flask")) == (0, [])


def test_the_probe_sees_a_heavy_import() -> None:
    # The check can fail: `rollouts demo --help` does import the local stack.
    code, loaded = heavy_modules("rollouts.cli", ["demo", "--help"])
    assert code == 0 and "rollouts.local.demo" in loaded


def test_run_help_builds_its_parser_without_the_controller() -> None:
    code, loaded = heavy_modules("rollouts.cli", ["run", "--help"])
    assert (code, [m for m in loaded if m.startswith("rollouts.controller")]) == (0, [])
