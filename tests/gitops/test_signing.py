"""Signed commits: every commit we push verifies with ``git verify-commit``; a key that cannot sign is
an error at start-up (``Workspace.for_spec``), and a key lost later fails the commit: never an
unsigned commit on the remote.

SSH signatures verify against an allowed-signers file; GnuPG ones against a throw-away keyring made
for the test (its agent is stopped afterwards).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollouts.gitops import Workspace
from rollouts.gitops.signing import Signing, SigningError, with_config
from rollouts.routes import Weights
from rollouts.spec import Rollout
from rollouts.spec_gates import SigningSpec
from tests.fixtures.gitrepo import Remote
from tests.sshd import keygen
from tests.support import require_binary

pytestmark = pytest.mark.integration
GPG_GEN_KEY = ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Rollouts <rollouts@localhost>"]
GPG_GEN_KEY += ["ed25519", "sign", "never"]


def _with_signing(spec: Rollout, signing: dict[str, str]) -> Rollout:
    git = spec.spec.git.model_copy(update={"signing": SigningSpec.model_validate(signing)})
    return spec.model_copy(update={"spec": spec.spec.model_copy(update={"git": git})})


def _verify(remote: Remote, sha: str, *config: str, env: dict[str, str] | None = None) -> str:
    args = ["git", *(item for pair in config for item in ("-c", pair)), "verify-commit", "--raw", sha]
    done = subprocess.run(
        args, cwd=remote.bare, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    assert done.returncode == 0, f"{sha} does not verify: {done.stderr}"
    return done.stderr


def _allowed_signers(tmp_path: Path, key: Path) -> Path:
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'rollouts@localhost namespaces="git" {key.with_suffix(".pub").read_text().strip()}\n')
    return allowed


def test_ssh_signed_commits_verify(remote: Remote, spec: Rollout, cache: Path, tmp_path: Path) -> None:
    require_binary("ssh-keygen", "Debian package openssh-client")
    key = keygen(tmp_path / "signing_key", "rollouts")
    signed = _with_signing(spec, {"format": "ssh", "key": str(key)})
    with Workspace.for_spec(signed, cache_dir=cache) as ws:
        assert ws.signing is not None and ws.signing.describe() == f"ssh key {key}"
        step = ws.set_weights(signed, Weights(40, 60), verdict="promote", step="2/3")
        pause = ws.record(signed, "pause", reasons=["on-call"])
    allowed = _allowed_signers(tmp_path, key)
    for sha in (step.sha, pause.sha):
        assert sha is not None
        out = _verify(remote, sha, f"gpg.ssh.allowedSignersFile={allowed}")
        assert 'Good "git" signature for rollouts@localhost' in out
    # A human's unsigned commit does not verify: the check above can fail.
    with pytest.raises(AssertionError, match="does not verify"):
        _verify(remote, remote.head() + "~2", f"gpg.ssh.allowedSignersFile={allowed}")
    # Nothing at rest: the clone's config does not carry the signing settings.
    assert "signingkey" not in (ws.path / ".git" / "config").read_text().lower()


def test_signing_key_from_the_environment(tmp_path: Path) -> None:
    key = keygen(tmp_path / "env_key")
    signing = Signing.resolve(None, {"ROLLOUTS_SIGNING_KEY": str(key)})
    assert signing == Signing(format="ssh", key=str(key), source="$ROLLOUTS_SIGNING_KEY")
    assert Signing.resolve(None, {}) is None
    with pytest.raises(SigningError, match=r"\$ROLLOUTS_SIGNING_FORMAT: must be ssh or openpgp, got 'x509'"):
        Signing.resolve(None, {"ROLLOUTS_SIGNING_KEY": "k", "ROLLOUTS_SIGNING_FORMAT": "x509"})
    # The spec wins over the environment.
    spec_key = Signing.resolve(SigningSpec(key="ABCDEF", format="openpgp"), {"ROLLOUTS_SIGNING_KEY": "k"})
    assert spec_key is not None and spec_key.key == "ABCDEF" and spec_key.source == "spec.git.signing"
    # Appended after the credentials' own config entries, never replacing them.
    env = with_config({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "credential.helper"}, signing.config())
    assert env["GIT_CONFIG_KEY_0"] == "credential.helper" and env["GIT_CONFIG_KEY_1"] == "commit.gpgSign"
    assert env["GIT_CONFIG_COUNT"] == "4" and env["GIT_CONFIG_VALUE_3"] == str(key)


@pytest.mark.parametrize(
    ("make_key", "message"),
    [
        (lambda d: d / "missing", r"SSH signing key .*missing is not a readable file"),
        (lambda d: _write(d / "garbage", "not a key\n"), r"cannot sign with ssh key .*garbage: "),
        (
            lambda d: _encrypted(d / "locked"),
            r"cannot sign with .*locked: the key is protected by a passphrase",
        ),
    ],
)
def test_a_key_that_cannot_sign_fails_at_start_up(remote, spec, cache, tmp_path, make_key, message):  # noqa: PLR0917
    key = make_key(tmp_path)
    signed = _with_signing(spec, {"format": "ssh", "key": str(key)})
    before = remote.head()
    with pytest.raises(SigningError, match=r"^spec\.git\.signing: " + message) as caught:
        Workspace.for_spec(signed, cache_dir=cache)
    if key.exists():
        assert key.read_text().strip() not in str(caught.value)
    assert remote.head() == before and not (cache / "repos").exists()


def test_a_key_lost_after_start_up_fails_the_commit_not_the_signature(
    remote: Remote, spec: Rollout, cache: Path, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "signing_key")
    signed = _with_signing(spec, {"format": "ssh", "key": str(key)})
    before = remote.head()
    with Workspace.for_spec(signed, cache_dir=cache) as ws:
        key.unlink()
        with pytest.raises(Exception, match="git commit failed"):
            ws.set_weights(signed, Weights(40, 60), verdict="promote")
        assert remote.head() == before  # no unsigned commit was pushed
        assert ws.read_weights(signed) == Weights(90, 10)  # and the clone is back at the remote's head


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _encrypted(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def gnupg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throw-away GnuPG home with one passphrase-less signing key; yields its fingerprint."""
    require_binary("gpg", "Debian package gnupg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    subprocess.run(
        GPG_GEN_KEY,
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    try:
        yield fingerprint
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], capture_output=True, check=False)


def test_gpg_signed_commits_verify(remote: Remote, spec: Rollout, cache: Path, gnupg: str) -> None:
    signed = _with_signing(spec, {"format": "openpgp", "key": gnupg})
    with Workspace.for_spec(signed, cache_dir=cache) as ws:
        result = ws.set_weights(signed, Weights(40, 60), verdict="promote")
    assert result.sha is not None
    out = _verify(remote, result.sha)
    assert "GOODSIG" in out and gnupg[-16:] in out
    unknown = _with_signing(spec, {"format": "openpgp", "key": "0123456789ABCDEF0123456789ABCDEF01234567"})
    with pytest.raises(SigningError, match="no such secret key in the GnuPG keyring"):
        Workspace.for_spec(unknown, cache_dir=cache)
