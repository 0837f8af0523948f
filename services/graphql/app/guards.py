"""Limits on what a GraphQL document may ask for, checked before anything executes.

graphql-core's parser stops at MAX_TOKENS tokens. Strawberry's depth and alias rules
(>= 0.315.7, which follow fragments and survive fragment cycles) do the main work of
validation. Their walk follows every fragment spread on every path, though, so a short
document whose fragments each spread the next one twice makes them (and graphql-core's rules)
do 2**n steps: 40 fragments, well under the token limit, would stall the event loop for
hours. The depth rule also recurses a few frames per spread, so a chain of about 250
fragments, each spreading the next (still under the token limit), would exhaust Python's
stack. checked_document first measures how deep fragments spread within each other and how
many selections the document expands to, in linear time with memoised fragments, and rejects
such documents before any validation rule walks them; otherwise it runs the normal
validation, cached per document.

RequestChecks is the Strawberry extension that parses and checks a request that way;
ShopSchema (schema.py) calls the same two functions when it runs a query directly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from functools import lru_cache

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    specified_rules,
)
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as create_alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as create_depth_rule
from strawberry.schema.schema import validate_document

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
MAX_EXPANDED_SELECTIONS = 3000
MAX_FRAGMENT_NESTING = 50
MAX_BODY_BYTES = 64 * 1024


def document_extent(document: DocumentNode, max_fields: int, max_nesting: int) -> tuple[int, int]:
    """The fields in all operations once every fragment spread is inlined, and how deep spreads
    go within each other (a spread of a fragment that spreads another is 2), each stopping
    early above its cap (then cap + 1).

    A fragment on a cycle counts as empty here; graphql-core's NoFragmentCycles rule rejects
    such documents during the validation that follows.
    """
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    known: dict[str, tuple[int, int]] = {}
    in_progress: set[str] = set()

    def capped(fields: int, nesting: int) -> tuple[int, int]:
        # Keeps the numbers small: a fragment bomb's true size has hundreds of digits.
        return min(fields, max_fields + 1), min(nesting, max_nesting + 1)

    def extent_of_fragment(name: str) -> tuple[int, int]:
        if name in known:
            return known[name]
        fragment = fragments.get(name)
        if fragment is None or name in in_progress:
            return 0, 0
        if len(in_progress) >= max_nesting:
            return 0, max_nesting + 1  # deep enough to refuse: going on would only grow the stack
        in_progress.add(name)
        fields, nesting = extent_of(fragment.selection_set)
        in_progress.discard(name)
        known[name] = capped(fields, nesting + 1)
        return known[name]

    def extent_of(selection_set: SelectionSetNode | None) -> tuple[int, int]:
        fields = nesting = 0
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FragmentSpreadNode):
                inner_fields, inner_nesting = extent_of_fragment(selection.name.value)
            else:
                inner_fields, inner_nesting = extent_of(selection.selection_set)
                if isinstance(selection, FieldNode):
                    inner_fields += 1
            fields += inner_fields
            nesting = max(nesting, inner_nesting)
            if fields > max_fields or nesting > max_nesting:
                break
        return capped(fields, nesting)

    fields = nesting = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            inner_fields, inner_nesting = extent_of(definition.selection_set)
            fields += inner_fields
            nesting = max(nesting, inner_nesting)
            if fields > max_fields or nesting > max_nesting:
                break
    return capped(fields, nesting)


# Strawberry's QueryDepthLimiter and MaxAliasesLimiter extensions build new rule classes
# per instance, i.e. per request, which defeats any validation cache keyed by the rules.
# The same rules, built once:
LIMIT_RULES = (create_depth_rule(MAX_DEPTH, None), create_alias_rule(MAX_ALIASES))
# graphql-core's rules and the limits: what RequestChecks validates with, as Strawberry's
# execution context starts from graphql-core's rules.
VALIDATION_RULES = (*specified_rules, *LIMIT_RULES)

# Parsed documents by query text, as many as are checked. A repeated query is then the same
# document object, which the checks and the execution plans (execution.py) are cached by.
MAX_PARSED_DOCUMENTS = 256
_parse_bounded = lru_cache(maxsize=MAX_PARSED_DOCUMENTS)(parse)


def parse_document(query: str) -> DocumentNode:
    """The query's document, parsed once: a GraphQLError above MAX_TOKENS tokens (counted
    by the parser as it goes, so a huge document costs no more than the limit) or when the
    syntax is wrong."""
    return _parse_bounded(query, max_tokens=MAX_TOKENS)


# Documents checked, by identity: a parsed document is a frozen dataclass whose hash walks its
# whole tree, so an lru_cache keyed by the document costs a walk per query. Each entry keeps
# its document (and schema) alive, so no id is reused while it is cached. As many as the
# parser cache keeps.
MAX_CHECKED_DOCUMENTS = MAX_PARSED_DOCUMENTS
_checked: OrderedDict[tuple, tuple[GraphQLSchema, DocumentNode, list[GraphQLError]]] = OrderedDict()
_checked_lock = threading.Lock()


def checked_document(schema: GraphQLSchema, document: DocumentNode, rules: tuple) -> list[GraphQLError]:
    """The errors of a parsed document: fragments nested too deep, too large once its fragments
    are expanded, or what validation with these rules finds. Parsed documents come from the parser cache, so a
    repeated query is the same object and is checked once."""
    key = (id(schema), id(document), rules)
    with _checked_lock:
        cached = _checked.get(key)
        if cached is not None:
            _checked.move_to_end(key)
            return cached[2]
    fields, nesting = document_extent(document, MAX_EXPANDED_SELECTIONS, MAX_FRAGMENT_NESTING)
    if nesting > MAX_FRAGMENT_NESTING:
        errors = [GraphQLError(
            f"document too complex: fragments spread within each other more than {MAX_FRAGMENT_NESTING} "
            f"deep (allowed: {MAX_FRAGMENT_NESTING})",
            extensions={"code": "QUERY_TOO_COMPLEX"},
        )]
    elif fields > MAX_EXPANDED_SELECTIONS:
        errors = [GraphQLError(
            f"document too large: more than {MAX_EXPANDED_SELECTIONS} fields once fragments "
            f"are expanded (allowed: {MAX_EXPANDED_SELECTIONS})",
            extensions={"code": "QUERY_TOO_COMPLEX"},
        )]
    else:
        errors = validate_document(schema, document, rules)
    with _checked_lock:
        _checked[key] = (schema, document, errors)
        while len(_checked) > MAX_CHECKED_DOCUMENTS:
            _checked.popitem(last=False)
    return errors


class RequestChecks(SchemaExtension):
    """The token limit and parser cache (parse_document), then the fragment-expansion bound and
    validation with the depth and alias limits (checked_document)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = parse_document(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            context.validation_rules = (*context.validation_rules, *LIMIT_RULES)
            context.pre_execution_errors = checked_document(context.schema._schema, document, context.validation_rules)
        yield
