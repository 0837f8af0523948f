"""The headers that carry a request's identity and trace context through the mesh.

Envoy (Istio's sidecar) starts or continues a trace, but it cannot link an inbound
request to the outbound calls the application makes: the application has to copy
these headers from the inbound request to every backend call.
"""

from __future__ import annotations

from collections.abc import Iterable

TRACE_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
)
_TRACE_HEADER_BYTES = frozenset(name.encode("latin-1") for name in TRACE_HEADERS)


def trace_headers_from_asgi(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The trace headers present in an ASGI scope's header list (names are lower-case there)."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in raw_headers
        if name in _TRACE_HEADER_BYTES
    }


def trace_id_of(headers: dict[str, str]) -> str | None:
    """The trace id for log correlation, from W3C traceparent or B3, if present."""
    traceparent = headers.get("traceparent")
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) >= 2:
            return parts[1]
    return headers.get("x-b3-traceid")
