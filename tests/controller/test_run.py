"""`rollouts promote`, `rollouts run` (spec files and Git discovery) on real bare repos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollouts.cli import main
from rollouts.controller.errors import SetupError
from rollouts.controller.run import lease_name
from rollouts.gitops import DiscoveryError, discover
from tests.controller.machinery import mesh_status
from tests.fixtures.gitrepo import Remote, git, vs_with
from tests.fixtures.httpjson import json_server

ROUTE = "workloads/podinfo/virtual-service.yaml"


def spec_doc(url: str, name: str = "podinfo", **extra: object) -> dict[str, object]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "git": {"url": url, "branch": "master"},
            "route": {"kind": "VirtualService", "path": ROUTE, "stable": "ga", "canary": "canary"},
            "canary": {"path": "workloads/podinfo/canary-deployment.yaml"},
            "steps": [10, 60, 100],
            "analysis": {"interval": "10s", "prometheus": {"url": "http://127.0.0.1:9"}},
            **extra,
        },
    }


def write_spec(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def trailer(remote: Remote, key: str) -> str:
    return git(remote.bare, "log", "-1", f"--format=%(trailers:key={key},valueonly)", "master").strip()


def test_promote_advances_one_step_by_hand(
    remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path / "rollout.yaml", spec_doc(str(remote.bare)))
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["promote", str(spec), *cache]) == 0  # the fixture's canary is at 10 %
    assert "canary 10% -> 60%" in capsys.readouterr().out
    assert (trailer(remote, "Rollout-Verdict"), trailer(remote, "Rollout-Step")) == ("manual", "2/3")
    assert "weight: 40   # GA" in remote.show(ROUTE)
    assert main(["promote", str(spec), *cache]) == 0
    assert "weight: 0   # GA" in remote.show(ROUTE)
    before = remote.count()
    assert main(["promote", str(spec), *cache]) == 0
    assert "nothing to promote" in capsys.readouterr().out
    assert remote.count() == before


def test_run_once_starts_valid_rollouts_and_names_the_bad_field(
    remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    good = write_spec(tmp_path / "good.yaml", spec_doc(str(remote.bare)))
    bad_doc = spec_doc(str(remote.bare), name="other")
    bad_doc["spec"]["steps"] = [60, 10]  # type: ignore[index]
    bad = write_spec(tmp_path / "bad.yaml", bad_doc)
    with mesh_status(remote.bare, tmp_path) as url:
        code = main(["run", str(good), str(bad), "--mesh", url, "--once", "--cache-dir", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "test/podinfo: progressing start" in out
    assert f"{bad}: spec.steps: must be strictly ascending (10 after 60)" in err
    assert (trailer(remote, "Rollout-Verdict"), trailer(remote, "Rollout-Step")) == ("promote", "1/3")


def test_run_needs_a_cluster_view_and_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "r.yaml", spec_doc("/nonexistent.git"))
    assert main(["run", str(spec), "--once"]) == 1
    assert "--mesh URL (local mesh) or --kubernetes" in capsys.readouterr().err
    assert main(["run", "--mesh", "http://127.0.0.1:1", "--once"]) == 2


def test_discovery_finds_rollouts_in_git_and_reports_bad_ones(remote: Remote, tmp_path: Path) -> None:
    folder = remote.human / "rollouts"
    folder.mkdir()
    write_spec(folder / "podinfo.yaml", spec_doc("."))
    bad = spec_doc(".", name="broken")
    bad["spec"]["analysis"] = {"interval": "soon"}  # type: ignore[index]
    write_spec(folder / "broken.yaml", bad)
    (folder / "configmap.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    git(remote.human, "add", ".")
    git(remote.human, "commit", "--quiet", "-m", "rollout specs in Git")
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")
    rollouts, errors = discover(str(remote.bare), "master", "rollouts", tmp_path / "cache")
    assert [r.key for r in rollouts] == ["test/podinfo"]
    assert rollouts[0].spec.git.url == str(remote.bare)  # "." means the repo it was found in
    assert errors == [
        "rollouts/broken.yaml: spec.analysis.interval: must be a duration like 30s, 1m or 1m30s, got 'soon'"
    ]
    with pytest.raises(DiscoveryError, match="is not a directory"):
        discover(str(remote.bare), "master", "nope", tmp_path / "cache")
    with pytest.raises(DiscoveryError, match="cannot read"):
        discover(str(tmp_path / "missing.git"), "master", ".", tmp_path / "cache")


def test_run_serves_until_its_duration_with_metrics(
    remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = write_spec(tmp_path / "rollout.yaml", spec_doc(str(remote.bare)))
    with mesh_status(remote.bare, tmp_path) as url:
        code = main([
            "run", str(spec), "--mesh", url, "--duration", "3", "--metrics-address", "127.0.0.1:0",
            "--log-format", "json", "--cache-dir", str(tmp_path / "c"),
        ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert (trailer(remote, "Rollout-Verdict"), trailer(remote, "Rollout-Step")) == ("promote", "1/3")
    decisions = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(d.get("action") == "promote" and d.get("rollout") == "test/podinfo" for d in decisions)
    assert any("metrics on http://127.0.0.1:" in d["message"] for d in decisions)


def test_controller_wide_notify_targets_from_the_environment(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    spec = write_spec(tmp_path / "rollout.yaml", spec_doc(str(remote.bare)))
    with json_server(lambda _: (200, {})) as receiver, mesh_status(remote.bare, tmp_path) as url:
        monkeypatch.setenv("ROLLOUTS_NOTIFY_URLS", receiver.url.replace("http://", "json://") + "/")
        assert main(["run", str(spec), "--mesh", url, "--once", "--cache-dir", str(tmp_path / "c")]) == 0
    (posted,) = [r.body for r in receiver.requests]
    assert posted["title"] == "[test/podinfo] start (0.2.0)"
    assert "step 1: canary 10%" in posted["message"]


def test_lease_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lease_name("ops/rollouts") == ("ops", "rollouts")
    monkeypatch.setenv("POD_NAMESPACE", "rollouts-system")
    assert lease_name(None) == ("rollouts-system", "rollouts-controller")
    with pytest.raises(SetupError, match="NAMESPACE/NAME"):
        lease_name("just-a-name")


def test_run_refuses_blue_green_on_a_preview_without_its_service_and_commits_nothing(
    remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote.commit_file(ROUTE, vs_with(100, 0), "podinfo: all traffic to GA")
    doc = spec_doc(str(remote.bare), steps=[100])
    doc["spec"]["analysis"]["iterations"] = 3  # type: ignore[index]
    doc["spec"]["load"] = {"mode": "local", "target": "http://127.0.0.1:9/"}  # type: ignore[index]
    spec = write_spec(tmp_path / "bluegreen.yaml", doc)
    before = remote.count()
    with mesh_status(remote.bare, tmp_path) as url:
        code = main(["run", str(spec), "--mesh", url, "--once", "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code != 0
    assert f"{spec}: spec: analysis.previewService: required with analysis.iterations" in err
    doc["spec"]["analysis"]["previewService"] = {"name": "podinfo-preview"}  # type: ignore[index]
    write_spec(spec, doc)
    with mesh_status(remote.bare, tmp_path) as url:
        code = main(["run", str(spec), "--mesh", url, "--once", "--cache-dir", str(tmp_path / "c")])
    assert code != 0
    assert "analysis.previewService.url: required with load.mode local" in capsys.readouterr().err
    assert remote.count() == before  # nothing committed
