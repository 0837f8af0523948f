"""The orders REST API against the real service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tests.services.services_testkit import assert_no_traceback


def all_orders(http, orders_url, **params):
    items, cursor = [], None
    while True:
        body = http.get(f"{orders_url}/orders", params={"limit": 200, **params} | ({"cursor": cursor} if cursor else {})).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_at_least_200_orders_with_items_referencing_real_products(http, orders_url, products_url):
    orders = all_orders(http, orders_url)
    assert len(orders) >= 200 and len({o["id"] for o in orders}) == len(orders)
    product_ids = {p["id"] for p in http.get(f"{products_url}/products", params={"limit": 200}).json()["items"]}
    for order in orders:
        assert order["status"] in {"pending", "paid", "shipped", "delivered", "cancelled"}
        datetime.fromisoformat(order["created_at"])
        assert order["items"]
        for item in order["items"]:
            assert item["product_id"] in product_ids
            assert item["quantity"] >= 1 and Decimal(item["unit_price"]).as_tuple().exponent == -2
        assert Decimal(order["total"]) == sum(Decimal(i["unit_price"]) * i["quantity"] for i in order["items"])


def test_filter_by_customer_with_pagination(http, orders_url):
    everything = all_orders(http, orders_url)
    customer = everything[0]["customer_id"]
    expected = sorted(o["id"] for o in everything if o["customer_id"] == customer)
    assert len(expected) >= 2, "test needs a customer with several orders"
    seen, cursor = [], None
    while True:
        body = http.get(f"{orders_url}/orders",
                        params={"customer_id": customer, "limit": 1} | ({"cursor": cursor} if cursor else {})).json()
        assert body["total"] == len(expected)
        seen += [o["id"] for o in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert http.get(f"{orders_url}/orders", params={"customer_id": "nobody"}).json()["items"] == []


def test_filter_by_ids_and_customer_together(http, orders_url):
    orders = http.get(f"{orders_url}/orders", params={"limit": 3}).json()["items"]
    ids = ",".join(o["id"] for o in orders)
    body = http.get(f"{orders_url}/orders", params={"ids": ids + ",o9999", "customer_id": orders[0]["customer_id"]}).json()
    assert [o["id"] for o in body["items"]] == [o["id"] for o in orders if o["customer_id"] == orders[0]["customer_id"]]
    assert body["missing"] == ["o9999"]


def test_get_one_order_and_404(http, orders_url):
    first = http.get(f"{orders_url}/orders", params={"limit": 1}).json()["items"][0]
    assert http.get(f"{orders_url}/orders/{first['id']}").json() == first
    response = http.get(f"{orders_url}/orders/o-missing")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"customer_id": "bad id!"}, "customer_id"), ({"limit": -5}, "limit"), ({"cursor": "%%%"}, "cursor"),
     ({"offset": "x"}, "offset"), ({"ids": ""}, "ids")],
)
def test_invalid_parameters_give_422_naming_the_field(http, orders_url, params, field):
    response = http.get(f"{orders_url}/orders", params=params)
    assert response.status_code == 422
    assert field in [entry["field"] for entry in response.json()["fields"]]
    assert_no_traceback(response.text)


def test_orders_reports_itself_live_and_ready(http, orders_url):
    assert http.get(f"{orders_url}/healthz").status_code == 200
    assert http.get(f"{orders_url}/readyz").json() == {"status": "ready"}
