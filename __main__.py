"""eks-istio-shop: reads the stack's settings, wires the components, exports the outputs."""

from pathlib import Path

import pulumi

from components.certificate import Certificate, CertificateArgs
from components.cluster import Cluster, ClusterArgs
from components.dns import DnsRecord, DnsRecordArgs, hosted_zone_id
from components.images import ServiceImages, ServiceImagesArgs
from components.ingress import Ingress, IngressArgs
from components.isolation import Isolation, IsolationArgs
from components.mesh import EGRESS_NAMESPACE, INGRESS_NAMESPACE, ISTIO_NAMESPACE, Mesh, MeshArgs
from components.network import Network, NetworkArgs
from components.shop import NAMESPACE as SHOP_NAMESPACE, Shop, ShopArgs
from settings import APP_SERVICES, load_settings
from tagging import stack_tags_transform

settings = load_settings()
# Every AWS resource, including those pulumi-eks creates, gets the stack's tags from this one place.
pulumi.runtime.register_resource_transform(stack_tags_transform(settings.tags))

network = Network("shop-network", NetworkArgs(
    settings=settings.network,
    node_instance_type=settings.node_group.instance_type,
    cluster_name=settings.eks_cluster_name,
))

cluster = Cluster("shop-cluster", ClusterArgs(
    cluster_name=settings.eks_cluster_name,
    kubernetes_version=settings.kubernetes_version,
    vpc_id=network.vpc_id,
    public_subnet_ids=network.public_subnet_ids,
    private_subnet_ids=network.private_subnet_ids,
    endpoint_public_access_cidrs=settings.endpoint_public_access_cidrs,
    cluster_admin_arns=settings.cluster_admin_arns,
    cluster_viewer_arns=settings.cluster_viewer_arns,
    addon_versions=settings.addon_versions,
    node_group=settings.node_group,
    network_policy_enforcement=settings.network_policy_enforcement,
))
in_cluster = pulumi.ResourceOptions(providers=[cluster.kubernetes_provider])

mesh = Mesh("shop-mesh", MeshArgs(settings=settings.mesh), opts=in_cluster)

# With a domain: certificate first (the TLS listener needs it validated), the alias record last
# (it needs the load balancer). Without one: plain HTTP on the load balancer's own name.
zone_id = hosted_zone_id(settings.dns.domain, settings.dns.hosted_zone_id) if settings.dns.enabled else None
certificate = Certificate("shop-certificate", CertificateArgs(
    hostname=settings.dns.hostname,
    hosted_zone_id=zone_id,
)) if settings.dns.enabled else None

ingress = Ingress("shop-ingress", IngressArgs(
    vpc_id=network.vpc_id,
    public_subnet_ids=network.public_subnet_ids,
    node_security_group_id=cluster.node_security_group_id,
    node_group_asg_names=cluster.node_group_asg_names,
    gateway=mesh.ingress_gateway,
    certificate_arn=certificate.certificate_arn if certificate else None,
))

if settings.dns.enabled:
    record = DnsRecord("shop-dns", DnsRecordArgs(
        hostname=settings.dns.hostname,
        hosted_zone_id=zone_id,
        load_balancer_dns_name=ingress.load_balancer_dns_name,
        load_balancer_zone_id=ingress.load_balancer_zone_id,
    ))
    hostname = record.fqdn
    url = record.fqdn.apply(lambda name: f"https://{name}")
else:
    hostname = ingress.load_balancer_dns_name
    url = ingress.load_balancer_dns_name.apply(lambda name: f"http://{name}")

images = ServiceImages("shop-images", ServiceImagesArgs(
    services=APP_SERVICES,
    repository_prefix=settings.eks_cluster_name,
    architecture=settings.node_group.architecture,
    services_dir=Path("services"),
    prebuilt=settings.images,
))

shop = Shop("shop-app", ShopArgs(
    images=images.references,
    hostname=settings.dns.hostname,
    base_url=url,
    gateway=mesh.ingress_gateway,
    proxy_version=mesh.proxy_version,
    injection_labels=mesh.workload_injection_labels,
    # After all of Istio: istiod's injector and webhook, and the gateway the routes are bound to.
    istio_dependencies=[mesh],
), opts=in_cluster)

# The network layer under the mesh's authorization, and each sidecar's view of the mesh.
Isolation("shop-isolation", IsolationArgs(
    vpc_cidr=settings.network.vpc_cidr,
    gateway=mesh.ingress_gateway,
    network_policies=settings.network_policy_enforcement,
    namespaces={ISTIO_NAMESPACE: mesh.istio_namespace, INGRESS_NAMESPACE: mesh.ingress_gateway_namespace,
                EGRESS_NAMESPACE: mesh.egress_gateway_namespace, SHOP_NAMESPACE: shop.namespace},
    istio_dependencies=[mesh],
), opts=in_cluster)

pulumi.export("url", url)
pulumi.export("graphqlUrl", shop.graphql_url)
pulumi.export("playgroundUrl", shop.playground_url)
pulumi.export("hostname", hostname)
pulumi.export("loadBalancerDnsName", ingress.load_balancer_dns_name)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
pulumi.export("nodeSecurityGroupId", cluster.node_security_group_id)
pulumi.export("nodeGroupAsgNames", cluster.node_group_asg_names)
