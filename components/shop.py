"""The e-commerce application in the mesh: its namespace, the three services, the Istio Gateway and the
public routes, and a namespace that denies every call no policy names.

Who calls whom: the ingress gateway calls graphql; graphql calls orders and products; nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import lifecycle
from components.edge import Edge
from components.mesh import Resources, principal
from components.microservice import (DEFAULT_RESOURCES, Access, MeshRoute, Microservice, MicroserviceArgs,
                                     destination, method_regex, retries, service_host)

NAMESPACE = "e-commerce"
GATEWAY_NAME = "shop"
PUBLIC_ROUTES_NAME = "shop-public"
DEFAULT_DENY_NAME = "allow-nothing"
SERVICE_PORT = 8080
GRAPHQL_PATH = "/graphql"
PLAYGROUND_PATH = "/playground"

# GraphQL gives up on a backend call after this long (BACKEND_TIMEOUT_SECONDS); the mesh route to the
# backend allows longer, per try as well as in all, so the caller's own timeout is the one that fires
# and it can answer with a partial result and an error, instead of a bare 504 from the sidecar. A
# per-try timeout is a retriable gateway error to Envoy: shorter than the caller's, it would repeat
# slow calls. Retries still mend fast failures (connect errors, resets) within the caller's budget.
GRAPHQL_BACKEND_TIMEOUT_SECONDS = 2.0
BACKEND_ROUTE = MeshRoute(timeout="5s", attempts=2, per_try_timeout="2.5s")
# From the gateway: a GraphQL request may call both backends one after the other. The gateways drain for
# this long on shutdown (components/lifecycle.py), so the longest public route gets all of it.
GRAPHQL_ROUTE_TIMEOUT = lifecycle.duration(lifecycle.PUBLIC_REQUEST_SECONDS)
GRAPHQL_PER_TRY_TIMEOUT = "8s"
PLAYGROUND_ROUTE_TIMEOUT = "5s"
PLAYGROUND_PER_TRY_TIMEOUT = "2s"


# Sized from `make bench-services` (its CPU time per representative query and the queries per second
# one replica serves at a CPU limit; docs/services.md has the current table): one uvicorn process
# uses at most one core, so the limit is one core, and the autoscaler adds a replica well before a
# replica's load reaches the rate at which the benchmark's p99 passes 50 ms.
GRAPHQL_RESOURCES = Resources(cpu_request="500m", memory_request="128Mi", cpu_limit="1000m", memory_limit="256Mi")
GRAPHQL_CPU_UTILIZATION = 70


@dataclass(frozen=True)
class ServicePlan:
    name: str
    access: Access
    env: Mapping[str, str] = field(default_factory=dict)
    route: MeshRoute = MeshRoute()
    resources: Resources = DEFAULT_RESOURCES
    cpu_utilization: int = 70


def service_plans(namespace: str, gateway_principal: str) -> list[ServicePlan]:
    """The three services, who may call each, and GraphQL's view of its backends."""
    graphql = principal(namespace, "graphql")
    backend_url = {name: f"http://{service_host(name, namespace)}:{SERVICE_PORT}" for name in ("products", "orders")}
    return [
        # Read-only REST services: GraphQL reads them, nothing else calls them at all.
        ServicePlan("products", Access(principals=(graphql,), methods=("GET", "HEAD")), route=BACKEND_ROUTE),
        ServicePlan("orders", Access(principals=(graphql,), methods=("GET", "HEAD")), route=BACKEND_ROUTE),
        ServicePlan(
            "graphql",
            # GraphiQL loads with GET at the endpoint (/playground redirects there); queries come as
            # POST (or GET for plain queries). Strawberry's endpoint answers no HEAD.
            Access(principals=(gateway_principal,), methods=("GET", "POST"),
                   paths=(GRAPHQL_PATH, PLAYGROUND_PATH)),
            env={"PRODUCTS_URL": backend_url["products"], "ORDERS_URL": backend_url["orders"],
                 "BACKEND_TIMEOUT_SECONDS": f"{GRAPHQL_BACKEND_TIMEOUT_SECONDS:g}"},
            resources=GRAPHQL_RESOURCES, cpu_utilization=GRAPHQL_CPU_UTILIZATION,
        ),
    ]


def redirects_to_https(server: Mapping) -> bool:
    return bool((server.get("tls") or {}).get("httpsRedirect"))


def gateway_spec(selector: pulumi.Input[Mapping[str, str]], servers: Sequence[Mapping], hostname: Optional[str]) -> dict:
    """The Gateway on the ingress gateway's pods, with the servers the ingress design defines
    (components/mesh.py): the load balancer ends TLS and sends its 443 traffic as plain HTTP to the
    serving port, its port 80 traffic to the redirect port, which answers with a redirect to HTTPS.
    Without a hostname there is no TLS and port 80 reaches the serving port, so no server redirects."""
    if hostname is None:
        servers = [server for server in servers if not redirects_to_https(server)]
    # An app stack knows the selector as an output of its platform stack.
    return {"selector": dict(selector) if isinstance(selector, Mapping) else selector,
            "servers": [dict(server) for server in servers]}


def public_virtual_service_spec(hostname: Optional[str], gateway: str, graphql_host: str, port: int) -> dict:
    """Routes from the ingress gateway: `/` redirects to the GraphQL endpoint, where a browser gets the
    playground (GraphiQL); `/playground` and the endpoint go to the GraphQL service; anything else gets a
    404 from the gateway."""
    root_redirect: dict = {"uri": GRAPHQL_PATH, "redirectCode": 302}
    if hostname is not None:
        # TLS ends at the load balancer, so the gateway sees plain HTTP; without this the redirect
        # would point at http:// and take a second redirect to come back to https://.
        root_redirect["scheme"] = "https"
    reads = method_regex(("GET",))
    http = [
        {"name": "root", "match": [{"uri": {"exact": "/"}}], "redirect": root_redirect},
        {"name": "playground",
         "match": [{"uri": {"exact": PLAYGROUND_PATH}, "method": reads}],
         "route": destination(graphql_host, port), "timeout": PLAYGROUND_ROUTE_TIMEOUT,
         "retries": retries(2, PLAYGROUND_PER_TRY_TIMEOUT, idempotent=True)},
        # Queries and mutations share the endpoint and its POSTs; a mutation must not run twice, so
        # the whole route retries only where the request never reached GraphQL.
        {"name": "graphql", "match": [{"uri": {"exact": GRAPHQL_PATH}}],
         "route": destination(graphql_host, port), "timeout": GRAPHQL_ROUTE_TIMEOUT,
         "retries": retries(2, GRAPHQL_PER_TRY_TIMEOUT, idempotent=False)},
    ]
    return {"hosts": [hostname or "*"], "gateways": [gateway], "http": http}


def urls(base_url: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {"graphqlUrl": base + GRAPHQL_PATH, "playgroundUrl": base + PLAYGROUND_PATH}


@dataclass(frozen=True)
class ShopArgs:
    # Service name -> image reference (pinned by digest or tag).
    images: Mapping[str, pulumi.Input[str]]
    # The environment's hostname; None serves any host over plain HTTP.
    hostname: Optional[str]
    # Where the application is reached, e.g. https://shop.example.com (from the ingress).
    base_url: pulumi.Input[str]
    # What the shop runs on: the mesh's ingress gateway (the shop's Gateway binds to it, and only it may call
    # graphql), the control plane that injects the namespace and must exist before pods are created, and
    # the shop's namespace.
    edge: Edge


class Shop(pulumi.ComponentResource):
    """The application. The Kubernetes provider comes through `opts` (`providers=[...]`)."""

    graphql_url: pulumi.Output[str]
    playground_url: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: ShopArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:shop:Shop", name, None, opts)
        edge = args.edge
        plans = service_plans(edge.shop_namespace, edge.gateway.principal)
        missing = sorted({p.name for p in plans} - set(args.images))
        if missing:
            raise ValueError(f"no image for services {missing}")
        # Nothing in the data orders these after istiod; without it pods could start without sidecars
        # and Istio objects would meet a missing CRD or webhook.
        after_istiod = pulumi.ResourceOptions(parent=self, depends_on=list(edge.istio_dependencies))

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": edge.shop_namespace, "labels": pulumi.Output.from_input(edge.injection_labels).apply(
                lambda injection: {**dict(edge.namespace_labels), **injection})},
            opts=after_istiod)
        namespace_name = namespace.metadata.name

        k8s.apiextensions.CustomResource(
            f"{name}-default-deny", api_version="security.istio.io/v1", kind="AuthorizationPolicy",
            # An ALLOW policy that matches nothing: a workload with any ALLOW policy admits only what
            # one of them names, so this leaves every workload closed until its own policy opens it.
            metadata={"name": DEFAULT_DENY_NAME, "namespace": namespace_name}, spec={}, opts=after_istiod)

        k8s.apiextensions.CustomResource(
            f"{name}-gateway", api_version="networking.istio.io/v1", kind="Gateway",
            metadata={"name": GATEWAY_NAME, "namespace": namespace_name},
            spec=gateway_spec(edge.gateway.labels, edge.gateway.servers([args.hostname or "*"]), args.hostname),
            opts=after_istiod)

        services = {
            plan.name: Microservice(f"{name}-{plan.name}", MicroserviceArgs(
                name=plan.name, namespace=namespace_name, image=args.images[plan.name], access=plan.access,
                port=SERVICE_PORT, env=plan.env, route=plan.route, resources=plan.resources,
                cpu_utilization=plan.cpu_utilization, proxy_version=edge.proxy_version,
                istio_dependencies=tuple(edge.istio_dependencies)),
                opts=pulumi.ResourceOptions(parent=self))
            for plan in plans
        }

        graphql = services["graphql"]
        k8s.apiextensions.CustomResource(
            f"{name}-public-routes", api_version="networking.istio.io/v1", kind="VirtualService",
            metadata={"name": PUBLIC_ROUTES_NAME, "namespace": namespace_name},
            spec=pulumi.Output.all(namespace_name, graphql.host).apply(
                lambda v: public_virtual_service_spec(args.hostname, f"{v[0]}/{GATEWAY_NAME}", v[1], graphql.port)),
            opts=after_istiod)

        shop_urls = pulumi.Output.from_input(args.base_url).apply(urls)
        self.graphql_url = shop_urls["graphqlUrl"]
        self.playground_url = shop_urls["playgroundUrl"]
        self.namespace = namespace_name
        self.register_outputs({"graphqlUrl": self.graphql_url, "playgroundUrl": self.playground_url,
                               "namespace": self.namespace})
