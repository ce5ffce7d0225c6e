"""Credentials for the Git remote, and redaction of secrets in everything we print or commit.

SSH, in this order: a deploy key file (``spec.git.sshKeyFile``) makes our own ``GIT_SSH_COMMAND``
with ``IdentitiesOnly`` (the agent's other keys are never offered) and, when one is configured
(``spec.git.knownHostsFile`` or ``$ROLLOUTS_SSH_KNOWN_HOSTS``), a pinned ``known_hosts`` file with
``StrictHostKeyChecking=yes``; without a key file, a ``GIT_SSH_COMMAND`` already in the environment
(e.g. the Deployment's) is kept as it is; ssh always runs with ``BatchMode=yes`` (never a prompt).

HTTPS: a token from a file or an environment variable, handed to Git
through ``GIT_ASKPASS`` and the environment of the Git process only: it never appears in a URL, in
``.git/config``, on a command line (visible in ``ps``) or in a message.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.redaction import redact as _redact
from rollouts.gitops.errors import CredentialError, RemoteUrlError

# user:password@ or token@ in scheme URLs; scp-like URLs (git@host:path) carry no secret.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@", re.IGNORECASE)
# scp-like user:password@host:path
_SCP_PASSWORD = re.compile(r"^[^/@:\s]+:[^/\s]*@[\w.-]+:")
# Git's remote helpers ``<transport>::<address>`` (``ext::sh -c ...`` runs a command).
_REMOTE_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git+ssh://", "ssh+git://")
TOKEN_ENV = "ROLLOUTS_GIT_TOKEN"
USERNAME_ENV = "ROLLOUTS_GIT_USERNAME"
KNOWN_HOSTS_ENV = "ROLLOUTS_SSH_KNOWN_HOSTS"
_ASKPASS = """#!/bin/sh
# Written by gitops-rollouts: answers Git's credential prompts from the environment (no secret here).
case "$1" in
  Username*) printf '%s\\n' "${ROLLOUTS_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "$ROLLOUTS_GIT_TOKEN" ;;
esac
"""


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with; ``token`` is never shown by ``repr``."""

    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    token: str | None = field(default=None, repr=False)
    username: str = "x-access-token"

    @classmethod
    def resolve(
        cls,
        *,
        ssh_key_file: str | None = None,
        token_file: str | None = None,
        token_env: str | None = None,
        known_hosts_file: str | None = None,
        env: Mapping[str, str] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Read the token from ``token_file`` or the variable ``token_env``; check the key file and
        the known_hosts file (``known_hosts_file``, else ``$ROLLOUTS_SSH_KNOWN_HOSTS``) exist.

        Errors name the setting as ``spec.git.<field>``, or as ``names[field]`` (e.g. a CLI flag).
        """
        env = os.environ if env is None else env
        names = names or {}

        def name(setting: str) -> str:
            return names.get(setting, f"spec.git.{setting}")

        key = Path(ssh_key_file).expanduser() if ssh_key_file else None
        if key is not None and not key.is_file():
            raise CredentialError(f"{name('sshKeyFile')}: {key} is not a readable file")
        field_name, hosts_name = name("knownHostsFile"), known_hosts_file
        if not hosts_name and env.get(KNOWN_HOSTS_ENV, "").strip():
            field_name, hosts_name = f"${KNOWN_HOSTS_ENV}", env[KNOWN_HOSTS_ENV].strip()
        known_hosts = Path(hosts_name).expanduser() if hosts_name else None
        if known_hosts is not None and not known_hosts.is_file():
            raise CredentialError(f"{field_name}: {known_hosts} is not a readable file")
        token: str | None = None
        if token_file:
            try:
                token = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CredentialError(
                    f"{name('tokenFile')}: cannot read {token_file}: {exc.strerror}"
                ) from None
            if not token:
                raise CredentialError(f"{name('tokenFile')}: {token_file} is empty")
        elif token_env:
            token = env.get(token_env, "").strip()
            if not token:
                raise CredentialError(f"{name('tokenEnv')}: environment variable {token_env} is not set")
        return cls(ssh_key_file=key, known_hosts_file=known_hosts, token=token)

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from any text we emit."""
        return (self.token,) if self.token else ()

    def ssh_command(self, environ: Mapping[str, str] | None = None) -> str:
        """``GIT_SSH_COMMAND`` for our Git processes (see the module docstring for the precedence).

        ``environ`` is the process environment (default ``os.environ``) whose ``GIT_SSH_COMMAND``
        is kept when we have no key file of our own.
        """
        environ = os.environ if environ is None else environ
        inherited = environ.get("GIT_SSH_COMMAND", "").strip()
        if self.ssh_key_file is None and inherited:
            # Keep the operator's settings; ssh takes the first value of an option, so appending
            # BatchMode never overrides one they set themselves.
            return inherited if "batchmode" in inherited.lower() else f"{inherited} -o BatchMode=yes"
        ssh = ["ssh", "-o", "BatchMode=yes"]
        if self.ssh_key_file is not None:
            ssh += ["-i", str(self.ssh_key_file), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts_file is not None:
            ssh += ["-o", f"UserKnownHostsFile={self.known_hosts_file}", "-o", "StrictHostKeyChecking=yes"]
        return " ".join(shlex.quote(part) for part in ssh)

    def git_env(self, askpass_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for Git processes: never prompt, authenticate with what we have
        (``environ``: the process environment, default ``os.environ``)."""
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
        env["GIT_SSH_COMMAND"] = self.ssh_command(environ)
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


# The command-line twins of spec.git's credential fields, for Git access before any spec is read.
_CLI_OPTIONS = {
    "sshKeyFile": "--git-ssh-key-file",
    "knownHostsFile": "--git-known-hosts-file",
    "tokenFile": "--git-token-file",
    "tokenEnv": "--git-token-env",
}


def add_credential_arguments(parser: argparse.ArgumentParser, what: str = "the repo") -> None:
    """Add ``--git-ssh-key-file``, ``--git-known-hosts-file``, ``--git-token-file`` and
    ``--git-token-env`` (the command-line twins of ``spec.git``'s credential fields) to ``parser``."""
    parser.add_argument(_CLI_OPTIONS["sshKeyFile"], metavar="FILE", help=f"SSH deploy key for {what}")
    parser.add_argument(
        _CLI_OPTIONS["knownHostsFile"],
        metavar="FILE",
        help="known_hosts pinning the SSH server's keys (default $ROLLOUTS_SSH_KNOWN_HOSTS)",
    )
    parser.add_argument(_CLI_OPTIONS["tokenFile"], metavar="FILE", help=f"HTTPS token file for {what}")
    parser.add_argument(
        _CLI_OPTIONS["tokenEnv"], metavar="VAR", help=f"environment variable with an HTTPS token for {what}"
    )


def credentials_from_arguments(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Credentials:
    """The credentials of :func:`add_credential_arguments`'s options (errors name the flag)."""
    return Credentials.resolve(
        ssh_key_file=args.git_ssh_key_file,
        known_hosts_file=args.git_known_hosts_file,
        token_file=args.git_token_file,
        token_env=args.git_token_env,
        env=env,
        names=_CLI_OPTIONS,
    )


def url_has_secret(url: str) -> bool:
    """True when ``url`` carries a password (``user:pass@``, also scp-like ``user:pass@host:path``),
    an HTTP(S) user name (tokens are often passed as ``https://TOKEN@host``) or a query parameter
    named like a secret (``?access_token=``); ``ssh://git@host`` and ``git@host:path`` do not."""
    match = _URL_USERINFO.match(url)
    if match is not None and (":" in match["userinfo"] or match["scheme"].lower().startswith("http")):
        return True
    if _SCP_PASSWORD.match(url):
        return True
    query = url.partition("?")[2].partition("#")[0]
    return bool(query) and _redact("?" + query) != "?" + query


def remote_url_problem(url: str) -> str | None:
    """Why a Git remote URL is refused, or None when it may be used.

    Credentials in the URL are refused (Git would store the URL in ``.git/config`` and GitPython log
    it; tokens come from ``tokenFile``/``tokenEnv``), and so are Git's remote helpers
    (``ext::sh -c ...`` runs a shell command; ``fd::``) and options in disguise (``-u...``). Allowed:
    ``https://``, ``http://``, ``ssh://``, ``git://``, ``file://``, scp-like ``user@host:path`` and
    local paths. The text never holds the URL's secret.
    """
    if url.startswith("-"):
        return "is not a repository URL (it starts with '-')"
    if _REMOTE_HELPER.match(url) and not url.lower().startswith(_SCHEMES):
        transport = url.split("::", 1)[0]
        return (
            f"Git remote helper {transport}:: is refused (it can run commands); use an https://, "
            "ssh:// or file:// URL, or a local path"
        )
    if url_has_secret(url):
        return (
            "must not contain credentials; use tokenFile or tokenEnv (--git-token-file or "
            "--git-token-env on the command line), or an SSH key"
        )
    return None


def check_remote_url(url: str, setting: str = "spec.git.url") -> None:
    """:class:`RemoteUrlError` naming ``setting`` (``--repo``, ``spec.git.url``) and the redacted URL
    when :func:`remote_url_problem` refuses ``url``."""
    problem = remote_url_problem(url)
    if problem is not None:
        raise RemoteUrlError(f"{setting}: {redact(url)}: {problem}")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL credentials and every known secret replaced by ``***``
    (:func:`analyzer.redaction.redact`, the one redaction function)."""
    return _redact(text, secrets)
