"""Limits on what a GraphQL document may ask for, checked before anything executes.

Strawberry's MaxTokensLimiter, QueryDepthLimiter and MaxAliasesLimiter (>= 0.315.7, which follow
fragments and survive fragment cycles) do the main work. Their walks follow every fragment spread
on every path, though, so a short document whose fragments each spread the next one twice makes
them (and graphql-core's rules) do 2**n steps: 40 fragments, well under the token limit, would
stall the event loop for hours. And the depth rule recurses a few frames per spread, so a chain
of about 250 fragments, each spreading the next, exhausts Python's stack.
tests/services/test_graphql_guards.py shows both. LimitedValidationCache measures the document
first, in linear time, and refuses such documents before any validation rule walks them.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import ValidationCache

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
MAX_EXPANDED_FIELDS = 3000
MAX_FRAGMENT_NESTING = 50
MAX_BODY_BYTES = 64 * 1024


def document_extent(document: DocumentNode, max_fields: int, max_nesting: int) -> tuple[int, int]:
    """The fields of all operations once every fragment spread is inlined, and how deep spreads
    go within each other (a spread of a fragment that spreads another is 2), each capped at
    its limit + 1. A fragment on a cycle counts as empty: validation rejects the cycle."""
    fragments = {definition.name.value: definition for definition in document.definitions
                 if isinstance(definition, FragmentDefinitionNode)}
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
            return 0, max_nesting + 1  # deep enough to refuse; going on would only grow the stack
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
                inner_fields += isinstance(selection, FieldNode)
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
    return capped(fields, nesting)


def document_too_complex(document: DocumentNode) -> GraphQLError | None:
    fields, nesting = document_extent(document, MAX_EXPANDED_FIELDS, MAX_FRAGMENT_NESTING)
    if nesting > MAX_FRAGMENT_NESTING:
        message = f"fragments spread within each other more than {MAX_FRAGMENT_NESTING} deep"
    elif fields > MAX_EXPANDED_FIELDS:
        message = f"more than {MAX_EXPANDED_FIELDS} fields once fragments are expanded"
    else:
        return None
    return GraphQLError(f"document too complex: {message}", extensions={"code": "QUERY_TOO_COMPLEX"})


class LimitedValidationCache(ValidationCache):
    """Strawberry's ValidationCache, for documents within the limits above."""

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        error = document_too_complex(document) if document is not None else None
        if error is None:
            yield from super().on_validate()
        else:
            self.execution_context.pre_execution_errors = [error]
            yield
