"""NetworkPolicies: once the VPC CNI enforces them, every namespace the stack owns denies by default."""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi_policy import StackValidationArgs

from . import PROJECT
from .checks import conditional_stack_policy
from .graph import resources_by
from .mesh import namespace_of
from .values import UNKNOWN, elements, entries, get

NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY_TYPE = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
ENFORCEMENT_SETTING = "networkPolicyEnforcement"


def enforcement_on(args: StackValidationArgs) -> Any:
    """True/False whether the cluster's VPC CNI enforces NetworkPolicies; UNKNOWN when it cannot be told.

    The cluster's inputs say it (pulumi-eks's `vpcCniOptions.enableNetworkPolicy`, or the add-on's own
    configuration value `enableNetworkPolicy: "true"`). Where the engine shows the pulumi-eks component
    without its inputs, the stack's setting does.
    """
    seen = []
    for cluster in resources_by(args, ["eks:index:Cluster"]):
        options = get(cluster.props, "vpcCniOptions")
        if options is UNKNOWN:
            seen.append(UNKNOWN)
            continue
        flag = get(options, "enableNetworkPolicy")
        value = get(options, "configurationValues", "enableNetworkPolicy")
        if value is not None and value is not UNKNOWN:
            seen.append(str(value).lower() == "true")
        elif flag is not None:
            seen.append(flag)
    if True in seen:
        return True
    if UNKNOWN in seen:
        return UNKNOWN
    if seen:
        return False
    try:
        return bool(pulumi.Config(PROJECT).get_bool(ENFORCEMENT_SETTING))
    except Exception:  # an unreadable value claims no enforcement
        return False


def denies_everything(props: Any) -> Any:
    """True/False whether a NetworkPolicy selects every pod and allows no ingress and no egress."""
    spec = get(props, "spec")
    if spec is UNKNOWN:
        return UNKNOWN
    parts = {"selector": get(spec, "podSelector"), "labels": get(spec, "podSelector", "matchLabels"),
             "expressions": get(spec, "podSelector", "matchExpressions"), "types": get(spec, "policyTypes"),
             "ingress": get(spec, "ingress"), "egress": get(spec, "egress")}
    if UNKNOWN in parts.values():
        return UNKNOWN
    types = elements(parts["types"])
    labels, expressions = entries(parts["labels"]), elements(parts["expressions"])
    rules = elements(parts["ingress"]) + elements(parts["egress"])
    if UNKNOWN in types or any(v is UNKNOWN for _, v in labels) or UNKNOWN in expressions:
        return UNKNOWN
    if labels or expressions or not {"Ingress", "Egress"} <= set(types):
        return False
    # Any rule, even an unknown one, lets something through: not a default deny.
    return not rules


def default_deny_problems(args: StackValidationArgs) -> tuple[bool, list[tuple[Optional[str], str]]]:
    """(applies, problems): no problems apply while the cluster does not enforce NetworkPolicies."""
    if enforcement_on(args) is not True:
        return False, []
    namespaces = {}
    for namespace in resources_by(args, [NAMESPACE_TYPE]):
        name = get(namespace.props, "metadata", "name")
        if isinstance(name, str):
            namespaces[name] = namespace
    # A policy whose namespace or rules are not known yet may cover a namespace: only the namespaces no
    # such policy could cover are judged now (the rest again on `pulumi up`, when everything is known).
    covered: set = set()
    for policy in resources_by(args, [NETWORK_POLICY_TYPE]):
        namespace, verdict = namespace_of(policy), denies_everything(policy.props)
        if namespace is UNKNOWN and verdict is not False:
            covered |= set(namespaces)
        elif verdict is UNKNOWN or verdict:
            covered.add(namespace)
    return True, [(resource.urn, f"namespace {name} has no default-deny NetworkPolicy (podSelector {{}}, "
                                 f"policyTypes Ingress and Egress, no rules) although the VPC CNI enforces "
                                 f"NetworkPolicies; add one, then allow only the flows its workloads need")
                  for name, resource in sorted(namespaces.items()) if name not in covered]


namespaces_default_deny = conditional_stack_policy(
    "namespaces-default-deny",
    "When the VPC CNI enforces NetworkPolicies, every namespace the stack creates has a default-deny "
    "NetworkPolicy for ingress and egress.",
    "the cluster's VPC CNI does not enforce NetworkPolicies",
    default_deny_problems,
)

POLICIES = [namespaces_default_deny]
