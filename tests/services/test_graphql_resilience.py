"""A backend that is down or slow gives partial data and field errors, never a hang or a 500."""

from __future__ import annotations

import time

import pytest

from tests.services.services_testkit import assert_no_traceback

QUERY = """{
  orders(first: 5) { nodes { id items { quantity product { id name } } } }
  products(first: 3) { nodes { id } }
}"""
TIMEOUT = 0.5


@pytest.fixture(scope="module")
def products_down(start_gateway, stack, closed_port_url):
    return start_gateway(PRODUCTS_URL=closed_port_url, ORDERS_URL=stack.url("orders"),
                         BACKEND_TIMEOUT_SECONDS=str(TIMEOUT)).url + "/graphql"


@pytest.fixture(scope="module")
def orders_down(start_gateway, stack, closed_port_url):
    return start_gateway(PRODUCTS_URL=stack.url("products"), ORDERS_URL=closed_port_url,
                         BACKEND_TIMEOUT_SECONDS=str(TIMEOUT)).url + "/graphql"


@pytest.fixture(scope="module", params=["slow", "slow-body"])
def products_slow(request, start_gateway, stack, stub_backend):
    """Products answering after the timeout: nothing at all, or the head and then nothing."""
    stub_backend.delay = 5.0
    return start_gateway(PRODUCTS_URL=stub_backend.url(request.param), ORDERS_URL=stack.url("orders"),
                         BACKEND_TIMEOUT_SECONDS=str(TIMEOUT)).url + "/graphql"


def timed_query(http, url):
    started = time.monotonic()
    response = http.post(url, json={"query": QUERY})
    return response, time.monotonic() - started


def assert_products_failed(body, reason_fragment):
    orders = body["data"]["orders"]["nodes"]
    assert len(orders) == 5 and all(order["id"] for order in orders)
    items = [item for order in orders for item in order["items"]]
    assert all(item["quantity"] >= 1 and item["product"] is None for item in items)
    assert body["data"]["products"] is None
    paths = [error["path"] for error in body["errors"]]
    assert ["products"] in paths
    item_errors = [error for error in body["errors"] if error["path"][-1] == "product"]
    assert len(item_errors) == len(items)
    for error in body["errors"]:
        assert error["extensions"] == {"code": "BACKEND_UNAVAILABLE", "backend": "products"}
        assert reason_fragment in error["message"]


def test_products_down_keeps_the_orders(http, products_down):
    response, elapsed = timed_query(http, products_down)
    assert response.status_code == 200 and elapsed < 2
    assert_products_failed(response.json(), "connection failed")
    assert_no_traceback(response.text)


def test_products_slow_gives_partial_data_within_the_timeout(http, products_slow):
    response, elapsed = timed_query(http, products_slow)
    assert response.status_code == 200
    assert elapsed < TIMEOUT + 1.0, f"answered after {elapsed:.2f}s with a {TIMEOUT}s backend timeout"
    assert_products_failed(response.json(), f"no answer within {TIMEOUT:g}s")


def test_orders_down_keeps_the_products(http, orders_down):
    response, elapsed = timed_query(http, orders_down)
    body = response.json()
    assert response.status_code == 200 and elapsed < 2
    assert body["data"]["orders"] is None
    assert [node["id"] for node in body["data"]["products"]["nodes"]] == ["p001", "p002", "p003"]
    [error] = body["errors"]
    assert error["path"] == ["orders"] and error["extensions"]["backend"] == "orders"


def test_health_does_not_depend_on_backends(http, orders_down):
    base = orders_down.removesuffix("/graphql")
    assert http.get(base + "/readyz").status_code == 200
    assert http.get(base + "/healthz").status_code == 200


def test_concurrent_queries_against_a_slow_backend_all_finish(http, products_slow):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def one(_):
        with httpx.Client(timeout=10, trust_env=False) as client:
            return timed_query(client, products_slow)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(10)))
    assert all(response.status_code == 200 for response, _ in results)
    assert time.monotonic() - started < TIMEOUT + 2.0


@pytest.fixture(scope="module")
def products_wrong_shape(start_gateway, stack, stub_backend):
    return start_gateway(PRODUCTS_URL=stub_backend.url("wrong-shape"), ORDERS_URL=stack.url("orders"),
                         BACKEND_TIMEOUT_SECONDS=str(TIMEOUT)).url + "/graphql"


@pytest.mark.parametrize("first", [2, 3])  # the stub answers a list for an even limit, bare records for odd
def test_a_backend_answer_of_the_wrong_shape_is_the_backends_fault(http, products_wrong_shape, first):
    response = http.post(products_wrong_shape, json={"query": f"{{ products(first: {first}) {{ nodes {{ id name }} }} }}"})
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["products"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BACKEND_UNAVAILABLE", "backend": "products"}
    assert "unexpected shape" in error["message"]
    assert_no_traceback(response.text)


@pytest.fixture(scope="module")
def backends_broken(start_gateway, stub_backend):
    return start_gateway(PRODUCTS_URL=stub_backend.url("garbage"), ORDERS_URL=stub_backend.url("error"),
                         BACKEND_TIMEOUT_SECONDS=str(TIMEOUT)).url + "/graphql"


def test_garbage_and_http_errors_from_backends_are_field_errors(http, backends_broken):
    response = http.post(backends_broken, json={"query": '{ orders(first: 2) { totalCount } product(id: "p001") { id } }'})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"orders": None, "product": None}
    assert sorted((error["path"], error["message"], error["extensions"]["code"]) for error in body["errors"]) == [
        (["orders"], "orders service unavailable: answered HTTP 500", "BACKEND_UNAVAILABLE"),
        (["product"], "products service unavailable: answered with invalid JSON", "BACKEND_UNAVAILABLE")]
    assert_no_traceback(response.text)
