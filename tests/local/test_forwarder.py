"""The mesh's byte-level forwarder against real sockets: framing, keep-alive, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rollouts.local.forwarder import Exchange, Forwarder, Route, Upstream
from rollouts.local.process import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _with_forwarder(
    upstream_handler: Handler | None, scenario: Callable[[int], Awaitable[object]]
) -> tuple[object, list[tuple[str, Exchange]]]:
    """Run ``scenario(forwarder_port)`` with the forwarder in front of ``upstream_handler``."""
    recorded: list[tuple[str, Exchange]] = []
    up_port = free_port()
    upstream_server = None
    if upstream_handler is not None:
        upstream_server = await asyncio.start_server(upstream_handler, "127.0.0.1", up_port)
    pool = Upstream("127.0.0.1", up_port)
    forwarder = Forwarder(
        lambda head: Route(pool, "ga"),
        lambda label, ex: recorded.append((label, ex)),
        subset_header="x-subset",
        timeout=1.0,
    )
    server = await asyncio.start_server(forwarder.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await scenario(port), recorded
    finally:
        server.close()
        pool.close()
        if upstream_server is not None:
            upstream_server.close()


async def _request(port: int, raw: bytes) -> bytes:
    """Send ``raw`` on one connection; everything the forwarder answers until it closes (the last
    request says ``connection: close``) or three seconds pass."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 3):
            data += chunk
    finally:
        writer.close()
    return data


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive upstream: answers each request with its body length and first line, chunked."""
    from rollouts.local.forwarder import read_body, read_head

    try:
        while (head := await read_head(reader)) is not None:
            body, _ = await read_body(reader, head)
            text = head.start + b" " + str(len(body)).encode() + b" " + body[:40]
            chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(text), text)
            writer.write(b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n" + chunks)
            await writer.drain()
    except (asyncio.CancelledError, ConnectionError):
        pass
    finally:
        writer.close()


def test_bodies_and_chunked_framing_pass_through_on_one_keep_alive_connection():
    async def scenario(port: int) -> bytes:
        return await _request(
            port,
            b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
            b"POST /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /c HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )

    data, recorded = asyncio.run(_with_forwarder(_echo, scenario))
    assert data.count(b"HTTP/1.1 201 Created") == 3
    assert b"POST /a HTTP/1.1 5 hello" in data
    assert b"POST /b HTTP/1.1 20 3\r\nabc\r\n2\r\nde" in data  # chunked body forwarded as framed
    assert b"GET /c HTTP/1.1 0 " in data
    assert data.count(b"x-subset: ga") == 3
    assert [(label, ex.status) for label, ex in recorded] == [("ga", 201)] * 3


def test_a_close_delimited_response_gets_a_length_and_head_gets_no_body():
    async def legacy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    async def scenario(port: int) -> tuple[bytes, bytes]:
        get = await _request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        head = await _request(port, b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        return get, head

    (get, head), _ = asyncio.run(_with_forwarder(legacy, scenario))
    assert b"content-length: 13\r\n" in get and get.endswith(b"until the end")
    assert get.lower().count(b"connection: close") == 1  # the client's, not the backend's (hop-by-hop)
    assert head.endswith(b"content-length: 99\r\nx-subset: ga\r\nconnection: close\r\n\r\n")


def test_unreachable_backend_is_503_and_a_slow_one_504():
    async def scenario(port: int) -> bytes:
        return await _request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")

    data, recorded = asyncio.run(_with_forwarder(None, scenario))
    assert data.startswith(b"HTTP/1.1 503") and data.endswith(b"no healthy upstream")
    assert recorded[0][1].status == 503

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3)
        writer.close()

    data, recorded = asyncio.run(_with_forwarder(silent, scenario))
    assert data.startswith(b"HTTP/1.1 504")
    assert recorded[0][1].status == 504


def test_a_pooled_connection_closed_by_the_backend_is_retried_on_a_new_one():
    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")  # says keep-alive, then closes
        await writer.drain()
        writer.close()

    async def scenario(port: int) -> bytes:
        first = await _request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        await asyncio.sleep(0.1)
        return first + await _request(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")

    data, recorded = asyncio.run(_with_forwarder(one_per_connection, scenario))
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert [ex.status for _, ex in recorded] == [200, 200]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\ncontent-length: x\r\n\r\n",
        b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_are_400(raw):
    async def scenario(port: int) -> bytes:
        return await _request(port, raw)

    data, recorded = asyncio.run(_with_forwarder(_echo, scenario))
    assert data.startswith(b"HTTP/1.1 400")
    assert recorded == []


def test_expect_100_continue_is_answered_before_the_body_is_read():
    async def scenario(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"PUT /x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n"
            b"expect: 100-continue\r\nconnection: close\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.write(b"ok")
        rest = await asyncio.wait_for(reader.read(-1), 3)
        writer.close()
        return interim + rest

    data, _ = asyncio.run(_with_forwarder(_echo, scenario))
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created")
    assert b"PUT /x HTTP/1.1 2 ok" in data


def test_a_mirrored_copy_goes_to_the_second_upstream_with_a_shadow_host_and_its_answer_is_dropped():
    seen: list[bytes] = []

    async def shadow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from rollouts.local.forwarder import read_body, read_head

        while (head := await read_head(reader)) is not None:
            await read_body(reader, head)
            seen.append(b"\n".join([head.start, *head.values(b"host")]))
            writer.write(b"HTTP/1.1 500 Oops\r\ncontent-length: 6\r\n\r\nshadow")
            await writer.drain()
        writer.close()

    async def scenario() -> tuple[bytes, list[tuple[str, Exchange]]]:
        recorded: list[tuple[str, Exchange]] = []
        main_server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        shadow_server = await asyncio.start_server(shadow, "127.0.0.1", 0)
        main = Upstream("127.0.0.1", main_server.sockets[0].getsockname()[1])
        mirror = Upstream("127.0.0.1", shadow_server.sockets[0].getsockname()[1])
        cookie = (b"set-cookie: s=1; Path=/",)
        forwarder = Forwarder(
            lambda head: (
                Route(main, "ga", (mirror, "canary"), cookie) if b"/m" in head.start else Route(None, "none")
            ),
            lambda label, ex: recorded.append((label, ex)),
            subset_header="x-subset",
            timeout=1.0,
        )
        server = await asyncio.start_server(forwarder.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            data = await _request(
                port,
                b"GET /m HTTP/1.1\r\nhost: podinfo:9898\r\n\r\n"
                b"GET /nowhere HTTP/1.1\r\nhost: podinfo\r\nconnection: close\r\n\r\n",
            )
            for _ in range(100):  # the copy is sent in the background
                if any(ex.mirrored for _, ex in recorded):
                    break
                await asyncio.sleep(0.02)
            return data, recorded
        finally:
            for closing in (server, main_server, shadow_server):
                closing.close()
            main.close()
            mirror.close()

    data, recorded = asyncio.run(scenario())
    assert data.count(b"HTTP/1.1 201 Created") == 1 and b"shadow" not in data  # the mirror's answer: dropped
    assert b"x-subset: ga\r\nset-cookie: s=1; Path=/\r\n" in data
    assert b"HTTP/1.1 404 Not Found" in data and data.endswith(b"no route")
    assert seen == [b"GET /m HTTP/1.1\npodinfo-shadow:9898"]
    assert sorted((label, ex.status, ex.mirrored) for label, ex in recorded) == [
        ("canary", 500, True),
        ("ga", 201, False),
        ("none", 404, False),
    ]
