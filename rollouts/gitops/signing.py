"""Signed commits: which key signs ours, checked once at start-up, handed to Git per process.

Some organisations accept only signed commits on the branch Flux watches. Git signs when
``commit.gpgsign`` is on, with ``gpg.format`` ``ssh`` (``ssh-keygen -Y sign`` with a key file) or
``openpgp`` (``gpg``). We give Git those settings through its environment
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``) on every Git process of the
workspace, so nothing is written into the clone's ``.git/config`` and a workspace without signing
never inherits a stale setting.

The key comes from ``spec.git.signing``, else from ``$ROLLOUTS_SIGNING_KEY`` (with
``$ROLLOUTS_SIGNING_FORMAT``, default ``ssh``). :meth:`Signing.check` signs a few bytes with it at
start-up: a key that is missing, unreadable, passphrase-protected (nobody can type it) or unknown to
GnuPG is a :class:`SigningError` then, never an unsigned commit later; if the key goes away after
start-up, ``git commit`` fails (Git does not fall back to unsigned) and nothing is pushed.

It must never print or copy key material: it names the key file or key id, never reads the key.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rollouts.gitops.errors import SigningError
from rollouts.spec_gates import SigningSpec

__all__ = ["FORMAT_ENV", "KEY_ENV", "Signing", "SigningError", "with_config"]  # the error: gitops.errors

KEY_ENV = "ROLLOUTS_SIGNING_KEY"
FORMAT_ENV = "ROLLOUTS_SIGNING_FORMAT"
CHECK_TIMEOUT_S = 20.0
_FORMATS = ("ssh", "openpgp")


@dataclass(frozen=True)
class Signing:
    """A signing key for our commits: ``format`` ssh (``key`` is a file) or openpgp (a key id)."""

    format: Literal["ssh", "openpgp"]
    key: str
    program: str | None = None
    source: str = "spec.git.signing"  # where it was configured, for messages

    @classmethod
    def resolve(cls, spec: SigningSpec | None, env: Mapping[str, str] | None = None) -> Signing | None:
        """The spec's signing settings, else the environment's, else None (unsigned commits)."""
        env = os.environ if env is None else env
        if spec is not None:
            key = str(Path(spec.key).expanduser()) if spec.format == "ssh" else spec.key
            return cls(format=spec.format, key=key, program=spec.program)
        key = env.get(KEY_ENV, "").strip()
        if not key:
            return None
        fmt = env.get(FORMAT_ENV, "ssh").strip() or "ssh"
        if fmt not in _FORMATS:
            raise SigningError(f"${FORMAT_ENV}: must be ssh or openpgp, got {fmt!r}")
        key = str(Path(key).expanduser()) if fmt == "ssh" else key
        return cls(format=fmt, key=key, source=f"${KEY_ENV}")  # type: ignore[arg-type]

    def config(self) -> list[tuple[str, str]]:
        """Git configuration that makes every commit signed with this key."""
        pairs = [("commit.gpgSign", "true"), ("gpg.format", self.format), ("user.signingKey", self.key)]
        if self.program:
            pairs.append(("gpg.ssh.program" if self.format == "ssh" else "gpg.program", self.program))
        return pairs

    def describe(self) -> str:
        """``ssh key /path`` or ``openpgp key KEYID`` (for logs and messages)."""
        return f"{self.format} key {self.key}"

    def check(self, env: Mapping[str, str] | None = None) -> None:
        """Sign a few bytes with the key, as Git will; :class:`SigningError` when that fails."""
        env = dict(os.environ if env is None else env)
        # No prompt can be answered: no terminal (new session), no askpass, pinentry refused.
        env.update(SSH_ASKPASS="", SSH_ASKPASS_REQUIRE="never", GIT_TERMINAL_PROMPT="0")
        if self.format == "ssh":
            path = Path(self.key)
            if not path.is_file():
                raise SigningError(f"{self.source}: SSH signing key {path} is not a readable file")
            argv = [self.program or "ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(path)]
        else:
            argv = [self.program or "gpg", "--batch", "--no-tty", "--pinentry-mode", "error"]
            argv += ["--status-fd", "2", "--local-user", self.key, "--detach-sign", "--armor"]
        with tempfile.TemporaryDirectory(prefix="rollouts-signing-") as tmp:
            payload = Path(tmp) / "payload"
            payload.write_text("gitops-rollouts signing check\n")
            if self.format == "ssh":
                argv.append(str(payload))
            else:
                argv += ["--output", str(Path(tmp) / "payload.asc"), str(payload)]
            try:
                done = subprocess.run(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=CHECK_TIMEOUT_S,
                    start_new_session=True,
                    check=False,
                )
            except FileNotFoundError:
                raise SigningError(f"{self.source}: {argv[0]} not found (needed to sign with it)") from None
            except subprocess.TimeoutExpired:
                raise SigningError(
                    f"{self.source}: signing with {self.describe()} did not finish in {CHECK_TIMEOUT_S:.0f}s"
                ) from None
        if done.returncode != 0:
            raise SigningError(f"{self.source}: cannot sign with {self.describe()}: {_reason(done.stderr)}")


def _reason(stderr: str) -> str:
    """The useful line of ssh-keygen's or gpg's complaint (never key material: they print none)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines)
    lowered = text.lower()
    if (
        "passphrase" in lowered
        or "incorrect passphrase" in lowered
        or "no_pinentry" in lowered.replace(" ", "_")
    ):
        return "the key is protected by a passphrase, which nobody can type here (use a key without one)"
    if "no secret key" in lowered or "inv_sgnr" in lowered or "unusable secret key" in lowered:
        return "no such secret key in the GnuPG keyring"
    # ssh-keygen falls back to reading a public key when the file is no private key it can parse.
    if any(m in lowered for m in ("invalid format", "not a valid", "load key", "couldn't load")):
        return "the file is not a usable private key"
    wanted = [line for line in lines if not line.startswith("[GNUPG:]")]
    return (" ".join(wanted) or text or "the signing program failed")[:300]


def with_config(env: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """``env`` with ``pairs`` appended to Git's ``GIT_CONFIG_COUNT`` list (keeping entries already
    there, e.g. the credentials' empty ``credential.helper``)."""
    count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    for key, value in pairs:
        env[f"GIT_CONFIG_KEY_{count}"] = key
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    return env
