"""Servers on loopback that the providers talk to in the tests.

* :func:`make_pki`: a test CA, a server certificate for 127.0.0.1 and a client certificate, made
  with ``cryptography`` in a temporary directory.
* :class:`TenantProxy`: an HTTPS reverse proxy in front of a real Prometheus, as a Mimir/Cortex
  gateway is: it requires a client certificate from the test CA (mutual TLS), the tenant header and
  a bearer token it knows, and otherwise answers 401 like the real ones do.
* :class:`TokenEndpoint`: an OAuth2 token endpoint (client-credentials grant) over HTTPS that
  records what it was sent and issues numbered tokens.
* :class:`RecordedApi`: recorded responses by method and path over HTTP, with a ``check`` hook
  that can refuse a request (the SigV4 and Datadog tests verify what was sent there).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    """PEM files: the CA, the server's certificate and key, a client's certificate and key, and a
    second client signed by another CA (which the proxy must refuse)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and two client certificates (one from another CA)."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("test CA", ca_key, _name("test CA"), ca_key, ca=True)
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    other_key = ec.generate_private_key(ec.SECP256R1())
    for name, subject, issuer_key, issuer_name, server in (
        ("server", "127.0.0.1", ca_key, _name("test CA"), True),
        ("client", "controller", ca_key, _name("test CA"), False),
        ("stranger", "controller", other_key, _name("other CA"), False),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, issuer_name, issuer_key, server=server)
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(pem))
        _write_key(key, directory / f"{name}-key.pem")
        paths[name] = (directory / f"{name}.pem", directory / f"{name}-key.pem")
    return Pki(
        ca=directory / "ca.pem",
        server_cert=paths["server"][0],
        server_key=paths["server"][1],
        client_cert=paths["client"][0],
        client_key=paths["client"][1],
        stranger_cert=paths["stranger"][0],
        stranger_key=paths["stranger"][1],
    )


def _tls_context(pki: Pki, *, client_certs: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if client_certs:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


@contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
        yield f"{scheme}://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    """Quiet, with the two ways the test servers answer."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._answer(status, json.dumps(payload).encode(), "application/json")


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes are part of the tests


@dataclass
class Seen:
    """One request a test server received (headers as sent, lower-cased names)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    peer: str = ""


@dataclass
class TenantProxy:
    """HTTPS in front of ``upstream`` (a real Prometheus); see the module docs."""

    upstream: str
    pki: Pki
    tenant: str
    tokens: set[str] = field(default_factory=set)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer first (429, 503, ...)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve on a free loopback port; yields the base URL."""
        proxy = self

        class Handler(_Handler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                subject = dict(x[0] for x in peer["subject"]) if peer else {}
                seen = Seen(
                    "GET",
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    peer=str(subject.get("commonName", "")),
                )
                with proxy.lock:
                    proxy.seen.append(seen)
                    failing = proxy.fail_next.pop(0) if proxy.fail_next else None
                    tokens = set(proxy.tokens)
                if failing is not None:
                    return self._answer(failing, b"busy, try later")
                if self.headers.get("X-Scope-OrgID") != proxy.tenant:
                    return self._answer(401, b"no org id")
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in tokens:
                    return self._answer(401, b"invalid token " + auth.encode())  # echoes: must not leak
                try:
                    with urllib.request.urlopen(proxy.upstream + self.path, timeout=10) as upstream:
                        self._answer(upstream.status, upstream.read(), "application/json")
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read(), "application/json")

        with _serving(_TlsServer(Handler, _tls_context(self.pki, client_certs=True))) as url:
            yield url


@dataclass
class TokenEndpoint:
    """OAuth2 client-credentials token endpoint over HTTPS; issues ``token-1``, ``token-2``, ..."""

    pki: Pki
    client_id: str
    client_secret: str
    expires_in: int = 3600
    issued: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    on_issue: Callable[[str], None] = lambda token: None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve on a free loopback port; yields the token URL."""
        endpoint = self

        class Handler(_Handler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                form = parse_qs(body.decode())
                seen = Seen("POST", self.path, form, {k.lower(): v for k, v in self.headers.items()}, body)
                expected = (
                    "Basic "
                    + base64.b64encode(f"{endpoint.client_id}:{endpoint.client_secret}".encode()).decode()
                )
                with endpoint.lock:
                    endpoint.seen.append(seen)
                    if self.headers.get("Authorization") != expected:
                        return self._json(401, {"error": "invalid_client", "error_description": "bad client"})
                    if form.get("grant_type") != ["client_credentials"]:
                        return self._json(400, {"error": "unsupported_grant_type"})
                    token = f"token-{len(endpoint.issued) + 1}"
                    endpoint.issued.append(token)
                    endpoint.on_issue(token)
                answer = {"access_token": token, "token_type": "Bearer", "expires_in": endpoint.expires_in}
                self._json(200, answer)

        with _serving(_TlsServer(Handler, _tls_context(self.pki, client_certs=False))) as url:
            yield url + "/oauth2/token"


Check = Callable[[Seen], tuple[int, Any] | None]


@dataclass
class RecordedApi:
    """Recorded JSON responses by (method, path) over plain HTTP on loopback.

    ``check(seen)`` runs first for every request and may answer instead (status, body): that is
    where a test verifies the signature or keys that were sent. ``statuses`` are answered first,
    one per request (429, 500 ...), with ``status_body``.
    """

    responses: dict[tuple[str, str], Any] = field(default_factory=dict)
    check: Check = lambda seen: None
    statuses: list[int] = field(default_factory=list)
    status_body: Any = field(default_factory=lambda: {"errors": ["Internal Server Error"]})
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, path: Path) -> None:
        """Serve a recorded file: ``{"method", "path", "body"}``."""
        record = json.loads(path.read_text())
        self.responses[(record["method"], record["path"])] = record["body"]

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve on a free loopback port; yields the base URL."""
        api = self

        class Handler(_Handler):
            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(
                    method,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                seen.headers[":raw-path"] = self.path
                with api.lock:
                    api.seen.append(seen)
                    status = api.statuses.pop(0) if api.statuses else None
                if status is not None:
                    return self._json(status, api.status_body)
                refused = api.check(seen)
                if refused is not None:
                    return self._json(*refused)
                answer = api.responses.get((method, parts.path))
                if answer is None:
                    return self._json(404, {"errors": [f"nothing recorded for {method} {parts.path}"]})
                self._json(200, answer)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        with _serving(_TlsServer(Handler, None)) as url:
            yield url
