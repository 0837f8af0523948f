"""Backend requests per GraphQL query, counted in the backends' own access logs.

Each query carries a unique x-request-id; the gateway forwards it, so every backend
request it caused can be counted exactly, even with other tests' traffic in the logs.
"""

from __future__ import annotations

import uuid

import pytest

from tests.services.services_testkit import graphql, wait_for


def backend_requests(stack, request_id: str) -> dict[str, int]:
    return {name: sum(1 for entry in stack.access_entries(name) if entry.get("request_id") == request_id)
            for name in ("orders", "products")}


def run(http, stack, graphql_url, query, expected, variables=None):
    request_id = f"batch-{uuid.uuid4()}"
    status, body = graphql(http, graphql_url, query, variables, headers={"x-request-id": request_id})
    assert status == 200 and "errors" not in body, body
    # Access lines are written when each backend response completes; allow for flushing.
    wait_for(lambda: backend_requests(stack, request_id) == expected, timeout=2)
    assert backend_requests(stack, request_id) == expected
    return body


@pytest.mark.parametrize("first", [1, 20, 100])
def test_orders_with_products_cost_one_request_per_backend(http, stack, graphql_url, first):
    body = run(http, stack, graphql_url,
               f"{{ orders(first: {first}) {{ nodes {{ id items {{ quantity product {{ id name price }} }} }} }} }}",
               {"orders": 1, "products": 1})
    nodes = body["data"]["orders"]["nodes"]
    assert len(nodes) == first
    assert all(item["product"]["id"] for node in nodes for item in node["items"])


def test_products_are_batched_through_fragments_too(http, stack, graphql_url):
    run(http, stack, graphql_url,
        "query { orders(first: 30) { ...Page } } fragment Page on OrderConnection { nodes { items { ...Line } } } "
        "fragment Line on OrderItem { product { name } }",
        {"orders": 1, "products": 1})


def test_no_products_request_when_products_are_not_asked_for(http, stack, graphql_url):
    run(http, stack, graphql_url, "{ orders(first: 20) { nodes { id items { productId quantity } } } }",
        {"orders": 1, "products": 0})


def test_orders_by_id_and_their_products_are_batched(http, stack, graphql_url):
    aliases = " ".join(f'o{n}: order(id: "o{n:04d}") {{ id items {{ product {{ id }} }} }}' for n in range(1, 11))
    body = run(http, stack, graphql_url, f"{{ {aliases} }}", {"orders": 1, "products": 1})
    assert [body["data"][f"o{n}"]["id"] for n in range(1, 11)] == [f"o{n:04d}" for n in range(1, 11)]


@pytest.mark.parametrize("query, variables", [
    ("{ orders(first: 20) { nodes { id items { quantity product @skip(if: true) { id } } } } }", None),
    ("query($p: Boolean!) { orders(first: 20) { nodes { items { product @include(if: $p) { id } } } } }",
     {"p": False}),
    ("{ orders(first: 20) { nodes { id items @skip(if: true) { product { id } } } } }", None),
    ("query($p: Boolean!) { orders(first: 20) { nodes { items { ...Line @include(if: $p) } } } } "
     "fragment Line on OrderItem { product { id } }", {"p": False}),
])
def test_no_products_request_when_directives_leave_products_out(http, stack, graphql_url, query, variables):
    body = run(http, stack, graphql_url, query, {"orders": 1, "products": 0}, variables)
    assert all("product" not in item for node in body["data"]["orders"]["nodes"] for item in node.get("items", []))


def test_products_are_loaded_when_a_directive_keeps_them(http, stack, graphql_url):
    run(http, stack, graphql_url,
        "query($p: Boolean!) { orders(first: 20) { nodes { items { product @include(if: $p) { id } } } } }",
        {"orders": 1, "products": 1}, {"p": True})
