"""The FastAPI application every service starts from: JSON errors, access log, probes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

from service_kit.access_log import AccessLogMiddleware
from service_kit.errors import install_error_handlers, json_error

JSON = "application/json"


def create_service_app(
    title: str,
    lifespan: Any,
    is_ready: Callable[[FastAPI], bool],
    inner_middleware: Sequence[type] = (),
) -> FastAPI:
    """`is_ready` decides /readyz; /healthz only says the process serves HTTP.

    `inner_middleware` runs inside the access log, so what it rejects is still logged.
    """
    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    for middleware in inner_middleware:
        app.add_middleware(middleware)
    app.add_middleware(AccessLogMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if not is_ready(app):
            return json_error(503, "not ready")
        return Response(b'{"status":"ready"}', media_type=JSON)

    return app
