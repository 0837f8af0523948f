"""The GraphQL service's HTTP client (app/http_client.py) against scripted servers on loopback.

Each test runs a small asyncio server in the test's own event loop that answers with exactly
the bytes the test chooses (keep-alive, chunked, `Connection: close`, a close mid-answer,
garbage, a late answer), and counts the connections it accepts.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
if str(GRAPHQL_SERVICE) not in sys.path:
    sys.path.insert(0, str(GRAPHQL_SERVICE))

from app import http_client  # noqa: E402
from app.http_client import HttpClient, HttpError, Origin  # noqa: E402

assert Path(http_client.__file__).is_relative_to(GRAPHQL_SERVICE), "another service's `app` package was imported"


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


Handler = Callable[["Server", int, bytes, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Reads each request head and lets `handler(server, connection_number, head, writer)` answer."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open_connections = 0
        self.most_open = 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        return self

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def origin(self, scheme: str = "http", base_path: str = "") -> Origin:
        return Origin.parse(f"{scheme}://127.0.0.1:{self.port}{base_path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.open_connections += 1
        self.most_open = max(self.most_open, self.open_connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                await self.handler(self, number, head, writer)
                if writer.is_closing():
                    return
        finally:
            self.open_connections -= 1
            writer.close()

    async def stop(self) -> None:
        self.server.close()  # type: ignore[union-attr]


async def answer_ok(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(ok(b'{"connection":%d}' % number))


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[Server, HttpClient]]:
    server = await Server(handler).start()
    client = HttpClient()
    try:
        yield server, client
    finally:
        client.close()
        await server.stop()


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def run_on(loop: str, test: Callable[[], Awaitable[None]]) -> None:
    """The test on that event loop, failing rather than hanging if it does not end in 20 s."""
    (uvloop.run if loop == "uvloop" else asyncio.run)(asyncio.wait_for(test(), 20))


def run(test: Callable[[], Awaitable[None]]) -> None:
    run_on("asyncio", test)


def test_sequential_calls_share_one_keep_alive_connection() -> None:
    async def test() -> None:
        async with serving(answer_ok) as (server, client):
            answers = [await client.get(server.origin(), f"/orders?limit={n}", {}) for n in range(5)]
            assert [answer.status for answer in answers] == [200] * 5
            assert {answer.body for answer in answers} == {b'{"connection":1}'}
            assert server.connections == 1
            assert server.heads[3].startswith(b"GET /orders?limit=3 HTTP/1.1\r\n")

    run(test)


def test_chunked_answers_are_joined() -> None:
    async def chunked(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"a\":\r\n3\r\n12}\r\n0\r\n\r\n")

    async def test() -> None:
        async with serving(chunked) as (server, client):
            for _ in range(2):
                assert await client.get(server.origin(), "/x", {}) == (200, b'{"a":12}')
            assert server.connections == 1

    run(test)


def test_status_and_body_of_an_error_answer_are_returned() -> None:
    async def unprocessable(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 422 Unprocessable Content\r\nContent-Length: 2\r\n\r\n{}")

    async def test() -> None:
        async with serving(unprocessable) as (server, client):
            assert await client.get(server.origin(), "/x", {}) == (422, b"{}")

    run(test)


def test_an_informational_answer_before_the_answer_is_skipped() -> None:
    async def early_hints(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + ok(b'{"a":1}'))

    async def test() -> None:
        async with serving(early_hints) as (server, client):
            for _ in range(2):
                assert await client.get(server.origin(), "/x", {}) == (200, b'{"a":1}')
            assert server.connections == 1

    run(test)


def test_connection_close_is_honoured() -> None:
    async def closing(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(b"{}", b"Connection: close\r\n"))

    async def test() -> None:
        async with serving(closing) as (server, client):
            for _ in range(3):
                assert (await client.get(server.origin(), "/x", {})).status == 200
            assert server.connections == 3
            await asyncio.sleep(0.05)
            assert server.open_connections == 0  # each closed by the client as soon as it was answered

    run(test)


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def answer_then_hang_up(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(b'{"connection":%d}' % number))
        await writer.drain()
        writer.close()  # no Connection: close header: the client only learns it on its next call

    async def test() -> None:
        async with serving(answer_then_hang_up) as (server, client):
            assert (await client.get(server.origin(), "/x", {})).body == b'{"connection":1}'
            await asyncio.sleep(0.05)
            assert (await client.get(server.origin(), "/x", {})).body == b'{"connection":2}'

    run(test)


def test_a_reused_connection_dropped_without_an_answer_is_retried_once() -> None:
    async def drop_second_request(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        if number == 1 and len(server.heads) == 2:
            writer.transport.abort()  # as a server closing an idle connection just as it is reused
            return
        writer.write(ok(b'{"connection":%d}' % number))

    async def test() -> None:
        async with serving(drop_second_request) as (server, client):
            await client.get(server.origin(), "/x", {})
            assert (await client.get(server.origin(), "/x", {})).body == b'{"connection":2}'
            assert len(server.heads) == 3

    run(test)


def test_a_connection_that_breaks_mid_answer_is_an_error_and_not_retried() -> None:
    async def half_answer(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        if len(server.heads) == 2:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial")
            await writer.drain()
            writer.transport.abort()
            return
        writer.write(ok())

    async def test() -> None:
        async with serving(half_answer) as (server, client):
            await client.get(server.origin(), "/x", {})
            with pytest.raises(HttpError, match="closed before the answer was complete"):
                await client.get(server.origin(), "/x", {})
            assert len(server.heads) == 2  # an answer had begun: not sent again
            assert (await client.get(server.origin(), "/x", {})).status == 200  # and the pool recovers

    run(test)


def test_an_answer_that_is_not_http_is_an_error() -> None:
    async def garbage(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    async def test() -> None:
        async with serving(garbage) as (server, client):
            with pytest.raises(HttpError, match="invalid HTTP answer"):
                await client.get(server.origin(), "/x", {})

    run(test)


def test_an_answer_above_the_size_limit_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "MAX_ANSWER_BYTES", 1000)

    async def big(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok(b"x" * 1001) if len(server.heads) == 1 else ok(b"x" * 1000))

    async def test() -> None:
        async with serving(big) as (server, client):
            with pytest.raises(HttpError, match="larger than 1000 bytes"):
                await client.get(server.origin(), "/x", {})
            assert len((await client.get(server.origin(), "/x", {})).body) == 1000
            assert server.connections == 2

    run(test)


@pytest.mark.parametrize("pause", [0, 0.02], ids=["same packet", "later"])
def test_unasked_bytes_after_an_answer_retire_the_connection(pause: float) -> None:
    async def chatty(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        if number != 1:
            writer.write(ok(b'{"connection":%d}' % number))
            return
        if pause:
            writer.write(ok(b'{"connection":1}'))
            await writer.drain()
            await asyncio.sleep(pause)
            writer.write(b"HTTP/1.1 200 OK\r\n")
        else:
            writer.write(ok(b'{"connection":1}') + b"HTTP/1.1 200 OK\r\n")

    async def test() -> None:
        async with serving(chatty) as (server, client):
            assert (await client.get(server.origin(), "/x", {})).body == b'{"connection":1}'
            await asyncio.sleep(0.05)
            assert (await client.get(server.origin(), "/x", {})).body == b'{"connection":2}'

    run(test)


def test_a_call_cut_off_by_its_deadline_never_hands_its_late_answer_to_the_next_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[http_client._Connection] = []
    original_made = http_client._Connection.connection_made

    def recording(self: http_client._Connection, transport: asyncio.BaseTransport) -> None:
        made.append(self)
        original_made(self, transport)

    monkeypatch.setattr(http_client._Connection, "connection_made", recording)

    async def slow_first(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        if len(server.heads) == 1:
            await asyncio.sleep(0.3)
            writer.write(ok(b'{"late":true}'))
            return
        writer.write(ok(b'{"connection":%d}' % number))

    async def test() -> None:
        async with serving(slow_first) as (server, client):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await client.get(server.origin(), "/x", {})
            assert made[0].transport.is_closing()  # closed at once, not left waiting for the late answer
            assert (await client.get(server.origin(), "/x", {})).body == b'{"connection":2}'
            await asyncio.sleep(0.35)
            assert (await client.get(server.origin(), "/x", {})).body == b'{"connection":2}'
            assert server.open_connections == 1  # the cut-off connection was closed, not abandoned

    run(test)


def test_connections_per_backend_are_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "MAX_CONNECTIONS_PER_BACKEND", 2)

    async def slow(server: Server, number: int, head: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.write(ok())

    async def test() -> None:
        async with serving(slow) as (server, client):
            answers = await asyncio.gather(*(client.get(server.origin(), "/x", {}) for _ in range(6)))
            assert [answer.status for answer in answers] == [200] * 6
            assert server.connections == 2 and server.most_open == 2

    run(test)


def test_idle_connections_are_not_reused_after_the_idle_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "IDLE_SECONDS", 0.05)

    async def test() -> None:
        async with serving(answer_ok) as (server, client):
            await client.get(server.origin(), "/x", {})
            await client.get(server.origin(), "/x", {})
            await asyncio.sleep(0.1)
            await client.get(server.origin(), "/x", {})
            assert server.connections == 2
            await asyncio.sleep(0.05)
            assert server.open_connections == 1  # the expired one was closed, not just left in the pool

    run(test)


def test_request_head_host_base_path_and_forwarded_headers() -> None:
    async def test() -> None:
        async with serving(answer_ok) as (server, client):
            await client.get(server.origin(base_path="/api/"), "/orders?ids=o1%2Co2",
                             {"x-request-id": "abc", "traceparent": "00-1-2-01", "x-b3-flags": "1\r\nX-Injected: yes"})
            head = server.heads[0].decode("latin-1")
            lines = head.split("\r\n")
            assert lines[0] == "GET /api/orders?ids=o1%2Co2 HTTP/1.1"
            assert f"Host: 127.0.0.1:{server.port}" in lines
            assert "x-request-id: abc" in lines and "traceparent: 00-1-2-01" in lines
            assert "X-Injected: yes" not in head and "x-b3-flags" not in head  # a value with a line break is dropped

    run(test)


@pytest.mark.parametrize(("url", "host_header", "port"), [
    ("http://products.e-commerce.svc.cluster.local", "products.e-commerce.svc.cluster.local", 80),
    ("http://products.e-commerce.svc.cluster.local:8080", "products.e-commerce.svc.cluster.local:8080", 8080),
    ("https://api.example.com", "api.example.com", 443),
    ("http://[::1]:8081/", "[::1]:8081", 8081),
])
def test_origins(url: str, host_header: str, port: int) -> None:
    origin = Origin.parse(url)
    assert (origin.host_header, origin.port, origin.base_path) == (host_header, port, "")


def test_a_backend_nobody_listens_on_is_an_error() -> None:
    async def test() -> None:
        server = await Server(answer_ok).start()
        origin = server.origin()
        await server.stop()
        await asyncio.sleep(0.05)
        client = HttpClient()
        with pytest.raises(HttpError, match="cannot connect"):
            await client.get(origin, "/x", {})

    run(test)


def _self_signed_certificate(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_checks_the_certificate_and_then_keeps_the_connection(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    trusting = ssl.create_default_context(cafile=str(cert_path))

    async def test() -> None:
        server = await Server(answer_ok).start(server_context)
        origin = Origin.parse(f"https://localhost:{server.port}")
        with pytest.raises(HttpError, match="cannot connect"):
            await HttpClient().get(origin, "/x", {})  # the system's CAs do not know this certificate
        client = HttpClient(ssl_context=trusting)
        for _ in range(2):
            assert (await client.get(origin, "/x", {})).status == 200
        assert server.connections == 1  # the refused handshake never became a connection; one kept
        client.close()

    run(test)
