"""The lean HTTP/1.1 client of the hot path: one keep-alive socket, prebuilt request bytes, llhttp.

Locust's FastHttpUser builds a request object, a header dict and a response wrapper for every
request, and logs each one through the event system; against a fast local target that caps it near
a fifth of hey. Here a request is a ``sendall`` of bytes built once per run and a ``recv`` loop that
feeds geventhttpclient's C parser (llhttp, shipped with Locust), which only counts body bytes.
Import only under gevent (Locust's process): sockets here are cooperative.
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from geventhttpclient._parser import HTTPParseError, HTTPResponseParser

USER_AGENT = "loadtest/0.1 (hey-compatible)"
RECV_SIZE = 65536
#: A session keeps at most this many cookies of at most this many characters (hostile targets).
MAX_COOKIES = 32
MAX_COOKIE = 4096


class TransportError(Exception):
    """A request that got no complete HTTP response (refused, reset, timeout, bad protocol)."""


class _PeerClosedError(ConnectionResetError):
    """The server closed the connection before the response was complete."""


@dataclass(frozen=True)
class RequestTemplate:
    """Everything about one kind of request that is the same for every send."""

    scheme: str
    host: str
    port: int
    path: str
    method: str
    payload: bytes  # the request line, headers and body, ready to send
    keepalive: bool

    @property
    def address(self) -> str:
        """``host:port`` as Go writes it: an IPv6 literal in brackets (``[::1]:8080``)."""
        return f"{_bracketed(self.host)}:{self.port}"

    @property
    def url(self) -> str:
        """The URL this template requests."""
        default = 443 if self.scheme == "https" else 80
        netloc = _bracketed(self.host) if self.port == default else self.address
        return f"{self.scheme}://{netloc}{self.path}"


def _bracketed(host: str) -> str:
    # urlsplit's hostname drops an IPv6 literal's brackets; URLs and Go's messages need them back.
    return f"[{host}]" if ":" in host else host


def build_request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    keepalive: bool = True,
    basic_auth: tuple[str, str] | None = None,
    host_header: str | None = None,
) -> RequestTemplate:
    """Prebuild the bytes of a request (validated URL; header values must not contain CR/LF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL must be http:// or https:// with a host, got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    netloc = host_header or parts.netloc.rsplit("@", 1)[-1]
    merged: dict[str, str] = {"Host": netloc, "User-Agent": USER_AGENT}
    if basic_auth is not None:
        token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        merged["Authorization"] = f"Basic {token}"
    for name, value in (headers or {}).items():
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"invalid header {name!r}: {value!r}")
        # later headers win, matched case-insensitively like Go's http.Header.Set
        for existing in [k for k in merged if k.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        merged["Content-Length"] = str(len(body))
    if not keepalive:
        merged["Connection"] = "close"
    head = f"{method.upper()} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in merged.items())
    return RequestTemplate(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        path=path,
        method=method.upper(),
        payload=head.encode("latin-1") + b"\r\n" + body,
        keepalive=keepalive,
    )


class CookieJar:
    """The cookies one session (a worker that behaves like a browser) keeps and sends back.

    Only what session affinity needs: ``Set-Cookie: name=value`` stores, ``Max-Age`` of 0 or less
    deletes; domain, path and expiry dates are ignored (one target, one path space). Why not
    ``http.cookiejar``: it needs ``urllib`` request and response objects on the hot path, and this
    client deliberately builds neither. Bounded: at most ``MAX_COOKIES`` of ``MAX_COOKIE`` characters.
    """

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.version = 0

    def store(self, header: str) -> None:
        """Apply one ``Set-Cookie`` header value."""
        if len(header) > MAX_COOKIE:
            return
        first, *attributes = header.split(";")
        name, sep, value = first.strip().partition("=")
        if not sep or not name or any(c in name + value for c in "\r\n\0;, "):
            return
        expired = False
        for attribute in attributes:
            key, _, number = attribute.strip().partition("=")
            if key.lower() == "max-age":
                expired = not number.strip().lstrip("-").isdigit() or int(number) <= 0
        if expired:
            if self.cookies.pop(name, None) is not None:
                self.version += 1
            return
        if self.cookies.get(name) != value and (name in self.cookies or len(self.cookies) < MAX_COOKIES):
            self.cookies[name] = value
            self.version += 1

    def header(self) -> str:
        """The ``Cookie`` header value (empty when there are none)."""
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


class _Response(HTTPResponseParser):
    """llhttp callbacks that keep only what a load generator reports: status, body size, completion;
    and the ``Set-Cookie`` headers when the connection belongs to a session (``jar``)."""

    def __init__(self, head: bool, jar: CookieJar | None = None) -> None:
        super().__init__()
        self.head = head
        self.complete = False
        self.body = 0
        self.jar = jar
        self._field = ""
        self._is_cookie = False

    def _on_message_begin(self) -> None:
        self.complete = False
        self.body = 0

    def _on_status(self, _: str) -> None:
        pass

    def _on_header_field(self, name: str) -> None:
        if self.jar is not None:
            self._is_cookie = name.lower() == "set-cookie"

    def _on_header_value(self, value: str) -> None:
        if self._is_cookie and self.jar is not None:
            self.jar.store(value)

    def _on_headers_complete(self) -> bool:
        return self.head  # True tells llhttp that a HEAD response has no body

    def _on_body(self, buf: Any) -> None:
        self.body += len(buf)

    def _on_message_complete(self) -> None:
        self.complete = True


def _ssl_context() -> ssl.SSLContext:
    # hey skips certificate verification (InsecureSkipVerify): a load generator measures, it does
    # not authenticate the target.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Connection:
    """One HTTP/1.1 connection to a target, reopened transparently when the server closes it."""

    def __init__(
        self, template: RequestTemplate, timeout: float | None, jar: CookieJar | None = None
    ) -> None:
        self.template = template
        self.timeout = timeout
        self.jar = jar
        self._with_cookies: tuple[int, bytes] = (0, template.payload)  # (jar version, payload)
        self._sock: socket.socket | None = None
        self._parser: _Response | None = None
        self.busy_since = 0.0  # perf_counter() when the current request began, 0 when idle
        self._expired = False
        self._ssl = _ssl_context() if template.scheme == "https" else None

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._parser = None

    def expire(self, now: float) -> bool:
        """Abort the current request if it has run past the timeout (called by a watchdog).

        Sockets carry no timeout of their own: a gevent socket with a timeout arms a timer for
        every wait, which costs more than the rest of the request. One watchdog per user that
        closes overdue sockets gives the same guarantee (to within its period) for nearly free.
        """
        if self.timeout is not None and self.busy_since and now - self.busy_since > self.timeout:
            self._expired = True
            self.close()
            return True
        return False

    def _connect(self) -> socket.socket:
        t = self.template
        try:
            sock = socket.create_connection((t.host, t.port), timeout=self.timeout)
        except OSError as exc:
            raise TransportError(f"dial tcp {t.address}: {_reason(exc)}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl is not None:
            try:
                sock = self._ssl.wrap_socket(sock, server_hostname=t.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise TransportError(f"tls handshake with {t.address}: {_reason(exc)}") from None
        sock.settimeout(None)  # see expire()
        self._sock = sock
        self._parser = _Response(t.method == "HEAD", self.jar)
        return sock

    def _session_payload(self) -> bytes:
        """The template's request with the session's cookies (rebuilt only when they changed)."""
        jar = self.jar
        assert jar is not None
        version, payload = self._with_cookies
        if version == jar.version:
            return payload
        payload = with_cookies(self.template.payload, jar.header())
        self._with_cookies = (jar.version, payload)
        return payload

    def exchange(self, payload: bytes | None = None) -> tuple[int, int, float, float, float]:
        """Send one request, read its response.

        Returns ``(status, body bytes, connect seconds, write seconds, wait seconds)``; the time
        spent reading the rest of the response is the caller's end time minus the first byte.
        Raises :class:`TransportError` when no complete response arrived.
        """
        self._expired = False
        self.busy_since = time.perf_counter()
        try:
            return self._exchange(payload, retry=True)
        except OSError as exc:
            self.close()
            if self._expired or isinstance(exc, TimeoutError):
                raise TransportError(f"timeout after {self.timeout:g}s awaiting response") from None
            raise TransportError(_reason(exc)) from None
        except HTTPParseError as exc:
            self.close()
            raise TransportError(f"malformed HTTP response: {exc}") from None
        except TransportError:
            self.close()
            raise
        finally:
            self.busy_since = 0.0

    def _exchange(self, payload: bytes | None, retry: bool) -> tuple[int, int, float, float, float]:
        clock = time.perf_counter
        start = clock()
        sock = self._sock
        reused = sock is not None
        if sock is None:
            sock = self._connect()
        connected = clock()
        parser = self._parser
        assert parser is not None
        received = 0
        try:
            if payload is not None:
                data = payload
            elif self.jar is not None:
                data = self._session_payload()
            else:
                data = self.template.payload
            # send(), not sendall(): gevent's sendall queries SO_SNDBUF on every call
            written = sock.send(data)
            if written < len(data):
                sock.sendall(data[written:])
            sent = clock()
            first = 0.0
            deadline = None if self.timeout is None else start + self.timeout
            while not parser.complete:
                data = sock.recv(RECV_SIZE)
                if not data:
                    raise _PeerClosedError("EOF")
                if not received:
                    first = clock()
                received += len(data)
                parser.feed(data)
                if deadline is not None and clock() > deadline:
                    raise TransportError(f"timeout after {self.timeout:g}s awaiting response")
        except (ConnectionResetError, BrokenPipeError):
            if reused and retry and not received:
                # the server closed an idle keep-alive connection: one retry on a fresh one
                self.close()
                return self._exchange(payload, retry=False)
            raise
        status = parser.get_code()
        body = parser.body
        parser.complete = False
        if not self.template.keepalive or not parser.should_keep_alive():
            self.close()
        return status, body, connected - start, sent - connected, first - sent


def with_cookies(payload: bytes, cookies: str) -> bytes:
    """``payload`` (a request) with ``cookies`` added to its ``Cookie`` header (or a new one)."""
    if not cookies:
        return payload
    head, sep, body = payload.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    extra = cookies.encode("latin-1")
    for index, line in enumerate(lines[1:], start=1):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"cookie":
            lines[index] = name + b": " + value.strip() + b"; " + extra
            break
    else:
        lines.append(b"Cookie: " + extra)
    return b"\r\n".join(lines) + sep + body


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _PeerClosedError):
        return "EOF"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "i/o timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, ConnectionResetError):
        return "read: connection reset by peer"
    if isinstance(exc, socket.gaierror):
        return f"lookup failed: {exc.strerror or exc}"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
