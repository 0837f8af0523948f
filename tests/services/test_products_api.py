"""The products REST API against the real service."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.services.services_testkit import assert_no_traceback


def test_catalog_has_at_least_50_products_with_money_as_decimal_strings(http, products_url):
    body = http.get(f"{products_url}/products", params={"limit": 200}).json()
    assert body["total"] >= 50 and len(body["items"]) == body["total"]
    for product in body["items"]:
        assert set(product) >= {"id", "name", "description", "price", "currency", "stock"}
        assert isinstance(product["price"], str), "price must not be a float"
        assert Decimal(product["price"]).as_tuple().exponent == -2
        assert len(product["currency"]) == 3 and isinstance(product["stock"], int) and product["stock"] >= 0


def test_cursor_pagination_visits_every_product_once(http, products_url):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        body = http.get(f"{products_url}/products", params=params).json()
        assert len(body["items"]) <= 7
        seen += [product["id"] for product in body["items"]]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == body["total"]
    assert pages == -(-body["total"] // 7)


def test_offset_pagination_matches_cursor_pagination(http, products_url):
    first = http.get(f"{products_url}/products", params={"limit": 5}).json()
    second_by_cursor = http.get(f"{products_url}/products", params={"limit": 5, "cursor": first["next_cursor"]}).json()
    second_by_offset = http.get(f"{products_url}/products", params={"limit": 5, "offset": 5}).json()
    assert second_by_cursor["items"] == second_by_offset["items"]
    assert {p["id"] for p in first["items"]}.isdisjoint(p["id"] for p in second_by_offset["items"])


def test_batch_lookup_by_ids_repeated_and_comma_separated(http, products_url):
    all_ids = [p["id"] for p in http.get(f"{products_url}/products", params={"limit": 10}).json()["items"]]
    wanted = all_ids[2:6]
    response = http.get(f"{products_url}/products",
                        params=[("ids", ",".join(wanted[:2])), ("ids", wanted[2]), ("ids", wanted[3]), ("ids", "p999")])
    body = response.json()
    assert response.status_code == 200
    assert sorted(p["id"] for p in body["items"]) == sorted(wanted)
    assert body["missing"] == ["p999"]


def test_get_one_product_and_404_for_unknown(http, products_url):
    first = http.get(f"{products_url}/products", params={"limit": 1}).json()["items"][0]
    assert http.get(f"{products_url}/products/{first['id']}").json() == first
    missing = http.get(f"{products_url}/products/does-not-exist")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json()["error"] == "not_found" and "does-not-exist" in missing.json()["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_000}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "djE6bm9wZQ"}, "cursor"),  # well-formed, but for an id that does not exist
        ({"ids": "ok,not ok!"}, "ids"),
        ({"ids": ",".join(f"p{n}" for n in range(300))}, "ids"),
    ],
)
def test_invalid_parameters_give_422_naming_the_field(http, products_url, params, field):
    response = http.get(f"{products_url}/products", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in [entry["field"] for entry in body["fields"]]
    assert_no_traceback(response.text)


def test_cursor_and_offset_together_are_rejected(http, products_url):
    cursor = http.get(f"{products_url}/products", params={"limit": 1}).json()["next_cursor"]
    response = http.get(f"{products_url}/products", params={"cursor": cursor, "offset": 3})
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "cursor"


def test_unknown_route_and_method_are_json_errors(http, products_url):
    assert http.get(f"{products_url}/nope").json()["error"] == "not_found"
    response = http.post(f"{products_url}/products")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


def test_products_reports_itself_live_and_ready(http, products_url):
    assert http.get(f"{products_url}/healthz").json() == {"status": "ok"}
    assert http.get(f"{products_url}/readyz").json() == {"status": "ready"}
