"""``rollouts run --repo`` discovery with credentials: a private HTTPS repo behind a token."""

from __future__ import annotations

import pytest

from rollouts.cli import build_parser
from rollouts.gitops import CredentialError, DiscoveryError, credentials_from_arguments, discover
from tests.fixtures.gitrepo import git
from tests.fixtures.httpgit import git_http_server

SPEC = """\
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: podinfo, namespace: test}
spec:
  git: {url: ., branch: master}
  route: {kind: VirtualService, path: workloads/podinfo/virtual-service.yaml, stable: ga, canary: canary}
  canary: {path: workloads/podinfo/canary-deployment.yaml}
  steps: [10, 60, 100]
"""


def test_run_repo_discovers_a_private_https_repo_with_a_token(remote, tmp_path, monkeypatch):
    (remote.human / "rollouts").mkdir()
    (remote.human / "rollouts" / "podinfo.yaml").write_text(SPEC)
    git(remote.human, "add", ".")
    git(remote.human, "commit", "--quiet", "-m", "rollout spec")
    git(remote.human, "push", "--quiet", "origin", "HEAD:master")
    token = "tok-discovery-0123456789"
    monkeypatch.setenv("DISCOVERY_TOKEN", token)
    with git_http_server(remote.bare.parent, "x-access-token", token) as (base, seen):
        url = f"{base}/remote.git"
        # Without credentials: refused, the error names the repo and carries no token.
        with pytest.raises(
            DiscoveryError, match=r"cannot read http://127\.0\.0\.1:\d+/remote\.git \(master\)"
        ):
            discover(url, "master", "rollouts", tmp_path / "cache")
        args = build_parser().parse_args(
            [
                "run",
                "--repo",
                url,
                "--branch",
                "master",
                "--path",
                "rollouts",
                "--git-token-env",
                "DISCOVERY_TOKEN",
            ]
        )
        credentials = credentials_from_arguments(args)
        rollouts, errors = discover(url, "master", "rollouts", tmp_path / "cache", credentials)
        assert errors == [] and [r.key for r in rollouts] == ["test/podinfo"]
        assert rollouts[0].spec.git.url == url
        # The re-read of a resync (fetch into the existing clone) authenticates too.
        rollouts, _ = discover(url, "master", "rollouts", tmp_path / "cache", credentials)
        assert [r.key for r in rollouts] == ["test/podinfo"]
    assert any(h.startswith("Basic ") for h in seen)
    for config in (tmp_path / "cache" / "discovery").glob("*/.git/config"):
        assert token not in config.read_text()


def test_credential_flags_are_checked_and_errors_name_the_flag(tmp_path):
    args = build_parser().parse_args(["run", "--repo", "x", "--git-ssh-key-file", str(tmp_path / "nokey")])
    with pytest.raises(CredentialError, match=r"--git-ssh-key-file: .*nokey is not a readable file"):
        credentials_from_arguments(args)
    args = build_parser().parse_args(["run", "--repo", "x", "--git-token-env", "UNSET_VAR"])
    with pytest.raises(CredentialError, match=r"--git-token-env: environment variable UNSET_VAR is not set"):
        credentials_from_arguments(args, env={})
    key, hosts = tmp_path / "id", tmp_path / "kh"
    key.write_text("k\n")
    hosts.write_text("h\n")
    args = build_parser().parse_args(
        ["run", "--repo", "x", "--git-ssh-key-file", str(key), "--git-known-hosts-file", str(hosts)]
    )
    ssh = credentials_from_arguments(args, env={}).ssh_command({})
    assert f"-i {key}" in ssh and f"UserKnownHostsFile={hosts}" in ssh
