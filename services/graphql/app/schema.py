"""The GraphQL schema: products and orders, with order items resolved to products.

Order.items[].product goes through a per-request DataLoader, so all products of all
orders in one query are fetched with one call to the products service. Backend failures
surface as errors on the fields that needed them (the fields are nullable), never as an
HTTP error for the whole query.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Future
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    SelectionSetNode,
    execute,
    get_operation_ast,
)
from graphql.execution.middleware import MiddlewareManager
from strawberry.dataloader import AbstractCache, DataLoader
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext
from strawberry.types import ExecutionResult as StrawberryExecutionResult
from strawberry.types.graphql import OperationType

from app.backends import Backend, BadArgument, ShopError, answer_of
from app.compiled import QueryCompiler, Recording, ShopModel
from app.execution import SIDE_EFFECT_FREE, PlannedExecutionContext, register_settling_type
from app.guards import VALIDATION_RULES, RequestChecks, checked_document, parse_document
from service_kit.collection import ID_LIST_PATTERN, ID_PATTERN, MAX_IDS

logger = logging.getLogger("graphql")
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 200


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


@register_settling_type
class PageProduct:
    """One item's product out of its page's products fetch (a task answering every id of the
    page: a product, None, or the error of its batch). Like a future, it can be awaited any
    number of times and read with done() and result()."""

    __slots__ = ("fetch", "product_id")

    def __init__(self, fetch: asyncio.Future, product_id: str) -> None:
        self.fetch = fetch
        self.product_id = product_id

    def done(self) -> bool:
        return self.fetch.done()

    def result(self) -> Product | None:
        found = self.fetch.result()[self.product_id]
        if isinstance(found, Exception):
            # Every item of a failed batch raises the same error; re-raising an exception
            # extends the traceback it already has, so without the reset each item's error
            # would carry the frames of all the items before it.
            raise found.with_traceback(None)
        return found

    def __await__(self) -> Generator[Any, None, Product | None]:
        if not self.fetch.done():
            yield from self.fetch.__await__()
        return self.result()


@strawberry.type
class OrderItem:
    product_id: strawberry.ID
    quantity: int
    unit_price: Decimal

    loader: strawberry.Private[DataLoader | None] = None
    # The product as fetched with the rest of its page's products, when the orders resolver did.
    page_product: strawberry.Private[PageProduct | None] = None

    # Idempotent, as SIDE_EFFECT_FREE requires: it reads the page's fetch, or asks the
    # DataLoader, which returns the same future for the same key within a request.
    @strawberry.field(description="null if the product no longer exists or the products service failed",
                      metadata=SIDE_EFFECT_FREE)
    def product(self) -> Product | None:
        # No `info` parameter: building Strawberry's Info object costs more than the rest of
        # this resolver, and it would be built once per item.
        if self.page_product is not None:
            # Still pending, the executor completes the rest of the page meanwhile (app/execution.py).
            return self.page_product.result() if self.page_product.done() else self.page_product  # type: ignore[return-value]
        # Returning the loader's future, rather than awaiting it in a coroutine, keeps all
        # lookups of a query in the same DataLoader batch.
        return self.loader.load(self.product_id)  # type: ignore[union-attr,return-value]


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


# What product_from reads of a product record: app/compiled.py checks these.
PRODUCT_KEYS = frozenset({"id", "name", "description", "price", "currency", "stock"})


def product_from(record: dict) -> Product:
    return Product(id=record["id"], name=record["name"], description=record["description"],
                   price=record["price"], currency=record["currency"], stock=record["stock"])


# What order_from reads of an order record and of each item: app/compiled.py checks these.
ORDER_KEYS = frozenset({"id", "customer_id", "status", "created_at", "currency", "total", "items"})
ORDER_ITEM_KEYS = frozenset({"product_id", "quantity", "unit_price"})


def order_from(record: dict, product_loader: DataLoader, page_products: asyncio.Future | None = None) -> Order:
    return Order(
        id=record["id"],
        customer_id=record["customer_id"],
        status=record["status"],
        created_at=datetime.fromisoformat(record["created_at"]),
        currency=record["currency"],
        total=record["total"],
        items=[OrderItem(product_id=item["product_id"], quantity=item["quantity"], unit_price=item["unit_price"],
                         loader=product_loader,
                         page_product=None if page_products is None else PageProduct(page_products, item["product_id"]))
               for item in record["items"]],
    )


def page_info(page: dict) -> PageInfo:
    return PageInfo(has_next_page=page["next_cursor"] is not None, end_cursor=page["next_cursor"])


class ShopContext:
    """Per request: the caller's trace headers and fresh DataLoaders (a per-process
    loader would leak one caller's cached results into another's)."""

    def __init__(self, products: Backend, orders: Backend, trace_headers: dict[str, str]) -> None:
        self.products = products
        self.orders = orders
        self.trace_headers = trace_headers
        # The loaders' functions must not refer back to this context: a cycle would leave the
        # request's whole object graph (loaders, caches, records) to the cycle collector,
        # whose full collections then paused the service for 15-60 ms under load.
        self.product_loader: DataLoader[str, Product | None] = DataLoader(
            partial(_load_products, products, trace_headers), max_batch_size=MAX_IDS, cache_map=ProductCache())
        self.order_loader: DataLoader[str, Order | None] = DataLoader(
            partial(_load_orders, orders, trace_headers, self.product_loader), max_batch_size=MAX_IDS)


async def _load_products(backend: Backend, trace_headers: dict[str, str], keys: list[str]) -> list[Product | None]:
    found = await _load_by_ids(backend, "/products", keys, trace_headers)
    with answer_of(backend.name):
        return [None if record is None else product_from(record) for record in found]


async def _load_orders(backend: Backend, trace_headers: dict[str, str], product_loader: DataLoader,
                       keys: list[str]) -> list[Order | None]:
    found = await _load_by_ids(backend, "/orders", keys, trace_headers)
    with answer_of(backend.name):
        return [None if record is None else order_from(record, product_loader) for record in found]


async def _load_by_ids(backend: Backend, path: str, keys: list[str], trace_headers: dict[str, str]) -> list[dict | None]:
    # An id that cannot exist must not turn the whole batch into a 422. Nearly always every id
    # is valid, which one match of them all shows (with no id holding a comma of its own).
    try:
        joined = ",".join(keys)
    except TypeError:  # not all str: the check of each below fails as it would have
        joined = ""
    if ID_LIST_PATTERN.fullmatch(joined) and joined.count(",") == len(keys) - 1:
        valid = keys
    else:
        valid = [key for key in keys if ID_PATTERN.match(key)]
        if not valid:
            return [None] * len(keys)
        joined = ",".join(valid)
    page = await backend.get(path, {"ids": joined, "limit": len(valid)}, trace_headers)
    with answer_of(backend.name):
        by_id = {record["id"]: record for record in page["items"]}
    return [by_id.get(key) for key in keys]


class ProductCache(AbstractCache[str, "Product | None"]):
    """The product loader's cache: futures, as DataLoader keeps them, and plain results.

    A page's products arrive as one answer; priming the loader with them the usual way
    (prime_many) makes a future per product that nothing may ever ask for. Results are kept as
    they are, and a future is made only when DataLoader.load asks for that key.
    """

    def __init__(self) -> None:
        self.futures: dict[str, Future] = {}
        self.results: dict[str, Product | None] = {}

    def get(self, key: str) -> Future | None:
        future = self.futures.get(key)
        if future is None and key in self.results:
            future = self.futures[key] = asyncio.get_running_loop().create_future()
            future.set_result(self.results[key])
        return future

    def set(self, key: str, value: Future) -> None:
        # A future set (DataLoader.load, prime with force=True) replaces a result, so that
        # every reader of the key sees the same value.
        self.results.pop(key, None)
        self.futures[key] = value

    def delete(self, key: str) -> None:
        if key not in self.futures and key not in self.results:
            raise KeyError(key)  # as DefaultCache does, for DataLoader.clear
        self.futures.pop(key, None)
        self.results.pop(key, None)

    def clear(self) -> None:
        self.futures.clear()
        self.results.clear()

    def add_results(self, found: dict[str, Product | None]) -> None:
        """Like DataLoader.prime_many: keys the cache already holds keep what they have."""
        for key, value in found.items():
            if key not in self.futures:
                self.results.setdefault(key, value)


async def _fetch_products(loader: DataLoader, product_ids: list[str]) -> dict[str, Any]:
    """Each product of a page, or the error of its batch, by id: with one call to the
    products service per max_batch_size ids, through the loader's own batch function, its
    cache primed with the answer so other fields of the query reuse it. Ids the loader
    already holds are taken from it.

    This skips DataLoader.load per id, which costs a future, two callbacks and a trip
    through the event loop per product (about 0.2 ms of the 1 ms a page of 20 orders took).
    A failed batch is not raised here: it becomes the error of each item's `product` field,
    and the orders themselves are still returned.
    """
    cache: ProductCache = loader.cache_map  # type: ignore[assignment]
    found: dict[str, Any] = {}
    held: dict[str, Future] = {}
    missing: list[str] = []
    for product_id in product_ids:
        if product_id in cache.results:
            found[product_id] = cache.results[product_id]
            continue
        future = cache.futures.get(product_id)
        if future is not None and not future.cancelled():
            held[product_id] = future
        else:
            missing.append(product_id)
    chunk = loader.max_batch_size or len(missing) or 1
    batches = [missing[start:start + chunk] for start in range(0, len(missing), chunk)]
    if len(batches) == 1 and not held:
        # The usual case: awaited here, without the task per awaitable gather would make.
        try:
            answers: list[Any] = [await loader.load_fn(batches[0])]
        except Exception as error:  # noqa: BLE001 - the items' error, as below
            # Without its traceback: this frame, which its traceback holds, holds it in
            # `answers` (a cycle, and the loader with it, when no field shows the error). Each
            # item raises it afresh (PageProduct.result).
            answers = [error.with_traceback(None)]
    else:
        answers = await asyncio.gather(*(loader.load_fn(batch) for batch in batches), *held.values(),
                                       return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer  # cancellation is the request's, not a field error
    for batch, answer in zip(batches, answers):
        if isinstance(answer, BaseException):
            found.update(dict.fromkeys(batch, answer.with_traceback(None)))  # as above
        else:
            batch_found = dict(zip(batch, answer, strict=True))
            cache.add_results(batch_found)
            found.update(batch_found)
    found.update(zip(held, answers[len(batches):]))
    return found


def selects_item_products(field_nodes: Sequence[FieldNode], fragments: Mapping[str, FragmentDefinitionNode]) -> bool:
    """Whether these field nodes select items { product } (through fragments too).

    Reads graphql-core's nodes: Strawberry's `info.selected_fields` first converts the whole
    selection (arguments, directives) into its own objects, which cost more than the rest of
    the orders resolver. Like it, this ignores @include/@skip: at worst a page's products
    are fetched and not shown.
    """

    def search(selection_set: SelectionSetNode | None, inside_items: bool, visited: frozenset[str]) -> bool:
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if inside_items and name == "product":
                    return True
                if search(selection.selection_set, inside_items or name == "items", visited):
                    return True
            elif isinstance(selection, FragmentSpreadNode):
                fragment_name = selection.name.value
                fragment = fragments.get(fragment_name)
                if fragment is not None and fragment_name not in visited and search(
                        fragment.selection_set, inside_items, visited | {fragment_name}):
                    return True
            elif search(selection.selection_set, inside_items, visited):
                return True
        return False

    return any(search(node.selection_set, False, frozenset()) for node in field_nodes)


def orders_params(customer_id: str | None, first: int, after: str | None) -> dict[str, str | int]:
    """The orders call's query parameters for these arguments, or BadArgument."""
    params = _check_page_arguments(first, after)
    if customer_id is not None:
        if not ID_PATTERN.match(customer_id):
            raise BadArgument("customerId", "letters, digits, '-' or '_', at most 64")
        params["customer_id"] = customer_id
    return params


def _check_page_arguments(first: int, after: str | None) -> dict[str, str | int]:
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
    async def products(self, info: strawberry.Info, first: int = 20, after: str | None = None) -> ProductConnection | None:
        context: ShopContext = info.context
        page = await context.products.get("/products", _check_page_arguments(first, after), context.trace_headers)
        with answer_of(context.products.name):
            nodes = [product_from(record) for record in page["items"]]
            connection = ProductConnection(nodes=nodes, page_info=page_info(page), total_count=int(page["total"]))
        for node in nodes:
            context.product_loader.prime(node.id, node)
        return connection

    @strawberry.field(description="One product, or null if there is no product with that id.")
    def product(self, info: strawberry.Info, id: strawberry.ID) -> Product | None:
        return info.context.product_loader.load(id)  # type: ignore[return-value]

    @strawberry.field(description="Orders, optionally of one customer, a page at a time.")
    async def orders(
        self, info: strawberry.Info, customer_id: strawberry.ID | None = None, first: int = 20, after: str | None = None
    ) -> OrderConnection | None:
        context: ShopContext = info.context
        page = await context.orders.get("/orders", orders_params(customer_id, first, after), context.trace_headers)
        page_products: asyncio.Future | None = None
        if selects_item_products(info._raw_info.field_nodes, info._raw_info.fragments):
            with answer_of(context.orders.name):
                product_ids = list(dict.fromkeys(item["product_id"] for record in page["items"] for item in record["items"]))
            page_products = asyncio.ensure_future(_fetch_products(context.product_loader, product_ids))
        try:
            if page_products is not None:
                # Let it send its request now. The page is returned without waiting for the
                # answer: the products service works while this one builds and completes the
                # page. The items hold the fetch; if the request ends after this, the fetch
                # still ends within the backend timeout.
                await asyncio.sleep(0)
            with answer_of(context.orders.name):
                nodes = [order_from(record, context.product_loader, page_products) for record in page["items"]]
                return OrderConnection(nodes=nodes, page_info=page_info(page), total_count=int(page["total"]))
        except BaseException:
            if page_products is not None:
                page_products.cancel()
            raise

    @strawberry.field(description="One order, or null if there is no order with that id.")
    def order(self, info: strawberry.Info, id: strawberry.ID) -> Order | None:
        return info.context.order_loader.load(id)  # type: ignore[return-value]


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, ShopError) and not isinstance(original, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Unexpected exceptions may carry internals (URLs, library messages): clients get a
    generic message, the log gets the details (ShopSchema.process_errors). Strawberry's
    MaskErrors, for the results this service gives (no streaming): MaskErrors tells them
    apart with a runtime Protocol isinstance, about 10 µs a request."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="internal error")

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, (GraphQLExecutionResult, StrawberryExecutionResult)) and result.errors:
            result.errors = self.masked(result.errors)

    def masked(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self.anonymise_error(error) if self.should_mask_error(error) else error for error in errors]


# Every request goes through these: the limits, then the masking of what comes out.
REQUEST_EXTENSIONS = (RequestChecks, MaskUnexpectedErrors)
# Subscriptions stream: Strawberry's subscribe handles them.
_DIRECT_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


class ShopSchema(strawberry.Schema):
    """Runs a valid query or mutation directly on graphql-core, the way Strawberry's pipeline
    would with REQUEST_EXTENSIONS; with compile_queries, a query of one orders page first as
    app/compiled.py compiles it, graphql-core answering whatever that gives up on. Strawberry's execute builds an execution context, the
    extensions and a context manager per hook for every request, about 0.1 ms of a query
    (more than a tenth of its CPU); what the extensions do here is a cached parse, a cached
    check and a mask. Anything else takes Strawberry's own execute: a document that does
    not parse, is invalid or has no such operation (so its errors, and the exceptions the
    view turns into HTTP errors, are Strawberry's), and every request of a schema with other
    extensions, directives or incremental delivery, which this path knows nothing of.
    tests/services/test_graphql_direct.py holds the two to the same results."""

    def __init__(self, *args: Any, compile_queries: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runs_directly = (tuple(self.extensions) == REQUEST_EXTENSIONS and not self.directives
                               and not self.config.enable_experimental_incremental_execution)
        self._masking = MaskUnexpectedErrors()
        self._compiler = QueryCompiler(self._schema, SHOP_MODEL) if compile_queries and self._runs_directly else None

    async def execute(  # noqa: PLR0913, PLR0917 - Strawberry's signature
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> StrawberryExecutionResult:
        direct = self._direct_document(query, operation_name, allowed_operation_types)
        if direct is None:
            return await super().execute(query, variable_values, context_value, root_value, operation_name,
                                         allowed_operation_types, operation_extensions)
        document, operation = direct
        if self._compiler is not None and type(context_value) is ShopContext:
            answered = await self._run_compiled(document, operation, variable_values, context_value)
            if type(answered) is StrawberryExecutionResult:
                return answered
            context_value = answered
        try:
            result = execute(self._schema, document, root_value=root_value, context_value=context_value,
                             variable_values=variable_values, operation_name=operation_name,
                             middleware=MiddlewareManager(), executor_class=self.execution_context_class,
                             is_awaitable=optimized_is_awaitable, operation_extensions=operation_extensions)
            if optimized_is_awaitable(result):
                result = await result
        except Exception as error:  # noqa: BLE001 - as Strawberry's execute: an error result, not a 500
            result = GraphQLExecutionResult(data=None, errors=[
                error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)])
        errors = result.errors
        if errors:
            self._process_errors(errors)
            errors = self._masking.masked(errors)
        return StrawberryExecutionResult(data=result.data, errors=errors, extensions={})

    async def _run_compiled(self, document: Any, operation: Any, variable_values: dict[str, Any] | None,
                            context: ShopContext) -> StrawberryExecutionResult | ShopContext:
        """The result of the compiled query (app/compiled.py), or the context to run the query
        with on graphql-core: the given one, or one whose backends give again what they gave
        the compiled attempt."""
        compiler: QueryCompiler = self._compiler  # type: ignore[assignment]
        try:
            variables = compiler.variable_values(operation, variable_values)
            compiled = compiler.compiled(document, operation, variables, variable_values)
        except Exception:  # noqa: BLE001 - graphql-core answers what the compiler cannot take
            return context
        if compiled is None:
            return context
        orders, products = Recording(context.orders), Recording(context.products)
        try:
            data = await compiler.run(compiled, orders, products, context.trace_headers, variables)
        except Exception as irregular:  # noqa: BLE001 - graphql-core answers it, errors and all
            irregular.__traceback__ = None  # its frames hold the recordings, which may hold it
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("compiled query handed to graphql-core: %s", type(irregular).__name__)
            return ShopContext(products, orders, context.trace_headers)
        return StrawberryExecutionResult(data=data, errors=None, extensions={})

    def _direct_document(self, query: str | None, operation_name: str | None,
                         allowed_operation_types: Iterable[OperationType] | None) -> tuple[Any, Any] | None:
        """The parsed document and the operation to run, if this request may run directly:
        valid, and with an operation of an allowed type."""
        if not self._runs_directly or not query or type(query) is not str:
            return None
        try:
            document = parse_document(query)
        except GraphQLError:
            return None
        operation = get_operation_ast(document, operation_name)  # the one graphql-core would run
        if operation is None:
            return None
        operation_type = OperationType(operation.operation.value)
        if operation_type not in _DIRECT_OPERATIONS or (
                allowed_operation_types is not None and operation_type not in allowed_operation_types):
            return None
        try:
            problems = checked_document(self._schema, document, VALIDATION_RULES)
        except Exception:  # noqa: BLE001 - Strawberry's pipeline answers it, as it would without this path
            return None
        return None if problems else (document, operation)

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if _is_unexpected(error):
                logger.error("resolver failed", exc_info=error.original_error,
                             extra={"path": error.path})
            else:
                logger.info("graphql error", extra={"error": error.message, "path": error.path})
        # Logged: the tracebacks are of no further use, and each holds the frames of the
        # execution, which hold the errors: cycles that would wait for the cycle collector.
        for error in errors:
            error.__traceback__ = None
            if error.original_error is not None:
                error.original_error.__traceback__ = None


SHOP_MODEL = ShopModel(orders_params=orders_params, order_keys=ORDER_KEYS, order_item_keys=ORDER_ITEM_KEYS,
                       product_keys=PRODUCT_KEYS, load_by_ids=_load_by_ids, max_batch=MAX_IDS,
                       selects_item_products=selects_item_products)


def build_schema(execution_context_class: type | None = PlannedExecutionContext, compile_queries: bool = True) -> ShopSchema:
    """The service's schema. Tests build it with execution_context_class=None and
    compile_queries=False too, to compare the compiled queries and the planned execution with
    graphql-core's own."""
    return ShopSchema(query=Query, execution_context_class=execution_context_class,
                      extensions=list(REQUEST_EXTENSIONS), compile_queries=compile_queries)


schema = build_schema()
