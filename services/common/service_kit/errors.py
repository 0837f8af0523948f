"""JSON error bodies for every failure, never a stack trace.

Shape: {"error": <code>, "message": <text>} and, for 422, "fields": a list of
{"field", "location", "message"} so a client can tell which input was wrong.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

logger = logging.getLogger("service")

_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
          422: "validation_error", 500: "internal_error"}


def json_error(status: int, message: str, **extra: object) -> Response:
    body = {"error": _CODES.get(status, "error"), "message": message, **extra}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class FieldError(Exception):
    """A query parameter that passed type coercion but is still invalid (e.g. a bad cursor)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return json_error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        fields = []
        for error in exc.errors():
            location = error.get("loc", ())
            fields.append({
                "field": ".".join(str(part) for part in location[1:]) or str(location[0] if location else ""),
                "location": str(location[0]) if location else "",
                "message": error.get("msg", "invalid value"),
            })
        names = ", ".join(sorted({f["field"] for f in fields}))
        return json_error(422, f"invalid value for: {names}", fields=fields)

    @app.exception_handler(FieldError)
    async def field_error(_: Request, exc: FieldError) -> Response:
        return json_error(422, f"invalid value for: {exc.field}",
                          fields=[{"field": exc.field, "location": "query", "message": exc.message}])

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return json_error(500, "internal error")
