"""Credentials for the Git remote, and redaction of secrets in everything we print or commit.

SSH: a deploy key file, used through ``GIT_SSH_COMMAND`` with ``IdentitiesOnly`` so that the agent's
other keys are never offered. HTTPS: a token from a file or an environment variable, handed to Git
through ``GIT_ASKPASS`` and the environment of the Git process only: it never appears in a URL, in
``.git/config``, on a command line (visible in ``ps``) or in a message.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# user:password@ or token@ in scheme URLs; scp-like URLs (git@host:path) carry no secret.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@", re.IGNORECASE)
TOKEN_ENV = "ROLLOUTS_GIT_TOKEN"
USERNAME_ENV = "ROLLOUTS_GIT_USERNAME"
_ASKPASS = """#!/bin/sh
# Written by gitops-rollouts: answers Git's credential prompts from the environment (no secret here).
case "$1" in
  Username*) printf '%s\\n' "${ROLLOUTS_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "$ROLLOUTS_GIT_TOKEN" ;;
esac
"""


class CredentialError(ValueError):
    """A configured credential that cannot be used (missing file, empty token)."""


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with; ``token`` is never shown by ``repr``."""

    ssh_key_file: Path | None = None
    token: str | None = field(default=None, repr=False)
    username: str = "x-access-token"

    @classmethod
    def resolve(
        cls,
        *,
        ssh_key_file: str | None = None,
        token_file: str | None = None,
        token_env: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Read the token from ``token_file`` or the variable ``token_env``; check the key file exists."""
        env = os.environ if env is None else env
        key = Path(ssh_key_file).expanduser() if ssh_key_file else None
        if key is not None and not key.is_file():
            raise CredentialError(f"spec.git.sshKeyFile: {key} is not a readable file")
        token: str | None = None
        if token_file:
            try:
                token = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CredentialError(
                    f"spec.git.tokenFile: cannot read {token_file}: {exc.strerror}"
                ) from None
            if not token:
                raise CredentialError(f"spec.git.tokenFile: {token_file} is empty")
        elif token_env:
            token = env.get(token_env, "").strip()
            if not token:
                raise CredentialError(f"spec.git.tokenEnv: environment variable {token_env} is not set")
        return cls(ssh_key_file=key, token=token)

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from any text we emit."""
        return (self.token,) if self.token else ()

    def git_env(self, askpass_dir: Path) -> dict[str, str]:
        """Environment for Git processes: never prompt, authenticate with what we have."""
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
        ssh = ["ssh", "-o", "BatchMode=yes"]
        if self.ssh_key_file is not None:
            ssh += ["-i", str(self.ssh_key_file), "-o", "IdentitiesOnly=yes"]
        env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(part) for part in ssh)
        if self.token:
            script = askpass_dir / "askpass.sh"
            if not script.exists():
                script.write_text(_ASKPASS)
                script.chmod(stat.S_IRWXU)
            env["GIT_ASKPASS"] = str(script)
            env[TOKEN_ENV] = self.token
            env[USERNAME_ENV] = self.username
            # An empty credential.helper resets the list: no configured helper (e.g. "store") may
            # save our token to disk after a successful push.
            env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="credential.helper", GIT_CONFIG_VALUE_0="")
        return env


def url_has_secret(url: str) -> bool:
    """True when ``url`` carries a password (``user:pass@``) or an HTTP(S) user name (tokens are
    often passed as ``https://TOKEN@host``); ``ssh://git@host`` and ``git@host:path`` do not."""
    match = _URL_USERINFO.match(url)
    if match is None:
        return False
    return ":" in match["userinfo"] or match["scheme"].lower().startswith("http")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL userinfo (``https://user:token@``) and every known secret replaced by ``***``."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
