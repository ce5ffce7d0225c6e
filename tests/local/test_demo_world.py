"""The demos' shared module keeps them apart: the pipeline scenario never imports ``rollouts demo``'s
module (which starts it), and the shared module imports neither. Read from the sources' imports,
every one of them (also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import rollouts.local

LOCAL = Path(rollouts.local.__file__).parent


def imports(module: str) -> set[str]:
    tree = ast.parse((LOCAL / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_import_cycle_between_the_demo_and_its_pipeline_scenario() -> None:
    assert "rollouts.local.demo_world" in imports("pipeline_demo")
    assert "rollouts.local.demo" not in imports("pipeline_demo")
    assert "rollouts.local.pipeline_demo" in imports("demo")  # the command starts the scenario
    shared = imports("demo_world")
    assert not shared & {"rollouts.local.demo", "rollouts.local.pipeline_demo"}


def test_the_shared_pieces_are_the_same_objects_in_both() -> None:
    from rollouts.local import demo, demo_world, pipeline_demo

    assert demo.Kubelet is pipeline_demo.Kubelet is demo_world.Kubelet
    assert demo.rollout_spec is pipeline_demo.rollout_spec
    assert "0.2.1" in demo_world.deployment("podinfo-canary", "0.2.1", "0.2.1")
