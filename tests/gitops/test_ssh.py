"""Which ssh command Git runs for an SSH remote: the spec's key, else the environment's command.

Real Git against an SSH URL, with a recording ``ssh`` (first on ``PATH``) standing in for the
network: it writes the arguments Git gave it and fails like an unreachable host.
"""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from rollouts.gitops import CredentialError, Credentials, GitopsError, Workspace
from tests.fixtures.gitrepo import make_spec

URL = "ssh://git@127.0.0.1:9/org/repo.git"


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``ssh`` on PATH; returns the file its arguments are appended to (one line a call)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ssh-args"
    script = bin_dir / "ssh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$0 $*" >> {shlex.quote(str(log))}\nexit 255\n')
    script.chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.delenv("GIT_SSH_COMMAND", raising=False)
    monkeypatch.delenv("ROLLOUTS_SSH_KNOWN_HOSTS", raising=False)
    return log


def _ssh_args(ws: Workspace, log: Path) -> str:
    with pytest.raises(GitopsError, match=r"ssh://\*\*\*@127\.0\.0\.1:9/org/repo\.git \(main\)"):
        ws.read_state(make_spec(URL))
    return log.read_text()


def test_environment_ssh_command_is_kept_without_a_key_file(recorder, tmp_path, monkeypatch):
    # The shipped Deployment sets its own GIT_SSH_COMMAND (key, pinned known_hosts): it must apply.
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i /etc/rollouts/git/identity -o StrictHostKeyChecking=yes")
    args = _ssh_args(Workspace(URL, "main", cache_dir=tmp_path / "cache"), recorder)
    assert "-i /etc/rollouts/git/identity -o StrictHostKeyChecking=yes -o BatchMode=yes" in args
    # Its own BatchMode setting is not doubled.
    assert Credentials().ssh_command({"GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}) == "ssh -o BatchMode=yes"


def test_spec_key_file_wins_with_pinned_known_hosts(recorder, tmp_path, monkeypatch):
    key, hosts = tmp_path / "identity", tmp_path / "known_hosts"
    key.write_text("not a real key\n")
    hosts.write_text("127.0.0.1 ssh-ed25519 AAAA\n")
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i /somewhere/else")
    creds = Credentials.resolve(ssh_key_file=str(key), known_hosts_file=str(hosts))
    args = _ssh_args(Workspace(URL, "main", cache_dir=tmp_path / "cache", credentials=creds), recorder)
    assert "/somewhere/else" not in args
    assert f"-o BatchMode=yes -i {key} -o IdentitiesOnly=yes" in args
    assert f"-o UserKnownHostsFile={hosts} -o StrictHostKeyChecking=yes" in args


def test_known_hosts_from_environment_and_errors_name_the_source(tmp_path):
    key, hosts = tmp_path / "identity", tmp_path / "known_hosts"
    key.write_text("k\n")
    hosts.write_text("h\n")
    env = {"ROLLOUTS_SSH_KNOWN_HOSTS": str(hosts)}
    creds = Credentials.resolve(ssh_key_file=str(key), env=env)
    assert creds.known_hosts_file == hosts
    assert f"UserKnownHostsFile={hosts}" in creds.ssh_command({})
    # Nothing configured: plain ssh, never prompting.
    assert Credentials().ssh_command({}) == "ssh -o BatchMode=yes"
    with pytest.raises(CredentialError, match=r"spec\.git\.knownHostsFile: .*missing is not a readable file"):
        Credentials.resolve(known_hosts_file=str(tmp_path / "missing"), env={})
    with pytest.raises(CredentialError, match=r"\$ROLLOUTS_SSH_KNOWN_HOSTS: .*gone is not a readable file"):
        Credentials.resolve(env={"ROLLOUTS_SSH_KNOWN_HOSTS": str(tmp_path / "gone")})


def test_spec_field_reaches_the_workspace(tmp_path):
    key, hosts = tmp_path / "identity", tmp_path / "known_hosts"
    key.write_text("k\n")
    hosts.write_text("h\n")
    spec = make_spec(URL)
    git_spec = spec.spec.git.model_copy(update={"ssh_key_file": str(key), "known_hosts_file": str(hosts)})
    spec = spec.model_copy(update={"spec": spec.spec.model_copy(update={"git": git_spec})})
    ws = Workspace.for_spec(spec, cache_dir=tmp_path / "cache", env={})
    assert ws.credentials.known_hosts_file == hosts and ws.credentials.ssh_key_file == key
