"""Orders REST API: read-only orders with line items referencing product ids.

GET /orders          ?limit=&cursor=|offset=&customer_id=&ids=a,b
GET /orders/{id}     404 with a JSON body if unknown
GET /healthz, /readyz
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from starlette.responses import Response

from app.store import load_orders
from service_kit.access_log import AccessLogMiddleware
from service_kit.server import freeze_startup_objects
from service_kit.collection import ID_PATTERN, MAX_LIMIT, parse_ids
from service_kit.errors import install_error_handlers, json_error

logger = logging.getLogger("orders")
JSON = "application/json"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.store = load_orders()
    logger.info("orders loaded", extra={"orders": len(app.state.store.orders)})
    freeze_startup_objects()
    yield


app = FastAPI(title="orders", version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None)
install_error_handlers(app)
app.add_middleware(AccessLogMiddleware)


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


@app.get("/readyz")
async def readyz() -> Response:
    if getattr(app.state, "store", None) is None:
        return json_error(503, "orders not loaded")
    return Response(b'{"status":"ready"}', media_type=JSON)


def _intersect(sorted_a: list[int], sorted_b: list[int]) -> list[int]:
    small, large = sorted((sorted_a, sorted_b), key=len)
    result = []
    for value in small:
        index = bisect_left(large, value)
        if index < len(large) and large[index] == value:
            result.append(value)
    return result


@app.get("/orders")
async def list_orders(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    customer_id: Annotated[str | None, Query(pattern=ID_PATTERN.pattern)] = None,
    ids: Annotated[list[str] | None, Query(description="ids, repeated or comma-separated")] = None,
) -> Response:
    store = app.state.store
    orders = store.orders
    wanted = parse_ids(ids)
    missing = None
    positions = orders.all_positions
    if wanted is not None:
        positions, missing = orders.positions_of(wanted)
    if customer_id is not None:
        positions = _intersect(positions, store.by_customer.get(customer_id, []))
    return Response(orders.page(positions, limit, cursor, offset, missing=missing), media_type=JSON)


@app.get("/orders/{order_id}")
async def get_order(order_id: str) -> Response:
    body = app.state.store.orders.get_json(order_id)
    if body is None:
        return json_error(404, f"order {order_id[:70]!r} not found")
    return Response(body, media_type=JSON)
