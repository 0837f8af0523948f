"""Node groups: instance types, private subnets, IMDSv2."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from .checks import stack_policy
from .graph import by_id, dependencies_of, resources_by
from .values import UNKNOWN, describe, elements, get, is_mapping, number

# Node sizes this project is sized and priced for (README, "Platform and app stacks", cost per hour):
# burstable and general-purpose x86 and Graviton types from 2 vCPU / 4 GiB up to 4 vCPU / 16 GiB. Smaller
# types cannot hold istiod and the gateways (pod and memory limits); larger ones are a cost decision to make here.
DEFAULT_ALLOWED_INSTANCE_TYPES = (
    "t3.medium", "t3.large", "t3.xlarge",
    "t3a.medium", "t3a.large", "t3a.xlarge",
    "t4g.medium", "t4g.large", "t4g.xlarge",
    "m6i.large", "m6i.xlarge", "m7i.large", "m7i.xlarge",
    "m6g.large", "m6g.xlarge", "m7g.large", "m7g.xlarge",
)

MANAGED_NODE_GROUP_TYPES = frozenset({"eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup"})
SELF_MANAGED_NODE_GROUP_TYPES = frozenset({"eks:index:NodeGroup", "eks:index:NodeGroupV2"})
NODE_GROUP_TYPES = MANAGED_NODE_GROUP_TYPES | SELF_MANAGED_NODE_GROUP_TYPES
LAUNCH_TEMPLATE_TYPE = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET_TYPE = "aws:ec2/subnet:Subnet"
ROUTE_TABLE_TYPE = "aws:ec2/routeTable:RouteTable"


def _allowed_instance_types(config: Mapping[str, Any]) -> frozenset[str]:
    configured = config.get("allowedInstanceTypes") if config else None
    return frozenset(configured) if configured else frozenset(DEFAULT_ALLOWED_INSTANCE_TYPES)


def instance_type_problems(resource_type: str, props: Any, allowed: frozenset[str]) -> list[str]:
    listed: list[tuple[str, Any]] = []
    if resource_type in MANAGED_NODE_GROUP_TYPES:
        listed = [(f"instanceTypes[{i}]", t) for i, t in enumerate(elements(get(props, "instanceTypes")))]
    elif resource_type in SELF_MANAGED_NODE_GROUP_TYPES:
        listed = [("instanceType", get(props, "instanceType", default="t2.medium"))]
    elif resource_type == "eks:index:Cluster":
        skip_default = get(props, "skipDefaultNodeGroup")
        if skip_default is UNKNOWN or skip_default is True:
            return []
        # Without skipDefaultNodeGroup pulumi-eks adds a self-managed group of t2.medium nodes.
        listed = [("instanceType (default node group)", get(props, "instanceType", default="t2.medium"))]
    elif resource_type == LAUNCH_TEMPLATE_TYPE:
        value = get(props, "instanceType")
        listed = [("instanceType", value)] if value is not None else []
    return [f"{field} is {value!r}; allowed instance types: {', '.join(sorted(allowed))}"
            for field, value in listed if value is not UNKNOWN and value not in allowed]


def _validate_instance_types(args: ResourceValidationArgs, report: ReportViolation) -> None:
    allowed = _allowed_instance_types(args.get_config())
    for problem in instance_type_problems(args.resource_type, args.props, allowed):
        report(f"{args.name}: {problem}", None)


node_group_instance_types = ResourceValidationPolicy(
    name="node-group-instance-types",
    description="EKS nodes use an instance type from the allowed list (sized for Istio and the app, and priced).",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(properties={
        "allowedInstanceTypes": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                 "default": list(DEFAULT_ALLOWED_INSTANCE_TYPES)},
    }),
    validate=_validate_instance_types,
)


def subnet_publicity(subnet, args: StackValidationArgs) -> Optional[str]:
    """Why a subnet is public, or None when nothing says it is."""
    if get(subnet.props, "mapPublicIpOnLaunch") is True:
        return "mapPublicIpOnLaunch is true"
    tags = get(subnet.props, "tags")
    if get(tags, "kubernetes.io/role/elb") not in (None, UNKNOWN):
        return "tagged kubernetes.io/role/elb (a subnet for internet-facing load balancers)"
    associations = [a for a in resources_by(args, ["aws:ec2/routeTableAssociation:RouteTableAssociation"])
                    if subnet in dependencies_of(a, "subnetId", SUBNET_TYPE)]
    tables = [t for a in associations for t in dependencies_of(a, "routeTableId", ROUTE_TABLE_TYPE)]
    for route in resources_by(args, ["aws:ec2/route:Route"]):
        if any(t in tables for t in dependencies_of(route, "routeTableId", ROUTE_TABLE_TYPE)) \
                and dependencies_of(route, "gatewayId", "aws:ec2/internetGateway:InternetGateway"):
            return "its route table sends traffic to an internet gateway"
    for table in tables:
        for route in elements(get(table.props, "routes")):
            if is_mapping(route) and str(get(route, "gatewayId") or "").startswith("igw-"):
                return "its route table sends traffic to an internet gateway"
    return None


def node_group_subnet_problems(args: StackValidationArgs) -> list[tuple[str, str]]:
    subnets = resources_by(args, [SUBNET_TYPE])
    problems = []
    for group in resources_by(args, NODE_GROUP_TYPES):
        used = dependencies_of(group, "subnetIds", SUBNET_TYPE)
        if not used:
            used = [s for i in elements(get(group.props, "subnetIds")) for s in by_id(subnets, i)]
        for subnet in used:
            reason = subnet_publicity(subnet, args)
            if reason:
                problems.append((group.urn, f"{group.name}: runs nodes in subnet {subnet.name}, which is "
                                            f"public ({reason}); nodes belong in private subnets"))
    for cluster in resources_by(args, ["eks:index:Cluster"]):
        if get(cluster.props, "nodeAssociatePublicIpAddress") is True:
            problems.append((cluster.urn, f"{cluster.name}: nodeAssociatePublicIpAddress is true"))
    for template in resources_by(args, [LAUNCH_TEMPLATE_TYPE]):
        for i, interface in enumerate(elements(get(template.props, "networkInterfaces"))):
            if str(get(interface, "associatePublicIpAddress")).lower() == "true":
                problems.append((template.urn, f"{template.name}: networkInterfaces[{i}].associatePublicIpAddress "
                                               f"is true; nodes get no public address"))
    return problems


node_group_private_subnets = stack_policy(
    "node-group-private-subnets",
    "EKS nodes run in private subnets without public addresses, reachable only through the load balancer.",
    node_group_subnet_problems,
)


def launch_template_imds_problems(props: Any) -> list[str]:
    options = get(props, "metadataOptions")
    if options is UNKNOWN:
        return []
    problems = []
    tokens = get(options, "httpTokens")
    if tokens is not UNKNOWN and tokens != "required":
        problems.append(f"metadataOptions.httpTokens is {describe(tokens) if tokens else 'not set'}; "
                        f"set it to 'required' (IMDSv2 only)")
    hops = get(options, "httpPutResponseHopLimit")
    if hops is not UNKNOWN and number(hops) != 1:
        problems.append(f"metadataOptions.httpPutResponseHopLimit is {hops if hops is not None else 'not set'}; "
                        f"set it to 1 so that pods cannot reach the node's credentials")
    return problems


def node_group_imds_problems(args: StackValidationArgs) -> list[tuple[str, str]]:
    problems = []
    templates = resources_by(args, [LAUNCH_TEMPLATE_TYPE])
    for template in templates:
        for problem in launch_template_imds_problems(template.props):
            problems.append((template.urn, f"{template.name}: {problem}"))
    for group in resources_by(args, MANAGED_NODE_GROUP_TYPES):
        used = dependencies_of(group, "launchTemplate", LAUNCH_TEMPLATE_TYPE)
        reference = get(group.props, "launchTemplate")
        if not used and reference not in (None, UNKNOWN):
            identifier, name = get(reference, "id"), get(reference, "name")
            if UNKNOWN in (identifier, name):
                continue  # a launch template created in this run: its id is known on `pulumi up`
            used = by_id(templates, identifier) + [t for t in templates if name and get(t.props, "name") == name]
        if used or reference is UNKNOWN or get(group.props, "enableIMDSv2") is True:
            continue
        if group.resource_type == "eks:index:ManagedNodeGroup" and reference is None \
                and not any(get(group.props, key) is not None for key in ("cluster", "subnetIds", "nodeRole")):
            # The engine shows a component's outputs here, not its inputs: its aws:eks/nodeGroup child
            # (whose outputs carry the launch template) is checked instead.
            continue
        problems.append((group.urn, f"{group.name}: uses no launch template of this stack, so IMDSv2 cannot be "
                                    f"required; give it a launch template with metadataOptions.httpTokens "
                                    f"'required' and hop limit 1"))
    return problems


node_group_imdsv2 = stack_policy(
    "node-group-imdsv2",
    "EKS nodes require IMDSv2 with a hop limit of 1, so pods cannot take the node role's credentials.",
    node_group_imds_problems,
)

POLICIES = [node_group_instance_types, node_group_private_subnets, node_group_imdsv2]
