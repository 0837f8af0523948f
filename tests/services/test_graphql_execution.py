"""The compiled queries (app/compiled.py) and the planned execution (app/execution.py) against
graphql-core's own, in process.

Every query runs three times over the same backend answers: with the service's schema, with it
not compiling queries (so on the planned execution), and with the same schema on Strawberry's
default executor. Data, errors, error paths and
locations must be identical, for normal answers and for the answers that make the fast
path hand an object back to graphql-core (errors, nulls in non-null fields, values a
scalar cannot represent, a failed products batch).
"""

from __future__ import annotations

import asyncio
import copy
import gc
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NewType

import pytest
import strawberry
from graphql.execution import executor as graphql_executor
from strawberry.schema.config import StrawberryConfig

from bench.services_bench import QUERY as BENCHMARK_QUERY
from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
COMMON = GRAPHQL_SERVICE.parent / "common"
for path in (GRAPHQL_SERVICE, COMMON):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app import compiled, execution  # noqa: E402
from app import schema as schema_module  # noqa: E402
from app.backends import BackendUnavailable  # noqa: E402
from app.schema import ShopContext, build_schema  # noqa: E402

assert Path(execution.__file__).is_relative_to(GRAPHQL_SERVICE), "another service's `app` package was imported"

COMPILED = build_schema()  # the service's
PLANNED = build_schema(compile_queries=False)
REFERENCE = build_schema(execution_context_class=None, compile_queries=False)


def _with_totals(orders: list[dict]) -> list[dict]:
    """As the orders service answers: each order with the total of its items."""
    return [{**order, "total": str(sum(Decimal(item["unit_price"]) * item["quantity"] for item in order["items"]))}
            for order in orders]


class FakeBackend:
    """Answers like the products or orders service, from the shipped data, in process."""

    def __init__(self, name: str, records: list[dict], fail: bool = False, calls: list | None = None) -> None:
        self.name = name
        self.records = records
        self.fail = fail
        self.calls = [] if calls is None else calls

    async def get(self, path: str, params: dict, headers: dict) -> dict:
        self.calls.append((self.name, path, tuple(sorted(params.items()))))
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
        return {"items": copy.deepcopy(page), "total": len(records),
                "next_cursor": page[-1]["id"] if len(page) < len(records) else None}


def run(schema: strawberry.Schema, query: str, variables: dict | None, products: list[dict], orders: list[dict],
        products_fail: bool = False, calls: list | None = None) -> tuple[Any, list[tuple]]:
    """The data and errors; each backend call is appended to `calls`."""
    calls = [] if calls is None else calls

    async def execute() -> Any:
        context = ShopContext(FakeBackend("products", products, products_fail, calls),
                              FakeBackend("orders", orders, calls=calls), {})
        return await schema.execute(query, variable_values=variables, context_value=context)

    result = asyncio.run(execute())
    errors = sorted((error.message, tuple(error.path or ()), tuple((loc.line, loc.column) for loc in error.locations or ()))
                    for error in result.errors or [])
    return result.data, errors


def assert_same(query: str, variables: dict | None = None, products: list[dict] | None = None,
                orders: list[dict] | None = None, products_fail: bool = False) -> tuple[Any, list[tuple]]:
    products = PRODUCTS_DATA if products is None else products
    orders = _with_totals(ORDERS_DATA) if orders is None else orders
    calls: dict[str, list] = {"reference": [], "planned": [], "compiled": []}
    reference = run(REFERENCE, query, variables, products, orders, products_fail, calls["reference"])
    assert run(PLANNED, query, variables, products, orders, products_fail, calls["planned"]) == reference
    assert run(COMPILED, query, variables, products, orders, products_fail, calls["compiled"]) == reference
    # The same backend calls, each once: a compiled query that gives up has graphql-core
    # answer from what the backends already said.
    assert sorted(calls["compiled"]) == sorted(calls["planned"]) == sorted(calls["reference"])
    return reference


# The benchmark's query: the fast path must hold for exactly what is measured.
REPRESENTATIVE = BENCHMARK_QUERY

QUERIES = {
    "representative": (REPRESENTATIVE, None),
    "typenames, aliases and merged duplicates": ("""
        { __typename orders(first: 5) { __typename totalCount pageInfo { hasNextPage endCursor __typename }
            nodes { __typename id ref: id id items { __typename qty: quantity product { __typename id } } } } }""", None),
    "fragments and inline fragments": ("""
        query { orders(first: 7) { nodes { ...OrderFields items { ... on OrderItem { productId product { ...P } } } } } }
        fragment OrderFields on Order { id status ... { createdAt } }
        fragment P on Product { name price ... on Product { stock } }""", None),
    "the same field selected through two fragments": ("""
        { orders(first: 3) { nodes { items { product { id } } ...A } } }
        fragment A on Order { items { product { name } quantity } }""", None),
    "include and skip from variables": ("""
        query($withItems: Boolean!, $noStatus: Boolean!) { orders(first: 4) { nodes { id status @skip(if: $noStatus)
            items @include(if: $withItems) { quantity product @include(if: $withItems) { name } } } } }""",
                                        {"withItems": True, "noStatus": True}),
    "include and skip, the other way round": ("""
        query($withItems: Boolean!, $noStatus: Boolean!) { orders(first: 4) { nodes { id status @skip(if: $noStatus)
            items @include(if: $withItems) { quantity } } } }""", {"withItems": False, "noStatus": False}),
    "products page": ("{ products(first: 30) { totalCount pageInfo { hasNextPage endCursor } nodes { id name description price currency stock } } }", None),
    "one product and one order (DataLoader path)": ("""
        { product(id: "p003") { id name } order(id: "o0002") { id items { quantity product { id name } } }
          missing: product(id: "p999") { id } }""", None),
    "orders of one customer with a page cursor": ("""
        { orders(customerId: "c001", first: 2) { totalCount pageInfo { endCursor } nodes { id customerId } } }""", None),
}


def test_introspection_matches_graphql_core() -> None:
    # GraphiQL loads the schema this way; graphql-core's introspection types are never planned.
    from graphql import get_introspection_query

    data, errors = assert_same(get_introspection_query(descriptions=True))
    assert errors == [] and data["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize("name", QUERIES)
def test_planned_execution_matches_graphql_core(name: str) -> None:
    query, variables = QUERIES[name]
    data, errors = assert_same(query, variables)
    assert errors == []
    assert data is not None


def test_representative_query_matches_when_products_service_fails() -> None:
    data, errors = assert_same(REPRESENTATIVE, products_fail=True)
    assert data["orders"]["nodes"] and all(item["product"] is None
                                           for order in data["orders"]["nodes"] for item in order["items"])
    assert errors and all(message.startswith("products service unavailable") for message, _, _ in errors)


def _product_of_first_item(products: list[dict], orders: list[dict]) -> dict:
    return next(product for product in products if product["id"] == orders[0]["items"][0]["product_id"])


# One broken record at a time: the first null in a non-null list item nulls the whole
# page, which would hide every later anomaly.
BREAKAGES: dict[str, Callable[[list[dict], list[dict]], None]] = {
    "null in a non-null product field": lambda products, orders: _product_of_first_item(products, orders).update(name=None),
    "Int out of 32-bit range": lambda products, orders: _product_of_first_item(products, orders).update(stock=2**40),
    "an Int field holding a string": lambda products, orders: orders[0]["items"][0].update(quantity="three"),
    "a Decimal the scalar cannot serialize": lambda products, orders: _product_of_first_item(products, orders).update(
        price="not a number"),
    "null in a non-null order field": lambda products, orders: orders[0].update(status=None),
    "a list field holding a string": lambda products, orders: orders[0].update(items="not a list"),
    "a product that no longer exists": lambda products, orders: products.remove(_product_of_first_item(products, orders)),
    # What the resolvers read of every record, selected or not (schema.order_from), and values
    # graphql-core would coerce rather than pass: a compiled query must give up on each.
    "an order record without a field": lambda products, orders: orders[0].pop("currency"),
    "an item without its unit price": lambda products, orders: orders[1]["items"][0].pop("unit_price"),
    "a date that does not parse": lambda products, orders: orders[0].update(created_at="yesterday"),
    "a boolean in an Int field": lambda products, orders: orders[0]["items"][0].update(quantity=True),
    "a number in a Decimal field": lambda products, orders: orders[0].update(total=12.5),
    "a number in an ID field": lambda products, orders: orders[0].update(customer_id=17),
}

# Arguments and variables the resolvers or graphql-core reject: their errors, not a compiled answer.
REJECTED_QUERIES = {
    "first out of range": ("{ orders(first: 0) { nodes { id } } }", None),
    "a malformed customer id": ('{ orders(customerId: "no spaces") { nodes { id } } }', None),
    "an empty cursor": ('{ orders(after: "") { nodes { id } } }', None),
    "first from a variable out of range": ("query($n: Int!) { orders(first: $n) { nodes { id } } }", {"n": 500}),
    "a variable of the wrong type": ("query($n: Int!) { orders(first: $n) { nodes { id } } }", {"n": "many"}),
    "a missing variable": ("query($n: Int!) { orders(first: $n) { nodes { id } } }", {}),
}


@pytest.mark.parametrize("name", REJECTED_QUERIES)
def test_rejected_arguments_get_graphql_cores_errors(name: str) -> None:
    query, variables = REJECTED_QUERIES[name]
    data, errors = assert_same(query, variables)
    assert errors


@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("query", [REPRESENTATIVE, QUERIES["fragments and inline fragments"][0],
                                   QUERIES["products page"][0]], ids=["representative", "fragments", "products"])
def test_planned_execution_matches_graphql_core_on_broken_records(query: str, breakage: str) -> None:
    products, orders = copy.deepcopy(PRODUCTS_DATA), _with_totals(copy.deepcopy(ORDERS_DATA))
    unbroken = assert_same(query, products=products, orders=orders)
    BREAKAGES[breakage](products, orders)
    broken = assert_same(query, products=products, orders=orders)
    if query is REPRESENTATIVE:
        # The representative query reads every broken field: the answer must change.
        assert broken != unbroken


def field_executions(action: Callable[[], object]) -> int:
    """How many fields graphql-core's executor resolves during `action`."""
    calls = 0
    original = graphql_executor.Executor.execute_field

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    graphql_executor.Executor.execute_field = counting  # type: ignore[method-assign]
    try:
        action()
    finally:
        graphql_executor.Executor.execute_field = original  # type: ignore[method-assign]
    return calls


def _count_field_executions(schema: strawberry.Schema, query: str, variables: dict | None = None) -> int:
    return field_executions(lambda: run(schema, query, variables, PRODUCTS_DATA, _with_totals(ORDERS_DATA)))


COMPILABLE = {
    "representative": REPRESENTATIVE,
    "aliases, typenames, fragments and directives": """
        query($withItems: Boolean!) { page: orders(first: 5) { ...Page } }
        fragment Page on OrderConnection { __typename totalCount pageInfo { hasNextPage endCursor }
            nodes { ref: id ... on Order { status } items @include(if: $withItems) { quantity product { __typename id } } } }""",
    "arguments from variables": """query($n: Int!, $c: ID) { orders(first: $n, customerId: $c) { nodes { id } } }""",
    "an item's product selected twice": """
        { orders(first: 6) { nodes { items { a: product { id } b: product { name price } } } } }""",
}
NOT_COMPILABLE = {
    "another root field": "{ products(first: 5) { nodes { id } } }",
    "two root fields": "{ orders(first: 2) { nodes { id } } order(id: \"o0001\") { id } }",
    "a root __typename": "{ __typename orders(first: 2) { nodes { id } } }",
}


@pytest.mark.parametrize("name", COMPILABLE)
def test_a_compiled_query_skips_graphql_core_execution(name: str) -> None:
    variables = {"withItems": True, "n": 3, "c": "c010"}
    assert _count_field_executions(COMPILED, COMPILABLE[name], variables) == 0
    assert_same(COMPILABLE[name], variables)


@pytest.mark.parametrize("name", NOT_COMPILABLE)
def test_other_queries_run_on_graphql_core(name: str) -> None:
    assert _count_field_executions(COMPILED, NOT_COMPILABLE[name]) > 0
    assert_same(NOT_COMPILABLE[name])


def test_field_recipes_cover_the_compiled_types_exactly() -> None:
    # A field added to one of these types without a recipe would only make its queries slower
    # (not compiled); a recipe must read a field that exists, with a kind that fits its type.
    expected_kinds = {"String!": {"str"}, "ID!": {"str"}, "Decimal!": {"str"}, "Int!": {"int"},
                      "DateTime!": {"datetime"}, "Boolean!": {"bool"}, "String": {"str?"}, "Product": {"product"}}
    graphql_schema = COMPILED._schema
    for type_name, recipes in compiled.FIELD_RECIPES.items():
        object_type = graphql_schema.get_type(type_name)
        assert set(recipes) == set(object_type.fields), type_name
        for field_name, (kind, _read, target) in recipes.items():
            field_type = str(object_type.fields[field_name].type)
            if kind == "list":
                assert field_type == f"[{target}!]!", (type_name, field_name)
            elif kind == "object":
                assert field_type == f"{target}!", (type_name, field_name)
            else:
                assert kind in expected_kinds[field_type], (type_name, field_name, field_type)


@pytest.mark.parametrize("text", ["2026-01-01T02:13:00Z", "2026-12-31T23:59:59Z", "2024-02-29T00:00:00Z",
                                  "2026-01-01T02:13:00+00:00", "2026-01-01T02:13:00.250Z", "2026-01-01T02:13:00+02:00",
                                  "2026-01-01T02:13:00", "2026-01-01"])
def test_a_compiled_time_is_what_the_datetime_field_answers(text: str) -> None:
    from datetime import datetime

    assert compiled.isoformat(text) == datetime.fromisoformat(text).isoformat()


def test_a_products_fetch_nobody_shows_leaves_no_unretrieved_error() -> None:
    # `@skip` does not stop the products fetch (the resolver's does not stop either); when it
    # fails, asyncio must not find an exception nobody retrieved.
    query = "query($p: Boolean!) { orders(first: 3) { nodes { id items { product @include(if: $p) { id } } } } }"
    reported: list[dict] = []

    async def scenario() -> Any:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, report: reported.append(report))
        context = ShopContext(FakeBackend("products", PRODUCTS_DATA, fail=True),
                              FakeBackend("orders", _with_totals(ORDERS_DATA)), {})
        result = await COMPILED.execute(query, variable_values={"p": False}, context_value=context)
        await asyncio.sleep(0.01)  # the fetch ends
        return result

    result = asyncio.run(scenario())
    gc.collect()
    assert result.errors is None and len(result.data["orders"]["nodes"]) == 3
    assert _count_field_executions(COMPILED, query, {"p": False}) == 0
    assert reported == []


@pytest.mark.parametrize("products_fail", [False, True])
def test_a_page_with_more_products_than_a_batch_makes_the_same_calls(products_fail: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_module, "MAX_IDS", 5)  # the product loader's batches
    monkeypatch.setattr(schema_module, "SHOP_MODEL", schema_module.SHOP_MODEL._replace(max_batch=5))
    compiling = build_schema()
    orders = _with_totals(ORDERS_DATA)
    calls: dict[str, list] = {"reference": [], "compiled": []}
    reference = run(REFERENCE, REPRESENTATIVE, None, PRODUCTS_DATA, orders, products_fail, calls["reference"])
    assert run(compiling, REPRESENTATIVE, None, PRODUCTS_DATA, orders, products_fail, calls["compiled"]) == reference
    assert sorted(calls["compiled"]) == sorted(calls["reference"])
    assert sum(call[0] == "products" for call in calls["reference"]) > 1


def test_the_record_keys_are_what_the_resolvers_read() -> None:
    record = {key: value for key, value in _with_totals(ORDERS_DATA)[0].items() if key in schema_module.ORDER_KEYS}
    record["items"] = [{key: item[key] for key in schema_module.ORDER_ITEM_KEYS} for item in record["items"]]
    schema_module.order_from(record, None)  # these keys are enough
    for key in schema_module.ORDER_KEYS:
        with pytest.raises(KeyError):
            schema_module.order_from({name: value for name, value in record.items() if name != key}, None)
    for key in schema_module.ORDER_ITEM_KEYS:
        items = [{name: value for name, value in item.items() if name != key} for item in record["items"]]
        with pytest.raises(KeyError):
            schema_module.order_from({**record, "items": items}, None)
    product = {key: value for key, value in PRODUCTS_DATA[0].items() if key in schema_module.PRODUCT_KEYS}
    schema_module.product_from(product)
    for key in schema_module.PRODUCT_KEYS:
        with pytest.raises(KeyError):
            schema_module.product_from({name: value for name, value in product.items() if name != key})


def test_plain_subtrees_skip_graphql_core_per_field_work() -> None:
    # The reference completes every field (~660 for this query); the planned executor
    # only the root field, whose resolver calls the orders service.
    assert _count_field_executions(REFERENCE, REPRESENTATIVE) > 600
    assert _count_field_executions(PLANNED, REPRESENTATIVE) == 1


# A schema of its own for what the service's schema does not contain. Each field is a case
# where the fast path must either hand over to graphql-core or not be taken at all; the
# answers must be graphql-core's, and no unmarked resolver may run twice.
resolver_calls: list[str] = []

NeverNull = NewType("NeverNull", str)
TREE_CONFIG = StrawberryConfig(scalar_map={NeverNull: strawberry.scalar(
    name="NeverNull", serialize=lambda value: None if value == "none" else value, parse_value=str)})


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Person(Named):
    age: int


class LooksLikeAPerson:
    """Has Person's attributes but is not a Person: graphql-core's is_type_of rejects it."""

    name = "imposter"
    age = 40


@strawberry.type
class Leaf:
    name: str
    code: str | None = "c"
    strict_code: str = "s"
    price: Decimal = Decimal("1.50")
    tags: list[str] = strawberry.field(default_factory=list)
    never_null: NeverNull | None = "x"

    @strawberry.field
    def shout(self) -> str:  # not marked: must go through Strawberry's resolver path, once
        resolver_calls.append(self.name)
        return self.name.upper()

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    def length(self) -> int:
        return len(self.name)

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    def later(self) -> str:  # a future from a synchronous resolver, as DataLoader.load returns
        future = asyncio.get_running_loop().create_future()
        future.set_result(f"later {self.name}")
        return future  # type: ignore[return-value]


class LeafError(Exception):
    """An error value with a Leaf's attributes: graphql-core reports it, whatever it holds."""

    name = "error"
    code = "c"


@strawberry.type
class Tree:
    leaves: list[Leaf]
    named: list[Named]
    person: Person


def make_tree(**overrides: Any) -> Tree:
    """A tree whose second leaf has the given attributes, or whose `leaves`/`person` are replaced."""
    leaves = overrides.pop("leaves", None)
    person = overrides.pop("person", Person(name="bo", age=3))
    if leaves is None:
        leaves = [Leaf(name="oak"), Leaf(name="ash", **overrides)]
    return Tree(leaves=leaves, named=[Person(name="ann", age=7)], person=person)


TREE = make_tree()


@strawberry.type
class TreeQuery:
    @strawberry.field
    def tree(self) -> Tree:
        return TREE


def execute_tree(schema: strawberry.Schema, query: str) -> tuple[Any, list[tuple], list[str]]:
    resolver_calls.clear()
    result = asyncio.run(schema.execute(query))
    errors = sorted((error.message, tuple(error.path or ())) for error in result.errors or [])
    return result.data, errors, list(resolver_calls)


TREE_CASES = {
    "plain fields and a marked resolver": ("{ tree { leaves { name length price tags } } }", {}),
    "an unmarked resolver": ("{ tree { leaves { name shout } } }", {}),
    "an unmarked resolver next to a field that fails": ("{ tree { leaves { shout strictCode } } }",
                                                         {"strict_code": None}),
    "an abstract type": ("{ tree { named { name ... on Person { age } __typename } } }", {}),
    "an object that is_type_of rejects": ("{ tree { person { name age } } }", {"person": LooksLikeAPerson()}),
    "an error value in a custom scalar field": ("{ tree { leaves { name price } } }", {"price": ValueError("boom")}),
    "a string where a list of strings belongs": ("{ tree { leaves { tags } } }", {"tags": "abc"}),
    "a scalar that serializes to null": ("{ tree { leaves { neverNull } } }", {"never_null": "none"}),
    "a marked resolver returning an awaitable": ("{ tree { leaves { name later } } }", {}),
    "null in a nullable and in a non-null field": ("{ tree { leaves { code strictCode } } }",
                                                   {"code": None, "strict_code": None}),
    "null in a list of non-null objects": ("{ tree { leaves { name } } }", {"leaves": [Leaf(name="oak"), None]}),
    "an error value in a list of objects": ("{ tree { leaves { name code } } }",
                                            {"leaves": [Leaf(name="oak"), LeafError()]}),
}


@pytest.mark.parametrize("case", TREE_CASES)
def test_fast_path_keeps_graphql_core_semantics(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    query, overrides = TREE_CASES[case]
    monkeypatch.setattr(sys.modules[__name__], "TREE", make_tree(**overrides))
    planned_schema = strawberry.Schema(query=TreeQuery, types=[Person], config=TREE_CONFIG,
                                       execution_context_class=execution.PlannedExecutionContext)
    reference_schema = strawberry.Schema(query=TreeQuery, types=[Person], config=TREE_CONFIG)
    assert execute_tree(planned_schema, query) == execute_tree(reference_schema, query)


def _settled(value: Any) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


@strawberry.type
class AwaitableLeaf:
    """An object type whose instances are awaitable: graphql-core completes what they give."""

    name: str

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return AwaitableLeaf(name=self.name.upper())


@strawberry.type
class Pending:
    """Attributes holding futures, as when a source is filled with DataLoader.load results."""

    price: Decimal
    awaitable: AwaitableLeaf
    maybe: Leaf | None
    many: list[Leaf | None]
    ids: strawberry.Private[list[str]]

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    def loaded(self) -> list[Leaf | None]:
        return [_settled(None if key == "gone" else Leaf(name=key)) for key in self.ids]  # type: ignore[misc]


@strawberry.type
class PendingQuery:
    @strawberry.field
    async def pending(self) -> Pending:
        return Pending(price=_settled(Decimal("9.99")), maybe=_settled(None), awaitable=AwaitableLeaf(name="x"),  # type: ignore[arg-type]
                       many=[_settled(None), _settled(Leaf(name="n"))], ids=["a", "gone"])  # type: ignore[list-item]


@pytest.mark.parametrize("query", [
    "{ pending { price } }",                                       # a str()-serialized scalar
    "{ pending { maybe { __typename } many { __typename } } }",    # nothing read from the object
    "{ pending { loaded { __typename name } } }",                  # futures from a marked resolver
    "{ pending { awaitable { name } } }",                          # an awaitable object type
])
def test_pending_values_are_awaited_as_graphql_core_does(query: str) -> None:
    planned_schema = strawberry.Schema(query=PendingQuery, config=TREE_CONFIG,
                                       execution_context_class=execution.PlannedExecutionContext)
    reference_schema = strawberry.Schema(query=PendingQuery, config=TREE_CONFIG)
    planned, reference = (asyncio.run(schema.execute(query)) for schema in (planned_schema, reference_schema))
    assert (planned.data, planned.errors) == (reference.data, reference.errors)
    assert planned.errors is None


# Objects whose nullable object field is still pending when they are completed: the plan
# completes everything else and waits for the value (a page of orders and its products).
seen_pending: list[bool] = []


@strawberry.type
class Waiting:
    gate: strawberry.Private[asyncio.Future]
    later: Leaf | None
    required: Leaf | None = None

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    def seen(self) -> str:
        seen_pending.append(not self.gate.done())
        return "seen"


def _settle(gate: asyncio.Future, outcome: str) -> None:
    if outcome == "error":
        gate.set_exception(ValueError("the value failed"))
    elif outcome == "pending again":
        gate.set_result(asyncio.get_running_loop().create_future())
    else:
        gate.set_result({"object": Leaf(name="late"), "null": None, "not a leaf": "text"}[outcome])


@strawberry.type
class WaitingQuery:
    @strawberry.field
    async def waiting(self, outcome: str, shared: bool = True) -> list[Waiting]:
        loop = asyncio.get_running_loop()
        gates = [loop.create_future()] * 3 if shared else [loop.create_future() for _ in range(3)]
        for gate in dict.fromkeys(gates):
            loop.call_later(0.005, _settle, gate, outcome)
        return [Waiting(gate=gate, later=gate) for gate in gates]  # type: ignore[arg-type]


def execute_waiting(planned: bool, query: str) -> tuple[Any, list, list[bool]]:
    schema = strawberry.Schema(query=WaitingQuery, config=TREE_CONFIG,
                               execution_context_class=execution.PlannedExecutionContext if planned else None)
    seen_pending.clear()
    result = asyncio.run(schema.execute(query))
    errors = sorted((error.message, tuple(error.path or ())) for error in result.errors or [])
    return result.data, errors, list(seen_pending)


@pytest.mark.parametrize(("outcome", "shared"), [("object", True), ("object", False), ("null", True)])
def test_a_pending_nullable_object_is_waited_for_with_the_rest_completed(outcome: str, shared: bool) -> None:
    query = f'{{ waiting(outcome: "{outcome}", shared: {str(shared).lower()}) {{ seen later {{ name }} }} }}'
    planned = execute_waiting(True, query)
    reference = execute_waiting(False, query)
    assert planned[:2] == reference[:2]
    assert planned[1] == []
    # Each object completed once, all while the value was still pending: nothing handed back.
    assert planned[2] == [True, True, True]


@pytest.mark.parametrize("query", [
    '{ waiting(outcome: "error") { seen later { name } } }',
    '{ waiting(outcome: "error", shared: false) { later { name } seen } }',
    '{ waiting(outcome: "pending again") { seen later { name } } }',
    '{ waiting(outcome: "not a leaf") { seen later { name } } }',
    '{ waiting(outcome: "object") { seen later { __typename } } }',
])
def test_a_pending_value_that_goes_wrong_is_completed_by_graphql_core(query: str) -> None:
    planned = execute_waiting(True, query)
    reference = execute_waiting(False, query)
    assert planned[:2] == reference[:2]


def test_extension_with_resolve_hook_disables_planning() -> None:
    from strawberry.extensions import SchemaExtension

    seen: list[str] = []

    class RecordFields(SchemaExtension):
        def resolve(self, _next: Callable, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    planned_schema = strawberry.Schema(query=TreeQuery, types=[Person], config=TREE_CONFIG, extensions=[RecordFields],
                                       execution_context_class=execution.PlannedExecutionContext)
    result = planned_schema.execute_sync("{ tree { leaves { name length } } }")
    assert result.errors is None
    # The extension saw every field, as it would without the planner.
    assert seen.count("name") == 2 and seen.count("length") == 2


def _reader_for(type_: type, field_name: str) -> Any:
    schema = strawberry.Schema(query=type_)
    field_def = schema._schema.query_type.fields[field_name]
    return execution._reader(field_def, lambda value: False)


@strawberry.type
class Resolvers:
    plain: str = "p"

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    def marked(self) -> str:
        return "m"

    @strawberry.field
    def unmarked(self) -> str:
        return "u"

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    def with_info(self, info: strawberry.Info) -> str:
        return "i"

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    def with_argument(self, times: int = 1) -> str:
        return "a" * times

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    async def asynchronous(self) -> str:
        return "x"

    @strawberry.field(metadata=execution.SIDE_EFFECT_FREE)
    @staticmethod
    def with_root(root: Any) -> str:
        return "r"


@pytest.mark.parametrize(("field_name", "planned"), [
    ("plain", True), ("marked", True), ("unmarked", False), ("withInfo", False),
    ("withArgument", False), ("asynchronous", False), ("withRoot", False),
])
def test_which_fields_are_read_directly(field_name: str, planned: bool) -> None:
    assert (_reader_for(Resolvers, field_name) is not None) is planned


@pytest.mark.parametrize(("query", "plannable"), [
    ("{ a }", True),
    ("{ a @include(if: true) @skip(if: false) }", True),
    ("{ a(x: 1) }", False),
    ("{ a @stream(initialCount: 1) }", False),
    ("{ a @custom }", False),
])
def test_which_field_nodes_are_planned(query: str, plannable: bool) -> None:
    from graphql import parse

    node = parse(query).definitions[0].selection_set.selections[0]
    assert execution._plannable_node(node) is plannable


# Plans are shared across requests (PlannedExecutionContext._plans).

def test_the_same_document_with_other_directive_variables_gets_its_own_plan() -> None:
    # One document, run with each combination in turn: a plan cached for one combination of
    # @include/@skip variables must never serve another.
    query = QUERIES["include and skip from variables"][0]
    for with_items in (True, False, True):
        for no_status in (False, True):
            data, errors = assert_same(query, {"withItems": with_items, "noStatus": no_status})
            node = data["orders"]["nodes"][0]
            assert ("items" in node) is with_items and ("status" in node) is not no_status


def _count_plan_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    built: list[str] = []
    original = execution.PlannedExecutionContext._build_object_plan

    def counting(self: Any, object_type: Any, field_details_list: Any) -> Any:
        built.append(object_type.name)
        return original(self, object_type, field_details_list)

    monkeypatch.setattr(execution.PlannedExecutionContext, "_build_object_plan", counting)
    return built


def test_plans_are_built_once_and_reused_by_later_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution.PlannedExecutionContext, "_plans", execution.OrderedDict())
    built = _count_plan_builds(monkeypatch)
    assert_same(REPRESENTATIVE)
    assert {"OrderConnection", "Order", "OrderItem", "Product"} <= set(built)
    built.clear()
    assert_same(REPRESENTATIVE)
    assert built == []


def test_the_plan_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution.PlannedExecutionContext, "_plans", execution.OrderedDict())
    monkeypatch.setattr(execution, "MAX_CACHED_PLANS", 3)
    for name in QUERIES:
        assert_same(*QUERIES[name])
        assert len(execution.PlannedExecutionContext._plans) <= 3
    built = _count_plan_builds(monkeypatch)
    assert_same(REPRESENTATIVE)  # evicted long ago: planned again, and still right
    assert built


# A configured default resolver (here: sources are dicts) must be used instead of attribute reads.

@strawberry.type
class Row:
    name: str
    size: int


@strawberry.type
class RowQuery:
    @strawberry.field
    def rows(self) -> list[Row]:
        return [{"name": "a", "size": 1}, {"name": "b", "size": 2}]  # type: ignore[list-item]


def test_a_configured_default_resolver_is_used_by_the_plan() -> None:
    config = StrawberryConfig(default_resolver=lambda source, name: source[name])
    planned_schema = strawberry.Schema(query=RowQuery, config=config,
                                       execution_context_class=execution.PlannedExecutionContext)
    reference_schema = strawberry.Schema(query=RowQuery, config=config)
    query = "{ rows { name size __typename } }"
    planned, reference = (asyncio.run(schema.execute(query)) for schema in (planned_schema, reference_schema))
    assert planned.errors is None and reference.errors is None
    assert planned.data == reference.data == {"rows": [{"name": "a", "size": 1, "__typename": "Row"},
                                                       {"name": "b", "size": 2, "__typename": "Row"}]}
    assert _count_field_executions(planned_schema, query) == 1  # the rows were completed by the plan


@pytest.mark.parametrize("keys", [
    ["p001", "p002", "p003"],
    ["p001", "not valid!", "p002"],
    ["p001\n", "p002"],  # ID_PATTERN's $ lets a final line break through
    ["p001", ""],
    ["x" * 64, "y" * 65],
    ["p001,p002", "p003"],  # a comma inside one id
    ["bad!"],
])
def test_a_batch_asks_for_the_ids_that_can_exist_and_answers_in_the_keys_order(keys: list[str]) -> None:
    """_load_by_ids checks the whole batch with one match when it can: the call and the answer
    are what the check of each id gives."""
    records = [{"id": key} for key in keys]
    backend = FakeBackend("products", records)
    found = asyncio.run(schema_module._load_by_ids(backend, "/products", keys, {}))
    valid = [key for key in keys if schema_module.ID_PATTERN.match(key)]
    if valid:
        assert backend.calls == [("products", "/products", (("ids", ",".join(valid)), ("limit", len(valid))))]
    else:
        assert backend.calls == []
    wanted = set(",".join(valid).split(","))
    assert found == [{"id": key} if key in valid and key in wanted else None for key in keys]


def test_a_batch_with_an_id_that_is_not_a_string_fails_as_the_check_of_each_id_does() -> None:
    with pytest.raises(TypeError):
        asyncio.run(schema_module._load_by_ids(FakeBackend("products", []), "/products", ["p001", 7], {}))  # type: ignore[list-item]
