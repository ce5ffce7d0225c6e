"""A real OpenSSH server on loopback that serves Git through ``git-shell``, for the SSH transport tests.

Debian's ``sshd`` (package ``openssh-server``) runs in the foreground with a configuration of its
own: a fresh host key, one ``authorized_keys`` file with a read-write deploy key and a read-only one,
each forced to run ``git-shell`` (so a key can run Git's pack commands and nothing else), no
password or keyboard-interactive logins. The client side gets a pinned ``known_hosts`` file naming
that host key. Everything lives under the test's temporary directory; the server is stopped by pid.

A missing ``sshd`` skips locally and fails under ``CI=true`` (:func:`tests.support.require_binary`).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollouts.local.process import ChildProcess, free_port
from tests.support import require_binary

# Every key runs git-shell (its authorized_keys command, which sshd runs through the user's shell,
# so the variable expands there): Git's pack commands and nothing else.
_GIT_SHELL = 'git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"'
# Read-only deploy keys run only the fetch side of Git (as forges' read-only deploy keys do).
_READ_ONLY = """#!/bin/sh
case "$SSH_ORIGINAL_COMMAND" in
  git-upload-pack\\ *) exec git-shell -c "$SSH_ORIGINAL_COMMAND" ;;
esac
echo "ERROR: this deploy key is read-only" >&2
exit 1
"""


def keygen(path: Path, comment: str = "test") -> Path:
    """A new ed25519 key pair without passphrase at ``path`` (private) and ``path.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@dataclass
class SshServer:
    """A running sshd: where it listens, the keys it knows, and the client files that go with it."""

    port: int
    user: str
    host_key: Path
    deploy_key: Path  # read-write, in authorized_keys
    read_only_key: Path  # in authorized_keys, may only fetch
    stranger_key: Path  # never authorized
    known_hosts: Path  # pins the host key
    log: Path

    def url(self, bare: Path) -> str:
        """The ``ssh://`` URL of the bare repository at ``bare`` (an absolute path)."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"

    def host_line(self, public_key: Path) -> str:
        """A known_hosts line for this server with ``public_key`` (e.g. another host's key)."""
        kind, blob = public_key.read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"


def _write_config(root: Path, port: int, user: str, host_key: Path, authorized: Path) -> Path:
    config = root / "sshd_config"
    lines = [
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        f"AllowUsers {user}",
        "PidFile none",
        # The temporary directories are not root-owned 0755 all the way up; the files are ours.
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PermitTTY no",
        "LogLevel VERBOSE",
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def _wait_listening(child: ChildProcess, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running:
            raise RuntimeError(f"sshd exited at start-up:\n{child.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                if conn.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} in {timeout:.0f}s:\n{child.log_tail()}")


def start_sshd(root: Path) -> Iterator[SshServer]:
    """Start sshd under ``root`` (a fresh directory), yield it, stop it by pid."""
    sshd = require_binary("sshd", "Debian package openssh-server")
    require_binary("ssh-keygen", "Debian package openssh-client")
    require_binary("git-shell", "Debian package git")
    root.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    host_key = keygen(root / "host_key", "host")
    deploy = keygen(root / "deploy_key", "deploy")
    read_only = keygen(root / "read_only_key", "read-only")
    stranger = keygen(root / "stranger_key", "stranger")
    guard = root / "read-only.sh"
    guard.write_text(_READ_ONLY)
    guard.chmod(0o755)
    authorized = root / "authorized_keys"
    authorized.write_text(
        f'restrict,command="{_GIT_SHELL}" {deploy.with_suffix(".pub").read_text().strip()}\n'
        f'restrict,command="{guard}" {read_only.with_suffix(".pub").read_text().strip()}\n'
    )
    if os.geteuid() == 0:
        # sshd's privilege-separation directory; Debian's service script makes it, we run sshd directly.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    # sshd re-executes itself and needs an absolute path; Debian keeps it in /usr/sbin.
    sshd = str(Path(sshd).resolve())
    last_error = ""
    for _ in range(3):  # a free port can be taken between our probe and sshd's bind
        port = free_port()
        config = _write_config(root, port, user, host_key, authorized)
        log = root / f"sshd-{port}.log"
        child = ChildProcess("sshd", [sshd, "-D", "-e", "-f", str(config)], log)
        try:
            _wait_listening(child, port)
        except RuntimeError as exc:
            child.stop()
            last_error = str(exc)
            continue
        known_hosts = root / "known_hosts"
        server = SshServer(
            port=port,
            user=user,
            host_key=host_key,
            deploy_key=deploy,
            read_only_key=read_only,
            stranger_key=stranger,
            known_hosts=known_hosts,
            log=log,
        )
        known_hosts.write_text(server.host_line(host_key.with_suffix(".pub")))
        try:
            yield server
        finally:
            child.stop()
        return
    raise RuntimeError(last_error)


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SshServer]:
    """A real sshd on a free loopback port serving Git through git-shell."""
    if shutil.which("sshd") is None and Path("/usr/sbin/sshd").exists():
        # A non-root PATH often lacks /usr/sbin, where Debian installs sshd.
        monkeypatch.setenv("PATH", f"{os.environ.get('PATH', '')}:/usr/sbin")
    yield from start_sshd(tmp_path / "sshd")
