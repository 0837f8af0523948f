"""What clients see of errors: the service's own errors as they are, anything unexpected as
"internal error" (its message may carry internals), in process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
for path in (GRAPHQL_SERVICE, GRAPHQL_SERVICE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app.backends import BackendUnavailable  # noqa: E402
from app.schema import ShopContext, schema  # noqa: E402


class FailingBackend:
    def __init__(self, name: str, error: Exception) -> None:
        self.name = name
        self.error = error

    async def get(self, path: str, params: dict, headers: dict) -> dict:
        raise self.error


class OneOrderBackend:
    name = "orders"

    async def get(self, path: str, params: dict, headers: dict) -> dict:
        item = {"product_id": "p001", "quantity": 2, "unit_price": "1.50"}
        order = {"id": "o0001", "customer_id": "c001", "status": "paid", "created_at": "2026-01-01T00:00:00Z",
                 "currency": "EUR", "total": "3.00", "items": [item]}
        return {"items": [order], "next_cursor": None, "total": 1}


def result_of(query: str, products: object, orders: object) -> tuple[dict | None, list[dict]]:
    async def scenario() -> tuple[dict | None, list[dict]]:
        result = await schema.execute(query, context_value=ShopContext(products, orders, {}))
        return result.data, [error.formatted for error in result.errors or []]

    return asyncio.run(scenario())


def errors_of(query: str, error: Exception) -> list[dict]:
    return result_of(query, FailingBackend("products", error), FailingBackend("orders", error))[1]


@pytest.mark.parametrize("query", ['{ orders(first: 2) { totalCount } }', '{ product(id: "p001") { name } }'])
def test_an_unexpected_error_reaches_the_client_as_internal_error(query: str, caplog: pytest.LogCaptureFixture) -> None:
    errors = errors_of(query, RuntimeError("connect to secret-host.internal:5432 failed"))
    assert [error["message"] for error in errors] == ["internal error"]
    assert "secret-host" not in repr(errors)
    assert "secret-host" in caplog.text, "the details go to the log"


def test_the_services_own_errors_reach_the_client_as_they_are() -> None:
    errors = errors_of("{ orders(first: 2) { totalCount } }", BackendUnavailable("orders", "connection failed"))
    assert [error["message"] for error in errors] == ["orders service unavailable: connection failed"]
    assert errors[0]["extensions"] == {"code": "BACKEND_UNAVAILABLE", "backend": "orders"}


def test_validation_errors_are_not_masked() -> None:
    errors = errors_of("{ orders(first: 2) { nope } }", RuntimeError("unused"))
    assert len(errors) == 1 and "nope" in errors[0]["message"]


def test_an_unexpected_error_loading_a_pages_products_keeps_the_orders() -> None:
    data, errors = result_of("{ orders(first: 1) { nodes { id items { quantity product { name } } } } }",
                             FailingBackend("products", RuntimeError("secret-host.internal")), OneOrderBackend())
    assert data == {"orders": {"nodes": [{"id": "o0001", "items": [{"quantity": 2, "product": None}]}]}}
    assert [(error["path"], error["message"]) for error in errors] == [
        (["orders", "nodes", 0, "items", 0, "product"], "internal error")]
