"""Helpers for the services tests: the running stack, a stub backend, log reading.

Kept out of conftest.py so that test modules can import them by a name no other
conftest.py in the repository shadows.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
if str(SERVICES) not in sys.path:
    sys.path.insert(0, str(SERVICES))

from run_local import LOOPBACK, RunningService  # noqa: E402

PRODUCTS_DATA = json.loads((SERVICES / "products/app/data/products.json").read_text())
ORDERS_DATA = json.loads((SERVICES / "orders/app/data/orders.json").read_text())


@dataclass
class Stack:
    services: dict[str, RunningService]
    logs: dict[str, Path]

    def url(self, name: str) -> str:
        return self.services[name].url

    def access_entries(self, name: str) -> list[dict]:
        return [entry for entry in read_log(self.logs[name]) if entry.get("logger") == "access"]


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# Valid JSON that is not what a backend answers: a list for a page, records without their fields.
WRONG_SHAPES = ([1, 2], {"items": [{"id": "p001"}], "total": "x", "next_cursor": None})


class StubBackend:
    """A products/orders look-alike in this process whose behaviour each test can set.

    Paths are served under a mode prefix, so one server can act as several backends:
    /slow/...  answers after `delay` seconds;  /delay-<seconds>/...  after that many seconds;
    /slow-body/...  sends the answer's head at once and its body after `delay` seconds;
    /record/...  answers at once and records the request's headers;
    /wrong-shape/...  answers valid JSON of the wrong shape (which one depends on `limit`);
    /garbage/...  answers 200 with a body that is not JSON;  /error/...  answers HTTP 500.
    """

    def __init__(self) -> None:
        self.delay = 5.0
        self.recorded: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                mode, _, resource = parts.path.lstrip("/").partition("/")
                if mode == "slow":
                    time.sleep(stub.delay)
                elif mode.startswith("delay-"):
                    time.sleep(float(mode.removeprefix("delay-")))
                if mode == "record":
                    stub.recorded.append((resource, {k.lower(): v for k, v in self.headers.items()}))
                if mode == "wrong-shape":
                    body = json.dumps(WRONG_SHAPES[int(parse_qs(parts.query).get("limit", ["1"])[0]) % 2]).encode()
                elif mode == "garbage":
                    body = b"<html>upstream says hello</html>"
                else:
                    body = json.dumps(stub.answer(resource, parse_qs(parts.query))).encode()
                try:
                    self.send_response(500 if mode == "error" else 200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    if mode == "slow-body":
                        self.wfile.flush()
                        time.sleep(stub.delay)
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://{LOOPBACK}:{self.port}/{mode}"

    @staticmethod
    def answer(resource: str, query: dict[str, list[str]]) -> dict:
        records = PRODUCTS_DATA if resource == "products" else ORDERS_DATA
        if "ids" in query:
            wanted = set(",".join(query["ids"]).split(","))
            records = [record for record in records if record["id"] in wanted]
        limit = int(query.get("limit", ["20"])[0])
        items = [dict(record, total="1.00") if resource == "orders" else record for record in records[:limit]]
        return {"items": items, "total": len(records), "next_cursor": None}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def graphql(http: httpx.Client, url: str, query: str, variables: dict | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict]:
    response = http.post(url, json={"query": query, "variables": variables or {}}, headers=headers or {})
    return response.status_code, response.json()


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text[:500]
