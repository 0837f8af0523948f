"""The document checks of app/guards.py, in process: what is checked, and what is kept."""

from __future__ import annotations

import sys
from pathlib import Path

from graphql import parse, specified_rules

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
for path in (GRAPHQL_SERVICE, GRAPHQL_SERVICE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app import guards  # noqa: E402
from app.schema import schema  # noqa: E402

RULES = (*specified_rules, *guards.LIMIT_RULES)
GRAPHQL_SCHEMA = schema._schema


def test_a_document_is_checked_once_and_by_identity(monkeypatch) -> None:
    calls: list[object] = []
    validate = guards.validate_document

    def counted(schema, document, rules):  # noqa: ANN001, ANN202
        calls.append(document)
        return validate(schema, document, rules)

    monkeypatch.setattr(guards, "validate_document", counted)
    document = parse("{ orders(first: 1) { totalCount } }")
    first = guards.checked_document(GRAPHQL_SCHEMA, document, RULES)
    assert guards.checked_document(GRAPHQL_SCHEMA, document, RULES) is first
    assert first == [] and calls == [document]
    # The same text parsed again is another document: checked again, not matched by content.
    again = parse("{ orders(first: 1) { totalCount } }")
    guards.checked_document(GRAPHQL_SCHEMA, again, RULES)
    assert calls == [document, again]
    # Other rules, another check.
    guards.checked_document(GRAPHQL_SCHEMA, document, tuple(specified_rules))
    assert len(calls) == 3


def test_errors_are_found_and_kept() -> None:
    document = parse("{ orders { nope } }")
    errors = guards.checked_document(GRAPHQL_SCHEMA, document, RULES)
    assert len(errors) == 1 and "nope" in errors[0].message
    assert guards.checked_document(GRAPHQL_SCHEMA, document, RULES) is errors


def test_a_document_too_large_once_expanded_is_not_validated(monkeypatch) -> None:
    monkeypatch.setattr(guards, "validate_document", lambda *args: (_ for _ in ()).throw(AssertionError("validated")))
    fragments = " ".join(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(20))
    document = parse("{ ...F0 } " + fragments + " fragment F20 on Query { __typename }")
    errors = guards.checked_document(GRAPHQL_SCHEMA, document, RULES)
    assert [error.extensions["code"] for error in errors] == ["QUERY_TOO_COMPLEX"]


def test_the_checked_documents_are_bounded() -> None:
    documents = [parse(f"{{ a{n}: __typename }}") for n in range(guards.MAX_CHECKED_DOCUMENTS + 5)]
    for document in documents:
        guards.checked_document(GRAPHQL_SCHEMA, document, RULES)
    assert len(guards._checked) == guards.MAX_CHECKED_DOCUMENTS
    kept = {id(entry[1]) for entry in guards._checked.values()}
    assert id(documents[0]) not in kept and id(documents[-1]) in kept


def fragment_chain(length: int) -> str:
    """An operation spreading F0, which spreads F1, ... down to F<length - 1>: `length` deep,
    one field once expanded."""
    return ("{ ...F0 } " + " ".join(f"fragment F{n} on Query {{ ...F{n + 1} }}" for n in range(length - 1))
            + f" fragment F{length - 1} on Query {{ __typename }}")


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


def test_fragments_nested_too_deep_are_refused_before_validation(monkeypatch) -> None:
    assert guards.checked_document(GRAPHQL_SCHEMA, parse(fragment_chain(guards.MAX_FRAGMENT_NESTING)), RULES) == []
    monkeypatch.setattr(guards, "validate_document", lambda *args: (_ for _ in ()).throw(AssertionError("validated")))
    errors = guards.checked_document(GRAPHQL_SCHEMA, parse(fragment_chain(guards.MAX_FRAGMENT_NESTING + 1)), RULES)
    assert [error.extensions["code"] for error in errors] == ["QUERY_TOO_COMPLEX"]
    assert f"more than {guards.MAX_FRAGMENT_NESTING} deep" in errors[0].message


def test_a_fragment_chain_under_the_token_limit_does_not_exhaust_the_stack() -> None:
    """Strawberry's depth rule recurses a few frames per spread: 247 spreads in a chain (1987
    tokens) raised RecursionError from validation, which the direct path answered with a 500."""
    document = guards.parse_document(fragment_chain(248))
    errors = guards.checked_document(GRAPHQL_SCHEMA, document, RULES)
    assert [error.extensions["code"] for error in errors] == ["QUERY_TOO_COMPLEX"]
