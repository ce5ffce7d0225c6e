"""A tiny HTTP/1.1 keep-alive target on loopback, for tests and benchmarks (asyncio, no gevent).

``GET /status/<code>`` answers that code, ``/sleep/<seconds>`` answers late, ``/close`` answers
then closes the connection, anything else answers 200 with a short body. With ``stall_at`` and
``stall_for``, every request that arrives in the window ``[stall_at, stall_at + stall_for)``
seconds after start is held until the window ends: a target that stalls for a second.

Run it alone with ``python -m tests.loadtest.target PORT [STALL_AT STALL_FOR]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field

BODY = b"hello from the target\n"


@dataclass
class Target:
    """A running target; :meth:`start` in a background thread, :meth:`stop` to end it."""

    port: int
    stall_at: float | None = None
    stall_for: float = 1.0
    requests: int = 0
    started: float = field(default_factory=time.monotonic)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if length:
                    await reader.readexactly(length)
                self.requests += 1
                if self.stall_at is not None:
                    since = time.monotonic() - self.started
                    if self.stall_at <= since < self.stall_at + self.stall_for:
                        await asyncio.sleep(self.stall_at + self.stall_for - since)
                code = 200
                if path.startswith("/sleep/"):
                    await asyncio.sleep(float(path.split("/")[2]))
                if path.startswith("/status/"):
                    code = int(path.split("/")[2])
                body = b"" if method == "HEAD" else BODY
                close = path == "/close"
                writer.write(
                    f"HTTP/1.1 {code} X\r\nContent-Length: {len(BODY)}\r\n"
                    f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode()
                    + body
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            pass
        finally:
            writer.close()

    async def _serve(self, ready: threading.Event) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.started = time.monotonic()
        ready.set()
        async with server:
            await server.serve_forever()

    def start(self) -> Target:
        """Serve in a daemon thread; returns once listening."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                self._loop.run_until_complete(self._serve(ready))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("target did not start")
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is not None:
            loop = self._loop
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
        if self._thread is not None:
            self._thread.join(timeout=5)


if __name__ == "__main__":
    port = int(sys.argv[1])
    stall = (float(sys.argv[2]), float(sys.argv[3])) if len(sys.argv) > 3 else (None, 1.0)
    Target(port, stall_at=stall[0], stall_for=stall[1]).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
