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


def errors_of(query: str, error: Exception) -> list[dict]:
    async def scenario() -> list[dict]:
        context = ShopContext(FailingBackend("products", error), FailingBackend("orders", error), {})
        result = await schema.execute(query, context_value=context)
        return [error.formatted for error in result.errors or []]

    return asyncio.run(scenario())


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
