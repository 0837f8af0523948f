"""The document check of app/guards.py, in process: the cases Strawberry's limiters miss, and
how the check measures a document."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from graphql import parse, specified_rules, validate
from strawberry.extensions import QueryDepthLimiter

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
for path in (GRAPHQL_SERVICE, GRAPHQL_SERVICE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app import guards  # noqa: E402
from app.schema import LIMIT_RULES, schema  # noqa: E402


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next twice: about 12 tokens a level, 2**levels fields expanded."""
    fragments = " ".join(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels))
    return "{ ...F0 } " + fragments + f' fragment F{levels} on Query {{ product(id: "p001") {{ id }} }}'


def fragment_chain(length: int) -> str:
    """An operation spreading F0, which spreads F1, ... down to F<length - 1>: `length` deep."""
    return ("{ ...F0 } " + " ".join(f"fragment F{n} on Query {{ ...F{n + 1} }}" for n in range(length - 1))
            + f" fragment F{length - 1} on Query {{ __typename }}")


def errors_of(query: str) -> list[dict]:
    result = asyncio.run(schema.execute(query))
    return [error.formatted for error in result.errors or []]


def test_strawberrys_depth_limiter_walks_a_fragment_bomb_exponentially() -> None:
    """Why the check exists: the limiter visits the bottom two fields once per path, 2**levels
    paths for a document of a dozen tokens per level (40 levels, under the token limit: hours)."""
    visits = 0

    def count(_: object) -> bool:
        nonlocal visits
        visits += 1
        return False

    [rule] = QueryDepthLimiter(max_depth=10, should_ignore=count).validation_rules
    for levels in (8, 12):
        visits = 0
        validate(schema._schema, parse(fragment_bomb(levels)), [rule])
        assert visits == 2 * 2**levels


def test_strawberrys_depth_limiter_exhausts_the_stack_on_a_long_fragment_chain() -> None:
    document = parse(fragment_chain(248), max_tokens=guards.MAX_TOKENS)  # within the token limit
    with pytest.raises(RecursionError):
        validate(schema._schema, document, [*specified_rules, *LIMIT_RULES])


@pytest.mark.parametrize("query", [fragment_bomb(40), fragment_chain(248)], ids=["bomb", "chain"])
def test_the_service_refuses_both_before_validation(query: str) -> None:
    [error] = errors_of(query)
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX"}
    assert error["message"].startswith("document too complex: ")


def test_fragments_nested_to_the_limit_pass_and_one_level_deeper_is_refused() -> None:
    assert errors_of(fragment_chain(guards.MAX_FRAGMENT_NESTING)) == []
    assert errors_of(fragment_chain(guards.MAX_FRAGMENT_NESTING + 1))[0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def nesting_of(document: str) -> int:
    return guards.document_extent(parse(document), 3000, 50)[1]


def test_fragment_nesting_is_measured_along_every_path() -> None:
    assert nesting_of("{ orders { totalCount } }") == 0
    assert nesting_of(fragment_chain(7)) == 7
    # Through fields and inline fragments, and the deepest of two branches; a fragment reached
    # again (memoised) still counts at its full height.
    branches = parse("""{ orders { nodes { ... on Order { ...Short } } } ...Long }
        fragment Short on Order { ...Leaf } fragment Long on Query { orders { nodes { ...Mid } } }
        fragment Mid on Order { ...Short } fragment Leaf on Order { id }""")
    assert guards.document_extent(branches, 3000, 50) == (6, 4)
    # A cycle counts as nothing here (validation rejects it), and nothing stalls.
    assert nesting_of("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }") == 2
    assert nesting_of(fragment_chain(200)) == 51


def test_expanded_fields_are_counted_and_capped() -> None:
    assert guards.document_extent(parse(fragment_bomb(3)), 3000, 50)[0] == 16
    assert guards.document_extent(parse(fragment_bomb(40)), 3000, 50)[0] == 3001


def test_a_repeated_document_is_validated_once() -> None:
    """The limiters' rules are the same classes on every request, so ValidationCache finds them."""
    from strawberry.extensions.validation_cache import _get_validate_cache

    cache = _get_validate_cache(256)
    query = "{ first: __typename second: __typename }"
    errors_of(query)
    misses = cache.cache_info().misses
    for _ in range(3):
        errors_of(query)
    assert cache.cache_info().misses == misses
