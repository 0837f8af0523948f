"""Failure modes of app/http_client.py that an adversarial review found; each test failed before its fix.

Scripted loopback servers as in test_http_client.py. Where the service's production loop
(uvloop, see service_kit/server.py) could behave differently, tests run on both loops.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import socket
import threading
import weakref
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from tests.services.test_http_client import LOOPS, Server, ok, run_on, serving
from app import http_client
from app.http_client import HttpClient, HttpError, Origin

def run_without_the_collector(loop: str, test: Callable[[], Awaitable[None]]) -> None:
    """Only the test's own gc.collect() may run, so what stays alive is what references keep."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        run_on(loop, test)
    finally:
        if was_enabled:
            gc.enable()


# 1. A body delimited by the closing of the connection (RFC 9112 6.3 rule 8) is never accepted.

@LOOPS
@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"a\":1}",
    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}",
], ids=["http1.1 connection-close", "http1.0"])
def test_a_close_delimited_answer_is_read_to_the_end(loop: str, raw: bytes) -> None:
    async def close_delimited(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        writer.close()

    async def test() -> None:
        async with serving(close_delimited) as (server, client):
            # Before the fix: HttpError("connection closed before the answer was complete").
            assert await client.get(server.origin(), "/x", {}) == (200, b'{"a":1}')

    run_on(loop, test)


# 2. An upgrade (101) answer raises httptools.HttpParserUpgrade, which is not an HttpParserError:
#    it escapes data_received, the event loop logs a "Fatal error" with a traceback, and the caller
#    gets a misleading "connection closed before the answer was complete".

@LOOPS
def test_an_unasked_upgrade_answer_is_an_invalid_answer_not_a_loop_error(loop: str) -> None:
    async def upgrade(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")

    async def test() -> None:
        loop_errors: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context["message"]))
        async with serving(upgrade) as (server, client):
            with pytest.raises(HttpError) as raised:
                await client.get(server.origin(), "/x", {})
            await asyncio.sleep(0.01)
        assert loop_errors == []  # before the fix: ['Fatal error: protocol.data_received() call failed.']
        assert "invalid HTTP answer" in str(raised.value)

    run_on(loop, test)


# 3. Every _Connection is a reference cycle (it holds its HttpResponseParser, which holds the
#    connection's bound methods; on asyncio also the transport and socket objects), so each
#    connection that is closed is left to the cycle collector: on every call when the backend
#    (or Envoy, draining) answers `Connection: close`, and on every failed or timed-out call.
#    tests/services/test_graphql_memory.py exists to keep exactly that out (full-collection pauses
#    were the service's p99), but it uses a FakeBackend and never sees this client.

@LOOPS
@pytest.mark.parametrize("how", ["connection close", "invalid answer", "timeout"])
def test_a_closed_connection_leaves_nothing_to_the_cycle_collector(loop: str, how: str) -> None:
    async def answer(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        if how == "connection close":
            writer.write(ok(b"{}", b"Connection: close\r\n"))
        elif how == "invalid answer":
            writer.write(b"garbage\r\n\r\n")
        else:
            await asyncio.sleep(0.1)
            writer.write(ok())

    async def call(server: Server, client: HttpClient) -> None:
        try:
            async with asyncio.timeout(0.02):
                await client.get(server.origin(), "/x", {})
        except (HttpError, TimeoutError):
            pass

    async def test() -> None:
        async with serving(answer) as (server, client):
            await call(server, client)
            await asyncio.sleep(0.15)
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for _ in range(5):
                    await call(server, client)
                await asyncio.sleep(0.15)  # every connection_lost has run
                gc.collect()
                garbage = collections.Counter(type(thing).__name__ for thing in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
        # before the fix: {'_Connection': 5, 'HttpResponseParser': 5, 'method': 25..., transports, sockets}
        assert not {"_Connection", "HttpResponseParser"} & set(garbage), garbage.most_common(8)

    run_without_the_collector(loop, test)


# 4. A client whose previous event loop has ended: the idle connections (and a semaphore that
#    was contended) belong to the dead loop, and `get` raises RuntimeError, which Backend.get
#    does not map (an internal error instead of "backend unavailable").

def _recv(connection: socket.socket) -> bytes:
    try:
        return connection.recv(65536)
    except OSError:
        return b""


def _blocking_keep_alive_server(close_each: bool) -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve_one(connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while data := _recv(connection):
                buffer += data
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    try:
                        connection.sendall(ok(b"{}", b"Connection: close\r\n" if close_each else b""))
                    except OSError:
                        return
                    if close_each:
                        return

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


@LOOPS
@pytest.mark.parametrize("left_behind", ["idle connection", "contended semaphore"])
def test_a_client_outliving_its_event_loop_fails_as_http_errors_or_works(
        loop: str, left_behind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "MAX_CONNECTIONS_PER_BACKEND", 1)
    listener, port = _blocking_keep_alive_server(close_each=left_behind == "contended semaphore")
    origin = Origin.parse(f"http://127.0.0.1:{port}")
    client = HttpClient()
    runner = uvloop.run if loop == "uvloop" else asyncio.run
    try:
        async def first() -> None:
            await asyncio.gather(*(client.get(origin, "/x", {}) for _ in range(3)))

        async def second() -> tuple:
            async with asyncio.timeout(2):
                return await asyncio.gather(*(client.get(origin, "/x", {}) for _ in range(2)), return_exceptions=True)

        runner(first())
        outcomes = runner(second())
        # before the fix: RuntimeError('... the handler is closed' (uvloop) / '... is bound to a
        # different event loop' (semaphore)); on asyncio the idle case instead writes through the dead
        # loop's transport, never reads the answer and hangs to the deadline (TimeoutError here).
        assert all(isinstance(outcome, (tuple, HttpError)) for outcome in outcomes), outcomes
    finally:
        listener.close()


# 5. Expired idle connections are closed only when `take_idle` reaches them from the top of the
#    LIFO stack. Under steady traffic the top one stays fresh, so every connection opened by a
#    burst stays open under it until the server closes it (uvicorn 75 s, an Envoy listener 1 h),
#    contrary to the intent of "this side closes an idle connection before the other side does".

def test_idle_connections_below_the_most_recent_are_closed_after_the_idle_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "IDLE_SECONDS", 0.1)

    async def slow(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.02)
        writer.write(ok())

    async def test() -> None:
        async with serving(slow) as (server, client):
            await asyncio.gather(*(client.get(server.origin(), "/x", {}) for _ in range(5)))  # a burst
            assert server.open_connections == 5
            for _ in range(15):  # then steady traffic, one call at a time, for 3 idle limits
                await client.get(server.origin(), "/x", {})
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.02)
            assert server.open_connections == 1  # before the fix: 5, kept until the server closes them

    asyncio.run(asyncio.wait_for(test(), 10))


# 6. HttpClient.close() only closes idle connections; a call in flight then puts its connection
#    into a pool the client no longer knows, where it stays open (until the server closes it).

def test_a_call_in_flight_at_close_does_not_leave_its_connection_open() -> None:
    async def slow(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.write(ok())

    async def test() -> None:
        async with serving(slow) as (server, client):
            call = asyncio.create_task(client.get(server.origin(), "/x", {}))
            await asyncio.sleep(0.01)
            client.close()
            assert (await call).status == 200
            await asyncio.sleep(0.05)
            assert server.open_connections == 0  # before the fix: 1

    asyncio.run(asyncio.wait_for(test(), 10))


# 3b. The same cycle keeps a failed answer's partial body alive: after an answer over the size
#     limit (or one cut off mid-body) the closed _Connection still holds up to MAX_ANSWER_BYTES of
#     body chunks in `self.body`, freed only by a (full, since the connection is old) collection.

@LOOPS
def test_the_partial_body_of_a_failed_answer_is_freed_when_its_connection_closes(
        loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[weakref.ref] = []
    original_made = http_client._Connection.connection_made

    def recording(self: http_client._Connection, transport: asyncio.BaseTransport) -> None:
        made.append(weakref.ref(self))
        original_made(self, transport)

    monkeypatch.setattr(http_client._Connection, "connection_made", recording)
    too_big = http_client.MAX_ANSWER_BYTES + 1024 * 1024

    async def big(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % too_big)
        try:
            for _ in range(too_big // 65536):
                writer.write(b"x" * 65536)
                await writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    async def test() -> None:
        async with serving(big) as (server, client):
            with pytest.raises(HttpError, match="larger than"):
                await client.get(server.origin(), "/x", {})
            await asyncio.sleep(0.1)  # connection_lost has run
            connection = made[0]()
            held = 0 if connection is None else sum(map(len, connection.body))
            del connection
            assert made[0]() is None, f"closed connection still alive, holding {held} body bytes"  # before the fix: ~8 MiB

    run_without_the_collector(loop, test)
