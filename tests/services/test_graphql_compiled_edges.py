"""What adversarial reviews of the compiled queries (app/compiled.py) found, 26 Nov: a request
cancelled while its products are fetched, errors nobody shows kept in reference cycles, and a
fallback that showed errors graphql-core's own run does not. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import collections
import copy
import gc
from typing import Any

import pytest

from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA
from tests.services.test_graphql_execution import (
    COMPILED,
    PLANNED,
    REFERENCE,
    FakeBackend,
    ShopContext,
    _count_field_executions,
    _with_totals,
    assert_same,
    schema_module,
)
from tests.services.test_graphql_memory import REQUEST_TYPES, garbage_left_by

ORDERS = _with_totals(ORDERS_DATA)
# Products selected but not shown: the resolver and the compiled query still fetch them.
SKIPPED_PRODUCTS = "query($p: Boolean!) { orders(first: 3) { nodes { id items { product @include(if: $p) { id } } } } }"


def _orders_with_a_float_quantity() -> list[dict]:
    """graphql-core answers quantity 2.0 as 2 without an error; the compiled query gives up on it
    (after starting the products fetch), so graphql-core answers over the recorded answers."""
    orders = copy.deepcopy(ORDERS)
    orders[0]["items"][0]["quantity"] = 2.0
    return orders


class HangingProducts(FakeBackend):
    """A products service that does not answer until the call is cancelled."""

    async def get(self, path: str, params: dict, headers: dict) -> dict:
        self.calls.append((self.name, path, tuple(sorted(params.items()))))
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def _cancelled_while_products_pending(schema: Any) -> tuple[str, int]:
    """Cancels the request once the products call is out; what the request did, and how many
    products calls were made in all."""
    query = "{ orders(first: 3) { nodes { id items { quantity product { id } } } } }"
    calls: list[tuple] = []

    async def scenario() -> str:
        context = ShopContext(HangingProducts("products", PRODUCTS_DATA, calls=calls),
                              FakeBackend("orders", _orders_with_a_float_quantity(), calls=calls), {})
        task = asyncio.ensure_future(schema.execute(query, context_value=context))
        for _ in range(50):
            await asyncio.sleep(0)
            if any(call[0] == "products" for call in calls):
                break
        for _ in range(5):
            await asyncio.sleep(0)  # the request is now waiting for the products answer
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=0.5)
        if not done:
            task.cancel()  # the second cancellation reaches it
            await asyncio.wait({task}, timeout=0.5)
            return "still running after cancel"
        return "cancelled" if task.cancelled() else "answered"

    outcome = asyncio.run(scenario())
    return outcome, sum(call[0] == "products" for call in calls)


def test_a_cancelled_request_is_cancelled_while_the_compiled_attempt_waits_for_products() -> None:
    # compiled.py, QueryCompiler.run -> _settle: the request's cancellation reaches the awaited
    # fetch task first, so fetch.cancelled() is True and _settle swallows the CancelledError as
    # "the fetch's"; run then re-raises Irregular, _run_compiled falls back, and graphql-core
    # calls the products service a second time (nothing was recorded) and waits for it.
    reference = _cancelled_while_products_pending(REFERENCE)
    assert reference == ("cancelled", 1)
    assert _cancelled_while_products_pending(COMPILED) == reference


class CancelledOnAnswer(FakeBackend):
    """An orders service whose answer arrives just as the request is cancelled."""

    task: asyncio.Task | None = None

    async def get(self, path: str, params: dict, headers: dict) -> dict:
        page = await super().get(path, params, headers)
        asyncio.get_running_loop().call_soon(self.task.cancel)  # type: ignore[union-attr]
        return page


def _unretrieved_after_cancel(schema: Any) -> tuple[str, list[str]]:
    query = "{ orders(first: 3) { nodes { id items { product { id } } } } }"
    reported: list[str] = []

    async def scenario() -> str:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, report: reported.append(report["message"]))
        orders = CancelledOnAnswer("orders", ORDERS)
        context = ShopContext(FakeBackend("products", PRODUCTS_DATA, fail=True), orders, {})
        task = orders.task = asyncio.ensure_future(schema.execute(query, context_value=context))
        try:
            await task
            outcome = "answered"
        except asyncio.CancelledError:
            outcome = "cancelled"
        del task, orders, context
        await asyncio.sleep(0.01)  # the products fetch ends
        gc.collect()
        return outcome

    return asyncio.run(scenario()), reported


def test_a_request_cancelled_as_its_products_fetch_starts_leaves_no_unretrieved_task_exception() -> None:
    # compiled.py, QueryCompiler.run: `await asyncio.sleep(0)` after ensure_future(fetch) is
    # outside the try whose handlers cancel or settle the fetch. A cancellation there leaves
    # the fetch running unowned; when it fails, asyncio logs "Task exception was never
    # retrieved". (The resolver has that sleep inside its try and cancels the fetch.)
    assert _unretrieved_after_cancel(REFERENCE) == ("cancelled", [])
    assert _unretrieved_after_cancel(COMPILED) == ("cancelled", [])


def _garbage(schema: Any, query: str, variables: dict | None, orders: list[dict],
             products_backend: type = FakeBackend) -> collections.Counter:
    async def once() -> None:
        context = ShopContext(products_backend("products", PRODUCTS_DATA, fail=True), FakeBackend("orders", orders), {})
        result = await schema.execute(query, variable_values=variables, context_value=context)
        assert result.data is not None, result.errors
        await asyncio.sleep(0.01)  # the products fetch nobody waits for ends

    return garbage_left_by(once)


def test_a_failed_products_fetch_nobody_shows_leaves_no_request_data_in_a_cycle() -> None:
    # The compiled query answers (the products are not shown) while its products fetch fails.
    # Recording.get stores the backend's exception in self.answers and raises it; its
    # traceback then holds Recording.get's frame, i.e. the Recording (and with it every answer
    # of the request, the orders page too): Recording -> answers -> error -> traceback -> frame
    # -> Recording. Nothing clears that traceback when no fallback reports the error.
    assert _count_field_executions(COMPILED, SKIPPED_PRODUCTS, {"p": False}) == 0
    garbage = _garbage(COMPILED, SKIPPED_PRODUCTS, {"p": False}, ORDERS)
    assert not REQUEST_TYPES & set(garbage), garbage.most_common(10)


def test_a_failed_products_fetch_of_several_batches_nobody_shows_leaves_no_request_data_in_a_cycle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The same through _fetch_products' gather (return_exceptions): each batch's error keeps
    # its Recording.get frame, and the fetch's frame keeps the list of errors.
    monkeypatch.setattr(schema_module, "MAX_IDS", 3)
    monkeypatch.setattr(schema_module, "SHOP_MODEL", schema_module.SHOP_MODEL._replace(max_batch=3))
    compiling = schema_module.build_schema()
    garbage = _garbage(compiling, SKIPPED_PRODUCTS, {"p": False}, ORDERS)
    assert not REQUEST_TYPES & set(garbage), garbage.most_common(10)


# Quantity selected: with _orders_with_a_float_quantity the compiled query gives up (after its
# products fetch failed) and graphql-core answers; the products are still not shown.
SKIPPED_PRODUCTS_WITH_QUANTITY = """query($p: Boolean!) {
    orders(first: 3) { nodes { id items { quantity product @include(if: $p) { id } } } } }"""


@pytest.mark.parametrize("schema", [COMPILED, PLANNED], ids=["compiled (falls back)", "planned"])
def test_a_fallback_whose_products_errors_nobody_shows_leaves_no_loader_in_a_cycle(schema: Any) -> None:
    # schema.py, _fetch_products (the resolver's, which the compiled query's fallback runs):
    # `except Exception as error: answers = [error]` keeps the error in the frame its own
    # traceback holds, with the loader; only a reported field error (process_errors) ever
    # clears that traceback. With the products not shown, nothing does.
    orders = _orders_with_a_float_quantity()
    garbage = _garbage(schema, SKIPPED_PRODUCTS_WITH_QUANTITY, {"p": False}, orders)
    assert garbage["DataLoader"] == garbage["ProductCache"] == 0, garbage.most_common(12)


# graphql-core's own run leaves the completions of the page it nulled unawaited (REFERENCE alone
# does it); asyncio.run reports them as it closes the loop.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("products_fail", [False, True], ids=["a product with a null name", "products service down"])
def test_a_compiled_query_that_gives_up_shows_the_errors_graphql_core_shows(products_fail: bool) -> None:
    """The out-of-range quantity in the second order nulls the page. graphql-core's own run gets
    there while the products are still being fetched, so no error of a product is shown. The
    compiled attempt gives up on the quantity after the products fetch has ended; the fallback,
    given the recorded answers at once, used to complete the first order's products before the
    second order's quantity and show their errors too."""
    products, orders = copy.deepcopy(PRODUCTS_DATA), copy.deepcopy(ORDERS)
    if not products_fail:
        shown = next(product for product in products if product["id"] == orders[0]["items"][0]["product_id"])
        shown["name"] = None  # Product.name is String!: an error where it is shown
    orders[1]["items"][0]["quantity"] = 2**40  # Int!: an error that nulls the page
    data, errors = assert_same("{ orders(first: 2) { nodes { items { quantity product { name } } } } }",
                               products=products, orders=orders, products_fail=products_fail)
    assert data == {"orders": None}
    assert [(message, path) for message, path, _locations in errors] == [
        ("Int cannot represent non 32-bit signed integer value: 1099511627776", ("orders", "nodes", 1, "items", 0, "quantity"))]
