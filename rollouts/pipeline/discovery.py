"""Pipeline files found in Git: every ``kind: Pipeline`` document under a directory of a clone.

``rollouts run --repo URL --path DIR`` discovers Pipelines beside Rollouts (through
:func:`rollouts.gitops.discovery.discover_all`, which owns the clone). Each environment's ``rollout:``
path is resolved relative to the pipeline file inside the clone and must stay in it. One bad pipeline
never stops the others: each becomes one error line naming its file (relative to the repository) and
the field. This module only reads the clone: it must never commit, push, follow a symbolic link, or
read a file outside the clone.
"""

from __future__ import annotations

import os
from pathlib import Path

from rollouts.pipeline.runner import LoadedPipeline, load_pipeline
from rollouts.pipeline.spec import is_pipeline_file
from rollouts.spec import spec_files
from rollouts.yamlsafe import excerpt


def scan_pipelines(root: Path, clone: Path) -> tuple[list[LoadedPipeline], list[str]]:
    """Every Pipeline under ``root`` (a directory of the clone at ``clone``), with its environments'
    Rollouts loaded, and one error line per bad pipeline file (symbolic links are skipped here:
    :func:`rollouts.spec.scan_specs` reports them)."""
    files, _ = spec_files(root, clone)  # its errors (links, too many files) are scan_specs' lines
    pipelines: list[LoadedPipeline] = []
    errors: list[str] = []
    prefix = f"{clone}{os.sep}"  # the errors name the repository's paths, not the cache's
    for file in files:
        if file.is_symlink() or not is_pipeline_file(file):
            continue
        rel = file.relative_to(clone).as_posix()
        try:
            loaded = load_pipeline(clone / rel, root=clone)
        except Exception as exc:  # whatever one file does, the others still run
            text = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            text = text.replace(prefix, "")
            errors.append(text if text.startswith(rel) else f"{rel}: {excerpt(text, 300)}")
            continue
        pipelines.append(loaded)
    return pipelines, errors
