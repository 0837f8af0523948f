"""The EKS cluster, its managed node group and the one Kubernetes provider for everything in it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from settings import APP_NAMESPACE_PREFIX, ClusterSettings, NodeGroupSettings

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator")
CONTROL_PLANE_LOG_RETENTION_DAYS = 30
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# Reads every object, Secrets included: a refreshing `pulumi preview` reads the Helm releases' state,
# which Helm keeps in Secrets. AmazonEKSViewPolicy does not show Secrets.
CLUSTER_VIEWER_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"
# An app stack's deployer: admin of the workloads in app stacks' namespaces (no cluster-scoped objects,
# no custom resources; components/app_access.py adds those it needs, in those namespaces only).
APP_DEPLOYER_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy"
APP_DEPLOYERS_GROUP = "eks-istio-shop:app-deployers"

# Managed policies every EKS worker node needs: join the cluster, run the VPC CNI, pull images
# (pull only: nodes never list or describe repositories).
NODE_ROLE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "ecr-pull": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
}

# One hop: the node itself reaches the instance metadata service, pods (one hop further) do not,
# so they cannot take the node role's credentials. aws-node and kube-proxy use the host network.
IMDS_HOP_LIMIT = 1
ROOT_VOLUME_GIB = 30


def ami_type(architecture: str) -> str:
    """AL2023 node images; EKS publishes no AL2 images for Kubernetes 1.33 and later."""
    return {"amd64": "AL2023_x86_64_STANDARD", "arm64": "AL2023_ARM_64_STANDARD"}[architecture]


def node_metadata_options() -> dict:
    return {"http_endpoint": "enabled", "http_tokens": "required",
            "http_put_response_hop_limit": IMDS_HOP_LIMIT}


def access_entry_key(principal_arn: str) -> str:
    """A key that follows the principal, not its place in a list: pulumi-eks names each entry's resource
    after its key, so a key that moved with the list would replace entries (create before delete), and
    EKS refuses a second entry for a principal (ResourceInUseException)."""
    account, resource = principal_arn.split(":")[4], principal_arn.split(":", 5)[5]
    return re.sub(r"[^A-Za-z0-9-]+", "-", f"{account}-{resource}").strip("-")


def access_entries(admin_arns: tuple[str, ...], viewer_arns: tuple[str, ...],
                   app_deployer_arns: tuple[str, ...] = ()) -> dict[str, eks.AccessEntryArgs]:
    """Access entries for principals besides the one that creates the cluster.

    EKS makes the creating identity admin by itself; a CI role or a teammate that later updates the
    stack needs an admin entry, one that only previews it a read-only one. Moving a principal from one
    list to the other keeps its entry and swaps the policy association. An app stack's deployer gets
    AmazonEKSAdminPolicy in app stacks' namespaces only, and the group that components/app_access.py
    grants what that policy lacks (the namespace itself, Istio's objects) in those namespaces only.
    """
    def entry(arn: str, key: str, policy: str) -> eks.AccessEntryArgs:
        return eks.AccessEntryArgs(
            principal_arn=arn,
            access_policies={key: eks.AccessPolicyAssociationArgs(
                policy_arn=policy, access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"))},
        )

    entries = {access_entry_key(arn): entry(arn, "cluster-admin", CLUSTER_ADMIN_POLICY) for arn in admin_arns}
    entries.update({access_entry_key(arn): entry(arn, "cluster-viewer", CLUSTER_VIEWER_POLICY)
                    for arn in viewer_arns})
    entries.update({access_entry_key(arn): eks.AccessEntryArgs(
        principal_arn=arn,
        kubernetes_groups=[APP_DEPLOYERS_GROUP],
        access_policies={"app-namespaces": eks.AccessPolicyAssociationArgs(
            policy_arn=APP_DEPLOYER_POLICY, access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                # EKS matches a trailing wildcard: every namespace an app stack can have.
                type="namespace", namespaces=[f"{APP_NAMESPACE_PREFIX}*"]))},
    ) for arn in app_deployer_arns})
    return entries


def creator_listed(settings_by_key: Mapping[str, tuple[str, ...]], runner_arn: str,
                   cluster_exists: bool) -> Optional[str]:
    """The setting that lists the identity about to create the cluster, if any.

    EKS gives the creator an admin access entry of its own; an entry the program adds for the same
    principal fails with ResourceInUseException halfway through the first `pulumi up`. Once the
    cluster exists, running the program no longer tells who created it (an identity listed then may be
    a CI role that did not), so later runs are not refused: adding the creator afterwards still meets
    EKS's ResourceInUseException, and the README says not to.
    """
    if cluster_exists:
        return None
    return next((key for key, arns in settings_by_key.items() if runner_arn in arns), None)


def ec2_assume_role_policy() -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    })


@dataclass(frozen=True)
class ClusterArgs:
    settings: ClusterSettings
    node_group: NodeGroupSettings
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    private_subnet_ids: pulumi.Input[list[str]]


class Cluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    node_security_group_id: pulumi.Output[str]
    node_group_asg_names: pulumi.Output[list[str]]
    kubernetes_provider: k8s.Provider
    # The Kubernetes group of app stacks' deployers' access entries (components/app_access.py grants it).
    app_deployers_group: str

    def __init__(self, name: str, args: ClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:cluster:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        self._refuse_creator_in_access_lists(settings)

        secrets_key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Envelope encryption of Kubernetes secrets in EKS cluster {settings.name}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            tags={"Name": f"{name}-secrets-key"},
            opts=child,
        )

        node_role = aws.iam.Role(f"{name}-node-role", assume_role_policy=ec2_assume_role_policy(), opts=child)
        node_role_policies = [
            aws.iam.RolePolicyAttachment(f"{name}-node-role-{role}", role=node_role.name, policy_arn=arn, opts=child)
            for role, arn in NODE_ROLE_POLICIES.items()
        ]

        # EKS writes control-plane logs to this group and would create it itself, without retention,
        # and leave it behind after `pulumi destroy`. Owning it keeps retention bounded and destroy clean.
        control_plane_logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{settings.name}/cluster",
            retention_in_days=CONTROL_PLANE_LOG_RETENTION_DAYS,
            opts=child,
        )

        cluster = eks.Cluster(
            f"{name}-eks",
            name=settings.name,
            version=settings.kubernetes_version,
            vpc_id=args.vpc_id,
            public_subnet_ids=args.public_subnet_ids,
            private_subnet_ids=args.private_subnet_ids,
            node_associate_public_ip_address=False,
            endpoint_private_access=True,
            endpoint_public_access=True,
            public_access_cidrs=list(settings.endpoint_public_access_cidrs),
            skip_default_node_group=True,
            # Managed nodes use the security group EKS creates for the cluster; pulumi-eks's own
            # groups would only serve self-managed nodes.
            skip_default_security_groups=True,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=access_entries(settings.admin_arns, settings.viewer_arns, settings.app_deployer_arns),
            # Pinned: unpinned, pulumi-eks looks up the newest version on every run, so an unrelated
            # update could roll the aws-node and kube-proxy DaemonSets.
            # enable_network_policy writes the add-on's documented configuration value
            # `enableNetworkPolicy: "true"` (a string) into its configurationValues; the typed option
            # leaves no room for a misspelt key or a boolean the add-on's schema would refuse. The agent
            # runs in the aws-node pods with the node role's AmazonEKS_CNI_Policy (NODE_ROLE_POLICIES).
            vpc_cni_options=eks.VpcCniOptionsArgs(addon_version=settings.addon_versions["vpc-cni"],
                                                  enable_network_policy=settings.network_policy_enforcement),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(version=settings.addon_versions["kube-proxy"]),
            # pulumi-eks manages CoreDNS only with a default node group; the add-on below does it here.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            create_oidc_provider=True,
            encryption_config_key_arn=secrets_key.arn,
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            # The log group must exist before EKS starts logging, or EKS creates an unmanaged one.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[control_plane_logs]),
        )

        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-nodes-lt",
            description=f"Nodes of EKS cluster {settings.name}",
            metadata_options=node_metadata_options(),
            block_device_mappings=[{
                "device_name": "/dev/xvda",
                "ebs": {"volume_size": ROOT_VOLUME_GIB, "volume_type": "gp3", "encrypted": "true",
                        "delete_on_termination": "true"},
            }],
            tag_specifications=[
                # The stack's tags are added to each by the stack transform (tagging.py).
                {"resource_type": "instance", "tags": {"Name": f"{name}-node"}},
                {"resource_type": "volume", "tags": {"Name": f"{name}-node-root"}},
                {"resource_type": "network-interface", "tags": {}},
            ],
            update_default_version=True,
            opts=child,
        )

        nodes = args.node_group
        node_group = eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=cluster,
            node_group_name_prefix=f"{settings.name}-nodes-",
            node_role=node_role,
            # With a launch template pulumi-eks does not default the version to the cluster's.
            version=settings.kubernetes_version,
            ami_type=ami_type(nodes.architecture),
            instance_types=[nodes.instance_type],
            capacity_type=nodes.capacity_type,
            subnet_ids=args.private_subnet_ids,
            scaling_config={"desired_size": nodes.desired_size, "min_size": nodes.min_size,
                            "max_size": nodes.max_size},
            launch_template={"id": launch_template.id,
                             "version": launch_template.latest_version.apply(str)},
            # Nodes must not start before their role can join the cluster and run the CNI.
            opts=pulumi.ResourceOptions(parent=self, depends_on=node_role_policies),
        )

        # CoreDNS (which EKS installs self-managed at creation, and nothing would upgrade) and the
        # metrics API the HorizontalPodAutoscalers read, as add-ons pinned like the others. A literal
        # cluster name (reading it back is unreliable, pulumi-eks #607); the node group orders them
        # after the cluster and gives their pods somewhere to run, without which they never turn ACTIVE.
        for addon in ("coredns", "metrics-server"):
            aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=settings.name,
                addon_name=addon,
                addon_version=settings.addon_versions[addon],
                # Takes over the self-managed CoreDNS that EKS bootstrapped.
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[node_group]),
            )

        self.cluster_name = pulumi.Output.from_input(settings.name)
        self.app_deployers_group = APP_DEPLOYERS_GROUP
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.node_security_group_id = cluster.node_security_group_id
        # A managed node group runs its nodes in autoscaling groups; the load balancer targets them.
        self.node_group_asg_names = node_group.node_group.apply(lambda group: group.resources).apply(
            lambda resources: [asg.name for r in resources or [] for asg in r.autoscaling_groups or []])

        self.kubernetes_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Everything in the cluster runs on these nodes: deleting them first would leave pods,
            # Helm releases and their finalizers with nowhere to run during `pulumi destroy`.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_group]),
        )

        self.register_outputs({
            "clusterName": self.cluster_name,
            "kubeconfig": self.kubeconfig,
            "oidcProviderArn": self.oidc_provider_arn,
            "nodeSecurityGroupId": self.node_security_group_id,
            "nodeGroupAsgNames": self.node_group_asg_names,
        })

    def _refuse_creator_in_access_lists(self, settings: ClusterSettings) -> None:
        """Stops a first `pulumi up` that would fail halfway, at preview, naming the setting to fix."""
        lists = {"clusterAdminArns": settings.admin_arns, "clusterViewerArns": settings.viewer_arns,
                 "appDeployerArns": settings.app_deployer_arns}
        if not any(lists.values()):
            return
        invoke = pulumi.InvokeOptions(parent=self)
        caller = aws.get_caller_identity(opts=invoke)
        # An assumed role's caller ARN names the session; its issuer is the role the lists name.
        runner = aws.iam.get_session_context(arn=caller.arn, opts=invoke).issuer_arn
        exists = settings.name in aws.eks.get_clusters(opts=invoke).names
        setting = creator_listed(lists, runner, exists)
        if setting:
            raise pulumi.RunError(
                f"eks-istio-shop:{setting} lists {runner}, the identity that is about to create cluster "
                f"{settings.name}. EKS makes the cluster's creator admin by itself, and a second access "
                f"entry for it fails (ResourceInUseException). Remove it from eks-istio-shop:{setting}, or "
                f"run the first `pulumi up` as another identity.")
