"""Products REST API: a read-only catalog.

GET /products          ?limit=&cursor=|offset=&ids=a,b (batch lookup; unknown ids in "missing")
GET /products/{id}     404 with a JSON body if unknown
GET /healthz, /readyz
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from starlette.responses import Response

from app.catalog import load_catalog
from service_kit.app import JSON, create_service_app
from service_kit.collection import MAX_LIMIT, parse_ids
from service_kit.errors import json_error
from service_kit.server import freeze_startup_objects

logger = logging.getLogger("products")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.catalog = load_catalog()
    logger.info("catalog loaded", extra={"products": len(app.state.catalog)})
    freeze_startup_objects()
    yield


app = create_service_app("products", lifespan, is_ready=lambda app: getattr(app.state, "catalog", None) is not None)


@app.get("/products")
async def list_products(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    ids: Annotated[list[str] | None, Query(description="ids, repeated or comma-separated")] = None,
) -> Response:
    catalog = app.state.catalog
    wanted = parse_ids(ids)
    if wanted is None:
        body = catalog.page(catalog.all_positions, limit, cursor, offset)
    else:
        positions, missing = catalog.positions_of(wanted)
        body = catalog.page(positions, limit, cursor, offset, missing=missing)
    return Response(body, media_type=JSON)


@app.get("/products/{product_id}")
async def get_product(product_id: str) -> Response:
    body = app.state.catalog.get_json(product_id)
    if body is None:
        return json_error(404, f"product {product_id[:70]!r} not found")
    return Response(body, media_type=JSON)
