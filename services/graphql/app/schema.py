"""The GraphQL schema: products and orders, with order items resolved to products.

Products and orders by id go through per-request DataLoaders: all the products the items of a
query ask for are fetched with one call to the products service, for an orders page before its
items resolve, so that they resolve without awaiting. Backend failures surface as
errors on the fields that needed them (the fields are nullable), never as an HTTP error for the
whole query.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Callable, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
)
from strawberry.fastapi import BaseContext
from strawberry.types import ExecutionContext
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from app.backends import Backend, BadArgument, answer_of
from app.guards import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, LimitedValidationCache
from service_kit.collection import ID_PATTERN, MAX_IDS

logger = logging.getLogger("graphql")
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 200
T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Product:
    id: strawberry.ID
    name: str
    description: str
    price: Decimal = strawberry.field(description="Decimal amount as a string, e.g. \"19.99\"")
    currency: str = strawberry.field(description="ISO 4217 code")
    stock: int


@strawberry.type
class ProductConnection:
    nodes: list[Product]
    page_info: PageInfo
    total_count: int


@strawberry.type
class OrderItem:
    product_id: strawberry.ID
    quantity: int
    unit_price: Decimal

    @strawberry.field(description="null if the product no longer exists or the products service failed")
    def product(self, info: strawberry.Info[ShopContext]) -> Product | None:
        # Not a coroutine per item: Query.orders has loaded its page's products, so the loader's
        # future is done and gives the product (or raises the batch's error) at once. The items
        # of order(id:) get the pending future, which graphql-core awaits, all in one batch.
        loading = info.context.product_loader.load(self.product_id)
        return loading.result() if loading.done() else loading


@strawberry.type
class Order:
    id: strawberry.ID
    customer_id: strawberry.ID
    status: str
    created_at: datetime
    currency: str
    total: Decimal
    items: list[OrderItem]


@strawberry.type
class OrderConnection:
    nodes: list[Order]
    page_info: PageInfo
    total_count: int


# Readers of a backend's record: a value of the wrong type raises (TypeError, ValueError), which
# answer_of reports as the backend's fault instead of letting it reach a GraphQL serializer.
def text(record: dict, key: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def whole(record: dict, key: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} is not an integer")
    return value


def money(record: dict, key: str) -> Decimal:
    value: Any = record[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"{key} is not an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{key} is not an amount") from None
    if not amount.is_finite():
        raise ValueError(f"{key} is not an amount")
    return amount


def product_from(record: dict) -> Product:
    return Product(id=text(record, "id"), name=text(record, "name"), description=text(record, "description"),
                   price=money(record, "price"), currency=text(record, "currency"), stock=whole(record, "stock"))


def order_from(record: dict) -> Order:
    return Order(
        id=text(record, "id"),
        customer_id=text(record, "customer_id"),
        status=text(record, "status"),
        created_at=datetime.fromisoformat(text(record, "created_at")),
        currency=text(record, "currency"),
        total=money(record, "total"),
        items=[OrderItem(product_id=text(item, "product_id"), quantity=whole(item, "quantity"),
                         unit_price=money(item, "unit_price"))
               for item in record["items"]],
    )


def page_info(page: dict) -> PageInfo:
    return PageInfo(has_next_page=page["next_cursor"] is not None, end_cursor=page["next_cursor"])


async def load_by_ids(backend: Backend, path: str, build: Callable[[dict], T], trace_headers: dict[str, str],
                      keys: list[str]) -> list[T | None]:
    """A DataLoader's batch: these ids from one backend call, built; None for an unknown id."""
    # An id that cannot exist must not turn the whole batch into a 422.
    valid = [key for key in keys if ID_PATTERN.match(key)]
    if not valid:
        return [None] * len(keys)
    page = await backend.get(path, {"ids": ",".join(valid), "limit": len(valid)}, trace_headers)
    with answer_of(backend.name):
        by_id = {record["id"]: record for record in page["items"]}
        return [None if (record := by_id.get(key)) is None else build(record) for key in keys]


class ShopContext(BaseContext):
    """Per request: the backends, the caller's trace headers, and fresh DataLoaders (a
    per-process loader would leak one caller's cached results into another's)."""

    def __init__(self, products: Backend, orders: Backend, trace_headers: dict[str, str]) -> None:
        super().__init__()
        self.products = products
        self.orders = orders
        self.trace_headers = trace_headers
        self.product_loader = DataLoader(partial(load_by_ids, products, "/products", product_from, trace_headers),
                                         max_batch_size=MAX_IDS)
        self.order_loader = DataLoader(partial(load_by_ids, orders, "/orders", order_from, trace_headers),
                                       max_batch_size=MAX_IDS)


def included(selection: SelectedField | FragmentSpread | InlineFragment) -> bool:
    """False for a selection that @skip or @include leaves out (their arguments come with variables applied)."""
    directives = selection.directives or {}
    return not (directives.get("skip", {}).get("if") is True or directives.get("include", {}).get("if") is False)


def selects(selections: list[SelectedField | FragmentSpread | InlineFragment], *path: str) -> bool:
    """Whether these selections ask for the field at this path of field names (fragments included)."""
    for selection in selections:
        if not included(selection):
            continue
        if not isinstance(selection, SelectedField):
            if selects(selection.selections, *path):
                return True
        elif selection.name == path[0] and (len(path) == 1 or selects(selection.selections, *path[1:])):
            return True
    return False


def page_params(first: int, after: str | None) -> dict[str, str | int]:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise BadArgument("first", f"must be between 1 and {MAX_PAGE_SIZE}, got {first}")
    params: dict[str, str | int] = {"limit": first}
    if after is not None:
        if not after or len(after) > MAX_CURSOR_LENGTH:
            raise BadArgument("after", "not a cursor returned by this API")
        params["cursor"] = after
    return params


@strawberry.type
class Query:
    @strawberry.field(description="All products, a page at a time; pass pageInfo.endCursor as `after`.")
    async def products(self, info: strawberry.Info[ShopContext], first: int = 20,
                       after: str | None = None) -> ProductConnection | None:
        context = info.context
        page = await context.products.get("/products", page_params(first, after), context.trace_headers)
        with answer_of(context.products.name):
            nodes = [product_from(record) for record in page["items"]]
            connection = ProductConnection(nodes=nodes, page_info=page_info(page), total_count=int(page["total"]))
        # A product(id:) of the same query is then answered from the loader.
        context.product_loader.prime_many({node.id: node for node in nodes})
        return connection

    @strawberry.field(description="One product, or null if there is no product with that id.")
    async def product(self, info: strawberry.Info[ShopContext], id: strawberry.ID) -> Product | None:
        return await info.context.product_loader.load(id)

    @strawberry.field(description="Orders, optionally of one customer, a page at a time.")
    async def orders(self, info: strawberry.Info[ShopContext], customer_id: strawberry.ID | None = None,
                     first: int = 20, after: str | None = None) -> OrderConnection | None:
        context = info.context
        params = page_params(first, after)
        if customer_id is not None:
            if not ID_PATTERN.match(customer_id):
                raise BadArgument("customerId", "letters, digits, '-' or '_', at most 64")
            params["customer_id"] = customer_id
        page = await context.orders.get("/orders", params, context.trace_headers)
        with answer_of(context.orders.name):
            nodes = [order_from(record) for record in page["items"]]
            connection = OrderConnection(nodes=nodes, page_info=page_info(page), total_count=int(page["total"]))
        if selects(info.selected_fields, "orders", "nodes", "items", "product"):
            # The page's products in one DataLoader batch, before its items resolve. A failed batch
            # stays in the loader's futures: each item's product field reports it, the orders stand.
            product_ids = {item.product_id for node in nodes for item in node.items}
            await asyncio.gather(*map(context.product_loader.load, product_ids), return_exceptions=True)
        return connection

    @strawberry.field(description="One order, or null if there is no order with that id.")
    async def order(self, info: strawberry.Info[ShopContext], id: strawberry.ID) -> Order | None:
        return await info.context.order_loader.load(id)


def is_unexpected(error: GraphQLError) -> bool:
    """An exception this service did not raise on purpose: its message may carry internals."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class ShopSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if is_unexpected(error):
                logger.error("resolver failed", exc_info=error.original_error, extra={"path": error.path})
            else:
                logger.info("graphql error", extra={"error": error.message, "path": error.path})


# Strawberry builds new rule classes for every QueryDepthLimiter and MaxAliasesLimiter, and
# extensions are built per request; ValidationCache keys its cache by the rules, so the limiters'
# rules are built once here and added to every request as they are.
LIMIT_RULES = [*QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
               *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules]

schema = ShopSchema(
    query=Query,
    extensions=[
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=256),
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: LimitedValidationCache(maxsize=256),
        # Clients get "internal error" for exceptions this service did not raise on purpose; the
        # log gets the details (process_errors above).
        lambda: MaskErrors(should_mask_error=is_unexpected, error_message="internal error"),
    ],
)
