"""Tracing headers received by the GraphQL service reach both backends; nothing else does."""

from __future__ import annotations

import pytest

from tests.services.services_testkit import graphql, wait_for

TRACE = {
    "x-request-id": "req-123",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=value",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "x-b3-flags": "0",
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
}
NOT_FORWARDED = {"authorization": "Bearer secret", "cookie": "session=abc", "x-custom": "no"}


@pytest.fixture(scope="module")
def recording_service(start_gateway, stub_backend):
    return start_gateway(PRODUCTS_URL=stub_backend.url("record"), ORDERS_URL=stub_backend.url("record"))


@pytest.fixture(scope="module")
def recording_gateway(recording_service):
    return recording_service.url + "/graphql"


def test_trace_headers_are_forwarded_to_both_backends(http, recording_gateway, stub_backend):
    stub_backend.recorded.clear()
    status, body = graphql(http, recording_gateway,
                           "{ orders(first: 2) { nodes { items { product { id } } } } }",
                           headers=TRACE | NOT_FORWARDED)
    assert status == 200 and "errors" not in body, body
    resources = sorted(resource for resource, _ in stub_backend.recorded)
    assert resources == ["orders", "products"]
    for resource, headers in stub_backend.recorded:
        for name, value in TRACE.items():
            assert headers.get(name) == value, (resource, name)
        for name in NOT_FORWARDED:
            assert name not in headers, (resource, name)


def test_forwarded_secrets_are_not_logged(http, recording_service, recording_gateway):
    request_id = "secrets-log-check"
    graphql(http, recording_gateway, "{ orders(first: 1) { nodes { id } } }",
            headers=NOT_FORWARDED | {"x-request-id": request_id})
    # The service's own log: its access line for this request is there, the secrets are not.
    wait_for(lambda: request_id in recording_service.log_path.read_text(), timeout=2)
    log = recording_service.log_path.read_text()
    assert "Bearer secret" not in log and "session=abc" not in log


def test_requests_without_trace_headers_send_none(http, recording_gateway, stub_backend):
    stub_backend.recorded.clear()
    graphql(http, recording_gateway, "{ orders(first: 1) { nodes { id } } }")
    [(_, headers)] = stub_backend.recorded
    assert not set(headers) & set(TRACE)


def test_real_backends_log_the_forwarded_request_and_trace_ids(http, stack, graphql_url):
    graphql(http, graphql_url, "{ orders(first: 1) { nodes { items { product { id } } } } }",
            headers={"x-request-id": "trace-log-check", "traceparent": TRACE["traceparent"]})

    def logged(name):
        return [e for e in stack.access_entries(name) if e.get("request_id") == "trace-log-check"]

    assert wait_for(lambda: all(logged(name) for name in ("orders", "products", "graphql")))
    for name in ("orders", "products", "graphql"):
        assert [entry["trace_id"] for entry in logged(name)] == ["0af7651916cd43dd8448eb211c80319c"]
