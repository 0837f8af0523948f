"""GraphQL service: POST/GET /graphql (GraphiQL there for browsers, /playground redirects to it), /healthz, /readyz."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from cross_web import HTTPException as StrawberryHTTPException
from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from strawberry import UNSET
from strawberry.fastapi import GraphQLRouter

from app.backends import Backend, create_session
from app.guards import MAX_BODY_BYTES
from app.schema import ShopContext, schema
from app.settings import load_settings
from service_kit.app import JSON, create_service_app
from service_kit.errors import json_error
from service_kit.server import freeze_startup_objects
from service_kit.tracing import trace_headers_from_asgi

logger = logging.getLogger("graphql")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings()
    session = create_session(settings.backend_timeout_seconds)
    app.state.products = Backend("products", settings.products_url, session)
    app.state.orders = Backend("orders", settings.orders_url, session)
    logger.info("backends configured", extra={"products_url": settings.products_url,
                                               "orders_url": settings.orders_url,
                                               "backend_timeout_seconds": settings.backend_timeout_seconds})
    freeze_startup_objects()
    try:
        yield
    finally:
        await session.close()


async def get_context(request: Request) -> ShopContext:
    state = request.app.state
    return ShopContext(state.products, state.orders, trace_headers_from_asgi(request.scope["headers"]))


class ShopGraphQLRouter(GraphQLRouter):
    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry reads a request body as a map (or a list, for batches); a bare JSON string,
        # number or null would otherwise reach it and fail as a server error.
        value = super().parse_json(data)
        if not isinstance(value, (dict, list)):
            raise StrawberryHTTPException(400, "expected a JSON object (the request body, or a variables or "
                                                 "extensions parameter)")
        return value

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # Strawberry answers malformed requests (no query, bad JSON) in plain text; clients
        # parse GraphQL responses as JSON, so give them the GraphQL error shape.
        try:
            return await super().run(request, context=context, root_value=root_value)
        except StrawberryHTTPException as error:
            return Response(orjson.dumps({"errors": [{"message": error.reason}]}),
                            status_code=error.status_code, media_type=JSON)


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


# Ready once the backend client exists. Backends being down is not a reason to stop
# serving: the gateway still answers (with partial data and errors), and making its
# readiness depend on them would turn one backend outage into a full outage.
app = create_service_app("graphql", lifespan, is_ready=lambda app: getattr(app.state, "products", None) is not None,
                         inner_middleware=[BodyLimitMiddleware])
# Strawberry serves GraphiQL at the endpoint itself, to a browser's GET (it posts to its own URL).
app.include_router(
    ShopGraphQLRouter(schema, context_getter=get_context, graphql_ide="graphiql", allow_queries_via_get=True),
    prefix="/graphql",
)


@app.get("/playground", include_in_schema=False)
async def playground() -> RedirectResponse:
    # Relative, so that it still leads to the endpoint when the service is published under a prefix.
    return RedirectResponse("graphql", status_code=302)
