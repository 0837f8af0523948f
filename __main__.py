"""eks-istio-shop: reads the stack's settings, wires the components, exports the outputs.

A platform stack stands up the environment and a shop on it; an app stack reads the environment from its
platform stack (components/platform.py) and adds its own shop."""

from pathlib import Path

import pulumi

from components.app_access import AppStackAccess, AppStackAccessArgs
from components.certificate import Certificate, CertificateArgs
from components.cluster import Cluster, ClusterArgs
from components.dns import DnsRecord, DnsRecordArgs, hosted_zone_id
from components.edge import Edge
from components.images import ServiceImages, ServiceImagesArgs
from components.ingress import Ingress, IngressArgs
from components.isolation import Isolation, IsolationArgs
from components.mesh import Mesh, MeshArgs
from components.network import Network, NetworkArgs
from components.platform import (LOAD_BALANCER_DNS_NAME, PlatformReference, PlatformReferenceArgs, platform_edge,
                                 platform_outputs)
from components.shop import Shop, ShopArgs
from settings import APP_SERVICES, PLATFORM_KIND, load_settings
from tagging import stack_tags_transform

settings = load_settings()
# Every AWS resource, including those pulumi-eks creates, gets the stack's tags from this one place.
pulumi.runtime.register_resource_transform(stack_tags_transform(settings.tags))


def stand_up_platform() -> Edge:
    """The whole environment: network, cluster, mesh, load balancer; the certificate covers app stacks too."""
    network = Network("shop-network", NetworkArgs(
        settings=settings.network,
        node_instance_type=settings.node_group.instance_type,
        cluster_name=settings.cluster.name,
    ))
    cluster = Cluster("shop-cluster", ClusterArgs(
        settings=settings.cluster,
        node_group=settings.node_group,
        vpc_id=network.vpc_id,
        public_subnet_ids=network.public_subnet_ids,
        private_subnet_ids=network.private_subnet_ids,
    ))
    in_cluster = pulumi.ResourceOptions(providers=[cluster.kubernetes_provider])
    if settings.cluster.app_deployer_arns:
        AppStackAccess("shop-app-access", AppStackAccessArgs(group=cluster.app_deployers_group), opts=in_cluster)
    mesh = Mesh("shop-mesh", MeshArgs(settings=settings.mesh), opts=in_cluster)

    # With a domain: certificate first (the TLS listener needs it validated), the alias record last
    # (it needs the load balancer). Without one: plain HTTP on the load balancer's own name.
    zone_id = hosted_zone_id(settings.dns.domain, settings.dns.hosted_zone_id) if settings.dns.enabled else None
    certificate = Certificate("shop-certificate", CertificateArgs(
        hostname=settings.dns.hostname,
        hosted_zone_id=zone_id,
        # App stacks are served at <stack>.<domain> through this load balancer's TLS listener.
        subject_alternative_names=(f"*.{settings.dns.domain}",),
    )) if settings.dns.enabled else None
    ingress = Ingress("shop-ingress", IngressArgs(
        vpc_id=network.vpc_id,
        public_subnet_ids=network.public_subnet_ids,
        node_security_group_id=cluster.node_security_group_id,
        node_group_asg_names=cluster.node_group_asg_names,
        gateway=mesh.ingress_gateway,
        certificate_arn=certificate.certificate_arn if certificate else None,
    ))
    edge = platform_edge(in_cluster, settings.network.vpc_cidr, zone_id, mesh, ingress)
    for output_name, value in platform_outputs(edge, cluster, settings.dns.domain).items():
        pulumi.export(output_name, value)
    return edge


def read_platform() -> Edge:
    """The platform stack's environment, read through a stack reference; its own namespace for the shop."""
    return PlatformReference("shop-platform", PlatformReferenceArgs(
        platform_stack=settings.platform_stack, domain=settings.dns.domain,
        shop_namespace=settings.app_namespace)).edge


edge = stand_up_platform() if settings.kind == PLATFORM_KIND else read_platform()

if settings.dns.enabled:
    record = DnsRecord("shop-dns", DnsRecordArgs(
        hostname=settings.dns.hostname,
        hosted_zone_id=edge.zone_id,
        load_balancer_dns_name=edge.load_balancer_dns_name,
        load_balancer_zone_id=edge.load_balancer_zone_id,
    ))
    hostname, url = record.fqdn, record.fqdn.apply(lambda name: f"https://{name}")
else:
    hostname = edge.load_balancer_dns_name
    url = pulumi.Output.from_input(hostname).apply(lambda name: f"http://{name}")

images = ServiceImages("shop-images", ServiceImagesArgs(
    services=APP_SERVICES,
    repository_prefix=settings.cluster.name,
    architecture=settings.node_group.architecture,
    services_dir=Path("services"),
    prebuilt=settings.images,
))

shop = Shop("shop-app", ShopArgs(
    images=images.references,
    hostname=settings.dns.hostname,
    base_url=url,
    edge=edge,
), opts=edge.in_cluster)

# The network layer under the mesh's authorization, and each sidecar's view of the mesh.
Isolation("shop-isolation", IsolationArgs(
    edge=edge,
    network_policies=settings.cluster.network_policy_enforcement,
    shop_namespace=shop.namespace,
), opts=edge.in_cluster)

pulumi.export("url", url)
pulumi.export("graphqlUrl", shop.graphql_url)
pulumi.export("playgroundUrl", shop.playground_url)
pulumi.export("hostname", hostname)
pulumi.export(LOAD_BALANCER_DNS_NAME, edge.load_balancer_dns_name)
pulumi.export("shopNamespace", shop.namespace)
