"""GraphQL service: POST/GET /graphql, GraphiQL at /playground, /healthz, /readyz."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from cross_web import HTTPException as StrawberryHTTPException
from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from strawberry.asgi import GraphQL
from strawberry.http.ides import get_graphql_ide_html
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from app.backends import Backend
from app.guards import MAX_BODY_BYTES
from app.http_client import HttpClient
from app.schema import ShopContext, schema
from app.settings import load_settings
from service_kit.access_log import AccessLogMiddleware
from service_kit.app import JSON, create_service_app
from service_kit.errors import json_error
from service_kit.server import freeze_startup_objects
from service_kit.tracing import trace_headers_from_asgi

logger = logging.getLogger("graphql")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings()
    client = HttpClient()
    app.state.products = Backend("products", settings.products_url, client, settings.backend_timeout_seconds)
    app.state.orders = Backend("orders", settings.orders_url, client, settings.backend_timeout_seconds)
    logger.info("backends configured", extra={"products_url": settings.products_url,
                                               "orders_url": settings.orders_url,
                                               "backend_timeout_seconds": settings.backend_timeout_seconds})
    freeze_startup_objects()
    try:
        yield
    finally:
        client.close()


class ShopGraphQL(GraphQL):
    """Strawberry's ASGI view. (Its FastAPI router does the same work, plus FastAPI's
    dependency injection for the context, which cost about 0.1 ms per query.)"""

    async def get_context(self, request: Any, response: Any) -> ShopContext:
        state = request.app.state
        return ShopContext(state.products, state.orders, trace_headers_from_asgi(request.scope["headers"]))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry reads a request body as a map (or a list, for batches); a bare JSON string,
        # number or null would otherwise reach it and fail as a server error.
        value = super().parse_json(data)
        if not isinstance(value, (dict, list)):
            raise StrawberryHTTPException(400, "the request body must be a JSON object")
        return value

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # Strawberry answers malformed requests (no query, bad JSON) in plain text; clients
        # parse GraphQL responses as JSON, so give them the GraphQL error shape.
        try:
            return await super().run(request, context=context, root_value=root_value)
        except StrawberryHTTPException as error:
            return Response(orjson.dumps({"errors": [{"message": error.reason}]}),
                            status_code=error.status_code, media_type=JSON)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """The common request, a JSON POST of one query that takes a JSON answer, is answered
        here the way Strawberry's view answers it, without its generic steps for other methods,
        bodies and transports, and without Starlette's request and response objects (through
        the view, the benchmark's query takes 8% more instructions, counted in process).
        Anything else, and a body that is not such a query, goes to the view, the body given
        to it again.
        tests/services/test_graphql_http.py holds the two paths to the same answers."""
        if scope["type"] == "http" and scope["method"] == "POST" and _takes_plain_json(scope["headers"]):
            body = await _read_body(receive)
            answer = await self._answer_plain_post(scope, body)
            if answer is not None:
                # As Starlette's Response(answer, media_type=JSON) sends it.
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", b"%d" % len(answer)), (b"content-type", _JSON_BYTES)]})
                await send({"type": "http.response.body", "body": answer})
                return
            receive = _given_again(body, receive)
        await super().__call__(scope, receive, send)

    async def _answer_plain_post(self, scope: dict, body: bytes) -> bytes | None:
        """The response body for a plain query, or None for the view to answer the request."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(data) is not dict:
            return None
        query, variables = data.get("query"), data.get("variables")
        operation_name, extensions = data.get("operationName"), data.get("extensions")
        if (type(query) is not str or not query or (variables is not None and type(variables) is not dict)
                or (operation_name is not None and type(operation_name) is not str)
                or (extensions is not None and type(extensions) is not dict)):
            return None
        request = Request(scope)  # for the view's hooks; its body is read, so it has no receive
        try:
            result = await self.schema.execute(
                query, root_value=await self.get_root_value(request), variable_values=variables,
                context_value=await self.get_context(request, None), operation_name=operation_name,
                allowed_operation_types=_PLAIN_OPERATIONS, operation_extensions=extensions)
        except (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError):
            return None  # raised before execution: the view answers these (subscriptions too)
        response_data = await self.process_result(request, result)
        if result.errors:
            self._handle_errors(result.errors, response_data)
        return self.encode_json(response_data)


_JSON_BYTES = JSON.encode()
_PLAIN_ACCEPT = frozenset({b"*/*", _JSON_BYTES})


def _takes_plain_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Content-Type JSON and an Accept of JSON or anything, each header's first value read, as
    Starlette's Headers.get reads it (ASGI gives the names in lower case)."""
    content_type = accept = None
    for name, value in headers:
        if name == b"content-type":
            if content_type is None:
                content_type = value
        elif name == b"accept" and accept is None:
            accept = value
    return content_type == _JSON_BYTES and (accept is None or accept in _PLAIN_ACCEPT)


async def _read_body(receive: Any) -> bytes:
    """The request's body, as Starlette's Request.body() reads it (an empty or missing part skipped)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect


def _given_again(body: bytes, receive: Any) -> Any:
    """A receive that gives the body already read, then what the server gives (a disconnect)."""
    given = False

    async def receive_again() -> dict:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


# Subscriptions, which POST also allows, stream: the view handles them.
_PLAIN_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


def playground_html() -> str:
    """Strawberry's GraphiQL page, pointed at ./graphql instead of its own URL.

    Relative, so it still works when the service is published under a path prefix.
    """
    html = get_graphql_ide_html("graphiql")
    original = 'const fetchURL = window.location.href.split("?")[0];'
    if original not in html:
        raise RuntimeError("strawberry's GraphiQL template changed; update playground_html()")
    return html.replace(original, 'const fetchURL = new URL("graphql", window.location.href).toString();')


class BodyLimitMiddleware:
    """Rejects request bodies above MAX_BODY_BYTES before they are read into memory."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY_BYTES):
                await self._reject(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(scope, receive, send)

    @staticmethod
    async def _reject(scope: dict, receive: Any, send: Any) -> None:
        response = json_error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class GraphQLPostFirst:
    """The service as uvicorn runs it. `POST /graphql`, nearly every request it serves, goes
    to the GraphQL view through the same middleware it has in FastAPI: the access log, the
    body limit, and FastAPI's outermost layer (an unexpected exception answered with the
    service's JSON 500, then raised for the server to log). Everything else, the lifespan
    included, goes to FastAPI. FastAPI's other layers (telemetry hooks, its own body limit,
    exception handlers, the exit stack of dependencies, the router) do nothing for this
    request but cost about 0.05 ms of a 1.6 ms query, measured with the services on loopback.
    tests/services/test_graphql_http.py holds the two routes to the same answers and logs, and
    fails when `service` gets middleware or error handlers that this does not know of. (Were
    FastAPI's own OpenTelemetry instrumentation configured one day, this request would have to
    go through FastAPI again to be traced.)"""

    def __init__(self, service: FastAPI, view: ShopGraphQL) -> None:
        self.service = service
        error_handler = service.exception_handlers.get(500) or service.exception_handlers.get(Exception)
        self.graphql_post = ServerErrorMiddleware(AccessLogMiddleware(BodyLimitMiddleware(view)), handler=error_handler)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # Under a root path, FastAPI routes by the path below it: it decides.
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/graphql"
                and not scope.get("root_path")):
            scope["app"] = self.service  # as FastAPI sets it: the view reads the backends from its state
            await self.graphql_post(scope, receive, send)
        else:
            await self.service(scope, receive, send)


# Ready once the backend client exists. Backends being down is not a reason to stop
# serving: the gateway still answers (with partial data and errors), and making its
# readiness depend on them would turn one backend outage into a full outage.
service = create_service_app("graphql", lifespan,
                             is_ready=lambda app: getattr(app.state, "products", None) is not None,
                             inner_middleware=[BodyLimitMiddleware])
graphql_view = ShopGraphQL(schema, graphql_ide=None, allow_queries_via_get=True)
service.add_route("/graphql", graphql_view, methods=["GET", "POST"], include_in_schema=False)
_PLAYGROUND = playground_html()


@service.get("/playground", include_in_schema=False)
async def playground() -> HTMLResponse:
    return HTMLResponse(_PLAYGROUND)


app = GraphQLPostFirst(service, graphql_view)
