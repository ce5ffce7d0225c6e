"""The one redaction function for every URL and message the programs print, log, raise or commit.

Secrets reach messages through URLs more than any other way: a Git remote given as
``https://user:token@host``, a clone error that quotes ``?access_token=...``, an scp-like
``user:secret@host:path``, a Prometheus behind basic auth, an apprise webhook whose path is the
secret. :func:`redact` scrubs all of these forms from free text, plus any secret value the caller
knows (a token read from a file, the path of a webhook URL: :func:`url_secrets`).

It lives in ``analyzer`` because that is the lowest package: ``rollouts`` and ``loadtest`` import
``analyzer``, never the other way round. It imports nothing but the standard library (the CLIs
import it at start-up).

It must never be bypassed by formatting a URL into a message first and redacting only part of it,
and it never shortens a message other than by replacing secrets with ``***``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["MASK", "RedactingFilter", "redact", "url_secrets"]

MASK = "***"

# scheme://userinfo@ : the userinfo runs to the LAST '@' of the authority (a password may hold an
# unencoded '@'; Git and urllib both split there).
_SCHEME_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@", re.IGNORECASE)
# scp-like user:secret@host:path (no scheme). Git's own scp syntax has no password, but people
# write one; ``git@host:path`` (no ':' before the '@') carries no secret and is left alone.
_SCP_USERINFO = re.compile(r"(?<![\w.+%~/:@-])(?P<user>[\w.+%~-]+):(?P<secret>[^\s/]*)@(?P<host>[\w.-]+:)")
# Query parameters whose names say they carry a secret (access_token, private_token, X-Amz-Signature,
# api_key, password, sig, ...); their values become ***.
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:[^=&?#;\s]*(?:token|secret|passw|pwd|signature|credential|api_?key|access_?key|auth)"
    r"[^=&?#;\s]*|key|sig|code|session|sessionid)=)(?P<value>[^&#;\s'\"<>]*)",
    re.IGNORECASE,
)
# Webhook URLs whose path is the secret (Slack, Discord, Teams, generic ``/hooks/``): the path goes.
_WEBHOOK_PATH = re.compile(
    r"(?P<prefix>://[^/\s]+/(?:[^/\s]+/)*?(?:services|webhooks?|hooks)/)[^\s?#'\"<>)]+"
)
# Shorter "secrets" would replace ordinary words in messages.
_MIN_SECRET = 4


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL credential and every value of ``secrets`` replaced by ``***``.

    Forms: ``scheme://user:pass@host`` and ``scheme://token@host`` (-> ``scheme://***@host``, also
    when the password holds ``@``), scp-like ``user:pass@host:path`` (-> ``***@host:path``), query
    parameters named like secrets (``?access_token=abc`` -> ``?access_token=***``), webhook paths
    (``https://hooks.slack.com/services/***``), and each known secret, also URL-encoded.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        encoded = _percent_encoded(secret)
        if encoded != secret:
            text = text.replace(encoded, MASK)
    text = _SCHEME_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _SCP_USERINFO.sub(lambda m: f"{MASK}@{m['host']}", text)
    text = _WEBHOOK_PATH.sub(lambda m: f"{m['prefix']}{MASK}", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['name']}{MASK}", text)


def _percent_encoded(value: str) -> str:
    return quote(value, safe="")


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of ``url`` that are secret when the whole URL is a credential (a webhook, an
    apprise target): userinfo, each path segment and each query value, decoded and as written.

    Used to register a notification target's secrets with :func:`redact` (and
    :class:`RedactingFilter`), so that a library logging the URL in any form is scrubbed too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        found += [userinfo, *userinfo.split(":", 1)]
    scheme_is_host = "." not in parts.hostname if parts.hostname else True
    if scheme_is_host and parts.netloc and parts.scheme not in {"http", "https"}:
        # apprise's own schemes (slack://TokenA/TokenB/TokenC, discord://id/token) put secrets
        # where a host would be.
        found.append(parts.netloc.rpartition("@")[2])
    # Path segments that look like tokens (a digit in 6+ characters, or 16+ characters): words such
    # as "services" or "api" would otherwise be masked in every message.
    for segment in parts.path.split("/"):
        for form in (segment, unquote(segment)):
            if (len(form) >= 6 and any(c.isdigit() for c in form)) or len(form) >= 16:
                found.append(form)
    for _name, value in parse_qsl(parts.query, keep_blank_values=False):
        found.append(value)
    return tuple(dict.fromkeys(s for s in found if len(s) >= _MIN_SECRET))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record it sees (message and arguments, formatted once).

    Attach it to a library's logger (apprise logs target URLs at DEBUG) or to a handler.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted text; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw template, redacted
            message = str(record.msg)
        record.msg = redact(message, self.secrets)
        record.args = None
        return True
