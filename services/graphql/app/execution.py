"""Completion of plain data subtrees without graphql-core's per-field machinery.

graphql-core completes every field of a result on its own: it builds a ResolveInfo, calls
the resolver, checks for awaitables and walks the type wrappers, about 6 µs a field. A page
of 20 orders with their items and products is about 620 fields, so 4 ms of CPU per query
went into copying attributes that were already there. The backends answer with plain
records; below the root resolvers, almost every field is an attribute read.

PlannedExecutionContext plans how to complete an object whose whole subtree is plain:
attribute fields (Strawberry's basic fields), resolvers marked SIDE_EFFECT_FREE, scalars,
enums, lists and object types without `is_type_of`. A plan is a function per selected
object type, generated once per selection (field nodes of a parsed document, values of the
variables @include, @skip, @defer and @stream read) and kept for later requests; it builds the result dict in
straight-line code and coerces leaves with the same `coerce_output_value` graphql-core calls.

A nullable object field whose value is still pending (a future, or a type registered with
register_settling_type) does not stop the plan: it leaves a hole, completes the rest of the
object, and then waits for each hole in turn. The orders resolver returns its page while
the page's products are being fetched, so the page is completed during that call.

Anything else the plan does not expect (a null in a non-null field, an error value, another
awaitable, a coercion failure, a non-list for a list, a pending value that fails or is
pending again) abandons the fast path for that
object, and graphql-core completes it again from the start; errors, their paths and null
propagation therefore come from graphql-core itself. That is why a resolver may only be
marked SIDE_EFFECT_FREE when calling it again is harmless, and why the sources must be plain
data: an attribute (a property, a `__getattr__` proxy, an ORM lazy load) may be read again,
once per enclosing planned object, when an object falls back. Here they are dataclasses built
from the backends' JSON. Selections with @defer or @stream, directives other than
@include/@skip, abstract types, arguments and field middleware (Strawberry extensions with a
`resolve` hook) are never planned.
"""

from __future__ import annotations

import asyncio
import inspect
import keyword
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from decimal import Decimal
from operator import attrgetter
from types import CoroutineType, GeneratorType
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    DirectiveNode,
    ExperimentalIncrementalExecutionResults,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
    VariableNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

logger = logging.getLogger("graphql.execution")

SIDE_EFFECT_FREE_KEY = "eks-istio-shop/side-effect-free"
# For @strawberry.field(metadata=SIDE_EFFECT_FREE): a synchronous resolver that takes only
# `self` and is idempotent (another call returns the same and changes nothing observable),
# because the fast path may call it and then leave the object to graphql-core: once more per
# enclosing planned object that falls back. A resolver returning DataLoader futures relies on
# the loader's cache being on; one that starts a task per call is not idempotent.
SIDE_EFFECT_FREE = {SIDE_EFFECT_FREE_KEY: True}

_PLANNABLE_DIRECTIVES = frozenset({"include", "skip"})
# The directives whose arguments decide which fields graphql-core collects.
_COLLECTION_DIRECTIVES = frozenset({"include", "skip", "defer", "stream"})
# Distinct (selection, directive variable values) pairs whose plans are kept, oldest dropped
# first. Each keeps its parsed document alive (the field nodes hold it through their
# locations): as many as the parser cache (guards.parse_document) keeps.
MAX_CACHED_PLANS = 256

Complete = Callable[[Any], Any]
# Exactly these types (no subclasses): their values are never errors, awaitables or proxies.
_PLAIN_TYPES = frozenset({str, int, float, bool, Decimal, datetime, date, time, UUID})


class _Irregular(Exception):
    """The value needs graphql-core's own completion (an error, a null, an awaitable)."""


# Pending values a plan may leave a hole for (exact types): they can be awaited any number of
# times with the same outcome, and read with done() and result() (which raises the error)
# like asyncio.Future. Anything else awaitable (a coroutine can be awaited only once) is
# left to graphql-core.
_SETTLING_TYPES: set[type] = {asyncio.Future, asyncio.Task}


def register_settling_type(cls: type) -> type:
    """Declares that instances of `cls` behave as described above _SETTLING_TYPES."""
    _SETTLING_TYPES.add(cls)
    return cls


class _Hole:
    """A nullable object field whose value was still pending when its parent was planned:
    filled in once the value settles, or the planned object is handed to graphql-core."""

    __slots__ = ("pending", "complete", "parent", "key")

    def __init__(self, pending: Any, complete: Complete) -> None:
        self.pending = pending
        self.complete = complete
        self.parent: dict[str, Any] | None = None
        self.key = ""


def _abandon(holes: list[_Hole]) -> None:
    # A hole and the dict it sits in refer to each other: without this, every object
    # handed back to graphql-core would leave its holes to the cycle collector.
    for hole in holes:
        hole.parent = None


class _PlanState(threading.local):
    # The holes of the plan being run; None when holes may not be left (filling them).
    holes: list[_Hole] | None = None


_plan_state = _PlanState()


class PlannedExecutionContext(StrawberryGraphQLCoreExecutionContext):
    # Plans outlive requests: a plan depends only on the schema's types, the document's field
    # nodes and the values of the variables its @include/@skip read, and building one (and
    # compiling its functions) costs more than completing the objects it plans. Keyed by the
    # nodes' ids; each entry keeps its nodes alive, so no id is reused while it is cached.
    _plans: ClassVar[OrderedDict[tuple, tuple[Any, Complete | None]]] = OrderedDict()
    # Strawberry runs synchronous executions in worker threads too.
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        # graphql-core's execution context refers to itself (async_helpers holds its bound
        # methods), so everything it holds (the request context, loaders, records, plans)
        # would wait for the cycle collector; under load that garbage reached the oldest
        # generation and its collections paused the service for 15-60 ms. Resolvers keep
        # the helpers they were given in their ResolveInfo.
        # Incremental results (@defer, @stream) are completed after this returns, by executors
        # copied from this one that still need the helpers: those keep them.
        try:
            result = super().execute_operation(*args, **kwargs)
        except BaseException:
            self._drop_self_references()
            raise
        if not self.is_awaitable(result):
            self._drop_self_references(result)
            return result

        async def await_result() -> Any:
            awaited = None
            try:
                awaited = await result
                return awaited
            finally:
                self._drop_self_references(awaited)

        return await_result()

    def _drop_self_references(self, result: Any = None) -> None:
        if not isinstance(result, ExperimentalIncrementalExecutionResults):
            self.async_helpers = None  # type: ignore[assignment]

    def complete_object_value(self, return_type, field_details_list, info, path, result, position_context):  # type: ignore[no-untyped-def]
        plan = self._object_plan(return_type, field_details_list)
        if plan is not None:
            holes: list[_Hole] = []
            enclosing, _plan_state.holes = _plan_state.holes, holes
            try:
                completed = plan(result)
            except BaseException as irregular:
                _abandon(holes)
                if not isinstance(irregular, Exception):
                    raise  # cancelled: the request's, not the object's
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("planned completion handed %s back to graphql-core: %s",
                                 return_type.name, type(irregular).__name__)
            else:
                if not holes:
                    return completed
                return self._fill_holes(completed, holes, lambda: super(PlannedExecutionContext, self).complete_object_value(
                    return_type, field_details_list, info, path, result, position_context))
            finally:
                _plan_state.holes = enclosing
        return super().complete_object_value(return_type, field_details_list, info, path, result, position_context)

    async def _fill_holes(self, completed: dict[str, Any], holes: list[_Hole], fallback: Callable[[], Any]) -> Any:
        """Waits for the pending values the plan left holes for, in order, and completes each
        in place. The rest of the object was completed while they were pending (a page of
        orders while its products are fetched). Anything irregular (an error, a value that
        is pending again) hands the whole object to graphql-core, as a plan does."""
        try:
            for hole in holes:
                pending = hole.pending
                value = pending.result() if pending.done() else await pending
                hole.parent[hole.key] = hole.complete(value)  # type: ignore[index]
        except BaseException as irregular:
            # The error may be shared (a failed batch held by every item that waited for it):
            # its traceback would hold this frame, and through it the holes, in a cycle.
            irregular.__traceback__ = None
            _abandon(holes)
            if not isinstance(irregular, Exception):
                raise  # cancelled (the request, or a pending value): as graphql-core lets it through
        else:
            return completed
        again = fallback()
        return await again if self.is_awaitable(again) else again

    def _object_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Complete | None:
        if any(details.fragment_variable_values is not None for details in field_details_list):
            return None  # fragment arguments (experimental): not planned
        nodes = tuple(details.node for details in field_details_list)
        key = (object_type, self.is_awaitable, bool(self.middleware_manager and self.middleware_manager.middlewares),
               self._directive_values(), *map(id, nodes))
        plans = PlannedExecutionContext._plans
        try:
            with self._cache_lock:
                cached = plans.get(key)
                if cached is not None:
                    plans.move_to_end(key)
        except TypeError:  # a directive variable's value that cannot be hashed: no plan
            return None
        if cached is not None:
            return cached[1]
        try:
            plan = self._build_object_plan(object_type, field_details_list)
        except GraphQLError:
            plan = None  # the request's own error (a variable graphql-core rejects too): it reports it
        except Exception:
            # A planner bug must not cost the client its answer: graphql-core does the work.
            logger.exception("planning %s failed; completing it without a plan", object_type.name)
            plan = None
        with self._cache_lock:
            plans[key] = (nodes, plan)
            while len(plans) > MAX_CACHED_PLANS:
                plans.popitem(last=False)
        return plan

    def _directive_values(self) -> tuple:
        """The variables that @include, @skip, @defer and @stream read anywhere in the
        operation, with their values: names too, since operations of one document share
        fragments but not variable names."""
        names = directive_variable_names(
            self.operation, lambda: [details.definition for details in self.fragments.values()])
        coerced = self.variable_values.coerced
        return tuple((name, coerced.get(name, Undefined)) for name in names)

    def _build_object_plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> Complete | None:
        # Strawberry always passes a middleware manager; it wraps resolvers only when an
        # extension has a `resolve` hook, and then every field must go through it.
        if object_type.is_type_of is not None or (self.middleware_manager and self.middleware_manager.middlewares):
            return None
        grouped_field_set, new_defer_usages, _forbidden = self.collect_subfields(object_type, field_details_list)
        if new_defer_usages:
            return None
        fields: list[_PlannedField] = []
        for response_name, sub_field_details in grouped_field_set.items():
            if any(details.defer_usage is not None or details.fragment_variable_values is not None
                   or not _plannable_node(details.node) for details in sub_field_details):
                return None
            field_name = sub_field_details[0].node.name.value
            if field_name == "__typename":
                fields.append(_PlannedField(response_name, constant=object_type.name))
                continue
            field_def = self.schema.get_field(object_type, field_name)
            read = None if field_def is None else _reader(field_def, self.is_awaitable)
            # Only a nullable object field may be left pending: null is all it can turn into
            # besides the object, so nothing above it depends on the wait.
            may_wait = field_def is not None and is_object_type(field_def.type)
            complete = None if read is None else self._value_plan(field_def.type, sub_field_details, may_wait=may_wait)
            if complete is None:
                return None
            fields.append(_PlannedField(response_name, read=read, attribute=_plain_attribute(field_def),
                                        complete=complete, passes=_passing_leaf(field_def.type),
                                        coerce=_leaf_coercion(field_def.type), may_wait=may_wait))
        return _compile_object_plan(object_type.name, fields)

    def _value_plan(self, return_type: GraphQLOutputType, field_details_list: Any, may_wait: bool = False) -> Complete | None:
        if is_non_null_type(return_type):
            inner_type = return_type.of_type  # type: ignore[union-attr]
            if is_leaf_type(inner_type):
                # Most fields of a page are these: one call instead of two.
                return _leaf_plan(inner_type, non_null=True, is_awaitable=self.is_awaitable)
            inner = self._value_plan(inner_type, field_details_list)
            if inner is None:
                return None

            def complete_non_null(value: Any) -> Any:
                completed = inner(value)
                if completed is None:
                    raise _Irregular
                return completed

            return complete_non_null

        if is_list_type(return_type):
            complete_item = self._value_plan(return_type.of_type, field_details_list)  # type: ignore[union-attr]
            if complete_item is None:
                return None

            def complete_list(value: Any) -> list[Any] | None:
                if value is None or value is Undefined:
                    return None
                if type(value) is not list and type(value) is not tuple:
                    raise _Irregular
                return [complete_item(item) for item in value]

            return complete_list

        if is_leaf_type(return_type):
            return _leaf_plan(return_type, non_null=False, is_awaitable=self.is_awaitable)

        if is_object_type(return_type):
            complete_fields = self._object_plan(return_type, field_details_list)  # type: ignore[arg-type]
            if complete_fields is None:
                return None
            is_awaitable = self.is_awaitable
            plain_class = _plain_object_class(return_type)  # type: ignore[arg-type]

            def complete_object(value: Any) -> dict[str, Any] | _Hole | None:
                if type(value) is plain_class:
                    return complete_fields(value)
                if value is None or value is Undefined:
                    return None
                # An awaitable may still turn out null or an error; a selection of only
                # __typename would not notice it, so check before completing.
                if isinstance(value, Exception):
                    raise _Irregular
                if is_awaitable(value):
                    holes = _plan_state.holes
                    if may_wait and holes is not None and type(value) in _SETTLING_TYPES:
                        hole = _Hole(value, complete_object)
                        holes.append(hole)
                        return hole
                    raise _Irregular
                return complete_fields(value)

            return complete_object

        return None  # interfaces and unions: graphql-core resolves the runtime type


def _leaf_plan(leaf_type: Any, non_null: bool, is_awaitable: Callable[[Any], bool]) -> Complete:
    coerce = leaf_type.coerce_output_value
    # graphql-core's String and ID coercion return a str unchanged, and Int an int in range.
    passes_str = leaf_type is GraphQLString or leaf_type is GraphQLID
    passes_int = leaf_type is GraphQLInt

    def complete_leaf(value: Any) -> Any:
        value_type = type(value)
        if (passes_str and value_type is str) or (passes_int and value_type is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT):
            return value
        if value is None or value is Undefined:
            if non_null:
                raise _Irregular
            return None
        # Custom scalars often serialize with str(): an error or a pending value (a future held
        # in an attribute) must not become its repr.
        if isinstance(value, Exception) or is_awaitable(value):
            raise _Irregular
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise _Irregular
        return coerced

    return complete_leaf


# Operation -> the variables its collection directives read, for the plans here and the compiled
# queries (app/compiled.py). Keyed by the operation's id; each entry keeps its operation alive,
# so no id is reused while it is cached.
_directive_variables: OrderedDict[int, tuple[OperationDefinitionNode, tuple[str, ...]]] = OrderedDict()
_directive_variables_lock = threading.Lock()


def directive_variable_names(operation: OperationDefinitionNode,
                             fragments: Callable[[], Iterable[FragmentDefinitionNode]]) -> tuple[str, ...]:
    """The variables that @include, @skip, @defer and @stream read anywhere in the operation
    (`fragments`: the document's fragment definitions, asked for only the first time)."""
    with _directive_variables_lock:
        cached = _directive_variables.get(id(operation))
    if cached is None:
        cached = (operation, _variables_in_directives(operation, fragments()))
        with _directive_variables_lock:
            _directive_variables[id(operation)] = cached
            while len(_directive_variables) > MAX_CACHED_PLANS:
                _directive_variables.popitem(last=False)
    return cached[1]


def _variables_in_directives(operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]) -> tuple[str, ...]:
    names: set[str] = set()

    class Finder(Visitor):
        def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
            if node.name.value not in _COLLECTION_DIRECTIVES:
                return  # a field with any other directive is not planned
            for argument in node.arguments or ():
                if isinstance(argument.value, VariableNode):
                    names.add(argument.value.name.value)

    visit(operation, Finder())
    for fragment in fragments:
        visit(fragment, Finder())
    return tuple(sorted(names))


class _PlannedField(NamedTuple):
    response_name: str
    read: Callable[[Any], Any] | None = None
    attribute: str | None = None  # read as source.<attribute>: Strawberry's getattr default resolver
    complete: Complete | None = None
    passes: str | None = None  # "str" or "int": values of that type need no completion
    coerce: Callable[[Any], Any] | None = None  # a leaf's coercion, for values of _PLAIN_TYPES
    may_wait: bool = False  # `complete` may answer a _Hole, to be told where it is
    constant: str | None = None  # __typename


def _compile_object_plan(type_name: str, fields: list[_PlannedField]) -> Complete:
    """One function per planned selection that reads, checks and builds the object's dict in
    straight-line code, like the `__init__` dataclasses generate: a field of a page costs an
    attribute read and a type check instead of three Python calls. Anything but the common
    case (a str for String/ID, an int in range for Int) goes through `complete`, which is
    graphql-core's coercion and raises _Irregular where the plan cannot decide."""
    namespace: dict[str, Any] = {"MIN_INT": GRAPHQL_MIN_INT, "MAX_INT": GRAPHQL_MAX_INT, "PLAIN_TYPES": _PLAIN_TYPES,
                                 "Undefined": Undefined, "Irregular": _Irregular, "Hole": _Hole}
    lines = ["def complete_object(source):"]
    entries = []
    for index, field in enumerate(fields):
        key = f"key_{index}"
        namespace[key] = field.response_name
        if field.constant is not None:
            namespace[f"constant_{index}"] = field.constant
            entries.append(f"{key}: constant_{index}")
            continue
        namespace[f"complete_{index}"] = field.complete
        if field.attribute is not None:
            lines.append(f"    value_{index} = source.{field.attribute}")
        else:
            namespace[f"read_{index}"] = field.read
            lines.append(f"    value_{index} = read_{index}(source)")
        if field.passes == "str":
            lines.append(f"    if type(value_{index}) is not str:")
        elif field.passes == "int":
            lines.append(f"    if type(value_{index}) is not int or not MIN_INT <= value_{index} <= MAX_INT:")
        elif field.coerce is not None:
            # A value of a plain type can be neither an error nor pending: straight to the
            # scalar's coercion, which must still not answer null.
            namespace[f"coerce_{index}"] = field.coerce
            lines.append(f"    if type(value_{index}) in PLAIN_TYPES:")
            lines.append(f"        value_{index} = coerce_{index}(value_{index})")
            lines.append(f"        if value_{index} is None or value_{index} is Undefined:")
            lines.append("            raise Irregular")
            lines.append("    else:")
        else:
            lines.append("    if True:")
        lines.append(f"        value_{index} = complete_{index}(value_{index})")
        entries.append(f"{key}: value_{index}")
    lines.append(f"    result = {{{', '.join(entries)}}}")
    for index, field in enumerate(fields):
        if field.may_wait:
            lines.append(f"    if type(value_{index}) is Hole:")
            lines.append(f"        value_{index}.parent = result")
            lines.append(f"        value_{index}.key = key_{index}")
    lines.append("    return result")
    exec(compile("\n".join(lines), f"<planned completion of {type_name}>", "exec"), namespace)  # noqa: S102 - code built above from indices and checked attribute names only
    return namespace["complete_object"]


def _basic_field(field_def: GraphQLField) -> StrawberryField | None:
    """The Strawberry field behind a graphql-core field, if it has no resolver of its own."""
    field = _strawberry_field(field_def)
    return field if field is not None and getattr(field_def.resolve, "_is_default", False) else None


def _strawberry_field(field_def: GraphQLField) -> StrawberryField | None:
    field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return field if isinstance(field, StrawberryField) else None


def _plain_attribute(field_def: GraphQLField) -> str | None:
    """The attribute a Strawberry basic field reads with getattr, if it can be written as
    `source.<name>` (an identifier that is not a keyword)."""
    field = _basic_field(field_def)
    if (field is not None and field.default_resolver is getattr and field.python_name.isascii() and field.python_name.isidentifier()
            and not keyword.iskeyword(field.python_name)):
        return field.python_name
    return None


def _passing_leaf(field_type: GraphQLOutputType) -> str | None:
    leaf_type = get_nullable_type(field_type)
    if leaf_type is GraphQLString or leaf_type is GraphQLID:
        return "str"
    if leaf_type is GraphQLInt:
        return "int"
    return None


def _leaf_coercion(field_type: GraphQLOutputType) -> Callable[[Any], Any] | None:
    leaf_type = get_nullable_type(field_type)
    return leaf_type.coerce_output_value if is_leaf_type(leaf_type) else None


def _plain_object_class(object_type: GraphQLObjectType) -> type | None:
    """The Python class of a Strawberry object type, if its instances can be neither awaitable
    nor errors: a value of exactly this class (not a subclass) needs no check. (graphql-core
    looks for `__await__` on the instance; an instance given one of its own, unlike its class,
    would be completed here and awaited there. Sources are plain data, as for every plan.)"""
    definition = (object_type.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    origin = getattr(definition, "origin", None)
    if (not isinstance(origin, type) or issubclass(origin, (BaseException, GeneratorType, CoroutineType))
            or hasattr(origin, "__await__")):
        return None
    return origin


def _plannable_node(node: Any) -> bool:
    return not node.arguments and all(directive.name.value in _PLANNABLE_DIRECTIVES for directive in node.directives or ())


def _reader(field_def: GraphQLField, is_awaitable: Callable[[Any], bool]) -> Callable[[Any], Any] | None:
    """How to read the field's value from its parent, exactly as Strawberry's resolver would,
    or None when the field needs Strawberry's full resolver path."""
    field = _strawberry_field(field_def)
    if field is None or field_def.args or field.extensions:
        return None
    if _basic_field(field_def) is not None:
        # Strawberry's basic field: field.default_resolver(source, python_name).
        python_name = field.python_name
        if field.default_resolver is getattr:
            return attrgetter(python_name)
        default_resolver = field.default_resolver
        return lambda source: default_resolver(source, python_name)
    resolver = field.base_resolver
    if (resolver is None or not field.metadata.get(SIDE_EFFECT_FREE_KEY) or resolver.is_async
            or resolver.arguments or resolver.self_parameter is None or resolver.info_parameter is not None
            or resolver.root_parameter is not None or resolver.parent_parameter is not None
            or inspect.isasyncgenfunction(resolver.wrapped_func)):
        return None
    function = resolver.wrapped_func
    named_type = get_named_type(field_def.type)
    plain_class = _plain_object_class(named_type) if is_object_type(named_type) else None

    def read_resolved(source: Any) -> Any:
        value = function(source)
        if value is None or type(value) is plain_class or type(value) in _SETTLING_TYPES:
            return value  # pending values: the completion decides whether the plan may wait
        if is_awaitable(value):
            # Not ready yet: graphql-core awaits it (the resolver runs again and gets the
            # same DataLoader future). A coroutine is closed, so it is not left un-awaited.
            if inspect.iscoroutine(value):
                value.close()
            raise _Irregular
        return value

    return read_resolved
