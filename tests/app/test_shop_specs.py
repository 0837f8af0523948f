"""The application's plan, Gateway and public routes, checked as plain data."""

import pytest

from components import microservice as ms
from policy.eks_istio_shop import routes
from components import shop

GATEWAY_PRINCIPAL = "cluster.local/ns/istio-ingress/sa/istio-ingressgateway"
GRAPHQL_HOST = "graphql.e-commerce.svc.cluster.local"


def plans() -> dict[str, shop.ServicePlan]:
    return {p.name: p for p in shop.service_plans("e-commerce", GATEWAY_PRINCIPAL)}


def test_three_services_and_who_may_call_them():
    found = plans()
    assert set(found) == {"products", "orders", "graphql"}
    graphql = "cluster.local/ns/e-commerce/sa/graphql"
    assert found["graphql"].access.principals == (GATEWAY_PRINCIPAL,)
    assert found["orders"].access.principals == (graphql,)
    assert found["products"].access.principals == (graphql,)
    # The REST services are read-only: their callers get GET and HEAD, nothing that writes.
    for name in ("orders", "products"):
        assert set(found[name].access.methods) <= routes.IDEMPOTENT_METHODS


def test_graphql_reaches_its_backends_through_their_services():
    env = plans()["graphql"].env
    assert env["PRODUCTS_URL"] == "http://products.e-commerce.svc.cluster.local:8080"
    assert env["ORDERS_URL"] == "http://orders.e-commerce.svc.cluster.local:8080"


def test_graphql_gives_up_on_a_backend_before_the_mesh_route_does():
    found = plans()
    backend_timeout = float(found["graphql"].env["BACKEND_TIMEOUT_SECONDS"])
    for name in ("orders", "products"):
        assert backend_timeout < routes.duration_seconds(found[name].route.timeout), name
        assert backend_timeout < routes.duration_seconds(found[name].route.per_try_timeout), name
    # And the gateway waits for more than one backend call.
    assert routes.duration_seconds(shop.GRAPHQL_ROUTE_TIMEOUT) > 2 * backend_timeout


def servers(hosts):
    """Servers as components/mesh.py's ingress_gateway_servers gives them."""
    return [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": hosts},
            {"port": {"number": 8081, "name": "http-redirect", "protocol": "HTTP"}, "hosts": hosts,
             "tls": {"httpsRedirect": True}}]


def test_gateway_with_a_hostname_serves_one_port_and_redirects_the_other():
    spec = shop.gateway_spec({"istio": "ingressgateway"}, servers(["shop.example.com"]), "shop.example.com")
    assert spec["selector"] == {"istio": "ingressgateway"}
    assert spec["servers"] == servers(["shop.example.com"])


def test_gateway_without_a_hostname_serves_any_host_without_redirect():
    spec = shop.gateway_spec({"istio": "ingressgateway"}, servers(["*"]), None)
    assert spec["servers"] == servers(["*"])[:1]
    assert not any(shop.redirects_to_https(s) for s in spec["servers"])


@pytest.mark.parametrize("hostname", ["shop.example.com", None])
def test_public_routes_send_graphql_and_the_playground_to_graphql_with_safe_retries(hostname):
    spec = shop.public_virtual_service_spec(hostname, "e-commerce/shop", GRAPHQL_HOST, 8080)
    assert spec["hosts"] == [hostname or "*"]
    assert spec["gateways"] == ["e-commerce/shop"]
    by_name = {r["name"]: r for r in spec["http"]}
    assert by_name["root"]["match"] == [{"uri": {"exact": "/"}}]
    # Straight to the endpoint, where a browser gets GraphiQL: one redirect, not two through /playground.
    assert by_name["root"]["redirect"]["uri"] == "/graphql"
    assert by_name["root"]["redirect"].get("scheme") == ("https" if hostname else None)
    assert {"uri": {"exact": "/graphql"}} in by_name["graphql"]["match"]
    assert any(m["uri"] == {"exact": "/playground"} for m in by_name["playground"]["match"])
    for name in ("graphql", "playground"):
        assert by_name[name]["route"] == [{"destination": {"host": GRAPHQL_HOST, "port": {"number": 8080}}}]
        assert routes.duration_seconds(by_name[name]["timeout"]) > 0
        assert routes.retry_problems(by_name[name]) == []
    # The GraphQL endpoint carries mutations: it retries only where the request never arrived.
    assert routes.idempotent_only(by_name["graphql"]) is False
    assert set(by_name["graphql"]["retries"]["retryOn"].split(",")) <= set(ms.RETRY_BEFORE_REQUEST)


def test_the_graphql_and_playground_urls_follow_the_base_url():
    assert shop.urls("https://shop.example.com/") == {"graphqlUrl": "https://shop.example.com/graphql",
                                                      "playgroundUrl": "https://shop.example.com/playground"}


@pytest.mark.parametrize("hostname", ["shop.example.com", None])
def test_gateway_and_public_routes_are_valid_against_istios_crds(hostname):
    from components.mesh import IngressNodePorts, ingress_gateway
    from tools import istio_schema
    gateway = ingress_gateway(IngressNodePorts(http=30080, https=30443, status=30021))
    for kind, spec in (("Gateway", shop.gateway_spec(gateway.labels, gateway.servers([hostname or "*"]), hostname)),
                       ("VirtualService", shop.public_virtual_service_spec(hostname, "e-commerce/shop", GRAPHQL_HOST,
                                                                           8080))):
        obj = {"apiVersion": "networking.istio.io/v1", "kind": kind,
               "metadata": {"name": "shop", "namespace": "e-commerce"}, "spec": spec}
        assert istio_schema.validate_istio_object(obj) == []
