"""The eks-istio-shop guardrails: every CrossGuard policy of the pack, importable without starting it.

`policy/__main__.py` only wraps `POLICIES` in a `PolicyPack` (whose constructor serves gRPC and never
returns); tests call each policy's `validate` directly with arguments built from the offline render.

Values the engine does not know yet (during `pulumi preview`) arrive as sentinel strings, and the
engine's property proxy raises `UnknownValueError` when one is read. Every read here goes through
`get`/`elements`/`entries`, which turn an unknown into `UNKNOWN`; a check that meets `UNKNOWN` says
nothing (it cannot tell yet) and the same check runs again on `pulumi up`, when the value is known.

Resource policies see a resource's inputs. Stack policies see what the engine recorded: the outputs
of custom resources (their inputs plus computed values) and, for components such as pulumi-eks's,
only their registered outputs; so stack policies follow `property_dependencies` (recorded from the
inputs) to find the subnets and launch templates a node group uses, and also look at the AWS
resources pulumi-eks creates inside its components.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PROJECT = "eks-istio-shop"
PACK_NAME = "eks-istio-shop-guardrails"

# The stack setting that opens the cluster's API endpoint to the internet on purpose (settings.py).
ENDPOINT_FROM_ANYWHERE_SETTING = "endpointPublicAccessFromAnywhere"

# Node sizes this project is sized and priced for (README "Sizing"): burstable and general-purpose
# x86 and Graviton types from 2 vCPU / 4 GiB up to 4 vCPU / 16 GiB. Smaller types cannot hold
# istiod and the gateways (pod and memory limits); larger ones are a cost decision to make here.
DEFAULT_ALLOWED_INSTANCE_TYPES = (
    "t3.medium", "t3.large", "t3.xlarge",
    "t3a.medium", "t3a.large", "t3a.xlarge",
    "t4g.medium", "t4g.large", "t4g.xlarge",
    "m6i.large", "m6i.xlarge", "m7i.large", "m7i.xlarge",
    "m6g.large", "m6g.xlarge", "m7g.large", "m7g.xlarge",
)

# The namespace of the Istio ingress gateway: the only workload allowed a NodePort Service, because
# the Pulumi-owned NLB's target groups forward to those node ports.
INGRESS_GATEWAY_NAMESPACE = "istio-ingress"
MESH_ROOT_NAMESPACE = "istio-system"
APP_NAMESPACE = "e-commerce"

# Envoy retry conditions under which the upstream has certainly not processed the request, so that a
# retry cannot repeat a GraphQL mutation (an order placed twice). Anything else (5xx, reset,
# gateway-error, retriable-status-codes, ...) is only safe when every match is an idempotent method.
SAFE_RETRY_ON = frozenset({"connect-failure", "refused-stream", "reset-before-request", "envoy-ratelimited"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_RETRY_ATTEMPTS = 3

# TLS policies of Elastic Load Balancing that negotiate TLS 1.3 and accept nothing below TLS 1.2
# (ELBSecurityPolicy-TLS13-1-2-2021-06, -Res-, -FIPS-, -PQ- and the TLS 1.3-only variants).
MODERN_TLS_POLICY = re.compile(r"^ELBSecurityPolicy-TLS13-1-[23]-[A-Za-z0-9-]+$")

REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")
REQUIRED_TAGS = ("project", "stack")

_TAGGABLE_FILE = Path(__file__).resolve().parent / "aws_taggable_types.txt"

# Components of pulumi-eks that take a `tags` input and hand it to what they create.
TAGGED_EKS_COMPONENTS = frozenset({
    "eks:index:Cluster", "eks:index:ManagedNodeGroup", "eks:index:NodeGroup", "eks:index:NodeGroupV2",
})

MANAGED_NODE_GROUP_TYPES = frozenset({"eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup"})
SELF_MANAGED_NODE_GROUP_TYPES = frozenset({"eks:index:NodeGroup", "eks:index:NodeGroupV2"})
NODE_GROUP_TYPES = MANAGED_NODE_GROUP_TYPES | SELF_MANAGED_NODE_GROUP_TYPES
EKS_CLUSTER_TYPES = frozenset({"eks:index:Cluster", "aws:eks/cluster:Cluster"})
LAUNCH_TEMPLATE_TYPE = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET_TYPE = "aws:ec2/subnet:Subnet"
LISTENER_TYPES = frozenset({"aws:lb/listener:Listener", "aws:alb/listener:Listener"})
RECORD_TYPE = "aws:route53/record:Record"
SERVICE_TYPE = "kubernetes:core/v1:Service"
HELM_RELEASE_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io")

# Where the pod spec sits in each kind of workload.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:core/v1:PodTemplate": ("template", "spec"),
    "kubernetes:core/v1:ReplicationController": ("spec", "template", "spec"),
}
POD_LABEL_PATHS: dict[str, tuple[str, ...]] = {
    kind: (path[:-1] + ("metadata", "labels")) if path != ("spec",) else ("metadata", "labels")
    for kind, path in POD_SPEC_PATHS.items()
}


# ---------------------------------------------------------------------------------------------
# Reading values that may be unknown


class _Unknown:
    _instance: Optional["_Unknown"] = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN = _Unknown()

# The engine's sentinels for values computed later (pulumi_policy.proxy), for values not proxied.
_UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value in _UNKNOWN_SENTINELS)


def _known(value: Any) -> Any:
    return UNKNOWN if is_unknown(value) else value


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def get(value: Any, *path: Any, default: Any = None) -> Any:
    """`value[path[0]][path[1]]...`: `default` when absent or of another shape, UNKNOWN when unknown."""
    current = _known(value)
    for key in path:
        if current is UNKNOWN:
            return UNKNOWN
        try:
            if isinstance(key, int):
                if not is_list(current) or not -len(current) <= key < len(current):
                    return default
            elif not is_mapping(current):
                return default
            current = _known(current[key])
        except KeyError:
            return default
        except UnknownValueError:
            return UNKNOWN
    return current


def elements(value: Any) -> list:
    """The items of a list (each possibly UNKNOWN); [] for anything that is not a list."""
    if not is_list(value):
        return []
    found = []
    for index in range(len(value)):
        try:
            found.append(_known(value[index]))
        except UnknownValueError:
            found.append(UNKNOWN)
    return found


def entries(value: Any) -> list[tuple[Any, Any]]:
    """The (key, value) pairs of a mapping (values possibly UNKNOWN); [] for anything else."""
    if not is_mapping(value):
        return []
    found = []
    for key in list(iter(value)):
        try:
            found.append((key, _known(value[key])))
        except UnknownValueError:
            found.append((key, UNKNOWN))
    return found


def stack_of(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type chain>::<name>"""
    return urn.split("::")[0].split(":")[-1] if urn.startswith("urn:pulumi:") else ""


def type_chain(urn: str) -> list[str]:
    """The types of a resource's ancestors and its own, outermost first, from its URN."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def created_inside_eks_component(urn: str) -> bool:
    """True for resources pulumi-eks creates inside its components (their type chain has an eks: type)."""
    return any(t.startswith("eks:") for t in type_chain(urn)[:-1])


def number(value: Any) -> Any:
    """A numeric value (numbers may arrive as 4.0 or "4"); UNKNOWN stays UNKNOWN, anything else None."""
    if value is UNKNOWN or value is None or isinstance(value, bool):
        return UNKNOWN if value is UNKNOWN else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _describe(value: Any) -> str:
    return "unknown" if value is UNKNOWN else repr(value)


def resource_policy(name: str, description: str, problems: Callable[[str, Any], list[str]],
                    level: EnforcementLevel = EnforcementLevel.MANDATORY) -> ResourceValidationPolicy:
    """A resource policy reporting `problems(resource_type, props)`, each prefixed with the resource's name."""
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for problem in problems(args.resource_type, args.props):
            report(f"{args.name}: {problem}", None)

    return ResourceValidationPolicy(name=name, description=description, enforcement_level=level, validate=validate)


def stack_policy(name: str, description: str,
                 problems: Callable[[StackValidationArgs], list[tuple[Optional[str], str]]]) -> StackValidationPolicy:
    """A mandatory stack policy reporting each (urn, message) of `problems(args)`."""
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for urn, message in problems(args):
            report(message, urn)

    return StackValidationPolicy(name=name, description=description, enforcement_level=EnforcementLevel.MANDATORY,
                                 validate=validate)


# ---------------------------------------------------------------------------------------------
# Node groups: instance types, private subnets, IMDSv2


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


def _resources_by(args: StackValidationArgs, types: Iterable[str]) -> list:
    wanted = set(types)
    return [r for r in args.resources if r.resource_type in wanted]


def _dependencies_of(resource, key: str, resource_type: str) -> list:
    return [d for d in (resource.property_dependencies or {}).get(key, []) if d.resource_type == resource_type]


def _by_id(resources: list, identifier: Any) -> list:
    if identifier is UNKNOWN or not isinstance(identifier, str):
        return []
    return [r for r in resources if get(r.props, "id") == identifier]


def subnet_publicity(subnet, args: StackValidationArgs) -> Optional[str]:
    """Why a subnet is public, or None when nothing says it is."""
    if get(subnet.props, "mapPublicIpOnLaunch") is True:
        return "mapPublicIpOnLaunch is true"
    tags = get(subnet.props, "tags")
    if get(tags, "kubernetes.io/role/elb") not in (None, UNKNOWN):
        return "tagged kubernetes.io/role/elb (a subnet for internet-facing load balancers)"
    associations = [a for a in _resources_by(args, ["aws:ec2/routeTableAssociation:RouteTableAssociation"])
                    if subnet in _dependencies_of(a, "subnetId", SUBNET_TYPE)]
    tables = [t for a in associations for t in _dependencies_of(a, "routeTableId", "aws:ec2/routeTable:RouteTable")]
    for route in _resources_by(args, ["aws:ec2/route:Route"]):
        if any(t in tables for t in _dependencies_of(route, "routeTableId", "aws:ec2/routeTable:RouteTable")) \
                and _dependencies_of(route, "gatewayId", "aws:ec2/internetGateway:InternetGateway"):
            return "its route table sends traffic to an internet gateway"
    for table in tables:
        for route in elements(get(table.props, "routes")):
            if is_mapping(route) and str(get(route, "gatewayId") or "").startswith("igw-"):
                return "its route table sends traffic to an internet gateway"
    return None


def node_group_subnet_problems(args: StackValidationArgs) -> list[tuple[str, str]]:
    subnets = _resources_by(args, [SUBNET_TYPE])
    problems = []
    for group in _resources_by(args, NODE_GROUP_TYPES):
        used = _dependencies_of(group, "subnetIds", SUBNET_TYPE)
        if not used:
            used = [s for i in elements(get(group.props, "subnetIds")) for s in _by_id(subnets, i)]
        for subnet in used:
            reason = subnet_publicity(subnet, args)
            if reason:
                problems.append((group.urn, f"{group.name}: runs nodes in subnet {subnet.name}, which is "
                                            f"public ({reason}); nodes belong in private subnets"))
    for cluster in _resources_by(args, ["eks:index:Cluster"]):
        if get(cluster.props, "nodeAssociatePublicIpAddress") is True:
            problems.append((cluster.urn, f"{cluster.name}: nodeAssociatePublicIpAddress is true"))
    for template in _resources_by(args, [LAUNCH_TEMPLATE_TYPE]):
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
        problems.append(f"metadataOptions.httpTokens is {_describe(tokens) if tokens else 'not set'}; "
                        f"set it to 'required' (IMDSv2 only)")
    hops = get(options, "httpPutResponseHopLimit")
    if hops is not UNKNOWN and number(hops) != 1:
        problems.append(f"metadataOptions.httpPutResponseHopLimit is {hops if hops is not None else 'not set'}; "
                        f"set it to 1 so that pods cannot reach the node's credentials")
    return problems


def node_group_imds_problems(args: StackValidationArgs) -> list[tuple[str, str]]:
    problems = []
    templates = _resources_by(args, [LAUNCH_TEMPLATE_TYPE])
    for template in templates:
        for problem in launch_template_imds_problems(template.props):
            problems.append((template.urn, f"{template.name}: {problem}"))
    for group in _resources_by(args, MANAGED_NODE_GROUP_TYPES):
        used = _dependencies_of(group, "launchTemplate", LAUNCH_TEMPLATE_TYPE)
        reference = get(group.props, "launchTemplate")
        if not used and reference not in (None, UNKNOWN):
            identifier, name = get(reference, "id"), get(reference, "name")
            if UNKNOWN in (identifier, name):
                continue  # a launch template created in this run: its id is known on `pulumi up`
            used = _by_id(templates, identifier) + [t for t in templates if name and get(t.props, "name") == name]
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


# ---------------------------------------------------------------------------------------------
# The EKS cluster: secrets encryption, control plane logs, public endpoint


def secrets_encryption_problems(resource_type: str, props: Any) -> list[str]:
    if resource_type == "eks:index:Cluster":
        key = get(props, "encryptionConfigKeyArn")
        return [] if key is UNKNOWN or key else [
            "encryptionConfigKeyArn is not set; Kubernetes secrets must be envelope-encrypted with a KMS key"]
    if resource_type == "aws:eks/cluster:Cluster":
        config = get(props, "encryptionConfig")
        if config is UNKNOWN:
            return []
        key = get(config, "provider", "keyArn")
        resources = get(config, "resources")
        problems = []
        if key is not UNKNOWN and not key:
            problems.append("encryptionConfig.provider.keyArn is not set")
        if resources is not UNKNOWN and "secrets" not in elements(resources) and UNKNOWN not in elements(resources):
            problems.append("encryptionConfig.resources does not include 'secrets'")
        return problems
    return []


eks_secrets_encryption = resource_policy(
    "eks-secrets-kms-encryption", "The EKS cluster encrypts Kubernetes secrets with a KMS key.",
    secrets_encryption_problems)


def control_plane_log_problems(resource_type: str, props: Any) -> list[str]:
    if resource_type not in EKS_CLUSTER_TYPES:
        return []
    types = get(props, "enabledClusterLogTypes")
    if types is UNKNOWN:
        return []
    present = elements(types)
    if UNKNOWN in present:
        return []
    missing = [t for t in REQUIRED_LOG_TYPES if t not in present]
    return [f"enabledClusterLogTypes lacks {', '.join(missing)}; the control plane must log "
            f"{', '.join(REQUIRED_LOG_TYPES)} for incident response"] if missing else []


eks_control_plane_logs = resource_policy(
    "eks-control-plane-logs", "The EKS control plane logs api, audit and authenticator events.",
    control_plane_log_problems)


def open_endpoint_cidrs(resource_type: str, props: Any) -> Any:
    """The CIDRs that open the public API endpoint to everyone ([] if none), or UNKNOWN."""
    if resource_type == "eks:index:Cluster":
        public, cidrs = get(props, "endpointPublicAccess", default=True), get(props, "publicAccessCidrs")
    elif resource_type == "aws:eks/cluster:Cluster":
        public = get(props, "vpcConfig", "endpointPublicAccess", default=True)
        cidrs = get(props, "vpcConfig", "publicAccessCidrs")
    else:
        return []
    if public is UNKNOWN or cidrs is UNKNOWN:
        return UNKNOWN
    if public is False:
        return []
    if cidrs is None or (is_list(cidrs) and len(cidrs) == 0):
        return ["0.0.0.0/0 (the default when publicAccessCidrs is not set)"]
    listed = elements(cidrs)
    return [c for c in listed if c is not UNKNOWN and _is_everywhere(c)]


def _is_everywhere(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


def endpoint_opened_by_setting() -> bool:
    """The stack's own opt-in. The engine hands the stack's config to policy packs (PULUMI_CONFIG)."""
    try:
        return bool(pulumi.Config(PROJECT).get_bool(ENDPOINT_FROM_ANYWHERE_SETTING))
    except Exception:  # an unreadable value opts nobody in
        return False


def _validate_endpoint_restricted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    cidrs = open_endpoint_cidrs(args.resource_type, args.props)
    if cidrs is UNKNOWN or not cidrs or endpoint_opened_by_setting():
        return
    report(f"{args.name}: the public API endpoint is open to {', '.join(map(str, cidrs))}; list narrower "
           f"CIDRs in {PROJECT}:endpointPublicAccessCidrs, or set {PROJECT}:{ENDPOINT_FROM_ANYWHERE_SETTING} "
           f"to true to open it on purpose (then this is only advisory)", None)


def _validate_endpoint_acknowledged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    cidrs = open_endpoint_cidrs(args.resource_type, args.props)
    if cidrs is UNKNOWN or not cidrs or not endpoint_opened_by_setting():
        return
    report(f"{args.name}: the public API endpoint is open to {', '.join(map(str, cidrs))} because "
           f"{PROJECT}:{ENDPOINT_FROM_ANYWHERE_SETTING} is true; IAM still authenticates every request, "
           f"but narrow it for shared stacks", None)


eks_endpoint_restricted = ResourceValidationPolicy(
    name="eks-public-endpoint-restricted",
    description="The EKS API endpoint is not open to 0.0.0.0/0 unless the stack opts in.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_endpoint_restricted,
)

eks_endpoint_open_by_setting = ResourceValidationPolicy(
    name="eks-public-endpoint-open-by-setting",
    description="The EKS API endpoint is open to 0.0.0.0/0 because the stack opted in (a reminder).",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=_validate_endpoint_acknowledged,
)


# ---------------------------------------------------------------------------------------------
# Kubernetes Services: no LoadBalancer, NodePort only for the ingress gateway


def _namespace(props: Any) -> Any:
    return get(props, "metadata", "namespace", default="default")


def chart_name(props: Any) -> Any:
    """The chart of a Helm release: "gateway" from "gateway", "istio/gateway" or ".../gateway-1.30.3.tgz"."""
    chart = get(props, "chart")
    if not isinstance(chart, str):
        return chart
    last = chart.rstrip("/").split("/")[-1]
    return re.sub(r"-\d+\.\d+\.\d+.*\.tgz$", "", last)


def _service_type_problem(service_type: Any, namespace: Any, what: str) -> Optional[str]:
    if service_type is UNKNOWN:
        return None
    if service_type == "LoadBalancer":
        return (f"{what} is a Service of type LoadBalancer; Kubernetes would create a load balancer outside "
                f"Pulumi's state that blocks `pulumi destroy`. Use the Pulumi-owned NLB instead")
    if service_type == "NodePort" and namespace is not UNKNOWN and namespace != INGRESS_GATEWAY_NAMESPACE:
        return (f"{what} is a Service of type NodePort in namespace {namespace!r}; only the ingress gateway "
                f"(namespace {INGRESS_GATEWAY_NAMESPACE}) is exposed on node ports, behind the NLB")
    return None


def _load_balancer_values(values: Any, path: tuple = ()) -> list[str]:
    """Paths in Helm values that ask a chart for a LoadBalancer Service (`...service...type: LoadBalancer`)."""
    found = []
    for key, value in entries(values):
        if is_mapping(value):
            found += _load_balancer_values(value, path + (str(key),))
        elif key == "type" and value == "LoadBalancer" and any("service" in p.lower() for p in path):
            found.append(".".join(path + ("type",)))
    return found


def service_exposure_problems(resource_type: str, props: Any, name: str) -> list[str]:
    if resource_type == SERVICE_TYPE:
        service_name = get(props, "metadata", "name", default=name)
        problem = _service_type_problem(get(props, "spec", "type", default="ClusterIP"), _namespace(props),
                                        f"{service_name}")
        return [problem] if problem else []
    if resource_type in HELM_RELEASE_TYPES:
        values = get(props, "values")
        if values is UNKNOWN:
            return []
        release = get(props, "name", default=name)
        namespace = get(props, "namespace", default="default")
        if chart_name(props) == "gateway":
            # Istio's gateway chart defaults to a LoadBalancer Service.
            service_type = get(values, "service", "type", default="LoadBalancer")
            problem = _service_type_problem(service_type, namespace, f"release {release} (gateway chart, values.service.type)")
            return [problem] if problem else []
        return [f"release {release}: values.{path} asks for a Service of type LoadBalancer; use the Pulumi-owned NLB"
                for path in _load_balancer_values(values)]
    return []


def _validate_services(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for problem in service_exposure_problems(args.resource_type, args.props, args.name):
        report(problem, None)


no_load_balancer_services = ResourceValidationPolicy(
    name="no-loadbalancer-services",
    description="No Kubernetes Service of type LoadBalancer; NodePort only for the Istio ingress gateway.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_services,
)


# ---------------------------------------------------------------------------------------------
# Containers


def pod_spec(resource_type: str, props: Any) -> Any:
    path = POD_SPEC_PATHS.get(resource_type)
    return None if path is None else get(props, *path)


def _containers(spec: Any, include_init: bool = True) -> list[tuple[str, Any]]:
    found = [(f"containers[{i}]", c) for i, c in enumerate(elements(get(spec, "containers")))]
    if include_init:
        found += [(f"initContainers[{i}]", c) for i, c in enumerate(elements(get(spec, "initContainers")))]
    return found


def _container_label(field: str, container: Any) -> str:
    name = get(container, "name")
    return f"container {name!r} ({field})" if isinstance(name, str) else field


def _workload(args: ResourceValidationArgs) -> str:
    kind = args.resource_type.split(":")[-1]
    name = get(args.props, "metadata", "name", default=args.name)
    return f"{kind} {name if isinstance(name, str) else args.name}"


def container_resource_problems(spec: Any) -> list[str]:
    problems = []
    for field, container in _containers(spec):
        if container is UNKNOWN:
            continue
        resources = get(container, "resources")
        if resources is UNKNOWN:
            continue
        missing = [f"{kind}.{unit}" for kind in ("requests", "limits") for unit in ("cpu", "memory")
                   if get(resources, kind, unit) is None]
        if missing:
            problems.append(f"{_container_label(field, container)} sets no resources.{', resources.'.join(missing)}; "
                            f"requests let the scheduler place it, limits keep it from starving its node")
    return problems


def container_probe_problems(spec: Any) -> list[str]:
    problems = []
    for field, container in _containers(spec, include_init=False):
        if container is UNKNOWN:
            continue
        missing = [p for p in ("readinessProbe", "livenessProbe") if get(container, p) is None]
        if missing:
            problems.append(f"{_container_label(field, container)} has no {' and no '.join(missing)}; traffic "
                            f"must wait until it is ready, and a hung process must be restarted")
    return problems


def container_security_problems(spec: Any) -> list[str]:
    problems = []
    pod_context = get(spec, "securityContext")
    for field, container in _containers(spec):
        if container is UNKNOWN or spec is UNKNOWN:
            continue
        context = get(container, "securityContext")
        label = _container_label(field, container)

        def effective(key: str) -> Any:
            own = get(context, key)
            return own if own is not None else get(pod_context, key)

        non_root, user = effective("runAsNonRoot"), effective("runAsUser")
        if non_root is not UNKNOWN and non_root is not True:
            problems.append(f"{label}: securityContext.runAsNonRoot is not true (container or pod); "
                            f"a root process owns more of the node after an escape")
        if number(user) == 0:
            problems.append(f"{label}: securityContext.runAsUser is 0 (root)")
        read_only = get(context, "readOnlyRootFilesystem")
        if read_only is not UNKNOWN and read_only is not True:
            problems.append(f"{label}: securityContext.readOnlyRootFilesystem is not true; write to "
                            f"emptyDir volumes instead, so that an attacker cannot change the image's files")
        escalation = get(context, "allowPrivilegeEscalation")
        if escalation is not UNKNOWN and escalation is not False:
            problems.append(f"{label}: securityContext.allowPrivilegeEscalation is not false")
        if get(context, "privileged") is True:
            problems.append(f"{label}: securityContext.privileged is true")
    return problems


def image_problem(image: Any) -> Optional[str]:
    if image is UNKNOWN:
        return None
    if not isinstance(image, str) or not image:
        return "has no image"
    if "@" in image:
        return None  # pinned by digest
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag, which means :latest"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses :latest"
    return None


def container_image_problems(spec: Any) -> list[str]:
    problems = []
    for field, container in _containers(spec):
        if container is UNKNOWN:
            continue
        problem = image_problem(get(container, "image"))
        if problem:
            problems.append(f"{_container_label(field, container)} {problem}; pin a version or digest so that "
                            f"every node runs the same, reviewed code")
    return problems


def _container_policy(name: str, description: str, check: Callable[[Any], list[str]]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        spec = pod_spec(args.resource_type, args.props)
        if spec is None or spec is UNKNOWN:
            return
        for problem in check(spec):
            report(f"{_workload(args)}: {problem}", None)

    return ResourceValidationPolicy(name=name, description=description,
                                    enforcement_level=EnforcementLevel.MANDATORY, validate=validate)


container_resources = _container_policy(
    "container-resources", "Every container sets CPU and memory requests and limits.", container_resource_problems)
container_probes = _container_policy(
    "container-probes", "Every container has a readiness and a liveness probe.", container_probe_problems)
container_security = _container_policy(
    "container-security-context",
    "Every container runs as non-root, without privilege escalation, on a read-only root filesystem.",
    container_security_problems)
container_images = _container_policy(
    "container-image-pinned", "Every container image is pinned by tag or digest, never :latest.",
    container_image_problems)


# ---------------------------------------------------------------------------------------------
# Istio


def _istio_kind(resource_type: str, group: str, kind: str) -> bool:
    parts = resource_type.split(":")
    return len(parts) == 3 and parts[0] == "kubernetes" and parts[1].split("/")[0] == group and parts[2] == kind


_DURATION = re.compile(r"^(\d+(\.\d+)?(h|m|s|ms|us|µs|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration_seconds(text: Any) -> Optional[float]:
    """A protobuf/Go duration such as "10s" or "1m30s" in seconds; None if it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text):
        return None
    return sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))


_METHOD_ALTERNATION = re.compile(r"^\^?\(?([A-Z]+(?:\|[A-Z]+)*)\)?\$?$")


def _match_methods(method: Any) -> Optional[set[str]]:
    """The HTTP methods a route match admits, when it names them (exact, or a regex like ^(GET|HEAD)$)."""
    exact, regex = get(method, "exact"), get(method, "regex")
    if isinstance(exact, str):
        return {exact.upper()}
    if isinstance(regex, str):
        found = _METHOD_ALTERNATION.match(regex)
        return set(found.group(1).split("|")) if found else None
    return None


def _idempotent_only(route: Any) -> Any:
    """Whether every match of the route admits only idempotent methods; UNKNOWN when a match is unknown."""
    matches = get(route, "match")
    if matches is UNKNOWN:
        return UNKNOWN
    if not elements(matches):
        return False
    verdict: Any = True
    for match in elements(matches):
        method = get(match, "method")
        if UNKNOWN in (match, method, get(method, "exact"), get(method, "regex")):
            verdict = UNKNOWN
            continue
        methods = _match_methods(method)
        if methods is None or not methods <= IDEMPOTENT_METHODS:
            return False
    return verdict


def http_route_problems(spec: Any) -> list[str]:
    problems = []
    for index, route in enumerate(elements(get(spec, "http"))):
        if route is UNKNOWN or get(route, "route") is None:
            continue  # redirects and direct responses forward nothing
        label = f"http[{index}]" + (f" ({get(route, 'name')})" if isinstance(get(route, "name"), str) else "")
        timeout = get(route, "timeout")
        seconds = duration_seconds(timeout)
        if timeout is None:
            problems.append(f"{label} has no timeout; without one a slow upstream holds the caller's connection "
                            f"forever (Istio sets none by default)")
        elif timeout is not UNKNOWN and not seconds:
            problems.append(f"{label}: timeout {timeout!r} is not a positive duration such as '10s'")
        retries = get(route, "retries")
        if retries is UNKNOWN:
            continue
        if retries is None:
            problems.append(f"{label} declares no retries, so Istio's default applies (2 attempts, including on "
                            f"503), which can repeat a mutation; set retries.attempts 0 or a safe retryOn")
            continue
        attempts = number(get(retries, "attempts", default=0))
        if attempts is UNKNOWN or not attempts:
            continue
        if attempts > MAX_RETRY_ATTEMPTS:
            problems.append(f"{label}: retries.attempts is {attempts:g}; at most {MAX_RETRY_ATTEMPTS}, so that "
                            f"retries cannot multiply load during an outage")
        retry_on = get(retries, "retryOn")
        if retry_on is UNKNOWN:
            continue
        conditions = {c.strip() for c in str(retry_on or "").split(",") if c.strip()}
        unsafe = sorted(c for c in conditions if c not in SAFE_RETRY_ON)
        if not conditions:
            problems.append(f"{label}: retries.retryOn is not set, so Istio retries on 503 and resets too; list "
                            f"only {', '.join(sorted(SAFE_RETRY_ON))}")
        elif unsafe and _idempotent_only(route) is False:
            problems.append(f"{label}: retries.retryOn includes {', '.join(unsafe)}, which can repeat a request "
                            f"the upstream already processed; only {', '.join(sorted(SAFE_RETRY_ON))} are safe "
                            f"unless every match is a {'/'.join(sorted(IDEMPOTENT_METHODS))} request")
        per_try = duration_seconds(get(retries, "perTryTimeout"))
        if per_try and seconds and per_try > seconds:
            problems.append(f"{label}: retries.perTryTimeout is longer than the route's timeout")
    return problems


def _validate_virtual_service(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _istio_kind(args.resource_type, "networking.istio.io", "VirtualService"):
        return
    name = get(args.props, "metadata", "name", default=args.name)
    for problem in http_route_problems(get(args.props, "spec")):
        report(f"VirtualService {name}: {problem}", None)


virtual_service_routes = ResourceValidationPolicy(
    name="virtualservice-timeouts-retries",
    description="Every VirtualService HTTP route has a timeout and retries only when the request cannot have been processed.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_virtual_service,
)


def istio_in_stack(args: StackValidationArgs) -> bool:
    """Istio is part of this stack: an istiod release is installed, or Istio resources are declared."""
    for resource in args.resources:
        if resource.resource_type in HELM_RELEASE_TYPES and chart_name(resource.props) == "istiod":
            return True
        group = resource.resource_type.split(":")[1].split("/")[0] if resource.resource_type.count(":") == 2 else ""
        if resource.resource_type.startswith("kubernetes:") and group in ISTIO_GROUPS:
            return True
    return False


def _namespace_of(resource) -> Any:
    """A Kubernetes object's namespace; when the name is not known yet, the Namespace object it depends on."""
    namespace = get(resource.props, "metadata", "namespace", default="default")
    if namespace is UNKNOWN:
        owners = _dependencies_of(resource, "metadata", "kubernetes:core/v1:Namespace")
        names = {get(o.props, "metadata", "name") for o in owners}
        if len(names) == 1 and isinstance(next(iter(names)), str):
            return next(iter(names))
    return namespace


def strict_mtls_problems(args: StackValidationArgs) -> tuple[bool, list[tuple[Optional[str], str]]]:
    """(applies, problems): no problems apply to a stack without Istio."""
    if not istio_in_stack(args):
        return False, []
    problems: list[tuple[Optional[str], str]] = []
    mesh_wide_strict = False
    undecided = False
    for resource in args.resources:
        if not _istio_kind(resource.resource_type, "security.istio.io", "PeerAuthentication"):
            continue
        spec = get(resource.props, "spec")
        namespace = _namespace_of(resource)
        mode = get(spec, "mtls", "mode")
        selector = get(spec, "selector")
        name = get(resource.props, "metadata", "name", default=resource.name)
        if UNKNOWN in (spec, namespace, mode, selector):
            undecided = True
            continue
        if namespace == MESH_ROOT_NAMESPACE and selector is None and mode == "STRICT":
            mesh_wide_strict = True
        if mode in ("PERMISSIVE", "DISABLE"):
            problems.append((resource.urn, f"PeerAuthentication {namespace}/{name} sets mtls.mode {mode}, which "
                                           f"accepts plain text and weakens mesh-wide STRICT mTLS"))
        for port, setting in entries(get(spec, "portLevelMtls")):
            if get(setting, "mode") in ("PERMISSIVE", "DISABLE"):
                problems.append((resource.urn, f"PeerAuthentication {namespace}/{name} sets port {port} to "
                                               f"{get(setting, 'mode')}"))
    if not mesh_wide_strict and not undecided:
        problems.append((None, f"Istio is installed but no PeerAuthentication in {MESH_ROOT_NAMESPACE} without a "
                               f"selector sets mtls.mode STRICT; without it workloads accept plain text"))
    return True, problems


def _validate_strict_mtls(args: StackValidationArgs, report: ReportViolation) -> None:
    applies, problems = strict_mtls_problems(args)
    if not applies:
        args.not_applicable("this stack installs no Istio")
    for urn, message in problems:
        report(message, urn)


mesh_strict_mtls = StackValidationPolicy(
    name="mesh-strict-mtls",
    description="When the stack installs Istio, a mesh-wide PeerAuthentication enforces STRICT mutual TLS.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_strict_mtls,
)


def _selects(match_labels: Any, labels: Any) -> Any:
    """True/False whether matchLabels selects pods with `labels`; UNKNOWN when either is unknown."""
    if match_labels is UNKNOWN or labels is UNKNOWN:
        return UNKNOWN
    wanted = entries(match_labels)
    if not wanted:
        return False
    have = dict(entries(labels))
    if any(v is UNKNOWN or have.get(k) is UNKNOWN for k, v in wanted):
        return UNKNOWN
    return all(have.get(k) == v for k, v in wanted)


def authorization_problems(args: StackValidationArgs) -> list[tuple[str, str]]:
    policies = []
    for resource in args.resources:
        if _istio_kind(resource.resource_type, "security.istio.io", "AuthorizationPolicy") \
                and _namespace_of(resource) in (APP_NAMESPACE, UNKNOWN):
            policies.append(resource)
    problems = []
    for policy in policies:
        name = get(policy.props, "metadata", "name", default=policy.name)
        for index, rule in enumerate(elements(get(policy.props, "spec", "rules"))):
            if is_mapping(rule) and not entries(rule):
                problems.append((policy.urn, f"AuthorizationPolicy {APP_NAMESPACE}/{name}: rules[{index}] is "
                                             f"empty and allows every request; name the callers in `from`"))
    for workload in args.resources:
        label_path = POD_LABEL_PATHS.get(workload.resource_type)
        if label_path is None or _namespace_of(workload) != APP_NAMESPACE:
            continue
        labels = get(workload.props, *label_path)
        selected = UNKNOWN if labels is UNKNOWN else False
        for policy in policies:
            action = get(policy.props, "spec", "action", default="ALLOW")
            if action not in ("ALLOW", UNKNOWN):
                continue
            verdict = _selects(get(policy.props, "spec", "selector", "matchLabels"), labels)
            if verdict is True:
                selected = True
                break
            if verdict is UNKNOWN:
                selected = UNKNOWN
        if selected is False:
            name = get(workload.props, "metadata", "name", default=workload.name)
            problems.append((workload.urn, f"{workload.resource_type.split(':')[-1]} {APP_NAMESPACE}/{name} is "
                                           f"selected by no ALLOW AuthorizationPolicy; give it one whose "
                                           f"selector.matchLabels match its pod labels and whose rules name "
                                           f"its callers"))
    return problems


ecommerce_authorization = stack_policy(
    "ecommerce-workloads-authorized",
    f"Every workload in namespace {APP_NAMESPACE} is selected by an AuthorizationPolicy naming its callers.",
    authorization_problems,
)


# ---------------------------------------------------------------------------------------------
# Load balancer and DNS


def listener_tls_problems(resource_type: str, props: Any) -> list[str]:
    if resource_type not in LISTENER_TYPES:
        return []
    protocol = get(props, "protocol")
    if protocol not in ("TLS", "HTTPS"):
        return []
    policy = get(props, "sslPolicy")
    if policy is UNKNOWN:
        return []
    if not policy:
        return [f"{protocol} listener sets no sslPolicy, so AWS picks one that may allow TLS 1.0/1.1; set "
                f"ELBSecurityPolicy-TLS13-1-2-2021-06 or newer"]
    if not MODERN_TLS_POLICY.match(str(policy)):
        return [f"{protocol} listener uses {policy}; use a TLS 1.3 policy with TLS 1.2 as the minimum, such as "
                f"ELBSecurityPolicy-TLS13-1-2-2021-06"]
    return []


lb_modern_tls = resource_policy(
    "lb-tls-modern-policy",
    "The load balancer's TLS listeners use a modern security policy (TLS 1.2 minimum, TLS 1.3).",
    listener_tls_problems)


def record_problems(resource_type: str, props: Any) -> list[str]:
    if resource_type != RECORD_TYPE:
        return []
    record_type, name = get(props, "type"), get(props, "name")
    if record_type is UNKNOWN:
        return []
    if record_type in ("A", "AAAA"):
        aliases = get(props, "aliases")
        if aliases is UNKNOWN:
            return []
        if not elements(aliases) or get(props, "records") not in (None, UNKNOWN):
            return [f"{record_type} record {name if isinstance(name, str) else ''} is not an alias; point it at "
                    f"the load balancer with `aliases` (its addresses change, an alias follows them at no "
                    f"query cost)"]
        return []
    if record_type == "CNAME" and isinstance(name, str) and not name.startswith("_"):
        return [f"CNAME record {name} should be an alias A record to the load balancer (only _-prefixed "
                f"validation records are CNAMEs)"]
    return []


route53_alias = resource_policy(
    "route53-alias-record", "The Route 53 record for the hostname is an alias to the load balancer.",
    record_problems)


# ---------------------------------------------------------------------------------------------
# Tags


def taggable_aws_types() -> frozenset[str]:
    """Every pulumi-aws resource type with a `tags` input (generated from the pinned pulumi-aws)."""
    return frozenset(line.strip() for line in _TAGGABLE_FILE.read_text().splitlines()
                     if line.strip() and not line.startswith("#"))


_TAGGABLE: Optional[frozenset[str]] = None


def is_taggable(resource_type: str) -> bool:
    global _TAGGABLE
    if _TAGGABLE is None:
        _TAGGABLE = taggable_aws_types()
    return resource_type in _TAGGABLE or resource_type in TAGGED_EKS_COMPONENTS


def _tag_problems(tags: Any, stack: str, where: str) -> list[str]:
    if tags is UNKNOWN:
        return []
    expected = {"project": PROJECT, "stack": stack}
    problems = []
    for key in REQUIRED_TAGS:
        value = get(tags, key)
        if value is UNKNOWN:
            continue
        if value is None:
            problems.append(f"{where} lacks the tag {key}={expected[key]}")
        elif expected[key] and value != expected[key]:
            problems.append(f"{where} has {key}={value!r}, expected {expected[key]!r}")
    return problems


def tag_problems(resource_type: str, props: Any, urn: str, provider_props: Any = None) -> list[str]:
    if not is_taggable(resource_type):
        return []
    stack = stack_of(urn)
    tags = get(props, "tags")
    default_tags = get(provider_props, "defaultTags", "tags") if provider_props is not None else None
    if is_mapping(default_tags) and is_mapping(tags):
        tags = {**dict(entries(default_tags)), **dict(entries(tags))}
    elif tags is None and default_tags is not None:
        tags = default_tags
    problems = _tag_problems(tags if tags is not None else {}, stack, "tags")
    if resource_type == LAUNCH_TEMPLATE_TYPE:
        # The instances and volumes launched from it are billed but are not Pulumi resources.
        specifications = {get(s, "resourceType"): get(s, "tags") for s in elements(get(props, "tagSpecifications"))}
        if UNKNOWN not in specifications and get(props, "tagSpecifications") is not UNKNOWN:
            for kind in ("instance", "volume"):
                kind_tags = specifications.get(kind)
                problems += _tag_problems(kind_tags if kind_tags is not None else {}, stack,
                                          f"tagSpecifications[{kind}]")
    return problems


def _validate_tags(args: ResourceValidationArgs, report: ReportViolation, inside_components: bool) -> None:
    if created_inside_eks_component(args.urn) != inside_components:
        return
    provider_props = args.provider.props if args.provider is not None else None
    for problem in tag_problems(args.resource_type, args.props, args.urn, provider_props):
        report(f"{args.name}: {problem}; tags say who pays for it and which stack owns it", None)


aws_tags = ResourceValidationPolicy(
    name="aws-resources-tagged",
    description="Every taggable AWS resource the program declares carries the project and stack tags.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=lambda args, report: _validate_tags(args, report, inside_components=False),
)

aws_component_children_tags = ResourceValidationPolicy(
    name="aws-eks-children-tagged",
    description="AWS resources pulumi-eks creates inside its components carry the project and stack tags.",
    # pulumi-eks decides which of its children get the component's tags; the component's own tags
    # are mandatory above, gaps inside pulumi-eks are reported without blocking.
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=lambda args, report: _validate_tags(args, report, inside_components=True),
)


POLICIES = [
    node_group_instance_types,
    node_group_private_subnets,
    node_group_imdsv2,
    eks_secrets_encryption,
    eks_control_plane_logs,
    eks_endpoint_restricted,
    eks_endpoint_open_by_setting,
    no_load_balancer_services,
    container_resources,
    container_probes,
    container_security,
    container_images,
    virtual_service_routes,
    mesh_strict_mtls,
    ecommerce_authorization,
    lb_modern_tls,
    route53_alias,
    aws_tags,
    aws_component_children_tags,
]
