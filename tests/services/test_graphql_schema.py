"""The schema in process, over backends that answer from the shipped data and record each call:
the published SDL, the backend calls a query costs, and what broken answers become."""

from __future__ import annotations

import asyncio
import copy
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA

REPO = Path(__file__).resolve().parents[2]
GRAPHQL_SERVICE = REPO / "services" / "graphql"
for path in (GRAPHQL_SERVICE, GRAPHQL_SERVICE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app.backends import BackendUnavailable  # noqa: E402
from app.schema import ShopContext, schema, selects  # noqa: E402
from service_kit.collection import MAX_IDS  # noqa: E402
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField  # noqa: E402

ORDERS = [{**order, "total": str(sum(Decimal(item["unit_price"]) * item["quantity"] for item in order["items"]))}
          for order in ORDERS_DATA]


class FakeBackend:
    """Answers as the products or orders service does, from these records, and records each call."""

    def __init__(self, name: str, records: list[dict], fail: bool = False) -> None:
        self.name = name
        self.records = records
        self.fail = fail
        self.calls: list[dict] = []

    async def get(self, path: str, params: dict, headers: dict) -> Any:
        self.calls.append(params)
        await asyncio.sleep(0)
        if self.fail:
            raise BackendUnavailable(self.name, "connection failed")
        records = self.records
        if "customer_id" in params:
            records = [record for record in records if record["customer_id"] == params["customer_id"]]
        if "ids" in params:
            wanted = set(params["ids"].split(","))
            records = [record for record in records if record["id"] in wanted]
        page = records[: int(params["limit"])]
        return {"items": copy.deepcopy(page), "total": len(records), "next_cursor": None}


def execute(query: str, products: list[dict] = PRODUCTS_DATA, orders: list[dict] = ORDERS,
            products_fail: bool = False) -> tuple[dict | None, list[dict], FakeBackend, FakeBackend]:
    products_backend = FakeBackend("products", products, products_fail)
    orders_backend = FakeBackend("orders", orders)

    async def scenario() -> Any:
        return await schema.execute(query, context_value=ShopContext(products_backend, orders_backend, {}))

    result = asyncio.run(scenario())
    return result.data, [error.formatted for error in result.errors or []], products_backend, orders_backend


def test_the_schema_is_the_one_docs_services_md_publishes() -> None:
    docs = (REPO / "docs" / "services.md").read_text()
    [published] = re.findall(r"```graphql\n(.*?)```", docs, flags=re.DOTALL)[:1]
    assert schema.as_str() + "\n" == published


def test_a_page_answers_every_field_from_the_records() -> None:
    data, errors, products, orders = execute(
        "{ orders(first: 3) { totalCount pageInfo { hasNextPage endCursor } nodes { id customerId status createdAt "
        "currency total items { productId quantity unitPrice product { id name description price currency stock } } } } }")
    assert errors == []
    by_id = {record["id"]: record for record in PRODUCTS_DATA}
    assert data["orders"]["totalCount"] == len(ORDERS)
    assert data["orders"]["pageInfo"] == {"hasNextPage": False, "endCursor": None}
    assert data["orders"]["nodes"] == [{
        "id": order["id"], "customerId": order["customer_id"], "status": order["status"],
        "createdAt": order["created_at"].replace("Z", "+00:00"), "currency": order["currency"], "total": order["total"],
        "items": [{"productId": item["product_id"], "quantity": item["quantity"], "unitPrice": item["unit_price"],
                   "product": by_id[item["product_id"]]} for item in order["items"]],
    } for order in ORDERS[:3]]
    assert (len(orders.calls), len(products.calls)) == (1, 1)


def test_a_page_with_more_products_than_a_batch_asks_in_batches_each_id_once() -> None:
    products = [dict(PRODUCTS_DATA[0], id=f"q{n:04d}") for n in range(MAX_IDS + 50)]
    orders = [dict(ORDERS[n], items=[{"product_id": product["id"], "quantity": 1, "unit_price": "1.00"}
                                     for product in products[n::5]]) for n in range(5)]
    data, errors, backend, _ = execute("{ orders(first: 5) { nodes { items { product { id } } } } }", products, orders)
    assert errors == []
    assert [len(call["ids"].split(",")) for call in backend.calls] == [MAX_IDS, 50]
    asked = [product_id for call in backend.calls for product_id in call["ids"].split(",")]
    assert sorted(asked) == sorted(product["id"] for product in products)
    assert all(item["product"] for node in data["orders"]["nodes"] for item in node["items"])


def test_products_the_query_already_has_are_not_asked_for_again() -> None:
    _, errors, backend, _ = execute('{ products(first: 10) { nodes { id } } product(id: "p003") { name } }')
    assert errors == [] and len(backend.calls) == 1
    first_order = {item["product_id"] for item in ORDERS[0]["items"]}
    aliases = " ".join(f'p{n}: product(id: "{product_id}") {{ id }}' for n, product_id in enumerate(sorted(first_order)))
    _, errors, backend, _ = execute(f"{{ {aliases} order(id: \"{ORDERS[0]['id']}\") {{ items {{ product {{ name }} }} }} }}")
    assert errors == [] and len(backend.calls) == 1


def field(name: str, *selections: Any) -> SelectedField:
    return SelectedField(name=name, directives={}, arguments={}, selections=list(selections))


def test_a_page_knows_whether_its_items_products_are_asked_for_through_fragments_too() -> None:
    path = ("orders", "nodes", "items", "product")
    items = field("items", field("quantity"), InlineFragment("OrderItem", [field("product", field("id"))], {}))
    through_fragments = [field("orders", FragmentSpread("Page", "OrderConnection", {}, [field("nodes", items)]))]
    assert selects(through_fragments, *path)
    assert not selects([field("orders", field("nodes", field("items", field("productId"))))], *path)
    # Only at that path: a `product` elsewhere in the page is not an item's.
    assert not selects([field("orders", field("nodes", field("product")), field("items", field("product")))], *path)


def test_ids_that_cannot_exist_are_not_sent() -> None:
    data, errors, backend, _ = execute('{ a: product(id: "not valid!") { id } b: product(id: "p001") { id } }')
    assert errors == [] and data == {"a": None, "b": {"id": "p001"}}
    assert [call["ids"] for call in backend.calls] == ["p001"]
    data, errors, backend, _ = execute('{ product(id: "not valid!") { id } }')
    assert data == {"product": None} and backend.calls == []


def test_a_failed_products_call_fails_only_the_product_fields() -> None:
    data, errors, backend, _ = execute("{ orders(first: 2) { nodes { id items { quantity product { id } } } } }",
                                       products_fail=True)
    nodes = data["orders"]["nodes"]
    assert [node["id"] for node in nodes] == [order["id"] for order in ORDERS[:2]]
    assert all(item["product"] is None and item["quantity"] > 0 for node in nodes for item in node["items"])
    items = sum(len(order["items"]) for order in ORDERS[:2])
    assert [error["message"] for error in errors] == ["products service unavailable: connection failed"] * items
    assert len(backend.calls) == 1


@pytest.mark.parametrize("breakage", ["missing key", "not a date", "items not a list"])
def test_an_order_record_of_the_wrong_shape_is_the_orders_services_fault(breakage: str) -> None:
    broken = copy.deepcopy(ORDERS[:3])
    if breakage == "missing key":
        del broken[1]["status"]
    elif breakage == "not a date":
        broken[1]["created_at"] = "yesterday"
    else:
        broken[1]["items"] = 5
    data, errors, _, _ = execute("{ orders(first: 3) { nodes { id } } }", orders=broken)
    assert data == {"orders": None}
    assert [(error["message"], error["extensions"]) for error in errors] == [
        ("orders service unavailable: answered with an unexpected shape",
         {"code": "BACKEND_UNAVAILABLE", "backend": "orders"})]


def test_a_product_record_of_the_wrong_shape_fails_the_items_that_show_it() -> None:
    broken = [{key: value for key, value in record.items() if key != "stock"} for record in PRODUCTS_DATA]
    data, errors, _, _ = execute("{ orders(first: 1) { nodes { id items { quantity product { id } } } } }", products=broken)
    assert data["orders"]["nodes"][0]["id"] == ORDERS[0]["id"]
    assert {error["extensions"]["backend"] for error in errors} == {"products"}
    assert [error["path"][-1] for error in errors] == ["product"] * len(ORDERS[0]["items"])


@pytest.mark.parametrize("field_name, value", [
    ("status", {"a": 1}), ("total", "abc"), ("total", True), ("total", "NaN"), ("currency", 5), ("id", 7),
    ("created_at", 20260101),
])
def test_an_order_with_a_value_of_the_wrong_type_is_the_orders_services_fault(field_name, value) -> None:
    orders = [dict(ORDERS[0], **{field_name: value})]
    data, errors, _, _ = execute("{ orders(first: 1) { nodes { id status total currency createdAt } } }",
                                 orders=orders)
    assert data == {"orders": None}
    assert [(e["extensions"]["code"], e["path"]) for e in errors] == [("BACKEND_UNAVAILABLE", ["orders"])], errors


@pytest.mark.parametrize("item_field, value", [("quantity", "many"), ("quantity", True), ("unit_price", [1]),
                                               ("product_id", 17), ("product_id", ["p001"])])
def test_an_order_item_with_a_value_of_the_wrong_type_is_the_orders_services_fault(item_field, value) -> None:
    items = [dict(ORDERS[0]["items"][0], **{item_field: value}), *ORDERS[0]["items"][1:]]
    data, errors, products, _ = execute("{ orders(first: 1) { nodes { items { quantity product { id } } } } }",
                                        orders=[dict(ORDERS[0], items=items)])
    assert data == {"orders": None} and products.calls == []
    assert [(e["extensions"]["code"], e["path"]) for e in errors] == [("BACKEND_UNAVAILABLE", ["orders"])], errors


@pytest.mark.parametrize("field_name, value", [("stock", "lots"), ("stock", 2.5), ("price", {}), ("name", None)])
def test_a_product_with_a_value_of_the_wrong_type_is_the_products_services_fault(field_name, value) -> None:
    products = [dict(record, **{field_name: value}) for record in PRODUCTS_DATA]
    data, errors, _, _ = execute("{ products(first: 2) { nodes { id name price stock } } }", products=products)
    assert data == {"products": None}
    assert [(e["extensions"]["code"], e["path"]) for e in errors] == [("BACKEND_UNAVAILABLE", ["products"])], errors
