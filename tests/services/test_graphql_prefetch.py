"""How the orders resolver fetches a page's products: which selections ask for them, the
loader cache that keeps the answer, and the order of the two backend calls. In process,
with fake backends that record what they were asked."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from graphql import FieldNode, FragmentDefinitionNode, OperationDefinitionNode, parse

from tests.services.services_testkit import ORDERS_DATA, PRODUCTS_DATA
from tests.services.test_graphql_execution import field_executions

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
for path in (GRAPHQL_SERVICE, GRAPHQL_SERVICE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app import schema as shop  # noqa: E402
from app.backends import BackendUnavailable  # noqa: E402

assert Path(shop.__file__).is_relative_to(GRAPHQL_SERVICE), "another service's `app` package was imported"


def orders_field(document: str) -> tuple[list[FieldNode], dict[str, FragmentDefinitionNode]]:
    parsed = parse(document)
    operation = next(definition for definition in parsed.definitions if isinstance(definition, OperationDefinitionNode))
    fragments = {definition.name.value: definition for definition in parsed.definitions
                 if isinstance(definition, FragmentDefinitionNode)}
    nodes = [selection for selection in operation.selection_set.selections
             if isinstance(selection, FieldNode) and selection.name.value == "orders"]
    return nodes, fragments


@pytest.mark.parametrize(("document", "expected"), [
    ("{ orders { nodes { items { product { id } } } } }", True),
    ("{ orders { nodes { items { quantity } } } }", False),
    ("{ orders { nodes { id } totalCount } }", False),
    ("{ orders { ...Page } } fragment Page on OrderConnection { nodes { items { ...Line } } }"
     " fragment Line on OrderItem { product { name } }", True),
    ("{ orders { nodes { ... on Order { items { ... { product { id } } } } } } }", True),
    ("{ orders { nodes { ...Lines } } } fragment Lines on Order { items { quantity } }", False),
    # `product` only counts under `items`: an alias of another field named product does not.
    ("{ orders { nodes { product: id } } }", False),
    ("{ orders { nodes { lines: items { product { id } } } } }", True),
    # A spread of an unknown fragment, or fragments on a cycle, end the search (validation
    # rejects such documents; the search must still terminate).
    ("{ orders { ...Missing } }", False),
    ("{ orders { ...A } } fragment A on OrderConnection { ...B } fragment B on OrderConnection { ...A }", False),
    ("{ orders { ...A } } fragment A on OrderConnection { ...A nodes { items { product { id } } } }", True),
])
def test_which_selections_ask_for_item_products(document: str, expected: bool) -> None:
    nodes, fragments = orders_field(document)
    assert shop.selects_item_products(nodes, fragments) is expected


def test_an_orders_field_selected_twice_counts_both_selections() -> None:
    nodes, fragments = orders_field("{ orders { totalCount } orders { nodes { items { product { id } } } } }")
    assert len(nodes) == 2
    assert shop.selects_item_products(nodes, fragments) is True


def test_the_product_cache_makes_futures_only_when_asked() -> None:
    async def scenario() -> None:
        cache = shop.ProductCache()
        product = shop.product_from(PRODUCTS_DATA[0])
        cache.add_results({"p001": product, "p999": None})
        assert cache.futures == {}
        future = cache.get("p001")
        assert future is not None and future.result() is product
        assert cache.get("p001") is future, "one future per key, as DataLoader expects"
        missing = cache.get("p999")
        assert missing is not None and missing.result() is None, "a known absence is cached too"
        assert cache.get("p002") is None

        pending = asyncio.get_running_loop().create_future()
        cache.set("p003", pending)
        cache.add_results({"p003": shop.product_from(PRODUCTS_DATA[2]), "p001": None})
        assert cache.get("p003") is pending, "what the cache holds is kept, as prime_many keeps it"
        assert cache.get("p001").result() is product

        cache.add_results({"p002": shop.product_from(PRODUCTS_DATA[1])})
        cache.add_results({"p002": None})
        assert cache.get("p002").result().id == "p002", "a result is kept until deleted"

        cache.delete("p001")
        assert cache.get("p001") is None
        with pytest.raises(KeyError):
            cache.delete("p404")  # as DefaultCache does
        cache.clear()
        assert cache.get("p003") is None and cache.results == {}

    asyncio.run(scenario())


def test_a_page_asks_only_for_the_products_the_loader_does_not_hold() -> None:
    asked: list[list[str]] = []

    async def load(keys: list[str]) -> list:
        asked.append(keys)
        return [shop.product_from(record) for record in PRODUCTS_DATA if record["id"] in keys]

    async def scenario() -> dict:
        from strawberry.dataloader import DataLoader

        loader = DataLoader(load, cache_map=shop.ProductCache())
        loader.cache_map.add_results({"p001": shop.product_from(PRODUCTS_DATA[0])})
        pending = loader.load("p002")  # asked for elsewhere in the query, not answered yet
        found = await shop._fetch_products(loader, ["p001", "p002", "p003"])
        await pending
        return found

    found = asyncio.run(scenario())
    assert sorted(asked) == [["p002"], ["p003"]], "p001 came from the cache; p002 from the pending load's own batch"
    assert {key: product.id for key, product in found.items()} == {"p001": "p001", "p002": "p002", "p003": "p003"}


def test_a_forced_prime_is_seen_by_the_page_fetch_as_by_load() -> None:
    # Found by review: the cache's two stores were read in opposite orders, so after
    # prime(force=True) a later page of the same request still got the replaced value.
    async def scenario() -> tuple[object, object]:
        async def load(keys: list[str]) -> list[str]:
            return [f"old {key}" for key in keys]

        from strawberry.dataloader import DataLoader

        loader = DataLoader(load, cache_map=shop.ProductCache())
        await shop._fetch_products(loader, ["p1"])
        loader.prime("p1", "new p1", force=True)
        loaded = await loader.load("p1")
        fetched = (await shop._fetch_products(loader, ["p1"]))["p1"]
        return loaded, fetched

    loaded, fetched = asyncio.run(scenario())
    assert loaded == "new p1"
    assert fetched == loaded


class RecordingBackend:
    def __init__(self, name: str, records: list[dict], events: list[str], fail: bool = False) -> None:
        self.name = name
        self.records = records
        self.events = events
        self.fail = fail

    async def get(self, path: str, params: dict, headers: dict) -> dict:
        self.events.append(f"{self.name} asked {params.get('ids', '')}".rstrip())
        await asyncio.sleep(0.01)
        if self.fail:
            raise BackendUnavailable(self.name, "connection failed")
        records = self.records
        if "ids" in params:
            wanted = params["ids"].split(",")
            records = [record for record in records if record["id"] in wanted]
        page = records[: int(params["limit"])]
        return {"items": page, "total": len(records), "next_cursor": None}


def execute(query: str, events: list[str], products_fail: bool = False, schema: shop.ShopSchema | None = None) -> dict:
    async def scenario() -> dict:
        orders = [{**order, "total": "0"} for order in ORDERS_DATA]
        context = shop.ShopContext(RecordingBackend("products", PRODUCTS_DATA, events, products_fail),
                                   RecordingBackend("orders", orders, events), {})
        result = await (schema or shop.schema).execute(query, context_value=context)
        return {"data": result.data, "errors": [error.message for error in result.errors or []]}

    return asyncio.run(scenario())


def test_the_products_request_is_sent_before_the_page_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    building = shop.order_from

    def recorded_order_from(record: dict, *args: object) -> shop.Order:
        events.append("page built") if "page built" not in events else None
        return building(record, *args)

    monkeypatch.setattr(shop, "order_from", recorded_order_from)
    result = execute("{ orders(first: 3) { nodes { id items { product { id } } } } }", events,
                     schema=shop.build_schema(compile_queries=False))
    assert result["errors"] == []
    wanted = list(dict.fromkeys(item["product_id"] for order in ORDERS_DATA[:3] for item in order["items"]))
    assert events == ["orders asked", f"products asked {','.join(wanted)}", "page built"]
    products = [item["product"]["id"] for node in result["data"]["orders"]["nodes"] for item in node["items"]]
    assert products == [item["product_id"] for order in ORDERS_DATA[:3] for item in order["items"]]


def test_the_page_is_completed_while_its_products_are_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each item's product is read once, when the fetch has answered: the executor waited for
    # it with the rest of the page already completed, instead of handing the page back to
    # graphql-core (which would read every product again).
    events: list[str] = []
    reads: list[bool] = []
    read = shop.PageProduct.result

    def recorded_read(self: shop.PageProduct) -> object:
        reads.append(self.done())
        return read(self)

    monkeypatch.setattr(shop.PageProduct, "result", recorded_read)
    result = execute("{ orders(first: 5) { nodes { id status items { quantity product { id name } } } } }", events,
                     schema=shop.build_schema(compile_queries=False))
    assert result["errors"] == []
    items = sum(len(order["items"]) for order in ORDERS_DATA[:5])
    assert reads == [True] * items
    names = {record["id"]: record["name"] for record in PRODUCTS_DATA}
    assert [item["product"]["name"] for node in result["data"]["orders"]["nodes"] for item in node["items"]] == [
        names[item["product_id"]] for order in ORDERS_DATA[:5] for item in order["items"]]


def test_a_compiled_query_builds_its_page_while_the_products_are_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    # The compiled query (app/compiled.py) sends the products request, builds the page, and
    # only then waits for the products: each item's product field is filled in afterwards.
    query = "{ orders(first: 3) { nodes { id items { product { id name } } } } }"
    schema = shop.build_schema()
    execute(query, [], schema=schema)  # compiled, and kept
    (document, compiled_query), = schema._compiler._compiled.values()  # type: ignore[union-attr]
    events: list[str] = []
    build_page = compiled_query.build_page

    def recorded_build_page(page: dict, pending: list) -> dict:
        events.append("page built")
        return build_page(page, pending)

    answered = RecordingBackend.get

    async def recorded_get(self: RecordingBackend, path: str, params: dict, headers: dict) -> dict:
        answer = await answered(self, path, params, headers)
        events.append(f"{self.name} answered")
        return answer

    monkeypatch.setattr(compiled_query, "build_page", recorded_build_page)
    monkeypatch.setattr(RecordingBackend, "get", recorded_get)
    fields_executed = field_executions(lambda: execute(query, events, schema=schema))
    wanted = list(dict.fromkeys(item["product_id"] for order in ORDERS_DATA[:3] for item in order["items"]))
    assert events == ["orders asked", "orders answered", f"products asked {','.join(wanted)}", "page built",
                      "products answered"]
    assert fields_executed == 0  # compiled: graphql-core executed nothing
    result = execute(query, [], schema=schema)
    names = {record["id"]: record["name"] for record in PRODUCTS_DATA}
    assert result["errors"] == []
    assert [item["product"]["name"] for node in result["data"]["orders"]["nodes"] for item in node["items"]] == [
        names[item["product_id"]] for order in ORDERS_DATA[:3] for item in order["items"]]


def test_products_already_loaded_in_the_query_are_not_asked_for_again() -> None:
    events: list[str] = []
    first_order_products = list(dict.fromkeys(item["product_id"] for item in ORDERS_DATA[0]["items"]))
    aliases = " ".join(f'p{n}: product(id: "{product_id}") {{ id }}' for n, product_id in enumerate(first_order_products))
    # The root product fields load (and batch) before the orders page resolves its items.
    result = execute(f"{{ {aliases} orders(first: 2) {{ nodes {{ items {{ product {{ id name }} }} }} }} }}", events)
    assert result["errors"] == []
    others = [product_id for product_id in dict.fromkeys(item["product_id"] for order in ORDERS_DATA[:2]
                                                          for item in order["items"])
              if product_id not in first_order_products]
    asked = [event for event in events if event.startswith("products")]
    assert asked[0] == f"products asked {','.join(first_order_products)}"
    assert asked[1:] == ([f"products asked {','.join(others)}"] if others else [])


def test_a_failed_products_call_fails_only_the_product_fields() -> None:
    events: list[str] = []
    result = execute("{ orders(first: 2) { nodes { id items { quantity product { id } } } } }", events,
                     products_fail=True)
    nodes = result["data"]["orders"]["nodes"]
    assert [node["id"] for node in nodes] == [order["id"] for order in ORDERS_DATA[:2]]
    assert all(item["product"] is None and item["quantity"] > 0 for node in nodes for item in node["items"])
    items = sum(len(order["items"]) for order in ORDERS_DATA[:2])
    assert result["errors"] == ["products service unavailable: connection failed"] * items
