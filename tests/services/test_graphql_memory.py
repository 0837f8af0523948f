"""A query's objects are freed when it ends, by reference counting, not left to the cycle collector.

Under load, a request's objects outlive several young-generation collections and are
promoted; any of them caught in a reference cycle then waits for a full collection. With the
request context and graphql-core's execution context in cycles, each full collection freed
tens of thousands of objects and paused the GraphQL service for 15-60 ms, which was most of
its p99 latency at 32 clients. What remains per query (a few small closures inside
Strawberry) is bounded here, so that a new cycle that holds request data fails a test.
"""

from __future__ import annotations

import asyncio
import collections
import gc
from collections.abc import Awaitable, Callable

import pytest
import strawberry

from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA
from tests.services.test_graphql_execution import (
    COMPILED,
    PLANNED,
    QUERIES,
    TREE_CONFIG,
    FakeBackend,
    execution,
    ShopContext,
    Waiting,
    _with_totals,
)

# Instances of these carry request data: none may be left to the cycle collector.
REQUEST_TYPES = {"ShopContext", "DataLoader", "DefaultCache", "Future", "Task", "Product", "Order", "OrderItem",
                 "ProductConnection", "OrderConnection", "PlannedExecutionContext", "FakeBackend", "Recording",
                 "CompiledQuery"}
# The service's schema (queries compiled) and the same without compiling (planned execution).
SCHEMAS = pytest.mark.parametrize("schema", [COMPILED, PLANNED], ids=["compiled", "planned"])
# Measured: about 14 objects per query (closures inside Strawberry); the request context's
# cycle alone left about 100 and graphql-core's execution context about 270.
MAX_CYCLIC_OBJECTS_PER_QUERY = 30
REPEAT = 10


def cyclic_garbage(schema: strawberry.Schema, query: str, variables: dict | None, products_fail: bool = False,
                   ) -> collections.Counter:
    """Types and counts of what REPEAT executions of the query leave to the cycle collector."""
    orders = _with_totals(ORDERS_DATA)

    async def once() -> None:
        context = ShopContext(FakeBackend("products", PRODUCTS_DATA, products_fail), FakeBackend("orders", orders), {})
        result = await schema.execute(query, variable_values=variables, context_value=context)
        assert result.data is not None, result.errors

    return garbage_left_by(once)


def garbage_left_by(once: Callable[[], Awaitable[None]]) -> collections.Counter:
    """Types and counts of what REPEAT calls of `once` leave to the cycle collector."""

    async def measure() -> collections.Counter:
        await once()  # parser, validation and schema caches filled before counting
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(REPEAT):
                await once()
            gc.collect()
            return collections.Counter(type(thing).__name__ for thing in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    was_enabled = gc.isenabled()
    gc.disable()  # only the explicit collections above may run
    try:
        return asyncio.run(measure())
    finally:
        if was_enabled:
            gc.enable()


# graphql-core completes a query without async resolvers synchronously: the other path out.
CASES = {**QUERIES, "typename only (completed synchronously)": ("{ __typename }", None)}


@SCHEMAS
@pytest.mark.parametrize("name", list(CASES))
def test_a_query_leaves_no_request_data_to_the_cycle_collector(name: str, schema: strawberry.Schema) -> None:
    query, variables = CASES[name]
    garbage = cyclic_garbage(schema, query, variables)
    assert not REQUEST_TYPES & set(garbage), garbage
    assert sum(garbage.values()) <= MAX_CYCLIC_OBJECTS_PER_QUERY * REPEAT, garbage.most_common(10)


@SCHEMAS
def test_a_failed_backend_leaves_no_request_data_to_the_cycle_collector(schema: strawberry.Schema) -> None:
    # Compiled: the attempt gives up, and graphql-core answers over the recorded answers.
    query, variables = QUERIES["representative"]
    garbage = cyclic_garbage(schema, query, variables, products_fail=True)
    assert not REQUEST_TYPES & set(garbage), garbage.most_common(10)
    assert sum(garbage.values()) <= MAX_CYCLIC_OBJECTS_PER_QUERY * REPEAT, garbage.most_common(10)


def test_items_of_a_failed_batch_do_not_pile_up_each_others_frames() -> None:
    # Every item of a failed products batch raises the same error object; each raise must start
    # a fresh traceback, or the n-th item's error would carry the frames of the n-1 before it.
    from app.backends import BackendUnavailable
    from app.schema import OrderItem, PageProduct

    shared = BackendUnavailable("products", "connection failed")
    ids = [f"p{number:03d}" for number in range(5)]

    async def scenario() -> list[int]:
        fetch = asyncio.get_running_loop().create_future()
        fetch.set_result(dict.fromkeys(ids, shared))
        items = [OrderItem(product_id=product_id, quantity=1, unit_price="1.00", page_product=PageProduct(fetch, product_id))
                 for product_id in ids]
        depths = []
        for item in items:
            with pytest.raises(BackendUnavailable) as raised:
                item.product()
            depths.append(len(list(_frames(raised.value.__traceback__))))
        return depths

    depths = asyncio.run(scenario())
    assert depths == [depths[0]] * len(ids)


def _frames(traceback):
    while traceback is not None:
        yield traceback.tb_frame
        traceback = traceback.tb_next


@strawberry.type
class CancelledQuery:
    @strawberry.field
    async def waiting(self) -> list[Waiting]:
        loop = asyncio.get_running_loop()
        gates = [loop.create_future() for _ in range(2)]
        for gate in gates:
            loop.call_later(0.001, gate.cancel)
        return [Waiting(gate=gate, later=gate) for gate in gates]  # type: ignore[arg-type]


def test_a_cancelled_pending_value_ends_the_request_and_leaves_no_cycle() -> None:
    # Found by review: a cancellation (a BaseException) skipped the holes' cleanup, leaving
    # each hole and its result dict in a cycle with the pending value.
    def garbage_of(execution_context_class: type | None) -> tuple[list[str], collections.Counter]:
        schema = strawberry.Schema(query=CancelledQuery, config=TREE_CONFIG, execution_context_class=execution_context_class)
        outcomes: list[str] = []

        async def once() -> None:
            try:
                await schema.execute("{ waiting { seen later { name } } }")
                outcomes.append("answered")
            except asyncio.CancelledError:
                outcomes.append("cancelled")

        return outcomes, garbage_left_by(once)

    planned_outcomes, planned = garbage_of(execution.PlannedExecutionContext)
    reference_outcomes, reference = garbage_of(None)
    assert planned_outcomes == reference_outcomes == ["cancelled"] * (REPEAT + 1)
    assert reference["Future"] == 0
    assert (planned["_Hole"], planned["Future"]) == (0, 0), planned.most_common(8)
