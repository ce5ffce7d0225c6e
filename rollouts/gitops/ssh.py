"""What went wrong on an SSH remote, said in the operator's terms rather than ssh's.

Git passes ssh's complaints through as they are: "Permission denied (publickey)", "Host key
verification failed", a twenty-line banner for a changed host key. :func:`explain` turns the ones a
deploy-key set-up meets into one sentence that names what is wrong and which setting to look at
(``spec.git.sshKeyFile``, ``spec.git.knownHostsFile``), followed by ssh's own key line.

It must never include key material: it names files, never reads them, and drops ssh's banner (which
carries fingerprints and advice meant for a person at a terminal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rollouts.gitops.credentials import Credentials


@dataclass(frozen=True)
class _Case:
    marker: re.Pattern[str]
    hint: str


# The order matters: a changed host key also says "Host key verification failed".
_CASES = (
    _Case(
        re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed", re.I),
        "the SSH server's host key differs from the one pinned in {known_hosts}: not connecting "
        "(the server was re-keyed, or someone is in between; check the new key out of band)",
    ),
    _Case(
        re.compile(r"No \S+ host key is known for|Host key verification failed", re.I),
        "the SSH server's host key is not in {known_hosts}: pin it there (spec.git.knownHostsFile)",
    ),
    _Case(
        re.compile(r"Permission denied \(publickey", re.I),
        "the SSH server refused the deploy key {key}: add its public key to the repository "
        "(with write access)",
    ),
    _Case(
        re.compile(r"read[- ]only", re.I),
        "the deploy key {key} is read-only: the controller pushes its commits, so it needs write access",
    ),
    _Case(
        re.compile(r"connect to host .*(Connection refused|timed out|No route to host)", re.I),
        "cannot reach the SSH server",
    ),
    _Case(
        re.compile(r"Could not resolve hostname", re.I),
        "the SSH server's host name does not resolve",
    ),
)
# The line of ssh's output worth quoting for each case (the rest is banner).
_KEY_LINE = re.compile(
    r"(Permission denied \([^)]*\)|Host key verification failed\.?|No \S+ host key is known for \S+|"
    r"Host key for \S+ has changed|ERROR:[^\r\n]*read[- ]only[^\r\n]*|ssh: [^\r\n]*)",
    re.I,
)


def explain(detail: str, credentials: Credentials) -> str:
    """``detail`` (Git's error output) led by a plain diagnosis when it is an SSH failure we know;
    the banner lines of ssh are dropped. Unknown failures come back unchanged."""
    for case in _CASES:
        if case.marker.search(detail):
            hint = case.hint.format(
                known_hosts=credentials.known_hosts_file or "ssh's known_hosts files",
                key=f"({credentials.ssh_key_file})" if credentials.ssh_key_file else "(ssh's default keys)",
            )
            quoted = "; ".join(dict.fromkeys(m.group(0).strip() for m in _KEY_LINE.finditer(detail)))
            return f"{hint} (ssh: {quoted})" if quoted else hint
    return detail


def is_ssh_url(url: str) -> bool:
    """True for ``ssh://`` and scp-like ``user@host:path`` URLs."""
    return url.startswith(("ssh://", "git+ssh://", "ssh+git://")) or bool(
        re.match(r"^[\w.-]+@[\w.-]+:(?!//)", url)
    )
