"""Divergences from graphql-core's own executor that an adversarial review of app/execution.py's
cross-request plans found; each test failed before its fix."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest
import strawberry
from graphql import GraphQLSchema, GraphQLStreamDirective, build_schema as build_sdl, parse, specified_directives
from graphql import experimental_execute_incrementally
from graphql.execution.incremental import IncrementalExecutor
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.config import StrawberryConfig

from tests.services.test_graphql_execution import PLANNED, REFERENCE, _with_totals
from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA
from app import execution  # noqa: E402 - on sys.path through the import above


@pytest.fixture(autouse=True)
def _fresh_plan_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution.PlannedExecutionContext, "_plans", execution.OrderedDict())
    monkeypatch.setattr(execution, "_directive_variables", execution.OrderedDict())


# 1. Two operations of one document share a fragment; the plan key held the directive
#    variables' VALUES by position in a sorted name list that differs per operation
#    (A: (a, y), B: (y, z)), so A's plan for the fragment's nodes was served to B.

SHARED_FRAGMENT_DOCUMENT = """
query A($a: Boolean!, $y: Boolean!) { orders(first: 2) { nodes { id @include(if: $a) ...F } } }
query B($y: Boolean!, $z: Boolean!) { orders(first: 2) { nodes { id @include(if: $z) ...F } } }
fragment F on Order { items { quantity unitPrice @include(if: $y) } }
"""


def _run_operation(schema: strawberry.Schema, operation: str, variables: dict) -> tuple:
    from tests.services.test_graphql_execution import FakeBackend, ShopContext

    async def execute() -> tuple:
        context = ShopContext(FakeBackend("products", PRODUCTS_DATA), FakeBackend("orders", _with_totals(ORDERS_DATA)), {})
        result = await schema.execute(SHARED_FRAGMENT_DOCUMENT, variable_values=variables,
                                      context_value=context, operation_name=operation)
        return result.data, result.errors

    return asyncio.run(execute())


def test_operations_sharing_a_fragment_get_each_others_plans() -> None:
    for schema in (PLANNED, REFERENCE):
        assert _run_operation(schema, "A", {"a": False, "y": True})[1] is None
    planned = _run_operation(PLANNED, "B", {"y": False, "z": True})
    reference = _run_operation(REFERENCE, "B", {"y": False, "z": True})
    # before the fix: items [{'quantity': 2, 'unitPrice': '…'}] although $y is false
    assert planned == reference


# 2. @defer(if: $d): $d was not part of the key (only @include/@skip variables were), so a
#    plan built with $d=false (nothing deferred) completed the deferred fields inline later.

@strawberry.type
class Leaf:
    name: str
    code: str


@strawberry.type
class Tree:
    name: str
    size: int
    leaves: list[Leaf]


@strawberry.type
class Query:
    @strawberry.field
    def tree(self) -> Tree:
        return Tree(name="t", size=1, leaves=[Leaf(name="a", code="c")])


def _schemas(**kwargs) -> tuple[strawberry.Schema, strawberry.Schema]:
    extensions = [*kwargs.pop("extensions", []), lambda: ParserCache(maxsize=16)]
    return (strawberry.Schema(query=Query, extensions=extensions,
                              execution_context_class=execution.PlannedExecutionContext, **kwargs),
            strawberry.Schema(query=Query, extensions=extensions, **kwargs))


async def _stream(schema: strawberry.Schema, query: str, variables: dict | None = None) -> list:
    return [getattr(frame, "formatted", None) or (frame.data, frame.errors)
            async for frame in await schema.stream(query, variable_values=variables)]


def test_defer_if_variable_is_not_part_of_the_plan_key() -> None:
    planned, reference = _schemas(config=StrawberryConfig(enable_experimental_incremental_execution=True))
    query = "query($d: Boolean!) { tree { leaves { name ... @defer(if: $d) { code } } } }"
    for schema in (planned, reference):
        asyncio.run(_stream(schema, query, {"d": False}))
    # before the fix: [({'tree': {'leaves': [{'name': 'a', 'code': 'c'}]}}, None)] - nothing deferred
    assert asyncio.run(_stream(planned, query, {"d": True})) == asyncio.run(_stream(reference, query, {"d": True}))


# 3. Fragment arguments (graphql-core's experimental parser option): the fields of
#    `...F(x: $show)` were planned with the value of $show, which was not in the key.

class FragmentArguments(SchemaExtension):
    def on_operation(self):  # type: ignore[no-untyped-def]
        self.execution_context.parse_options["experimental_fragment_arguments"] = True
        yield


def test_fragment_argument_variables_are_not_part_of_the_plan_key() -> None:
    planned, reference = _schemas(extensions=[FragmentArguments])
    query = """query($show: Boolean!) { tree { size ...F(x: $show) } }
               fragment F($x: Boolean!) on Tree { name @include(if: $x) }"""
    results = []
    for schema in (planned, reference):
        first = schema.execute_sync(query, variable_values={"show": True})
        second = schema.execute_sync(query, variable_values={"show": False})
        results.append(((first.data, first.errors), (second.data, second.errors)))
    # planned second: {'tree': {'size': 1, 'name': 't'}}; reference: {'tree': {'size': 1}}
    assert results[0] == results[1]


# 4. _drop_self_references: items of a @stream are completed after execute_operation has
#    returned, by sub-executors copied from the main executor, whose async_helpers was
#    None; a nested abstract field with an async is_type_of then failed in graphql-core's
#    default_type_resolver (info.async_helpers.gather).

STREAM_SDL = """
interface Named { name: String }
type Pet implements Named { name: String friend: Named }
type Query { items: [Named] }
"""


def _stream_schema() -> GraphQLSchema:
    parsed = build_sdl(STREAM_SDL)

    async def is_pet(_value, _info) -> bool:
        return True

    pet = parsed.get_type("Pet")
    pet.is_type_of = is_pet
    return GraphQLSchema(query=parsed.query_type, types=[pet], directives=[*specified_directives, GraphQLStreamDirective])


async def _execute_incrementally(schema: GraphQLSchema, executor_class: type) -> list:
    result = experimental_execute_incrementally(
        schema, parse("{ items @stream(initialCount: 0) { name ... on Pet { friend { name } } } }"),
        root_value={"items": [{"name": "a", "friend": {"name": "b"}}]}, executor_class=executor_class)
    if asyncio.iscoroutine(result):
        result = await result
    frames = [result.initial_result.formatted]
    async for frame in result.subsequent_results:
        frames.append(frame.formatted)
    return frames


def test_streamed_items_keep_async_helpers() -> None:
    schema = _stream_schema()
    planned = asyncio.run(_execute_incrementally(schema, execution.PlannedExecutionContext))
    reference = asyncio.run(_execute_incrementally(schema, IncrementalExecutor))
    # before the fix: friend None, error "'NoneType' object has no attribute 'gather'"
    assert planned == reference


@strawberry.type
class HelperLeaf:
    name: str

    @strawberry.field
    def helpers(self, info: strawberry.Info) -> bool:
        return info._raw_info.async_helpers is not None


@strawberry.type
class HelperQuery:
    @strawberry.field
    def leaves(self) -> list[HelperLeaf]:
        return [HelperLeaf(name="a"), HelperLeaf(name="b")]


def test_streamed_items_resolvers_see_async_helpers() -> None:
    config = StrawberryConfig(enable_experimental_incremental_execution=True)
    planned = strawberry.Schema(query=HelperQuery, config=config, execution_context_class=execution.PlannedExecutionContext)
    reference = strawberry.Schema(query=HelperQuery, config=config)
    query = "{ leaves @stream(initialCount: 1) { name helpers } }"
    # before the fix: the streamed item has helpers False
    assert asyncio.run(_stream(planned, query)) == asyncio.run(_stream(reference, query))


# 5. The class-level OrderedDict is used from several threads when Strawberry runs sync
#    executions in a thread pool: between plans.get(key) and plans.move_to_end(key) another
#    thread could evict the key, and the KeyError became a field error in the response.

def test_plan_cache_is_safe_under_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "MAX_CACHED_PLANS", 2)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    schema = _schemas()[0]
    documents = [f"{{ tree {{ leaves {{ name a{index}: name }} }} }}" for index in range(8)]
    errors: list[str] = []

    def worker(offset: int) -> None:
        for index in range(600):
            if errors:
                return
            result = schema.execute_sync(documents[(index + offset) % len(documents)])
            if result.errors:
                errors.append(result.errors[0].message)
                return

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert errors == []  # before the fix: KeyError: (<GraphQLObjectType 'Leaf'>, ..., 1400...)


# 6. A client's own bad variable makes planning fail the way graphql-core then fails: the client
#    gets graphql-core's error, and the service logs no planner error (a client could otherwise
#    fill the error log with tracebacks).

def test_a_variable_graphql_core_rejects_logs_no_planner_error(caplog: pytest.LogCaptureFixture) -> None:
    from tests.services.test_graphql_execution import assert_same

    query = "query($c: Boolean = true) { orders(first: 2) { nodes { id status @include(if: $c) } } }"
    with caplog.at_level("DEBUG", logger="graphql.execution"):
        data, errors = assert_same(query, {"c": None})
    assert errors
    assert not [record for record in caplog.records if record.levelname == "ERROR"], caplog.text
