"""Rollout specs found in Git: every ``kind: Rollout`` document under a directory of a branch.

``rollouts run --repo URL --path DIR`` (and the demo) read their specs from here, re-read every
``--resync`` seconds. Discovery keeps its own shallow clone per remote and branch (under
``<cache>/discovery/``), apart from the workspaces the rollouts commit through: it only reads, and
a slow resync must never wait for a rollout's push. It must never commit, push, or follow a path
outside the clone (symbolic links are not followed: ``rollouts.spec.scan_specs``), and never hand
Git a URL with credentials or a remote helper in it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import git

from rollouts.gitops.credentials import Credentials, check_remote_url, redact
from rollouts.gitops.errors import DiscoveryError, RemoteUrlError
from rollouts.spec import Rollout, is_local_path, scan_specs

if TYPE_CHECKING:
    from rollouts.pipeline.runner import LoadedPipeline


def discover(
    url: str, branch: str, path: str, cache_dir: Path, credentials: Credentials | None = None
) -> tuple[list[Rollout], list[str]]:
    """Every ``kind: Rollout`` document under ``path`` of ``branch`` of the repo at ``url``.

    Returns the valid rollouts and one error line per invalid file. A spec whose ``git.url`` is a
    relative local path (``.``) means the repo it was found in. ``credentials`` authenticate the
    clone (``rollouts run --git-token-file`` etc.; default: the environment's own, e.g. its
    ``GIT_SSH_COMMAND``). :class:`DiscoveryError` when the repo cannot be read or ``path`` is not
    one of its directories.
    """
    clone, root = _checkout(url, branch, path, cache_dir, credentials)
    found, errors = scan_specs(root, clone)  # one bad file never stops the others
    return [_found_in(rollout, url) for rollout in found], errors


def discover_all(
    url: str, branch: str, path: str, cache_dir: Path, credentials: Credentials | None = None
) -> tuple[list[Rollout], list[LoadedPipeline], list[str]]:
    """:func:`discover`, and every ``kind: Pipeline`` under ``path`` too, from the same clone.

    A pipeline's environments' ``rollout:`` files are resolved relative to the pipeline file and must
    stay inside the clone (:func:`rollouts.pipeline.discovery.scan_pipelines`); their ``git.url: .``
    means this repository, as for the Rollouts found here.
    """
    from rollouts.pipeline.discovery import scan_pipelines

    clone, root = _checkout(url, branch, path, cache_dir, credentials)
    found, errors = scan_specs(root, clone)
    pipelines, pipeline_errors = scan_pipelines(root, clone)
    pipelines = [
        replace(p, stages=tuple(replace(s, rollout=_found_in(s.rollout, url)) for s in p.stages))
        for p in pipelines
    ]
    return [_found_in(rollout, url) for rollout in found], pipelines, errors + pipeline_errors


def _checkout(
    url: str, branch: str, path: str, cache_dir: Path, credentials: Credentials | None
) -> tuple[Path, Path]:
    """The discovery clone at the remote's head (resolved) and ``path`` in it (a directory)."""
    try:
        check_remote_url(url, "--repo")  # before Git sees it: no token in .git/config, no ext::
    except RemoteUrlError as exc:
        raise DiscoveryError(str(exc)) from None
    clone = _fetch(url, branch, cache_dir, credentials or Credentials()).resolve()
    root = (clone / path).resolve()
    if not root.is_dir() or clone not in (root, *root.parents):
        raise DiscoveryError(f"--path {path!r} is not a directory of {redact(url)}")
    return clone, root


def _fetch(url: str, branch: str, cache_dir: Path, credentials: Credentials) -> Path:
    """The discovery clone of ``url``/``branch``, at the remote's head (depth 1)."""
    clone = cache_dir / "discovery" / hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
    aux = clone.parent / "aux"  # the askpass script, outside the clone
    try:
        aux.mkdir(parents=True, exist_ok=True)
        env = credentials.git_env(aux)
        if (clone / ".git").exists():
            repo = git.Repo(clone)
            repo.git.fetch("--quiet", "--depth", "1", "origin", branch, env=env)
            repo.git.reset("--quiet", "--hard", "FETCH_HEAD", env=env)
        else:
            git.Repo.clone_from(url, clone, branch=branch, depth=1, env=env)
    except git.GitCommandError as exc:
        reason = redact(str(exc.stderr).strip() or str(exc), credentials.secrets())
        raise DiscoveryError(f"cannot read {redact(url)} ({branch}): {reason}") from None
    except (git.exc.UnsafeProtocolError, git.exc.UnsafeOptionError) as exc:  # belt and braces
        raise DiscoveryError(f"--repo {redact(url)}: refused by GitPython: {redact(str(exc))}") from None
    return clone


def _found_in(rollout: Rollout, url: str) -> Rollout:
    """``git.url: .`` (a relative local path) means the repo the spec was found in."""
    spec_url = rollout.spec.git.url
    if not is_local_path(spec_url) or Path(spec_url).is_absolute():
        return rollout
    git_spec = rollout.spec.git.model_copy(update={"url": url})
    return rollout.model_copy(update={"spec": rollout.spec.model_copy(update={"git": git_spec})})
