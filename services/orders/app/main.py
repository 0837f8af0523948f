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
from service_kit.app import JSON, create_service_app
from service_kit.collection import ID_PATTERN, MAX_LIMIT, parse_ids
from service_kit.errors import json_error
from service_kit.server import freeze_startup_objects

logger = logging.getLogger("orders")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.store = load_orders()
    logger.info("orders loaded", extra={"orders": len(app.state.store.orders)})
    freeze_startup_objects()
    yield


app = create_service_app("orders", lifespan, is_ready=lambda app: getattr(app.state, "store", None) is not None)


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
