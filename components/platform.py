"""What an app stack needs of its platform stack, read through a Pulumi stack reference.

A platform stack exports these (`platform_outputs`); an app stack reads them here and nowhere else, so
the app's components get the same values they get from the platform's own components: a Kubernetes
provider for the cluster, the ingress gateway's identity (`GatewayIdentity`), the shared load balancer and
the hosted zone. Secrets (the kubeconfig) stay secrets. A platform stack without one of the outputs stops
the run with the output's name, not a KeyError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import Cluster
from components.edge import Edge
from components.ingress import Ingress
from components.mesh import GatewayIdentity, Mesh
from components.shop import NAMESPACE as SHOP_NAMESPACE
from settings import APP_STACK_NAMESPACE_LABELS

# Stack output names of a platform stack that app stacks read (and __main__.py exports).
KUBECONFIG = "kubeconfig"
INGRESS_GATEWAY = "ingressGateway"  # {labels, principal, namespace}
WORKLOAD_INJECTION_LABELS = "workloadInjectionLabels"
PROXY_VERSION = "proxyVersion"
LOAD_BALANCER_DNS_NAME = "loadBalancerDnsName"
LOAD_BALANCER_ZONE_ID = "loadBalancerZoneId"
HOSTED_ZONE_ID = "hostedZoneId"
DOMAIN = "domain"
VPC_CIDR = "vpcCidr"  # the node addresses kubelet probes and the load balancer's traffic come from
PLATFORM_OUTPUTS = (KUBECONFIG, INGRESS_GATEWAY, WORKLOAD_INJECTION_LABELS, PROXY_VERSION, LOAD_BALANCER_DNS_NAME,
                    LOAD_BALANCER_ZONE_ID, HOSTED_ZONE_ID, DOMAIN, VPC_CIDR)


class PlatformOutputError(pulumi.RunError):
    """The platform stack lacks an output an app stack needs (an older or a non-platform stack)."""


def gateway_output(ingress_gateway: GatewayIdentity) -> dict[str, Any]:
    """The platform's `ingressGateway` output: what an app stack's Gateway, routes and policies name."""
    return {"labels": dict(ingress_gateway.labels), "principal": ingress_gateway.principal,
            "namespace": ingress_gateway.namespace}


def required(outputs: Mapping[str, Any], name: str, platform_stack: str) -> Any:
    """One output of the platform stack, or a clear refusal naming it."""
    value = (outputs or {}).get(name)
    if value is None or value == "":
        raise PlatformOutputError(
            f"platform stack '{platform_stack}' has no output '{name}', which an app stack needs; "
            f"run `pulumi up` on it with this version of the program (stackKind platform), or set "
            f"eks-istio-shop:platformStack to a platform stack")
    return value


def domain_checked(platform_domain: str, domain: str, platform_stack: str) -> None:
    """The app stack's `domain` setting must be its platform's: the certificate and the zone are the platform's."""
    if platform_domain != domain:
        raise pulumi.RunError(
            f"eks-istio-shop:domain: {domain!r} is not valid; expected the domain of platform stack "
            f"'{platform_stack}', {platform_domain!r} (its certificate and hosted zone serve only that)")


def platform_edge(in_cluster: pulumi.ResourceOptions, vpc_cidr: str, zone_id: Optional[pulumi.Input[str]],
                  mesh: Mesh, ingress: Ingress) -> Edge:
    """A platform stack's environment, from its own components."""
    return Edge(
        in_cluster=in_cluster, vpc_cidr=vpc_cidr, gateway=mesh.ingress_gateway, zone_id=zone_id,
        load_balancer_dns_name=ingress.load_balancer_dns_name, load_balancer_zone_id=ingress.load_balancer_zone_id,
        proxy_version=mesh.proxy_version, injection_labels=mesh.workload_injection_labels,
        # After all of Istio: istiod's injector and webhook, and the gateway the routes are bound to.
        istio_dependencies=[mesh], shop_namespace=SHOP_NAMESPACE, mesh_namespaces=mesh.namespaces)


def platform_outputs(edge: Edge, cluster: Cluster, domain: Optional[str]) -> dict[str, Any]:
    """What a platform stack exports: what its app stacks read, under the names PlatformReference reads (with
    LOAD_BALANCER_DNS_NAME, which every stack exports), and its cluster's identifiers."""
    outputs = {KUBECONFIG: cluster.kubeconfig, INGRESS_GATEWAY: gateway_output(edge.gateway),
               WORKLOAD_INJECTION_LABELS: edge.injection_labels, PROXY_VERSION: edge.proxy_version,
               LOAD_BALANCER_ZONE_ID: edge.load_balancer_zone_id, VPC_CIDR: edge.vpc_cidr,
               "clusterName": cluster.cluster_name, "oidcProviderArn": cluster.oidc_provider_arn,
               "nodeSecurityGroupId": cluster.node_security_group_id,
               "nodeGroupAsgNames": cluster.node_group_asg_names}
    if domain:
        outputs.update({HOSTED_ZONE_ID: edge.zone_id, DOMAIN: domain})
    return outputs


@dataclass(frozen=True)
class PlatformReferenceArgs:
    # The platform stack: <stack>, <project>/<stack> or <organization>/<project>/<stack>.
    platform_stack: str
    # The app stack's own `domain` setting, checked against the platform's.
    domain: str
    # The app stack's own namespace for its shop.
    shop_namespace: str


class PlatformReference(pulumi.ComponentResource):
    """The platform stack's outputs, typed as the platform's own components give them."""

    # The app stack's environment, as a platform stack's own components give it.
    edge: Edge

    def __init__(self, name: str, args: PlatformReferenceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:platform:PlatformReference", name, None, opts)
        reference = pulumi.StackReference(f"{name}-stack", stack_name=args.platform_stack,
                                          opts=pulumi.ResourceOptions(parent=self))

        def output(key: str) -> pulumi.Output[Any]:
            # The reference's whole `outputs` is secret when any output is; only the kubeconfig is.
            value = reference.outputs.apply(lambda outputs: required(outputs, key, args.platform_stack))
            return pulumi.Output.secret(value) if key == KUBECONFIG else pulumi.Output.unsecret(value)

        # The record goes into the platform's zone only when the domains agree (data, not an order).
        def zone_of_the_domain(values: list) -> str:
            platform_domain, zone_id = values
            domain_checked(platform_domain, args.domain, args.platform_stack)
            return zone_id

        gateway = output(INGRESS_GATEWAY)
        load_balancer_dns_name = output(LOAD_BALANCER_DNS_NAME)
        hosted_zone_id = pulumi.Output.all(output(DOMAIN), output(HOSTED_ZONE_ID)).apply(zone_of_the_domain)
        kubernetes_provider = k8s.Provider(f"{name}-k8s", kubeconfig=output(KUBECONFIG),
                                           opts=pulumi.ResourceOptions(parent=self))
        self.edge = Edge(
            in_cluster=pulumi.ResourceOptions(providers=[kubernetes_provider]), vpc_cidr=output(VPC_CIDR),
            # What the shop's Gateway, routes and policies name; the load balancer's side (node ports, health
            # check) stays the platform's, so an app stack has none of it.
            gateway=GatewayIdentity(
                labels=gateway.apply(lambda g: g["labels"]), principal=gateway.apply(lambda g: g["principal"]),
                namespace=gateway.apply(lambda g: g["namespace"])),
            zone_id=hosted_zone_id, load_balancer_dns_name=load_balancer_dns_name,
            load_balancer_zone_id=output(LOAD_BALANCER_ZONE_ID), proxy_version=output(PROXY_VERSION),
            injection_labels=output(WORKLOAD_INJECTION_LABELS),
            # The platform's Istio exists before any app stack does.
            istio_dependencies=[], shop_namespace=args.shop_namespace, namespace_labels=APP_STACK_NAMESPACE_LABELS)
        self.register_outputs({"loadBalancerDnsName": load_balancer_dns_name, "hostedZoneId": hosted_zone_id})
