"""ShopSchema runs a valid query directly on graphql-core, skipping Strawberry's extension
pipeline (app/schema.py). It must answer exactly as that pipeline does with the same
extensions: the same data, errors, masking and logged errors, for every kind of request.
In process, with fake backends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA
from tests.services.test_graphql_execution import QUERIES, REPRESENTATIVE, FakeBackend, _with_totals

from app import schema as shop  # noqa: E402 - on sys.path through test_graphql_execution
from app.compiled import QueryCompiler
from app.guards import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS

DIRECT = shop.build_schema()


class Passive(SchemaExtension):
    """Does nothing; its presence alone must send every request through Strawberry's pipeline."""

    def on_operation(self) -> Iterator[None]:
        Passive.operations += 1
        yield

    operations = 0


def went_through_strawberry(schema: shop.ShopSchema, query: str, **kwargs: Any) -> bool:
    """Whether Strawberry's execute (the pipeline) answered the request."""
    calls = []
    original = strawberry.Schema.execute

    async def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(True)
        return await original(*args, **kwargs)

    strawberry.Schema.execute = recording  # type: ignore[method-assign]
    try:
        execute(schema, query, **kwargs)
    except Exception:  # noqa: BLE001, S110 - raised for the view: the calls are what is asked
        pass
    finally:
        strawberry.Schema.execute = original  # type: ignore[method-assign]
    return bool(calls)


# The same schema, through Strawberry's pipeline with the same extensions plus one that
# changes nothing: the reference the direct path is held to.
PIPELINE = shop.ShopSchema(query=shop.Query, execution_context_class=shop.PlannedExecutionContext,
                           extensions=[*shop.REQUEST_EXTENSIONS, Passive])


class Exploding(FakeBackend):
    async def get(self, path: str, params: dict, headers: dict) -> dict:
        raise RuntimeError("connect to secret-host.internal:5432 failed")


def execute(schema: shop.ShopSchema, query: str, *, variables: dict | None = None, operation_name: str | None = None,
            allowed: frozenset | None = None, orders: FakeBackend | None = None) -> tuple[dict, list[str]]:
    """The result as the view sends it, and what was logged at each level."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    async def scenario() -> Any:
        context = shop.ShopContext(FakeBackend("products", PRODUCTS_DATA),
                                   orders or FakeBackend("orders", _with_totals(ORDERS_DATA)), {})
        return await schema.execute(query, variable_values=variables, context_value=context,
                                    operation_name=operation_name, allowed_operation_types=allowed)

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("graphql")
    logger.addHandler(handler)
    try:
        result = asyncio.run(scenario())
    finally:
        logger.removeHandler(handler)
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [error.formatted for error in result.errors]
    answer["extensions"] = result.extensions
    logged = [f"{record.levelname} {record.getMessage()} {getattr(record, 'path', None)} "
              f"{getattr(record, 'error', None)} {record.exc_info[1] if record.exc_info else None}" for record in records]
    return answer, logged


def assert_same_as_pipeline(query: str, **kwargs: Any) -> dict:
    direct = execute(DIRECT, query, **kwargs)
    before = Passive.operations
    assert direct == execute(PIPELINE, query, **kwargs)
    assert Passive.operations == before + 1, "the reference went through Strawberry's pipeline"
    return direct[0]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_valid_queries_run_directly_and_answer_as_strawberrys_pipeline(name: str) -> None:
    query, variables = QUERIES[name]
    assert not went_through_strawberry(DIRECT, query, variables=variables)
    answer = assert_same_as_pipeline(query, variables=variables)
    assert "errors" not in answer


DEEP = "{ orders { nodes { items { product { id } } } } }"
for _ in range(MAX_DEPTH):
    DEEP = "{ orders { nodes { items { product { id " + DEEP[1:-1] + " } } } } }"

REQUESTS = {
    "syntax error": ("{ orders {", {}),
    "unknown field": ("{ orders { nodes { nope } } }", {}),
    "too deep": (DEEP, {}),
    "too many aliases": ("{ " + " ".join(f"a{index}: product(id: \"p001\") {{ id }}" for index in range(MAX_ALIASES + 1)) + " }", {}),
    "too many tokens": ("{ " + "__typename " * (MAX_TOKENS + 1) + "}", {}),
    "fragment bomb": ("{ orders { nodes { ...F0 } } } " + " ".join(
        f"fragment F{index} on Order {{ ...F{index + 1} ...F{index + 1} }}" for index in range(12)
    ) + " fragment F12 on Order { id }", {}),
    "two operations, no name": ("query A { product(id: \"p001\") { id } } query B { order(id: \"o0001\") { id } }", {}),
    "two operations, one named": ("query A { product(id: \"p001\") { id } } query B { order(id: \"o0001\") { id } }",
                                  {"operation_name": "B"}),
    "variables": ("query($id: ID!, $first: Int!) { product(id: $id) { id name } orders(first: $first) { totalCount } }",
                  {"variables": {"id": "p002", "first": 3}}),
    "a missing variable": ("query($id: ID!) { product(id: $id) { id } }", {"variables": {}}),
    "a variable of the wrong type": ("query($first: Int!) { orders(first: $first) { totalCount } }",
                                     {"variables": {"first": "many"}}),
    "a bad argument (the service's own error)": ("{ orders(first: 0) { totalCount } }", {}),
    "a bad cursor": ('{ orders(after: "") { totalCount } }', {}),
    "a backend failing unexpectedly (masked)": ("{ orders(first: 2) { totalCount } product(id: \"p001\") { id } }",
                                                {"orders": Exploding("orders", [])}),
    "introspection": ("{ __schema { queryType { name } types { name kind } } }", {}),
    "a fragment chain deeper than the limit": ("{ ...F0 } " + " ".join(
        f"fragment F{index} on Query {{ ...F{index + 1} }}" for index in range(246)
    ) + " fragment F246 on Query { __typename }", {}),
    "a mutation, which this schema has none of": ("mutation { nope }", {}),
}


# Valid, with an operation to run: the rest (whose errors and exceptions are Strawberry's
# to give) must reach Strawberry's pipeline.
RUN_DIRECTLY = {"two operations, one named", "variables", "a missing variable", "a variable of the wrong type",
                "a bad argument (the service's own error)", "a bad cursor",
                "a backend failing unexpectedly (masked)", "introspection"}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_kind_of_request_answers_as_strawberrys_pipeline(name: str) -> None:
    query, kwargs = REQUESTS[name]
    assert went_through_strawberry(DIRECT, query, **kwargs) == (name not in RUN_DIRECTLY)
    assert_same_as_pipeline(query, **kwargs)


def test_unexpected_errors_stay_masked_and_logged_on_the_direct_path() -> None:
    answer, logged = execute(DIRECT, "{ orders(first: 2) { totalCount } }", orders=Exploding("orders", []))
    assert [error["message"] for error in answer["errors"]] == ["internal error"]
    assert "secret-host" not in repr(answer)
    assert any(line.startswith("ERROR resolver failed") and "secret-host" in line for line in logged)


@pytest.mark.parametrize(("operation", "allowed"), [
    ("query", frozenset({strawberry.types.graphql.OperationType.MUTATION})),
    ("mutation", frozenset({strawberry.types.graphql.OperationType.QUERY})),
    ("subscription", None),
])
def test_operations_it_may_not_run_go_to_strawberry(operation: str, allowed: frozenset | None) -> None:
    """Strawberry raises these for the view to turn into HTTP errors; the direct path must
    not run them, nor answer them differently."""
    query = f"{operation} {{ __typename }}"

    def outcome(schema: shop.ShopSchema) -> str:
        try:
            return repr(execute(schema, query, allowed=allowed)[0])
        except Exception as error:  # noqa: BLE001 - the exception is the outcome compared
            return f"raised {type(error).__name__}: {error}"

    assert outcome(DIRECT) == outcome(PIPELINE)


def test_the_direct_path_serves_valid_queries_and_no_other_extension_is_skipped() -> None:
    calls: list[str] = []

    class Recording(SchemaExtension):
        def on_execute(self) -> Iterator[None]:
            calls.append("execute")
            yield

    plain = shop.build_schema()
    assert plain._runs_directly
    for extended in (
        shop.ShopSchema(query=shop.Query, extensions=[*shop.REQUEST_EXTENSIONS, Recording]),
        shop.ShopSchema(query=shop.Query, extensions=[Recording, *shop.REQUEST_EXTENSIONS]),
        shop.ShopSchema(query=shop.Query, extensions=[shop.REQUEST_EXTENSIONS[0], Recording]),
    ):
        assert not extended._runs_directly
        calls.clear()
        execute(extended, REPRESENTATIVE)
        assert calls == ["execute"], "an added extension runs for every request"
    assert not shop.ShopSchema(query=shop.Query, extensions=list(shop.REQUEST_EXTENSIONS),
                               config=strawberry.schema.config.StrawberryConfig(
                                   enable_experimental_incremental_execution=True))._runs_directly


def test_the_representative_query_runs_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("went through Strawberry's pipeline")

    monkeypatch.setattr(strawberry.Schema, "execute", refuse)
    answer, logged = execute(DIRECT, REPRESENTATIVE)
    assert "errors" not in answer and len(answer["data"]["orders"]["nodes"]) == 20
    assert logged == []


def test_an_exception_out_of_execution_is_an_error_result_masked_and_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """graphql-core turns resolver errors into field errors; anything raised by execution
    itself (a bug in the planned executor) must still not become a 500, nor show its text."""
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("planner state at secret-host.internal")

    monkeypatch.setattr(shop, "execute", broken)
    # A query the service would compile runs on graphql-core here: this is about that path.
    answer, logged = execute(shop.build_schema(compile_queries=False), REPRESENTATIVE)
    assert answer["data"] is None and [error["message"] for error in answer["errors"]] == ["internal error"]
    assert "secret-host" not in repr(answer)
    assert any(line.startswith("ERROR resolver failed") and "secret-host" in line for line in logged)


@pytest.mark.parametrize("stage", ["compile", "run"])
def test_a_compiled_query_that_fails_unexpectedly_is_answered_by_graphql_core(stage: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the query compiler (app/compiled.py) costs the client nothing: graphql-core
    answers, with the backends' answers the compiled attempt got (nothing is asked twice)."""
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("compiler state")

    monkeypatch.setattr(QueryCompiler, "_compile" if stage == "compile" else "_fill_products", broken)
    orders = FakeBackend("orders", _with_totals(ORDERS_DATA))
    answer, logged = execute(shop.build_schema(), REPRESENTATIVE, orders=orders)
    assert answer == execute(PIPELINE, REPRESENTATIVE)[0]
    assert "errors" not in answer
    assert len(orders.calls) == 1
    if stage == "compile":
        assert any(line.startswith("ERROR compiling a query failed") for line in logged)


def test_a_check_that_fails_unexpectedly_leaves_the_request_to_strawberry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the check raises on the direct path, the request is not lost with it: Strawberry's
    pipeline answers it (its extension runs the check on its own, here unbroken)."""
    def broken(*args: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(shop, "checked_document", broken)
    assert went_through_strawberry(DIRECT, REPRESENTATIVE)
    assert execute(DIRECT, REPRESENTATIVE) == execute(PIPELINE, REPRESENTATIVE)
