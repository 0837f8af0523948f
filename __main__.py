"""eks-istio-shop: reads the stack's settings, wires the components, exports the outputs."""

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.network import Network, NetworkArgs
from settings import load_settings

settings = load_settings()

network = Network("shop-network", NetworkArgs(
    vpc_cidr=settings.network.vpc_cidr,
    zone_count=settings.network.availability_zone_count,
    nat_gateways=settings.network.nat_gateways,
    cluster_name=settings.eks_cluster_name,
    tags=settings.tags,
))

cluster = Cluster("shop-cluster", ClusterArgs(
    cluster_name=settings.eks_cluster_name,
    kubernetes_version=settings.kubernetes_version,
    vpc_id=network.vpc_id,
    public_subnet_ids=network.public_subnet_ids,
    private_subnet_ids=network.private_subnet_ids,
    endpoint_public_access_cidrs=settings.endpoint_public_access_cidrs,
    cluster_admin_arns=settings.cluster_admin_arns,
    instance_type=settings.node_group.instance_type,
    architecture=settings.node_group.architecture,
    desired_size=settings.node_group.desired_size,
    min_size=settings.node_group.min_size,
    max_size=settings.node_group.max_size,
    capacity_type=settings.node_group.capacity_type,
    tags=settings.tags,
))

pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
pulumi.export("nodeSecurityGroupId", cluster.node_security_group_id)
pulumi.export("nodeGroupAsgNames", cluster.node_group_asg_names)
