"""A byte-level HTTP/1.1 forwarder for the local mesh's traffic port.

Why not aiohttp here (it serves everything else): proxying through aiohttp's server and client
decodes every request and response into objects and encodes them again, about half a millisecond
per request on a small VM, which is more than the mesh's latency budget (1 ms at the median at
500 req/s) once other processes compete for the CPU. This module only frames messages: it reads a
head, finds the body's length (``Content-Length`` or chunked), and passes the bytes through
unchanged over pooled keep-alive connections. No library offers that as a reusable piece.

Scope: HTTP/1.1 and 1.0 requests with ``Content-Length``, chunked or no body (``Expect:
100-continue`` is answered by the forwarder); responses framed by ``Content-Length``, chunked
encoding or connection close; interim ``1xx`` responses from the backend are skipped.
Protocol upgrades (WebSocket) are answered 501.

A route may ask for a mirror: a copy of the request goes to a second upstream, in the background,
with ``-shadow`` appended to its ``Host`` (as Envoy marks shadow requests), and its answer is read
and dropped; the client never waits for it. At most ``MAX_SHADOWS`` copies are in flight; beyond
that a copy is skipped, as Envoy's shadowing is best effort too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from rollouts.local.errors import ProtocolError

#: Longest request or response head accepted (a larger one is answered 431 / 502).
MAX_HEAD = 64 * 1024
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"})
_MAX_IDLE = 64
#: Mirrored copies in flight at once; more are skipped.
MAX_SHADOWS = 256


@dataclass(frozen=True)
class Head:
    """A parsed message head: the start line and the headers as raw lines."""

    start: bytes
    lines: list[bytes]

    def values(self, name: bytes) -> list[bytes]:
        """Values of header ``name`` (lower case), in order."""
        out = []
        for line in self.lines:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                out.append(value.strip())
        return out

    def forwardable(self) -> list[bytes]:
        """Header lines without the hop-by-hop ones (and without those ``Connection`` names)."""
        named = {v.strip().lower() for value in self.values(b"connection") for v in value.split(b",")}
        drop = _HOP_BY_HOP | named
        return [line for line in self.lines if line.partition(b":")[0].strip().lower() not in drop]

    def body_length(self) -> int | None:
        """Declared body length; ``None`` for chunked; ``ProtocolError`` when malformed."""
        if any(b"chunked" in v.lower() for v in self.values(b"transfer-encoding")):
            return None
        lengths = {v for v in self.values(b"content-length")}
        if not lengths:
            return 0 if self.start[:4] != b"HTTP" else -1  # -1: a response until connection close
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise ProtocolError("bad Content-Length")
        return int(next(iter(lengths)))


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head, or ``None`` at a clean end of stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ProtocolError("connection closed inside a message head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("message head too large") from exc
    lines = raw[:-4].split(b"\r\n")
    return Head(lines[0], lines[1:])


async def read_body(reader: asyncio.StreamReader, head: Head, *, no_body: bool = False) -> tuple[bytes, bool]:
    """The body bytes exactly as framed on the wire, and whether the stream ended with it."""
    if no_body:
        return b"", False
    length = head.body_length()
    if length is None:
        return await _read_chunked(reader), False
    if length >= 0:
        return await reader.readexactly(length), False
    return await reader.read(-1), True  # close-delimited response


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        parts.append(size_line)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise ProtocolError("bad chunk size") from exc
        if size == 0:
            while True:  # trailers, then the empty line
                line = await reader.readuntil(b"\r\n")
                parts.append(line)
                if line == b"\r\n":
                    return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


class Upstream:
    """Idle keep-alive connections to one backend ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """A connection and whether it was reused from the pool."""
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD)
        return reader, writer, False

    def release(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Return a connection whose last response was read completely."""
        if len(self._idle) < _MAX_IDLE and not writer.is_closing():
            self._idle.append((reader, writer))
        else:
            writer.close()

    def close(self) -> None:
        """Close every idle connection."""
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


@dataclass(frozen=True)
class Exchange:
    """One forwarded request's outcome, for telemetry; ``mirrored`` for a shadow copy."""

    status: int
    seconds: float
    mirrored: bool = False
    segment: str = ""  # the request segment the router saw (the mesh's segment label), if any


@dataclass(frozen=True)
class Route:
    """Where one request goes: its pool (None: no route, answered 404) and label, an optional
    mirror (pool and label), and header lines added to the response (``set-cookie: ...``)."""

    upstream: Upstream | None
    label: str
    mirror: tuple[Upstream, str] | None = None
    response_headers: tuple[bytes, ...] = ()
    segment: str = ""  # passed on to the exchanges of this request (and its mirrored copy)


#: Chooses the route of a request from its head.
Router = Callable[[Head], Route]
#: Called after each request with the label and the exchange.
Recorder = Callable[[str, Exchange], None]


def _status(head: Head) -> int:
    parts = head.start.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ProtocolError("bad status line")
    return int(parts[1])


def _simple(status: int, reason: str, text: str, label: str, close: bool) -> bytes:
    body = text.encode()
    lines = [
        f"HTTP/1.1 {status} {reason}".encode(),
        b"content-type: text/plain",
        f"content-length: {len(body)}".encode(),
        f"{label}".encode(),
    ]
    if close:
        lines.append(b"connection: close")
    return b"\r\n".join(line for line in lines if line) + b"\r\n\r\n" + body


class Forwarder:
    """Serves one client connection at a time per task: reads requests, forwards, answers."""

    def __init__(self, route: Router, record: Recorder, *, subset_header: str, timeout: float) -> None:
        self.route = route
        self.record = record
        self.subset_header = subset_header.encode()
        self.timeout = timeout
        self._shadows: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one client connection until it closes (the ``asyncio.start_server`` callback)."""
        try:
            while True:
                try:
                    request = await read_head(reader)
                    if request is None:
                        return
                    if any(v.lower() == b"100-continue" for v in request.values(b"expect")):
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it
                    body, _ = await read_body(reader, request)
                except (ProtocolError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    writer.write(_simple(400, "Bad Request", "bad request", "", True))
                    return
                version = request.start.rsplit(b" ", 1)[-1]
                connection = b",".join(request.values(b"connection")).lower()
                close = b"close" in connection or (version == b"HTTP/1.0" and b"keep-alive" not in connection)
                route = self.route(request)
                subset_line = self.subset_header + b": " + route.label.encode()
                if request.values(b"upgrade"):
                    writer.write(_simple(501, "Not Implemented", "upgrades are not supported", "", True))
                    return
                method = request.start.split(b" ", 1)[0]
                lines = request.forwardable()
                message = b"\r\n".join([request.start, *lines]) + b"\r\n\r\n" + body
                if route.mirror is not None:
                    self._shadow(
                        route.mirror, request.start, lines, body, method == b"HEAD", segment=route.segment
                    )
                if route.upstream is None:
                    answer = _simple(404, "Not Found", "no route", subset_line.decode(), close)
                    self.record(route.label, Exchange(404, 0.0, segment=route.segment))
                else:
                    answer = await self._exchange(
                        route.upstream,
                        route.label,
                        message,
                        head_only=method == b"HEAD",
                        subset=subset_line,
                        close=close,
                        extra=route.response_headers,
                        segment=route.segment,
                    )
                writer.write(answer)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    def _shadow(
        self,
        mirror: tuple[Upstream, str],
        start: bytes,
        lines: list[bytes],
        body: bytes,
        head: bool,
        *,
        segment: str = "",
    ) -> None:
        """Send a copy to the mirror in the background; its answer is dropped."""
        if len(self._shadows) >= MAX_SHADOWS:
            return
        shadowed = [_shadow_host(line) for line in lines]
        message = b"\r\n".join([start, *shadowed]) + b"\r\n\r\n" + body
        upstream, label = mirror
        task = asyncio.create_task(self._mirror(upstream, label, message, head, segment))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _mirror(
        self, upstream: Upstream, label: str, message: bytes, head_only: bool, segment: str = ""
    ) -> None:
        with contextlib.suppress(Exception):
            await self._exchange(
                upstream,
                label,
                message,
                head_only=head_only,
                subset=b"",
                close=False,
                mirrored=True,
                segment=segment,
            )

    async def _exchange(
        self,
        upstream: Upstream,
        label: str,
        message: bytes,
        *,
        head_only: bool,
        subset: bytes,
        close: bool,
        extra: tuple[bytes, ...] = (),
        mirrored: bool = False,
        segment: str = "",
    ) -> bytes:
        begin = time.perf_counter()
        status = 503
        try:
            for attempt in (1, 2):
                reader, writer, reused = await upstream.acquire()
                try:
                    response = await asyncio.wait_for(
                        self._roundtrip(reader, writer, message, head_only), self.timeout
                    )
                except (ConnectionError, asyncio.IncompleteReadError, ProtocolError):
                    writer.close()
                    # A pooled connection the backend closed while idle: retry once on a new one.
                    if reused and attempt == 1:
                        continue
                    raise
                response_head, body, ended = response
                status = _status(response_head)
                if ended or b"close" in b",".join(response_head.values(b"connection")).lower():
                    writer.close()
                else:
                    upstream.release(reader, writer)
                lines = [
                    response_head.start,
                    *response_head.forwardable(),
                    *([subset] if subset else []),
                    *extra,
                ]
                if ended:  # close-delimited: give the client a length instead
                    lines.append(f"content-length: {len(body)}".encode())
                if close:
                    lines.append(b"connection: close")
                return b"\r\n".join(lines) + b"\r\n\r\n" + body
            raise ConnectionError("unreachable")  # pragma: no cover
        except TimeoutError:
            status = 504
            return _simple(504, "Gateway Timeout", "upstream request timeout", subset.decode(), close)
        except (OSError, asyncio.IncompleteReadError, ProtocolError):
            status = 503  # Envoy's answer when it cannot reach the upstream
            return _simple(503, "Service Unavailable", "no healthy upstream", subset.decode(), close)
        finally:
            self.record(label, Exchange(status, time.perf_counter() - begin, mirrored, segment))

    async def _roundtrip(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes, head_only: bool
    ) -> tuple[Head, bytes, bool]:
        writer.write(message)
        await writer.drain()
        while True:
            head = await read_head(reader)
            if head is None:
                raise ConnectionError("upstream closed the connection")
            status = _status(head)
            if 100 <= status < 200:
                continue  # interim response (100 Continue): wait for the final one
            no_body = head_only or status in (204, 304)
            body, ended = await read_body(reader, head, no_body=no_body)
            return head, body, ended


def _shadow_host(line: bytes) -> bytes:
    """A ``Host`` header line with ``-shadow`` appended to the host (before any port), as Envoy does."""
    name, sep, value = line.partition(b":")
    if not sep or name.strip().lower() != b"host":
        return line
    host = value.strip()
    if host.startswith(b"["):
        end = host.find(b"]") + 1
        host, port = host[:end], host[end:]
    else:
        host, colon, port = host.partition(b":")
        port = colon + port
    return name + b": " + host + b"-shadow" + port


async def start(
    forwarder: Forwarder, host: str, port: int
) -> asyncio.AbstractServer:  # pragma: no cover - thin wrapper
    """Listen on ``host:port`` and forward every connection."""
    return await asyncio.start_server(forwarder.serve, host, port, limit=MAX_HEAD)


__all__ = ["MAX_SHADOWS", "Exchange", "Forwarder", "Head", "ProtocolError", "Route", "Upstream", "start"]
