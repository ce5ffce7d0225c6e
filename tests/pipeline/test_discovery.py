"""``rollouts run --repo URL --path DIR`` finds Pipelines too, on real bare repositories.

A third repository (the configuration repo) holds the Pipeline files and the environments' Rollout
specs beside them; the environments' routes and canary manifests live in the world's two repos.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from rollouts.cli import main
from rollouts.controller.run import Controller, Options
from rollouts.gitops import discover_all
from rollouts.pipeline.job import JOB_PREFIX
from tests.fixtures.gitrepo import Remote, bare_remote, git
from tests.pipeline.world import walk

CLOSED = "http://127.0.0.1:9"  # no mesh answers: the rollouts wait at their sync gate


def pipeline_doc(name: str, staging: str, production: str, **promotion: object) -> dict[str, object]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "environments": [
                {"name": "staging", "rollout": staging},
                {"name": "production", "rollout": production, "promotion": promotion},
            ]
        },
    }


def push(remote: Remote, files: dict[str, str | None], message: str) -> None:
    """Write (text) or delete (None) ``files`` in the human's clone, commit and push."""
    for rel, text in files.items():
        path = remote.human / rel
        if text is None:
            git(remote.human, "rm", "--quiet", rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        git(remote.human, "add", rel)
    git(remote.human, "commit", "--quiet", "-m", message)
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")


def config_repo(tmp_path: Path, specs: Path) -> Remote:
    """The configuration repo: one good pipeline, and two bad ones beside it."""
    root = tmp_path / "config"
    root.mkdir()
    remote = bare_remote(root)
    remote.seed({"README.md": "config\n"}, "config repo")
    git(remote.human, "push", "--quiet", "origin", "master")
    good = pipeline_doc("podinfo", "envs/staging.yaml", "envs/production.yaml", soak="1s")
    escape = pipeline_doc("escape", "../../../../etc/passwd.yaml", "envs/production.yaml")
    broken = pipeline_doc("broken", "envs/staging.yaml", "envs/production.yaml", soak="soon")
    push(
        remote,
        {
            "pipelines/podinfo.yaml": yaml.safe_dump(good),
            "pipelines/envs/staging.yaml": (specs / "staging.yaml").read_text(),
            "pipelines/envs/production.yaml": (specs / "production.yaml").read_text(),
            "pipelines/escape.yaml": yaml.safe_dump(escape),
            "pipelines/broken.yaml": yaml.safe_dump(broken),
        },
        "pipelines",
    )
    return remote


def test_discovery_finds_pipelines_and_names_the_bad_ones(world, tmp_path: Path) -> None:
    _loaded, _ws, staging, _production, specs = world
    config = config_repo(tmp_path, specs)
    rollouts, pipelines, errors = discover_all(str(config.bare), "master", "pipelines", tmp_path / "cache")
    assert [p.pipeline.key for p in pipelines] == ["test/podinfo"]
    (found,) = pipelines
    assert [s.name for s in found.stages] == ["staging", "production"]
    assert found.stages[0].rollout.spec.git.url == str(staging.bare)
    # The environments' specs are Rollouts of the directory too: discovered once each.
    assert sorted(r.key for r in rollouts) == ["test/podinfo", "test/podinfo-prod"]
    assert len(errors) == 2, errors
    broken = next(e for e in errors if e.startswith("pipelines/broken.yaml"))
    assert "spec.environments[1].promotion.soak" in broken and "soon" in broken
    escape = next(e for e in errors if e.startswith("pipelines/escape.yaml"))
    assert "spec.environments[0].rollout" in escape and "outside the repository" in escape
    assert str(tmp_path) not in "".join(errors)  # named by the repository's paths, not the cache's


def test_a_linked_environment_file_is_refused(world, tmp_path: Path) -> None:
    _loaded, _ws, _staging, _production, specs = world
    config = config_repo(tmp_path, specs)
    (config.human / "pipelines" / "linked.yaml").symlink_to("envs/staging.yaml")
    linked = pipeline_doc("linked", "linked.yaml", "envs/production.yaml")
    git(config.human, "add", "pipelines/linked.yaml")
    push(config, {"pipelines/linked-pipeline.yaml": yaml.safe_dump(linked)}, "a linked environment")
    _r, pipelines, errors = discover_all(str(config.bare), "master", "pipelines", tmp_path / "cache")
    assert [p.pipeline.key for p in pipelines] == ["test/podinfo"]
    line = next(e for e in errors if e.startswith("pipelines/linked-pipeline.yaml"))
    assert "spec.environments[0].rollout" in line and "symbolic link" in line


def test_resync_replaces_and_removes_pipeline_jobs(world, tmp_path: Path) -> None:
    _loaded, _ws, _staging, _production, specs = world
    config = config_repo(tmp_path, specs)
    controller = Controller(Options(mesh=CLOSED, cache_dir=tmp_path / "run"))
    key = JOB_PREFIX + "test/podinfo"

    def resync() -> list[str]:
        _r, pipelines, errors = discover_all(str(config.bare), "master", "pipelines", tmp_path / "cache")
        return errors + controller.apply_pipelines(pipelines)

    resync()
    first = controller.scheduler.machines[key]
    resync()  # nothing changed: the same job keeps running
    assert controller.scheduler.machines[key] is first
    text = (config.human / "pipelines" / "podinfo.yaml").read_text().replace("soak: 1s", "soak: 5m")
    push(config, {"pipelines/podinfo.yaml": text}, "a longer soak")
    resync()
    second = controller.scheduler.machines[key]
    assert second is not first
    assert second.runner.loaded != first.runner.loaded  # type: ignore[attr-defined]
    controller.metrics.set_pipeline_environment("test/podinfo", "staging", "0.2.0", "source")
    push(config, {"pipelines/podinfo.yaml": None}, "the pipeline is retired")
    resync()
    assert key not in controller.scheduler.machines and controller.pipelines == {}
    scraped = controller.metrics.registry.get_sample_value(
        "rollouts_pipeline_revision",
        {"pipeline": "test/podinfo", "environment": "staging", "revision": "0.2.0", "state": "source"},
    )
    assert scraped is None  # its series went with it


def test_rollouts_run_repo_ticks_a_discovered_pipeline(world, tmp_path: Path, capsys) -> None:
    loaded, workspaces, _staging, production, specs = world
    config = config_repo(tmp_path, specs)
    walk(workspaces["staging"], loaded.stages[0].rollout)
    time.sleep(1.1)  # the soak
    argv = ["run", "--once", "--mesh", CLOSED, "--repo", str(config.bare), "--branch", "master"]
    code = main([*argv, "--path", "pipelines", "--cache-dir", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "pipeline:test/podinfo: progressing promote" in captured.out, captured.out
    assert "(handover from staging)" in production.message("master")
    assert "rollouts run: error: pipelines/broken.yaml: spec.environments[1].promotion.soak" in captured.err
