"""The GraphQL endpoint's fast path for plain JSON POSTs (app/main.py) against Strawberry's
own view: for every request, the same status, headers and body. In process, over ASGI."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from strawberry.asgi import GraphQL

from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA
from tests.services.test_graphql_execution import FakeBackend, _with_totals

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
for path in (GRAPHQL_SERVICE, GRAPHQL_SERVICE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app.main import ShopGraphQL  # noqa: E402
from app.schema import schema  # noqa: E402


class StrawberryPath(ShopGraphQL):
    """The service's view without its fast path: Strawberry's own __call__, which reads the body
    with Starlette's Request."""

    __call__ = GraphQL.__call__


class CountingPath(ShopGraphQL):
    taken = 0

    async def _answer_plain_post(self, scope: dict, body: bytes) -> Any:
        answered = await super()._answer_plain_post(scope, body)
        CountingPath.taken += answered is not None
        return answered


STATE = SimpleNamespace(products=FakeBackend("products", PRODUCTS_DATA), orders=FakeBackend("orders", _with_totals(ORDERS_DATA)))


def exchange(asgi_app: Any, method: str, body: bytes | list[dict], headers: dict[str, str] | list[tuple[str, str]],
             path: str = "/graphql", root_path: str = "", query_string: bytes = b"", **scope_items: Any) -> tuple:
    """Status, headers and body as sent (None, [], b"" if nothing was), and what was raised to
    the server. The body is given in one message, or as the messages listed, then nothing
    more (an empty last part)."""
    headers = list(headers.items()) if isinstance(headers, dict) else headers

    async def scenario() -> tuple:
        sent: list[dict] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}] if isinstance(body, bytes) else list(body)

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
                 "path": root_path + path, "raw_path": (root_path + path).encode(), "query_string": query_string,
                 "root_path": root_path, "headers": [(name.encode(), value.encode()) for name, value in headers],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080), "state": {}, **scope_items}
        raised = None
        try:
            await asgi_app(scope, receive, send)
        except Exception as error:  # noqa: BLE001 - what the server is given is part of the answer
            raised = repr(error)
        if not sent:
            return None, [], b"", raised
        start = sent[0]
        return start["status"], sorted(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:]), raised

    return asyncio.run(scenario())


def call(view: ShopGraphQL, method: str, body: bytes | list[dict], headers: dict[str, str] | list[tuple[str, str]],
         query_string: bytes = b"") -> tuple:
    status, sent_headers, sent_body, raised = exchange(view, method, body, headers, query_string=query_string,
                                                       app=SimpleNamespace(state=STATE))
    assert raised is None
    return status, sent_headers, sent_body


JSON_HEADERS = {"content-type": "application/json"}
QUERY = "{ orders(first: 2) { nodes { id items { product { name } } } } }"
REQUESTS = {
    "a query": (JSON_HEADERS, {"query": QUERY}),
    "variables and an operation name": (JSON_HEADERS, {
        "query": "query A($n: Int!) { orders(first: $n) { totalCount } } query B { products(first: 1) { totalCount } }",
        "variables": {"n": 3}, "operationName": "A"}),
    "null variables, operation name and extensions": (JSON_HEADERS, {
        "query": QUERY, "variables": None, "operationName": None, "extensions": None}),
    "extensions": (JSON_HEADERS, {"query": QUERY, "extensions": {"persistedQuery": {"version": 1}}}),
    "an operation name that is not in the document": (JSON_HEADERS, {"query": QUERY, "operationName": "Nope"}),
    "two operations and no name": (JSON_HEADERS, {"query": "query A { __typename } query B { __typename }"}),
    "a mutation (the schema has none)": (JSON_HEADERS, {"query": "mutation { x }"}),
    "a subscription (streams, not plain)": (JSON_HEADERS, {"query": "subscription { x }"}),
    "a syntax error": (JSON_HEADERS, {"query": "{ orders("}),
    "a validation error": (JSON_HEADERS, {"query": "{ orders { nope } }"}),
    "an argument error": (JSON_HEADERS, {"query": "{ orders(first: 0) { totalCount } }"}),
    "a missing query": (JSON_HEADERS, {"variables": {}}),
    "a null query": (JSON_HEADERS, {"query": None}),
    "an empty query": (JSON_HEADERS, {"query": ""}),
    "a query that is not a string": (JSON_HEADERS, {"query": 5}),
    "variables that are a list": (JSON_HEADERS, {"query": QUERY, "variables": [1]}),
    "an operation name that is a number": (JSON_HEADERS, {"query": QUERY, "operationName": 3}),
    "extensions that are a string": (JSON_HEADERS, {"query": QUERY, "extensions": "x"}),
    "a batch": (JSON_HEADERS, [{"query": QUERY}]),
    "a JSON string": (JSON_HEADERS, "query"),
    "JSON with a charset": ({"content-type": "application/json; charset=utf-8"}, {"query": QUERY}),
    "another content type": ({"content-type": "text/plain"}, {"query": QUERY}),
    "no content type": ({}, {"query": QUERY}),
    "an Accept of JSON": ({**JSON_HEADERS, "accept": "application/json"}, {"query": QUERY}),
    "an Accept of multipart": ({**JSON_HEADERS, "accept": "multipart/mixed"}, {"query": QUERY}),
    "an Accept of GraphQL responses": ({**JSON_HEADERS, "accept": "application/graphql-response+json"}, {"query": QUERY}),
}


@pytest.mark.parametrize("name", REQUESTS)
def test_the_fast_path_answers_as_strawberrys_view_does(name: str) -> None:
    headers, payload = REQUESTS[name]
    body = orjson.dumps(payload)
    fast = call(CountingPath(schema, graphql_ide=None, allow_queries_via_get=True), "POST", body, headers)
    reference = call(StrawberryPath(schema, graphql_ide=None, allow_queries_via_get=True), "POST", body, headers)
    assert fast == reference


@pytest.mark.parametrize("body", [b"{", b"", b"\xff", b"null"])
def test_bodies_that_are_not_json_objects_are_answered_by_the_view(body: bytes) -> None:
    fast = call(CountingPath(schema, graphql_ide=None, allow_queries_via_get=True), "POST", body, JSON_HEADERS)
    reference = call(StrawberryPath(schema, graphql_ide=None, allow_queries_via_get=True), "POST", body, JSON_HEADERS)
    assert fast == reference
    assert fast[0] == 400


def test_get_is_answered_by_the_view() -> None:
    query_string = b"query=%7B__typename%7D"
    fast = call(CountingPath(schema, graphql_ide=None, allow_queries_via_get=True), "GET", b"", {}, query_string)
    reference = call(StrawberryPath(schema, graphql_ide=None, allow_queries_via_get=True), "GET", b"", {}, query_string)
    assert fast == reference
    assert fast[0] == 200 and orjson.loads(fast[2]) == {"data": {"__typename": "Query"}}


def both_paths(body: bytes | list[dict], headers: dict[str, str] | list[tuple[str, str]]) -> tuple[tuple, tuple, int]:
    """The fast path's answer, the view's, and whether the fast path answered."""
    CountingPath.taken = 0
    fast = exchange(CountingPath(schema, graphql_ide=None, allow_queries_via_get=True), "POST", body, headers,
                    app=SimpleNamespace(state=STATE))
    reference = exchange(StrawberryPath(schema, graphql_ide=None, allow_queries_via_get=True), "POST", body, headers,
                         app=SimpleNamespace(state=STATE))
    return fast, reference, CountingPath.taken


def test_a_body_sent_in_parts_is_read_whole() -> None:
    body = orjson.dumps({"query": QUERY})
    parts = [{"type": "http.request", "body": body[:7], "more_body": True},
             {"type": "http.request", "more_body": True},  # a part with no body key
             {"type": "http.request", "body": body[7:], "more_body": False}]
    fast, reference, taken = both_paths(parts, JSON_HEADERS)
    assert fast == reference and taken == 1
    assert fast[0] == 200 and len(orjson.loads(fast[2])["data"]["orders"]["nodes"]) == 2


def test_a_body_part_that_is_empty_or_none_is_skipped_as_starlette_skips_it() -> None:
    body = orjson.dumps({"query": QUERY})
    parts = [{"type": "http.request", "body": None, "more_body": True},  # not ASGI, but Starlette takes it
             {"type": "http.request", "body": b"", "more_body": True},
             {"type": "http.request", "body": body, "more_body": False}]
    fast, reference, taken = both_paths(parts, JSON_HEADERS)
    assert fast == reference and taken == 1
    assert fast[0] == 200


def test_a_body_the_view_answers_is_given_to_it_again() -> None:
    """Read by the fast path, then not a plain query: the view reads the same body."""
    body = orjson.dumps([{"query": QUERY}])  # a batch
    parts = [{"type": "http.request", "body": body[:5], "more_body": True},
             {"type": "http.request", "body": body[5:], "more_body": False}]
    fast, reference, taken = both_paths(parts, JSON_HEADERS)
    assert fast == reference and taken == 0
    assert fast[0] == 400 and b"batching is not enabled" in fast[2].lower()


def test_a_client_gone_before_its_body_ended_is_raised_as_the_view_raises_it() -> None:
    parts = [{"type": "http.request", "body": b'{"query": "{ __type', "more_body": True}, {"type": "http.disconnect"}]
    fast, reference, taken = both_paths(parts, JSON_HEADERS)
    assert fast == reference and taken == 0
    assert fast == (None, [], b"", "ClientDisconnect()")


def test_the_body_given_again_is_followed_by_what_the_server_gives() -> None:
    async def server() -> dict:
        return {"type": "http.disconnect"}

    async def scenario() -> list[dict]:
        receive = main._given_again(b"{}", server)
        return [await receive(), await receive()]

    assert asyncio.run(scenario()) == [{"type": "http.request", "body": b"{}", "more_body": False},
                                       {"type": "http.disconnect"}]


@pytest.mark.parametrize(("headers", "plain"), [
    ([("content-type", "text/plain"), ("content-type", "application/json")], False),
    ([("content-type", "application/json"), ("content-type", "text/plain")], True),
    ([("content-type", "application/json"), ("accept", "text/html"), ("accept", "*/*")], False),
    ([("content-type", "application/json"), ("accept", "*/*"), ("accept", "text/html")], True),
    ([("Content-Type", "application/json")], False),  # ASGI names are lower case; Starlette reads them so
])
def test_repeated_headers_are_read_as_the_view_reads_them(headers: list[tuple[str, str]], plain: bool) -> None:
    fast, reference, taken = both_paths(orjson.dumps({"query": QUERY}), headers)
    assert fast == reference and taken == plain


def test_the_plain_requests_take_the_fast_path() -> None:
    CountingPath.taken = 0
    plain = ["a query", "variables and an operation name", "null variables, operation name and extensions",
             "extensions", "a syntax error", "a validation error", "an argument error", "an Accept of JSON"]
    for name in plain:
        headers, payload = REQUESTS[name]
        call(CountingPath(schema, graphql_ide=None, allow_queries_via_get=True), "POST", orjson.dumps(payload), headers)
    assert CountingPath.taken == len(plain)


# The service as uvicorn runs it (main.app: POST /graphql straight to its middleware and the
# view) against FastAPI's own route to the same view (main.service).
from app import main  # noqa: E402


def through(asgi_app: Any, method: str, body: bytes, headers: dict[str, str], path: str = "/graphql",
            root_path: str = "") -> tuple:
    """exchange()'s answer, and the access and service log lines."""
    import logging

    lines: list[tuple] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append((record.name, record.getMessage(), getattr(record, "method", None),
                          getattr(record, "path", None), getattr(record, "status", None)))

    handler = Collect(level=logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("access", "service")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        answer = exchange(asgi_app, method, body, headers, path=path, root_path=root_path)
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    return *answer, lines


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main.service.state, "products", STATE.products, raising=False)
    monkeypatch.setattr(main.service.state, "orders", STATE.orders, raising=False)


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.usefixtures("backends")
def test_post_graphql_answers_as_fastapis_route_does(name: str) -> None:
    headers, payload = REQUESTS[name]
    body = orjson.dumps(payload)
    direct = through(main.app, "POST", body, headers)
    assert direct == through(main.service, "POST", body, headers)
    assert [line[0] for line in direct[4]] == ["access"]


@pytest.mark.usefixtures("backends")
def test_a_body_over_the_limit_is_refused_as_fastapis_route_does() -> None:
    body = orjson.dumps({"query": "{ __typename }", "pad": "x" * main.MAX_BODY_BYTES})
    direct = through(main.app, "POST", body, JSON_HEADERS)
    assert direct == through(main.service, "POST", body, JSON_HEADERS)
    assert direct[0] == 413


@pytest.mark.usefixtures("backends")
def test_an_unexpected_error_is_answered_and_raised_as_fastapi_does(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("view state at secret-host.internal")

    monkeypatch.setattr(main.ShopGraphQL, "_answer_plain_post", broken)
    body = orjson.dumps({"query": QUERY})
    direct = through(main.app, "POST", body, JSON_HEADERS)
    assert direct == through(main.service, "POST", body, JSON_HEADERS)
    status, _headers, answer, raised, lines = direct
    assert status == 500 and orjson.loads(answer)["message"] == "internal error" and b"secret-host" not in answer
    assert raised is not None and "secret-host" in raised, "raised on for the server to log"
    assert ("service", "unhandled error", None, "/graphql", None) in lines and ("access", "request", "POST", "/graphql", 500) in lines


@pytest.mark.parametrize(("method", "path", "root_path"), [
    ("GET", "/graphql", ""), ("PUT", "/graphql", ""), ("POST", "/graphql/", ""), ("POST", "/healthz", ""),
    ("POST", "/graphql", "/shop"),  # under a root path (ASGI's path includes it)
    ("POST", "", "/graphql"),  # "/" under the root path /graphql: FastAPI's 404
])
@pytest.mark.usefixtures("backends")
def test_every_other_request_is_fastapis(method: str, path: str, root_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = []
    original = main.service.__call__

    async def recording(self: Any, scope: dict, receive: Any, send: Any) -> None:
        taken.append(scope["path"])
        await original(scope, receive, send)

    monkeypatch.setattr(type(main.service), "__call__", recording)
    body = orjson.dumps({"query": "{ __typename }"})
    through(main.app, method, body, JSON_HEADERS, path=path, root_path=root_path)
    assert taken == [root_path + path]


@pytest.mark.usefixtures("backends")
def test_a_post_to_the_root_under_root_path_graphql_is_fastapis_404() -> None:
    body = orjson.dumps({"query": "{ __typename }"})
    direct = through(main.app, "POST", body, JSON_HEADERS, path="", root_path="/graphql")
    assert direct == through(main.service, "POST", body, JSON_HEADERS, path="", root_path="/graphql")
    assert direct[0] == 404


@pytest.mark.usefixtures("backends")
def test_a_document_that_once_exhausted_the_stack_is_a_graphql_error_not_a_500() -> None:
    chain = ("{ ...F0 } " + " ".join(f"fragment F{n} on Query {{ ...F{n + 1} }}" for n in range(246))
             + " fragment F246 on Query { __typename }")
    status, _headers, answer, raised, _lines = through(main.app, "POST", orjson.dumps({"query": chain}), JSON_HEADERS)
    assert (status, raised) == (200, None)
    assert [error["extensions"]["code"] for error in orjson.loads(answer)["errors"]] == ["QUERY_TOO_COMPLEX"]


def test_post_graphql_first_knows_every_middleware_and_error_handler_of_the_service() -> None:
    """GraphQLPostFirst repeats the service's middleware for POST /graphql: one added to the
    service only would silently not apply to it."""
    from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
    from service_kit.access_log import AccessLogMiddleware
    from service_kit.errors import FieldError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    assert [middleware.cls for middleware in main.service.user_middleware] == [AccessLogMiddleware,
                                                                               main.BodyLimitMiddleware]
    # The 500 handler it uses, and the handlers of exceptions the view does not raise.
    assert set(main.service.exception_handlers) == {Exception, StarletteHTTPException, RequestValidationError,
                                                    WebSocketRequestValidationError, FieldError}
