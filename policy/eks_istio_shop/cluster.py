"""The EKS control plane: secrets encryption, control plane logs, the public endpoint."""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from . import PROJECT
from .checks import resource_policy
from .values import UNKNOWN, elements, get, is_list

# The stack setting that opens the cluster's API endpoint to the internet on purpose (settings.py).
ENDPOINT_FROM_ANYWHERE_SETTING = "endpointPublicAccessFromAnywhere"
EKS_CLUSTER_TYPES = frozenset({"eks:index:Cluster", "aws:eks/cluster:Cluster"})
REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")


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

POLICIES = [eks_secrets_encryption, eks_control_plane_logs, eks_endpoint_restricted, eks_endpoint_open_by_setting]
