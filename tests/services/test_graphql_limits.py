"""Abusive documents are rejected quickly, before any backend is called."""

from __future__ import annotations

import time
import uuid

from tests.services.services_testkit import assert_no_traceback, graphql


def rejected(http, graphql_url, query, within: float = 2.0) -> list[dict]:
    started = time.monotonic()
    response = http.post(graphql_url, json={"query": query})
    elapsed = time.monotonic() - started
    assert elapsed < within, f"took {elapsed:.2f}s"
    assert response.status_code in (200, 400)
    assert_no_traceback(response.text)
    body = response.json()
    assert body["errors"] and body.get("data") is None, body
    return body["errors"]


def messages(errors: list[dict]) -> str:
    return " | ".join(error["message"] for error in errors)


def test_deep_nesting_is_rejected(http, graphql_url):
    query = "{ orders { nodes { items { product { " + "a { " * 12 + "b" + " }" * 12 + " } } } } }"
    assert "exceeds maximum operation depth" in messages(rejected(http, graphql_url, query))


def test_deep_nesting_through_fragments_is_rejected(http, graphql_url):
    fragments = " ".join(f"fragment F{n} on X{n} {{ f{n} {{ ...F{n + 1} }} }}" for n in range(12))
    query = "{ orders { ...F0 } } " + fragments + " fragment F12 on X12 { leaf }"
    assert "exceeds maximum operation depth" in messages(rejected(http, graphql_url, query))


def test_alias_flood_is_rejected(http, graphql_url):
    aliases = " ".join(f'a{n}: product(id: "p001") {{ id }}' for n in range(40))
    assert "aliases found" in messages(rejected(http, graphql_url, "{ " + aliases + " }"))


def test_aliases_inside_fragments_are_counted(http, graphql_url):
    # Each fragment stays under the limit; spread together they are not.
    fragment_a = " ".join(f'a{n}: product(id: "p001") {{ id }}' for n in range(10))
    fragment_b = " ".join(f'b{n}: product(id: "p002") {{ id }}' for n in range(10))
    query = f"{{ ...A ...B }} fragment A on Query {{ {fragment_a} }} fragment B on Query {{ {fragment_b} }}"
    assert "aliases found" in messages(rejected(http, graphql_url, query))


def test_circular_fragments_are_rejected_fast(http, graphql_url):
    query = ("{ ...A } fragment A on Query { product(id: \"p001\") { id } ...B } "
             "fragment B on Query { x: product(id: \"p002\") { id } ...A }")
    assert "within itself" in messages(rejected(http, graphql_url, query))


def test_circular_fragments_cannot_hide_an_alias_flood(http, graphql_url):
    # Before strawberry 0.315.7 a fragment cycle made the alias limiter recurse until it failed.
    fragment_a = " ".join(f'a{n}: product(id: "p001") {{ id }}' for n in range(10))
    fragment_b = " ".join(f'b{n}: product(id: "p002") {{ id }}' for n in range(10))
    query = f"{{ ...A }} fragment A on Query {{ {fragment_a} ...B }} fragment B on Query {{ {fragment_b} ...A }}"
    text = messages(rejected(http, graphql_url, query))
    assert "aliases found" in text and "within itself" in text


def test_exponential_fragment_expansion_is_rejected_fast(http, graphql_url):
    # 40 fragments, each spreading the next twice: ~500 tokens that expand to 2**40 fields.
    # Walking every spread (as the depth and alias rules do) would take hours.
    fragments = " ".join(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(40))
    query = "{ ...F0 } " + fragments + ' fragment F40 on Query { x: product(id: "p001") { id } }'
    errors = rejected(http, graphql_url, query, within=1.0)
    assert errors[0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_document_over_the_token_limit_is_rejected(http, graphql_url):
    fields = " ".join(["id"] * 3000)
    assert "token" in messages(rejected(http, graphql_url, "{ products { nodes { " + fields + " } } }")).lower()


def test_request_body_over_the_size_limit_is_rejected_with_413(http, graphql_url):
    response = http.post(graphql_url, json={"query": "{ products { totalCount } }" + " " * 100_000})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def test_rejected_documents_cause_no_backend_calls(http, stack, graphql_url):
    request_id = f"limits-{uuid.uuid4()}"
    aliases = " ".join(f"a{n}: orders {{ totalCount }}" for n in range(30))
    status, body = graphql(http, graphql_url, "{ " + aliases + " }", headers={"x-request-id": request_id})
    assert body["errors"]
    time.sleep(0.2)
    assert not [e for name in ("orders", "products") for e in stack.access_entries(name)
                if e.get("request_id") == request_id]


def test_a_normal_query_at_the_limits_is_accepted(http, graphql_url):
    aliases = " ".join(f'a{n}: product(id: "p{n + 1:03d}") {{ id }}' for n in range(15))
    status, body = graphql(http, graphql_url, "{ " + aliases + " }")
    assert status == 200 and "errors" not in body and len(body["data"]) == 15
