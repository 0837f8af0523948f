"""A pure ASGI middleware writing one JSON access line per HTTP request.

Pure ASGI (not BaseHTTPMiddleware) because it is on every request's hot path and
must not buffer streaming bodies. The request id and trace id are logged so a
request can be followed across services.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from service_kit.tracing import trace_headers_from_asgi, trace_id_of

access_logger = logging.getLogger("access")
_QUIET_PATHS = frozenset({"/healthz", "/readyz"})


class AccessLogMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = [500]

        async def send_with_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = scope["path"]
            # Probes hit every few seconds; logging them would drown the real traffic.
            if path not in _QUIET_PATHS or status_holder[0] >= 400:
                trace = trace_headers_from_asgi(scope["headers"])
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "status": status_holder[0],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "request_id": trace.get("x-request-id"),
                        "trace_id": trace_id_of(trace),
                    },
                )
