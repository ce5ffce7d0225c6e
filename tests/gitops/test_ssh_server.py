"""The SSH transport end to end: our Workspace against a real sshd on loopback serving git-shell.

A deploy key with a pinned known_hosts file clones, reads and pushes; a key the server does not know,
a read-only key, a host key that is not pinned and one that changed each fail with a sentence that
names what is wrong (and never a key), leaving no half-made clone, no commit on the remote and the
cached worktree at the remote's head.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rollouts.gitops import Credentials, GitopsError, Workspace
from rollouts.routes import Weights
from tests.fixtures.gitrepo import Remote, make_spec
from tests.sshd import SshServer, keygen, sshd

__all__ = ["sshd"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration


def _workspace(server: SshServer, remote: Remote, cache: Path, key: Path, known_hosts: Path) -> Workspace:
    creds = Credentials.resolve(ssh_key_file=str(key), known_hosts_file=str(known_hosts), env={})
    return Workspace(server.url(remote.bare), remote.branch, cache_dir=cache, credentials=creds, backoff=0.05)


def _no_secret(message: str, *keys: Path) -> None:
    for key in keys:
        for part in (key.read_text(), key.with_suffix(".pub").read_text().split()[1]):
            assert part.strip() not in message


def _nothing_cached(cache: Path) -> None:
    repos = cache / "repos"
    leftovers = [p.name for p in repos.iterdir() if p.is_dir()] if repos.exists() else []
    assert leftovers == [], f"half-made clones left behind: {leftovers}"


def test_clone_read_and_push_over_ssh(sshd: SshServer, remote: Remote, cache: Path) -> None:
    before = remote.head()
    with _workspace(sshd, remote, cache, sshd.deploy_key, sshd.known_hosts) as ws:
        spec = make_spec(ws.url)
        state = ws.read_state(spec)
        assert state.head == before and state.weights == Weights(90, 10)
        result = ws.set_weights(spec, Weights(40, 60), verdict="promote", step="2/3")
    assert result.changed and remote.head() == result.sha
    assert "weight: 40   # GA" in remote.show("workloads/podinfo/virtual-service.yaml")
    assert "Rollout-Step: 2/3" in remote.message(result.sha)
    # The server saw our deploy key (sshd logs the accepted key's fingerprint).
    assert "Accepted publickey" in sshd.log.read_text()


def test_a_key_the_server_does_not_know_is_named(sshd: SshServer, remote: Remote, cache: Path) -> None:
    with (
        _workspace(sshd, remote, cache, sshd.stranger_key, sshd.known_hosts) as ws,
        pytest.raises(GitopsError) as caught,
    ):
        ws.read_state(make_spec(ws.url))
    message = str(caught.value)
    assert f"the SSH server refused the deploy key ({sshd.stranger_key})" in message
    assert "Permission denied (publickey" in message and "git clone failed" in message
    _no_secret(message, sshd.stranger_key, sshd.deploy_key)
    _nothing_cached(cache)


def test_an_unpinned_host_key_is_refused(sshd: SshServer, remote: Remote, cache: Path, tmp_path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    before = remote.head()
    with _workspace(sshd, remote, cache, sshd.deploy_key, empty) as ws, pytest.raises(GitopsError) as caught:
        ws.set_weights(make_spec(ws.url), Weights(40, 60), verdict="promote")
    message = str(caught.value)
    assert f"the SSH server's host key is not in {empty}" in message
    assert "Host key verification failed" in message
    _no_secret(message, sshd.deploy_key, sshd.host_key)
    _nothing_cached(cache)
    assert remote.head() == before


def test_a_changed_host_key_is_refused(sshd: SshServer, remote: Remote, cache: Path, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host", "other")
    pinned = tmp_path / "pinned_known_hosts"
    pinned.write_text(sshd.host_line(other.with_suffix(".pub")))
    with _workspace(sshd, remote, cache, sshd.deploy_key, pinned) as ws, pytest.raises(GitopsError) as caught:
        ws.read_state(make_spec(ws.url))
    message = str(caught.value)
    assert f"differs from the one pinned in {pinned}" in message
    assert "@@@" not in message and "eavesdropping" not in message  # ssh's banner is dropped
    _no_secret(message, sshd.deploy_key, sshd.host_key, other)
    _nothing_cached(cache)


def test_a_read_only_key_reads_but_cannot_push(sshd: SshServer, remote: Remote, cache: Path) -> None:
    before = remote.head()
    with _workspace(sshd, remote, cache, sshd.read_only_key, sshd.known_hosts) as ws:
        spec = make_spec(ws.url)
        assert ws.read_state(spec).weights == Weights(90, 10)
        with pytest.raises(GitopsError) as caught:
            ws.set_weights(spec, Weights(40, 60), verdict="promote")
        message = str(caught.value)
        assert f"the deploy key ({sshd.read_only_key}) is read-only" in message
        assert "git push failed" in message, message
        _no_secret(message, sshd.read_only_key)
        # Nothing half-done: the remote is unchanged and the cached clone is back at its head.
        assert remote.head() == before
        assert ws.read_state(spec).head == before
        assert ws.read_weights(spec) == Weights(90, 10)
