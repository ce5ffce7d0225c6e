"""What a ``loadtest serve`` job may send: the target allowlist and the header rules.

A job's target and headers come from whoever holds the bearer token; this module decides, before
any byte is sent, that they stay inside what the operator allowed. Behind a proxy that routes by
``Host`` (an Istio sidecar, an ingress) a free ``Host`` header reaches any service, framing headers
(``Content-Length``, ``Transfer-Encoding``) can desynchronise a keep-alive connection, and a path
that a server normalises (``/ok/..;/admin``, ``/ok/%252e%252e/admin``) leaves an allowed prefix.

Pure functions and data: no gevent, no Locust (tests import it directly). It never resolves names
and never opens a connection; it must never accept what it cannot judge (a path it cannot decode to
a fixed point is refused).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from loadtest.options import validate_url

#: Headers a job may never set: hop-by-hop (RFC 9110 7.6.1), framing (the client writes them), and
#: headers some proxies and frameworks take as the request's real path or host.
FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-host",
        "forwarded",
    }
)
#: ``Proxy-Authorization``, ``Proxy-Connection``...: every header whose name starts so.
FORBIDDEN_PREFIX = "proxy-"
#: RFC 9110 5.6.2 ``token``: what a header name may be.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A ``Host`` value: a DNS name or IPv4 address, or a bracketed IPv6 literal, with an optional port.
_HOST_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
#: How many rounds of percent-decoding a path gets before it must be stable (``%25252e`` is three).
DECODE_ROUNDS = 4


class HeaderError(ValueError):
    """A header a job may not send; the message names it."""


def check_header(name: str, value: str) -> None:
    """Raise :class:`HeaderError` unless ``name: value`` is a header a job may send.

    The name must be an RFC 9110 token and not a hop-by-hop, framing or routing-override header
    (``Host`` is judged by :meth:`Allowlist.refusal`, which knows the target); the value must be
    Latin-1 (HTTP/1.1 sends header bytes as they are) without control characters other than tab.
    """
    if not _TOKEN.fullmatch(name):
        raise HeaderError(f"header name {name!r} is not an HTTP token (letters, digits, -, ...)")
    lower = name.lower()
    if lower in FORBIDDEN_HEADERS or lower.startswith(FORBIDDEN_PREFIX):
        raise HeaderError(f"header {name!r} is hop-by-hop or framing and cannot be set by a job")
    bad = next((c for c in value if ord(c) > 0xFF or (ord(c) < 0x20 and c != "\t") or c == "\x7f"), None)
    if bad is not None:
        what = "not Latin-1" if ord(bad) > 0xFF else "a control character"
        raise HeaderError(f"header {name!r}: its value has {bad!r} ({what})")


def check_target(url: str) -> str:
    """The URL itself when it is a valid target whose every character is printable ASCII.

    A request line is bytes; a non-ASCII path or host must be sent percent-encoded (or as IDNA),
    and guessing an encoding here would send something the caller did not write.
    """
    bad = next((c for c in url if not 0x21 <= ord(c) <= 0x7E), None)
    if bad is not None:
        raise ValueError(f"target {url!r}: {bad!r} is not printable ASCII (percent-encode the path)")
    return validate_url(url)


def _decoded(path: str) -> str | None:
    """``path`` percent-decoded until it no longer changes; ``None`` if it still does after
    :data:`DECODE_ROUNDS` rounds (a server may decode once more than we did)."""
    for _ in range(DECODE_ROUNDS):
        once = unquote(path)
        if once == path:
            return path
        path = once
    return None


def path_refusal(path: str) -> str | None:
    """Why ``path`` may not be matched against a path prefix, or ``None`` when it may.

    Servers and proxies normalise paths before routing, each in its own way: they resolve ``.`` and
    ``..`` segments (also percent-encoded, once or more), strip ``;`` path parameters (Tomcat reads
    ``/ok/..;/admin`` as ``/admin``) and take ``\\`` for ``/``. A path with any of these is refused
    rather than normalised here the way one server would.
    """
    decoded = _decoded(path)
    if decoded is None:
        return f"path {path!r} is still percent-encoded after {DECODE_ROUNDS} rounds of decoding"
    if ";" in decoded:
        return f"path {path!r} has a ';' path parameter"
    if "\\" in decoded:
        return f"path {path!r} has a backslash"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return f"path {path!r} has an encoded control character"
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return f"path {path!r} has a dot segment"
    return None


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it, at a segment boundary: ``/api`` covers ``/api`` and
    ``/api/v1``, not ``/apiary`` (``/api/`` covers only what is below it)."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class Entry:
    """One ``--allow`` entry: a URL prefix or a host pattern, and the ``Host`` names it permits."""

    prefix: str | None  # a URL prefix (scheme, host, port, path prefix), or None for a host pattern
    host: str | None  # a shell-wildcard host pattern (``*.test``, ``podinfo.test:9898``)
    host_headers: tuple[str, ...] = ()  # shell-wildcard patterns a job's ``Host`` header may match

    def matches(self, url: str) -> tuple[bool, str | None]:
        """``(matched, why not)``: whether ``url`` is in this entry, and a reason when it is refused."""
        parts = urlsplit(url)
        if self.prefix is not None:
            p = urlsplit(self.prefix)
            if (parts.scheme, parts.hostname, parts.port) != (p.scheme, p.hostname, p.port):
                return False, None
            path = parts.path or "/"
            refusal = path_refusal(path)
            if refusal is not None:
                return False, refusal
            return _under(path, p.path or "/"), None
        assert self.host is not None
        host = (parts.hostname or "").lower()
        hostport = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        return fnmatch.fnmatchcase(host, self.host) or fnmatch.fnmatchcase(hostport, self.host), None

    def permits_host(self, value: str) -> bool:
        """True when a job for this entry may send ``Host: value``."""
        lower = value.lower()
        name = lower.rsplit(":", 1)[0] if not lower.endswith("]") else lower
        return any(fnmatch.fnmatchcase(lower, h) or fnmatch.fnmatchcase(name, h) for h in self.host_headers)


def parse_entry(raw: str) -> Entry:
    """``PATTERN[;host=NAME]...``: a URL prefix or host pattern, then the ``Host`` names it permits.

    ``http://istio-ingressgateway.istio-system:80/;host=podinfo.test;host=*.podinfo.test`` lets jobs
    load the ingress with ``Host: podinfo.test`` (or any subdomain); without ``;host=`` a job may not
    set ``Host`` at all. ``ValueError`` names the entry when it does not parse.
    """
    pattern, *options = (part.strip() for part in raw.split(";"))
    hosts: list[str] = []
    for option in options:
        key, sep, value = option.partition("=")
        if key.strip().lower() != "host" or not sep or not value.strip():
            raise ValueError(f"--allow {raw!r}: expected ';host=NAME' after the pattern, got {option!r}")
        hosts.append(value.strip().lower())
    if "://" in pattern:
        prefix = validate_url(pattern)
        refusal = path_refusal(urlsplit(prefix).path or "/")
        if refusal is not None:
            raise ValueError(f"--allow {raw!r}: {refusal}")
        return Entry(prefix=prefix, host=None, host_headers=tuple(hosts))
    if not pattern:
        raise ValueError(f"--allow {raw!r}: empty pattern")
    return Entry(prefix=None, host=pattern.lower(), host_headers=tuple(hosts))


class Allowlist:
    """Targets the server may load: entries as :func:`parse_entry` reads them. Empty allows nothing."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.entries: list[Entry] = [parse_entry(p) for p in patterns if p.strip()]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def refusal(self, url: str, headers: dict[str, str] | None = None) -> str | None:
        """Why a job for ``url`` with ``headers`` is refused, or ``None`` when some entry allows it."""
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            return f"target {url} has credentials in it"  # they could make a prefix look like another host
        hosts = [v for k, v in (headers or {}).items() if k.lower() == "host"]
        for host in hosts:
            if not _HOST_VALUE.fullmatch(host):
                return f"Host header {host!r} is not a host name with an optional port"
        reasons: list[str] = []
        for entry in self.entries:
            matched, why = entry.matches(url)
            if why is not None:
                reasons.append(why)
            if not matched:
                continue
            denied = [host for host in hosts if not entry.permits_host(host)]
            if not denied:
                return None
            reasons.append(f"Host {denied[0]!r} is not permitted for it (add ';host=NAME' to its --allow)")
        detail = f" ({reasons[0]})" if reasons else ""
        return f"target {url} is not in the allowlist{detail}"

    def allows(self, url: str, headers: dict[str, str] | None = None) -> bool:
        """True when :meth:`refusal` has nothing against ``url`` and ``headers``."""
        return self.refusal(url, headers) is None
