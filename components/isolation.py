"""The network layer under the mesh's authorization, and each sidecar's view of the mesh.

Two independent layers decide whether a workload reaches another:
- L3/L4, Kubernetes NetworkPolicies enforced by the VPC CNI's network policy agent (eBPF, on the node):
  every namespace the stack owns denies all ingress and egress, then each workload gets exactly the
  flows in `flows()` below, by pod label and port. It holds for a pod without a sidecar, a sidecar that
  is bypassed, and a mis-merged Istio policy alike.
- L7, Istio: STRICT mTLS and per-identity AuthorizationPolicies (components/shop.py, microservice.py).

`Sidecar` resources limit what each proxy is told about: graphql knows orders and products, orders and
products know nothing in the mesh. Gateways ignore `Sidecar` resources; istiod sends them only the
clusters their routes use (PILOT_FILTER_GATEWAY_CLUSTER_CONFIG, components/mesh.py).

Where traffic comes from outside the pod network, a NetworkPolicy sees node addresses, so those flows
name the VPC's CIDR:
- The load balancer reaches the ingress gateway through node ports. The Service's
  `externalTrafficPolicy: Cluster` makes kube-proxy masquerade that traffic, so the gateway pod sees a
  node's address, not the load balancer's or the client's; health checks take the same path.
- kubelet probes come from the node's own address (Istio rewrites the application's HTTP probes to the
  pilot-agent on 15020; the proxy's readiness is 15021).
- The EKS control plane calls istiod's webhook (15017) from the network interfaces EKS places in the
  cluster's subnets, and istiod's API server calls go to those interfaces (the private endpoint).
With the VPC CNI pods have VPC addresses too, so a pod in a namespace the stack does not own (which has
no egress policy) also matches these blocks; every namespace the stack owns denies egress, so its pods
do not.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.mesh import (EGRESS_GATEWAY_LABELS, EGRESS_NAMESPACE, GATEWAY_STATUS_PORT, INGRESS_NAMESPACE,
                             INGRESS_REDIRECT_PORT, INGRESS_SERVING_PORT, ISTIO_NAMESPACE, GatewayIdentity,
                             principal)
from components.edge import Edge
from components.microservice import selector, service_host
from components.shop import NAMESPACE as SHOP_NAMESPACE, SERVICE_PORT, service_plans
from settings import APP_STACK_NAMESPACE_LABELS

DEFAULT_DENY_NAME = "default-deny"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server

# istiod (its chart labels the pods `app: istiod`, `istio: pilot`, every revision's alike: a revision adds
# `istio.io/rev`, and its Services istiod-<revision> and istiod-<tag> target the same ports)
ISTIOD_LABELS = {"app": "istiod"}
ISTIOD_XDS_PORT = 15012  # xDS and the certificate authority, over TLS
ISTIOD_WEBHOOK_PORT = 15017  # the injection and validation webhooks, called by the API server
ISTIOD_READINESS_PORT = 8080  # the chart's readiness probe, GET /ready
# The sidecar's ports that kubelet probes: the pilot-agent (application probes, rewritten) and Envoy's readiness.
PILOT_AGENT_PORT = 15020
KUBERNETES_API_PORT = 443
DNS_PORT = 53
COREDNS_NAMESPACE = "kube-system"
COREDNS_LABELS = {"k8s-app": "kube-dns"}


@dataclass(frozen=True)
class Workload:
    """Pods selected by `labels` in `namespace` (or, with `namespace_labels`, in every namespace carrying
    those labels); `name` names the workload's NetworkPolicy. An app stack knows the gateway's labels and
    namespace as outputs of its platform stack."""
    name: str
    namespace: pulumi.Input[str]
    labels: pulumi.Input[Mapping[str, str]]
    namespace_labels: Optional[Mapping[str, str]] = None


@dataclass(frozen=True)
class Addresses:
    """Sources or destinations outside the pod network, as a CIDR, and who they stand for."""
    name: str
    cidr: str


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Flow:
    source: Workload | Addresses
    destination: Workload | Addresses
    ports: tuple[Port, ...]
    why: str


# A cluster created without a service range gets one of two from EKS, and how EKS chooses between them
# is not documented; istiod is allowed the API server's Service address in either.
EKS_DEFAULT_SERVICE_RANGES = ("10.100.0.0/16", "172.20.0.0/16")


def kubernetes_service_addresses() -> tuple[str, ...]:
    """The `kubernetes` Service's cluster IP (the range's first address) in each range EKS may pick."""
    return tuple(str(ipaddress.ip_network(service_range)[1]) for service_range in EKS_DEFAULT_SERVICE_RANGES)


def _mapping(value: pulumi.Input[Mapping[str, str]]) -> pulumi.Input[Mapping[str, str]]:
    """A copy of a plain map; an output (an app stack's view of its platform) as it is."""
    return dict(value) if isinstance(value, Mapping) else value


def workloads(gateway: GatewayIdentity, shop_namespace: str = SHOP_NAMESPACE) -> dict[str, Workload]:
    """Every workload of the stack, and CoreDNS, which they all call."""
    found = {plan.name: Workload(plan.name, shop_namespace, selector(plan.name))
             for plan in service_plans(shop_namespace, gateway.principal)}
    found.update({
        "ingress-gateway": Workload("ingress-gateway", gateway.namespace, _mapping(gateway.labels)),
        "egress-gateway": Workload("egress-gateway", EGRESS_NAMESPACE, dict(EGRESS_GATEWAY_LABELS)),
        "istiod": Workload("istiod", ISTIO_NAMESPACE, dict(ISTIOD_LABELS)),
        "coredns": Workload("coredns", COREDNS_NAMESPACE, dict(COREDNS_LABELS)),
    })
    return found


def owned_namespaces(shop_namespace: str = SHOP_NAMESPACE, owns_mesh: bool = True) -> tuple[str, ...]:
    """A platform stack owns the mesh's namespaces and its shop's; an app stack only its shop's."""
    return (ISTIO_NAMESPACE, INGRESS_NAMESPACE, EGRESS_NAMESPACE, shop_namespace) if owns_mesh else (shop_namespace,)


def shop_calls(gateway: GatewayIdentity, shop_namespace: str = SHOP_NAMESPACE) -> list[tuple[str, str]]:
    """(caller, service) for every call the shop's AuthorizationPolicies allow: the same source as the L7 layer."""
    plans = service_plans(shop_namespace, gateway.principal)
    by_principal = {principal(shop_namespace, plan.name): plan.name for plan in plans}
    # An app stack's gateway principal is an output; the plans hold that same object.
    by_principal[gateway.principal] = "ingress-gateway"
    return [(by_principal[caller], plan.name) for plan in plans for caller in plan.access.principals]


def app_stack_flows(w: Mapping[str, Workload]) -> list[Flow]:
    """What a platform allows app stacks' namespaces (APP_STACK_NAMESPACE_LABELS): the gateway calls their
    graphql, their proxies get configuration from istiod. Their own policies allow the rest."""
    def in_app_stacks(name: str, labels: Mapping[str, str]) -> Workload:
        return Workload(name, "app stacks", labels, namespace_labels=APP_STACK_NAMESPACE_LABELS)
    return [
        Flow(w["ingress-gateway"], in_app_stacks("app-stacks-graphql", selector("graphql")), (Port(SERVICE_PORT),),
             "the application's public routes into app stacks, as authorized in the mesh"),
        Flow(in_app_stacks("app-stacks-proxies", {}), w["istiod"], (Port(ISTIOD_XDS_PORT),),
             "configuration (xDS) and certificates from istiod, for app stacks' proxies"),
    ]


def flows(vpc_cidr: str, gateway: GatewayIdentity, shop_namespace: str = SHOP_NAMESPACE) -> list[Flow]:
    """Every connection the stack needs; NetworkPolicies allow these and nothing else."""
    w = workloads(gateway, shop_namespace)
    vpc = Addresses("vpc", vpc_cidr)
    shop = [w[plan.name] for plan in service_plans(shop_namespace, gateway.principal)]
    proxies = [*shop, w["ingress-gateway"], w["egress-gateway"]]
    tcp = lambda *numbers: tuple(Port(n) for n in numbers)  # noqa: E731
    result = [
        Flow(vpc, w["ingress-gateway"], tcp(INGRESS_SERVING_PORT.number, INGRESS_REDIRECT_PORT.number,
                                            GATEWAY_STATUS_PORT),
             "the load balancer's traffic and health checks through the node ports (kube-proxy masquerades "
             "them to node addresses); kubelet's readiness probe on the status port"),
        Flow(vpc, w["egress-gateway"], tcp(GATEWAY_STATUS_PORT), "kubelet's readiness probe"),
        *[Flow(w[caller], w[service], tcp(SERVICE_PORT), "the application's calls, as authorized in the mesh")
          for caller, service in shop_calls(gateway, shop_namespace)],
        *[Flow(vpc, workload, tcp(PILOT_AGENT_PORT, GATEWAY_STATUS_PORT),
               "kubelet's probes, rewritten by Istio to the pilot-agent, and the sidecar's readiness")
          for workload in shop],
        *[Flow(proxy, w["istiod"], tcp(ISTIOD_XDS_PORT), "configuration (xDS) and certificates from istiod")
          for proxy in proxies],
        Flow(vpc, w["istiod"], tcp(ISTIOD_WEBHOOK_PORT),
             "the API server's webhook calls, from the EKS control plane's network interfaces in the VPC"),
        Flow(vpc, w["istiod"], tcp(ISTIOD_READINESS_PORT), "kubelet's readiness probe"),
        Flow(w["istiod"], vpc, tcp(KUBERNETES_API_PORT),
             "the API server at the control plane's network interfaces (the private endpoint)"),
        *[Flow(w["istiod"], Addresses("kubernetes-service", f"{address}/32"), tcp(KUBERNETES_API_PORT),
               "the API server at the kubernetes Service's address, before kube-proxy translates it")
          for address in kubernetes_service_addresses()],
        *[Flow(workload, w["coredns"], (Port(DNS_PORT, "UDP"), Port(DNS_PORT, "TCP")), "DNS")
          for workload in (*proxies, w["istiod"])],
        *app_stack_flows(w),
    ]
    return result


def _peer(peer: Workload | Addresses) -> dict[str, Any]:
    if isinstance(peer, Addresses):
        return {"ipBlock": {"cidr": peer.cidr}}
    namespace_labels = dict(peer.namespace_labels) if peer.namespace_labels else {NAMESPACE_LABEL: peer.namespace}
    return {"namespaceSelector": {"matchLabels": namespace_labels},
            "podSelector": {"matchLabels": _mapping(peer.labels)}}


def _ports(ports: Sequence[Port]) -> list[dict[str, Any]]:
    return [{"protocol": port.protocol, "port": port.number} for port in ports]


def default_deny(namespace: str) -> dict[str, Any]:
    """Every pod of the namespace: no ingress, no egress, unless another policy allows it."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": DEFAULT_DENY_NAME, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}


def network_policies(vpc_cidr: str, gateway: GatewayIdentity, shop_namespace: str = SHOP_NAMESPACE,
                     owns_mesh: bool = True) -> list[dict[str, Any]]:
    """A default deny per owned namespace, then one policy per workload with its flows in and out."""
    owned = owned_namespaces(shop_namespace, owns_mesh)
    rules: dict[str, dict[str, list]] = {}
    targets: dict[str, Workload] = {}
    for flow in flows(vpc_cidr, gateway, shop_namespace):
        for workload, direction, peer, key in ((flow.destination, "ingress", flow.source, "from"),
                                               (flow.source, "egress", flow.destination, "to")):
            # By name, not identity: an app stack's gateway namespace is an output, never one it owns.
            if isinstance(workload, Workload) and isinstance(workload.namespace, str) and workload.namespace in owned \
                    and workload.namespace_labels is None:
                targets[workload.name] = workload
                rules.setdefault(workload.name, {"ingress": [], "egress": []})[direction].append(
                    {key: [_peer(peer)], "ports": _ports(flow.ports)})
    policies = [default_deny(namespace) for namespace in owned]
    for name, workload in targets.items():
        spec: dict[str, Any] = {"podSelector": {"matchLabels": _mapping(workload.labels)},
                                "policyTypes": [d.capitalize() for d in ("ingress", "egress") if rules[name][d]]}
        spec.update({d: rules[name][d] for d in ("ingress", "egress") if rules[name][d]})
        policies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": name, "namespace": workload.namespace}, "spec": spec})
    return policies


def sidecars(gateway: GatewayIdentity, shop_namespace: str = SHOP_NAMESPACE) -> list[dict[str, Any]]:
    """The shop's proxies learn only the services their workload calls; a namespace default shows nothing."""
    calls: dict[str, list[str]] = {}
    for caller, service in shop_calls(gateway, shop_namespace):
        if caller != "ingress-gateway":
            calls.setdefault(caller, []).append(service)

    def sidecar(name: str, hosts: list[str], labels: Optional[Mapping[str, str]]) -> dict[str, Any]:
        spec: dict[str, Any] = {"egress": [{"hosts": hosts}]}
        if labels is not None:
            spec = {"workloadSelector": {"labels": dict(labels)}, **spec}
        return {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                "metadata": {"name": name, "namespace": shop_namespace}, "spec": spec}

    # "~/*": no namespace's services. A workload without its own Sidecar gets this one.
    objects = [sidecar("default", ["~/*"], None)]
    for caller, services in sorted(calls.items()):
        objects.append(sidecar(caller, [f"./{service_host(s, shop_namespace)}" for s in sorted(services)],
                               selector(caller)))
    return objects


@dataclass(frozen=True)
class IsolationArgs:
    # What the shop runs on: the node addresses (vpc_cidr), the ingress gateway, istiod (its webhook validates
    # the Sidecar resources, and base installs their CRD), the mesh's namespaces when the stack owns them (a
    # platform stack; an app stack owns only its shop's), and the shop's namespace.
    edge: Edge
    # NetworkPolicies only where the VPC CNI enforces them: otherwise they would only look like protection.
    network_policies: bool
    # An output that resolves once the shop's namespace exists.
    shop_namespace: pulumi.Input[str]


class Isolation(pulumi.ComponentResource):
    """NetworkPolicies and Sidecars. The Kubernetes provider comes through `opts` (`providers=[...]`)."""

    network_policy_names: list[str]

    def __init__(self, name: str, args: IsolationArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:isolation:Isolation", name, None, opts)
        edge = args.edge
        owns_mesh = bool(edge.mesh_namespaces)
        namespaces = {**edge.mesh_namespaces, edge.shop_namespace: args.shop_namespace}
        missing = sorted(set(owned_namespaces(edge.shop_namespace, owns_mesh)) - set(namespaces))
        if missing:
            raise ValueError(f"no namespace output for {missing}")

        def metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
            return {**obj["metadata"], "namespace": namespaces[obj["metadata"]["namespace"]]}

        policies = (network_policies(edge.vpc_cidr, edge.gateway, edge.shop_namespace, owns_mesh)
                    if args.network_policies else [])
        for policy in policies:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy['metadata']['namespace']}-{policy['metadata']['name']}",
                metadata=metadata(policy), spec=policy["spec"], opts=pulumi.ResourceOptions(parent=self))

        # No data links a Sidecar to istiod; only this option orders them.
        after_istiod = pulumi.ResourceOptions(parent=self, depends_on=list(edge.istio_dependencies))
        for sidecar in sidecars(edge.gateway, edge.shop_namespace):
            k8s.apiextensions.CustomResource(
                f"{name}-sidecar-{sidecar['metadata']['name']}", api_version=sidecar["apiVersion"],
                kind=sidecar["kind"], metadata=metadata(sidecar), spec=sidecar["spec"], opts=after_istiod)

        self.network_policy_names = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies]
        self.register_outputs({"networkPolicies": self.network_policy_names})
