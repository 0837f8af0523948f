"""A stand-in for a deployed shop behind its load balancer, for the smoke check's tests.

`ShopStub` serves https on one loopback port (as the TLS listener does) and plain HTTP on another (as
the port 80 listener does: a redirect to https). By default it answers every check the way the real
stack does; each `Behaviour` field makes it fail in one way. Certificates come from a throwaway CA
(`make_certificates`), so the tool is told to trust that CA, as a user would trust a private one.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

LOOPBACK = "127.0.0.1"

GOOD_ORDERS = {"data": {"orders": {"nodes": [
    {"id": "o001", "items": [{"productId": "p001", "quantity": 2, "product": {"id": "p001", "name": "Mug"}},
                             {"productId": "p002", "quantity": 1, "product": {"id": "p002", "name": "Tea"}}]},
    {"id": "o002", "items": [{"productId": "p002", "quantity": 3, "product": {"id": "p002", "name": "Tea"}}]},
]}}}
GRAPHQL_ANSWERS = {
    "ok": GOOD_ORDERS,
    # What the GraphQL service answers when the orders service is down.
    "errors": {"data": {"orders": None},
               "errors": [{"message": "orders service unavailable", "path": ["orders"]}]},
    "empty": {"data": {"orders": {"nodes": []}}},
}
PLAYGROUND_HTML = b"<!doctype html><html><head><title>GraphiQL</title></head><body>GraphiQL</body></html>"
ORDERS_PAGE = {"items": [{"id": "o001", "customer_id": "c001", "items": []}], "total": 1, "next_cursor": None}


@dataclass(frozen=True)
class Certificates:
    ca: Path  # PEM of the CA that signed the server certificate
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA and a server certificate for 127.0.0.1 and localhost, valid for an hour."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = {"not_valid_before": now - datetime.timedelta(minutes=5), "not_valid_after": now + datetime.timedelta(hours=1)}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smoke test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                             critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return paths


@dataclass(frozen=True)
class Behaviour:
    # Plain HTTP: "ok" redirects to https with the same host and path; "none" serves the page;
    # "to-http", "other-host", "drops-path" redirect to the wrong place.
    redirect: str = "ok"
    graphql: str = "ok"  # a key of GRAPHQL_ANSWERS
    # "ok" redirects to graphql, which serves the page (as the GraphQL service does), "in-place" serves it,
    # "off-site" redirects to another host, "missing" is a 404 and "json" a 200 that is not the page.
    playground: str = "ok"
    exposed: frozenset[str] = frozenset()  # backend paths answered with the backend's JSON
    tls_1_1_only: bool = False
    # The first this many requests for the playground get unavailable_status: 404 from a gateway whose
    # route is not programmed yet, 503 while the service behind it is not ready.
    unavailable_for: int = 0
    unavailable_status: int = 503
    hidden_status: int = 404  # what the backends' paths answer when not exposed


def _legacy_tls_context(context: ssl.SSLContext) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")


def tls_1_1_unavailable(certificates: Certificates) -> Optional[str]:
    """Why this machine's OpenSSL cannot hold a TLS 1.1 handshake, or None when it can."""
    try:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(certificates.cert, certificates.key)
        _legacy_tls_context(server)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        _legacy_tls_context(client)
    except (ssl.SSLError, ValueError) as error:
        return f"this OpenSSL ({ssl.OPENSSL_VERSION}) cannot configure TLS 1.1: {error}"
    left, right = socket.socketpair()
    outcome: dict = {}

    def serve() -> None:
        try:
            with server.wrap_socket(right, server_side=True) as tls:
                outcome["server"] = tls.version()
        except (ssl.SSLError, OSError) as error:
            outcome["server"] = error

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with client.wrap_socket(left) as tls:
            version = tls.version()
    except (ssl.SSLError, OSError) as error:
        return f"this OpenSSL ({ssl.OPENSSL_VERSION}) refuses a TLS 1.1 handshake: {error}"
    finally:
        thread.join(timeout=5)
    return None if version == "TLSv1.1" else f"a TLS 1.1-only handshake settled on {version}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: Optional[ssl.SSLContext] = None

    def get_request(self):
        connection, address = self.socket.accept()
        if self.tls is not None:
            # The handshake happens in the request's thread, on its first read.
            connection = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request, client_address) -> None:
        pass  # refused handshakes and closed connections are part of the tests


@dataclass
class ShopStub:
    certificates: Certificates
    behaviour: Behaviour = Behaviour()
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)  # (method, path, body) over https

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._playground_requests = 0
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificates.cert, self.certificates.key)
        if self.behaviour.tls_1_1_only:
            _legacy_tls_context(context)
        self.https = self._start(self._https_handler(), context)
        self.http = self._start(self._http_handler(), None)

    @property
    def base_url(self) -> str:
        return f"https://{LOOPBACK}:{self.https.server_address[1]}"

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http.server_address[1]}"

    def close(self) -> None:
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()

    @staticmethod
    def _start(handler: type, tls: Optional[ssl.SSLContext]) -> _Server:
        server = _Server((LOOPBACK, 0), handler)
        server.tls = tls
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server

    def _https_handler(self) -> type:
        stub = self

        class Handler(_Handler):
            def do_GET(self) -> None:  # noqa: N802
                stub.requests.append(("GET", self.path, b""))
                if self.path == "/playground":
                    with stub._lock:
                        stub._playground_requests += 1
                        unavailable = stub._playground_requests <= stub.behaviour.unavailable_for
                    if unavailable:
                        body = b"no healthy upstream" if stub.behaviour.unavailable_status == 503 else b""
                        self.answer(stub.behaviour.unavailable_status, body, "text/plain")
                    elif stub.behaviour.playground in ("ok", "off-site"):
                        to = "graphql" if stub.behaviour.playground == "ok" else "https://shop.example.com/graphql"
                        self.answer(302, b"", "text/plain", location=to)
                    elif stub.behaviour.playground == "in-place":
                        self.answer(200, PLAYGROUND_HTML, "text/html; charset=utf-8")
                    elif stub.behaviour.playground == "json":
                        self.answer(200, b'{"data": null}', "application/json")
                    else:
                        self.answer(404, b"", "text/plain")
                elif self.path == "/graphql" and "text/html" in self.headers.get("accept", ""):
                    self.answer(200, PLAYGROUND_HTML, "text/html; charset=utf-8")
                elif self.path in stub.behaviour.exposed:
                    self.answer(200, json.dumps(ORDERS_PAGE).encode(), "application/json")
                elif self.path in ("/orders", "/products") and stub.behaviour.hidden_status != 404:
                    self.answer(stub.behaviour.hidden_status, b"upstream connect error", "text/plain")
                else:
                    self.answer(404, b"", "text/plain")  # as Envoy answers a path without a route

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                stub.requests.append(("POST", self.path, body))
                if self.path != "/graphql":
                    self.answer(404, b"", "text/plain")
                    return
                answer = GRAPHQL_ANSWERS[stub.behaviour.graphql]
                self.answer(200, json.dumps(answer).encode(), "application/json")

        return Handler

    def _http_handler(self) -> type:
        stub = self

        class Handler(_Handler):
            def do_GET(self) -> None:  # noqa: N802
                https_port = stub.https.server_address[1]
                mode = stub.behaviour.redirect
                if mode == "none":
                    self.answer(200, PLAYGROUND_HTML, "text/html")
                    return
                location = {
                    "ok": f"https://{LOOPBACK}:{https_port}{self.path}",
                    "to-http": f"http://{LOOPBACK}:{https_port}{self.path}",
                    "other-host": f"https://shop.example.com{self.path}",
                    "drops-path": f"https://{LOOPBACK}:{https_port}/",
                }[mode]
                self.send_response(301)
                self.send_header("location", location)
                self.send_header("content-length", "0")
                self.end_headers()

        return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes, content_type: str, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        if location is not None:
            self.send_header("location", location)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SilentListener:
    """A port that accepts connections (the kernel completes them) but never answers: a load balancer
    whose targets never pass their health checks looks like this to a client."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind((LOOPBACK, 0))
        self.socket.listen(16)
        self.url = f"https://{LOOPBACK}:{self.socket.getsockname()[1]}"

    def close(self) -> None:
        self.socket.close()
