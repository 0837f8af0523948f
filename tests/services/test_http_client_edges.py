"""Edge cases of app/http_client.py: bodiless and informational answers, retries, deadlines while
waiting for a slot or in a TLS handshake, IPv6, and a chaos run of misbehaving answers."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl

import pytest

from tests.services.test_http_client import LOOPS, Server, _self_signed_certificate, ok, run_on, serving
from app import http_client
from app.http_client import HttpClient, HttpError, Origin

@LOOPS
@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
])
def test_bodiless_statuses_complete_and_keep_the_connection(loop: str, raw: bytes) -> None:
    async def bodiless(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)

    async def test() -> None:
        async with serving(bodiless) as (server, client):
            for _ in range(3):
                assert (await client.get(server.origin(), "/x", {})).body == b""
            assert server.connections == 1

    run_on(loop, test)


@LOOPS
def test_an_answer_followed_by_a_close_is_reused_at_once_without_an_error(loop: str) -> None:
    async def answer_then_close(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(b'{"c":%d}' % number))
        await writer.drain()
        writer.close()

    async def test() -> None:
        async with serving(answer_then_close) as (server, client):
            for n in range(1, 6):  # no pause: the FIN may still be unprocessed when the connection is taken
                assert (await client.get(server.origin(), "/x", {})).body == b'{"c":%d}' % n

    run_on(loop, test)


@LOOPS
def test_a_new_connection_dropped_without_an_answer_is_not_retried(loop: str) -> None:
    async def drop(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async def test() -> None:
        async with serving(drop) as (server, client):
            with pytest.raises(HttpError):
                await client.get(server.origin(), "/x", {})
            assert len(server.heads) == 1

    run_on(loop, test)


@LOOPS
def test_deadlines_while_waiting_for_a_slot_release_nothing_twice_and_lose_no_slot(
        loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "MAX_CONNECTIONS_PER_BACKEND", 2)

    async def slow(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.1)
        writer.write(ok())

    async def bounded(client: HttpClient, origin: Origin, seconds: float) -> object:
        try:
            async with asyncio.timeout(seconds):
                return await client.get(origin, "/x", {})
        except TimeoutError as error:
            return error

    async def test() -> None:
        async with serving(slow) as (server, client):
            origin = server.origin()
            outcomes = await asyncio.gather(*(bounded(client, origin, 0.15 if n < 2 else 0.005 * n) for n in range(12)))
            assert [type(o).__name__ for o in outcomes[:2]] == ["Answer", "Answer"]
            slots = client._pools[origin].slots
            assert slots._value == 2 and not slots._waiters
            answers = await asyncio.gather(*(client.get(origin, "/x", {}) for _ in range(4)))
            assert [a.status for a in answers] == [200] * 4 and server.most_open == 2

    run_on(loop, test)


@LOOPS
def test_a_deadline_during_a_tls_handshake_closes_the_socket(loop: str, tmp_path) -> None:
    async def silent(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        pass

    async def test() -> None:
        server = await Server(silent).start()  # plain TCP: the client's ClientHello is never answered
        client = HttpClient(ssl_context=ssl.create_default_context())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.get(Origin.parse(f"https://127.0.0.1:{server.port}"), "/x", {})
        await asyncio.sleep(0.1)
        assert server.connections == 1 and server.open_connections == 0
        assert client._pools[Origin.parse(f"https://127.0.0.1:{server.port}")].slots._value == \
            http_client.MAX_CONNECTIONS_PER_BACKEND
        await server.stop()

    run_on(loop, test)


@LOOPS
def test_https_over_uvloop_keeps_the_connection(loop: str, tmp_path) -> None:
    cert_path, key_path = _self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)

    async def test() -> None:
        server = await Server(lambda s, n, h, w: _write(w, ok())).start(server_context)
        client = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert_path)))
        for _ in range(3):
            assert (await client.get(Origin.parse(f"https://localhost:{server.port}"), "/x", {})).status == 200
        assert server.connections == 1
        client.close()
        await server.stop()

    run_on(loop, test)


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_host_header_and_connection() -> None:
    async def test() -> None:
        server = await asyncio.start_server(lambda r, w: None, "::1", 0)
        heads: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(ok())
            await writer.drain()

        server.close()
        server = await asyncio.start_server(serve, "::1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HttpClient()
        assert (await client.get(Origin.parse(f"http://[::1]:{port}/base/"), "/x", {})).status == 200
        assert heads[0].startswith(b"GET /base/x HTTP/1.1\r\nHost: [::1]:%d\r\n" % port)
        client.close()
        server.close()

    asyncio.run(asyncio.wait_for(test(), 5))


def test_forwarded_values_with_line_breaks_or_nul_are_dropped_and_others_kept() -> None:
    headers = {"a": "x\r\nB: 1", "b": "x\nB: 1", "c": "x\rB: 1", "d": "x\0", "e": "caf\xe9", "f": "\u20ac"}
    assert http_client._header_lines(headers) == b"e: caf\xe9\r\nf: ?\r\n"


@LOOPS
@pytest.mark.parametrize("seed", range(5))
def test_chaos_only_http_errors_and_timeouts_and_no_slot_or_connection_leaks(
        loop: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many concurrent calls with deadlines against a server that misbehaves at random."""
    monkeypatch.setattr(http_client, "MAX_CONNECTIONS_PER_BACKEND", 8)
    rng = random.Random(seed)

    async def chaos(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            await misbehave(writer)
        except (ConnectionError, RuntimeError):  # the client closed first: the test server's problem, not the client's
            writer.transport.abort()

    async def misbehave(writer: asyncio.StreamWriter) -> None:
        roll = rng.random()
        if roll < 0.1:
            writer.transport.abort()
        elif roll < 0.2:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"part")
            await writer.drain()
            writer.transport.abort()
        elif roll < 0.3:
            writer.write(b"\x00garbage\r\n\r\n")
        elif roll < 0.4:
            writer.write(ok(b"{}", b"Connection: close\r\n"))
        elif roll < 0.5:
            await asyncio.sleep(rng.random() * 0.05)
            writer.write(ok())
        elif roll < 0.6:
            writer.write(ok() + b"HTTP/1.1 200 OK\r\n")
        elif roll < 0.7:
            writer.write(ok())
            await writer.drain()
            writer.close()
        elif roll < 0.75:
            for piece in (b"HTTP/1.1 200 OK\r\nTransfer-", b"Encoding: chunked\r\n\r\n2\r\n{}", b"\r\n0\r\n\r\n"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.001)
        else:
            writer.write(ok())

    async def call(client: HttpClient, origin: Origin) -> str:
        await asyncio.sleep(rng.random() * 0.2)
        try:
            async with asyncio.timeout(rng.random() * 0.06):
                await client.get(origin, "/x", {})
            return "ok"
        except (HttpError, TimeoutError) as error:
            return type(error).__name__

    async def test() -> None:
        loop_errors: list[object] = []
        asyncio.get_running_loop().set_exception_handler(lambda _l, context: loop_errors.append(context))
        async with serving(chaos) as (server, client):
            origin = server.origin()
            outcomes = await asyncio.gather(*(call(client, origin) for _ in range(600)))
            assert set(outcomes) <= {"ok", "HttpError", "TimeoutError"} and "ok" in outcomes
            pool = client._pools[origin]
            assert pool.slots._value == 8 and not pool.slots._waiters
            await asyncio.sleep(0.1)
            assert server.open_connections <= len(pool.idle) <= 8
            assert all(not c.answer for c in pool.idle)
        assert loop_errors == []

    run_on(loop, test)
