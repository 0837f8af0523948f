"""The GraphQL service end to end, with the real products and orders services behind it."""

from __future__ import annotations

import pytest

from tests.services.services_testkit import assert_no_traceback, graphql

ORDER_FIELDS = "id customerId status createdAt total currency items { productId quantity unitPrice product { id name price } }"


def test_products_pages_follow_end_cursor(http, graphql_url, products_url):
    query = "query($after: String) { products(first: 25, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { id name price currency stock } } }"
    ids, after = [], None
    while True:
        status, body = graphql(http, graphql_url, query, {"after": after})
        assert status == 200 and "errors" not in body
        page = body["data"]["products"]
        ids += [node["id"] for node in page["nodes"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    rest = http.get(f"{products_url}/products", params={"limit": 200}).json()["items"]
    assert ids == [p["id"] for p in rest]


def test_product_by_id_and_unknown_id_is_null(http, graphql_url, products_url):
    expected = http.get(f"{products_url}/products/p002").json()
    status, body = graphql(http, graphql_url, '{ a: product(id: "p002") { id name price stock } b: product(id: "p999") { id } c: product(id: "not valid!") { id } }')
    assert status == 200 and "errors" not in body
    assert body["data"]["a"] == {"id": "p002", "name": expected["name"], "price": expected["price"], "stock": expected["stock"]}
    assert body["data"]["b"] is None and body["data"]["c"] is None


def test_orders_of_a_customer_with_items_resolved_to_products(http, graphql_url, orders_url, products_url):
    customer = http.get(f"{orders_url}/orders", params={"limit": 1}).json()["items"][0]["customer_id"]
    rest_orders = http.get(f"{orders_url}/orders", params={"customer_id": customer, "limit": 200}).json()["items"]
    status, body = graphql(http, graphql_url, f"query($c: ID) {{ orders(customerId: $c, first: 100) {{ totalCount nodes {{ {ORDER_FIELDS} }} }} }}", {"c": customer})
    assert status == 200 and "errors" not in body
    nodes = body["data"]["orders"]["nodes"]
    assert [n["id"] for n in nodes] == [o["id"] for o in rest_orders]
    assert all(n["customerId"] == customer for n in nodes)
    products = {p["id"]: p for p in http.get(f"{products_url}/products", params={"limit": 200}).json()["items"]}
    for node in nodes:
        for item in node["items"]:
            assert item["product"]["id"] == item["productId"]
            assert item["product"]["name"] == products[item["productId"]]["name"]


def test_orders_pagination_with_after(http, graphql_url):
    query = "query($after: String) { orders(first: 3, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } }"
    _, first = graphql(http, graphql_url, query)
    _, second = graphql(http, graphql_url, query, {"after": first["data"]["orders"]["pageInfo"]["endCursor"]})
    first_ids = [n["id"] for n in first["data"]["orders"]["nodes"]]
    second_ids = [n["id"] for n in second["data"]["orders"]["nodes"]]
    assert len(first_ids) == len(second_ids) == 3 and second_ids[0] > first_ids[-1]


def test_an_order_is_found_by_its_id_with_its_items(http, graphql_url, orders_url):
    expected = http.get(f"{orders_url}/orders/o0007").json()
    _, body = graphql(http, graphql_url, f'{{ order(id: "o0007") {{ {ORDER_FIELDS} }} missing: order(id: "o9999") {{ id }} }}')
    order = body["data"]["order"]
    assert order["id"] == "o0007" and order["total"] == expected["total"]
    assert [i["product"]["id"] for i in order["items"]] == [i["product_id"] for i in expected["items"]]
    assert body["data"]["missing"] is None


@pytest.mark.parametrize(
    ("query", "argument"),
    [
        ("{ products(first: 0) { totalCount } }", "first"),
        ("{ products(first: 101) { totalCount } }", "first"),
        ('{ products(after: "garbage") { totalCount } }', "after"),
        ('{ orders(customerId: "bad id!") { totalCount } }', "customerId"),
        ('{ orders(first: 2, after: "djE6bm9wZQ") { totalCount } }', "after"),
    ],
)
def test_invalid_arguments_give_graphql_errors_naming_the_argument(http, graphql_url, query, argument):
    status, body = graphql(http, graphql_url, query)
    assert status == 200
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["argument"] == argument
    assert argument in error["message"]


@pytest.mark.parametrize(
    "query",
    ["{ products { nodes { id }", "{ nosuchfield }", "{ products(first: \"x\") { totalCount } }", "mutation { x }", ""],
)
def test_invalid_documents_give_graphql_errors_not_500(http, graphql_url, query):
    response = http.post(graphql_url, json={"query": query})
    assert response.status_code in (200, 400)
    assert response.json()["errors"]
    assert_no_traceback(response.text)


def test_malformed_request_bodies_are_client_errors(http, graphql_url):
    for content in (b"{not json", b"[]", b'{"query": 5}', b'"x"', b"5", b"null", b"true"):
        response = http.post(graphql_url, content=content, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (content, response.status_code)
        assert response.json()["errors"], content
        assert_no_traceback(response.text)
    # The connection survives a bad request: the next query on it is answered.
    status, body = graphql(http, graphql_url, '{ product(id: "p001") { id } }')
    assert status == 200 and body["data"]["product"]["id"] == "p001"


def test_get_queries_are_served(http, graphql_url):
    response = http.get(graphql_url, params={"query": '{ product(id: "p001") { id } }'})
    assert response.status_code == 200 and response.json()["data"]["product"]["id"] == "p001"


def test_the_playground_leads_to_graphiql_at_the_endpoint(http, stack, graphql_url):
    response = http.get(stack.url("graphql") + "/playground", headers={"accept": "text/html"})
    assert response.status_code == 302
    # Only GET: the endpoint it leads to answers no HEAD, so neither does the playground (nor its route).
    assert http.head(stack.url("graphql") + "/playground").status_code == 405
    page = http.get(response.url.join(response.headers["location"]), headers={"accept": "text/html"})
    # Strawberry's GraphiQL, served by the endpoint it posts its queries to.
    assert str(page.url) == graphql_url
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "graphiql" in page.text.lower()


def test_a_get_without_a_query_from_an_api_client_is_a_json_error(http, graphql_url):
    response = http.get(graphql_url, headers={"accept": "application/json"})
    assert response.status_code == 400 and response.json()["errors"]


def test_introspection_works_for_the_playground(http, graphql_url):
    from graphql import get_introspection_query

    status, body = graphql(http, graphql_url, get_introspection_query(descriptions=True))
    assert status == 200 and "errors" not in body
    assert "Order" in {t["name"] for t in body["data"]["__schema"]["types"]}


def test_graphql_reports_itself_live_and_ready(http, stack):
    assert http.get(stack.url("graphql") + "/healthz").status_code == 200
    assert http.get(stack.url("graphql") + "/readyz").json() == {"status": "ready"}
