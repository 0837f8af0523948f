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
