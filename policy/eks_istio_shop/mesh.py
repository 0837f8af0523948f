"""Istio: VirtualService routes, mesh-wide STRICT mTLS, and an AuthorizationPolicy for every app workload."""

from __future__ import annotations

from typing import Any, Optional

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from .checks import conditional_stack_policy, stack_policy
from .graph import dependencies_of
from .routes import http_route_problems
from .values import UNKNOWN, elements, entries, get, is_mapping
from .workloads import HELM_RELEASE_TYPES, POD_LABEL_PATHS, chart_name

MESH_ROOT_NAMESPACE = "istio-system"
APP_NAMESPACE = "e-commerce"
# An app stack's shop namespace (settings.py APP_STACK_NAMESPACE_LABELS) is held to the same rules.
APP_STACK_LABEL = ("eks-istio-shop/stack-kind", "app")
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io")


def istio_kind(resource_type: str, group: str, kind: str) -> bool:
    parts = resource_type.split(":")
    return len(parts) == 3 and parts[0] == "kubernetes" and parts[1].split("/")[0] == group and parts[2] == kind


def _validate_virtual_service(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not istio_kind(args.resource_type, "networking.istio.io", "VirtualService"):
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


def istiod_in_stack(args: StackValidationArgs) -> bool:
    return any(r.resource_type in HELM_RELEASE_TYPES and chart_name(r.props) == "istiod" for r in args.resources)


def istio_in_stack(args: StackValidationArgs) -> bool:
    """Istio is part of this stack: an istiod release is installed, or Istio resources are declared."""
    for resource in args.resources:
        if resource.resource_type in HELM_RELEASE_TYPES and chart_name(resource.props) == "istiod":
            return True
        group = resource.resource_type.split(":")[1].split("/")[0] if resource.resource_type.count(":") == 2 else ""
        if resource.resource_type.startswith("kubernetes:") and group in ISTIO_GROUPS:
            return True
    return False


def namespace_of(resource) -> Any:
    """A Kubernetes object's namespace; when the name is not known yet, the Namespace object it depends on,
    directly or through the Helm release whose namespace it names."""
    namespace = get(resource.props, "metadata", "namespace", default="default")
    if namespace is UNKNOWN:
        owners = dependencies_of(resource, "metadata", "kubernetes:core/v1:Namespace")
        for release in (d for t in HELM_RELEASE_TYPES for d in dependencies_of(resource, "metadata", t)):
            owners += dependencies_of(release, "namespace", "kubernetes:core/v1:Namespace")
        names = {get(o.props, "metadata", "name") for o in owners}
        if len(names) == 1 and isinstance(next(iter(names)), str):
            return next(iter(names))
    return namespace


def strict_mtls_problems(args: StackValidationArgs) -> tuple[bool, list[tuple[Optional[str], str]]]:
    """(applies, problems): no problems apply to a stack without Istio, nor to an app stack, whose mesh (and
    mesh-wide policy) is its platform stack's."""
    if not istio_in_stack(args) or (app_namespaces(args.resources) - {APP_NAMESPACE} and not istiod_in_stack(args)):
        return False, []
    problems: list[tuple[Optional[str], str]] = []
    mesh_wide_strict = False
    undecided = False
    for resource in args.resources:
        if not istio_kind(resource.resource_type, "security.istio.io", "PeerAuthentication"):
            continue
        spec = get(resource.props, "spec")
        namespace = namespace_of(resource)
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


mesh_strict_mtls = conditional_stack_policy(
    "mesh-strict-mtls",
    "When the stack installs Istio, a mesh-wide PeerAuthentication enforces STRICT mutual TLS.",
    "this stack installs no Istio (an app stack's is its platform stack's)",
    strict_mtls_problems,
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


def app_namespaces(resources) -> set:
    """e-commerce, and every namespace the stack creates with an app stack's label."""
    names = {APP_NAMESPACE}
    key, value = APP_STACK_LABEL
    for resource in resources:
        if resource.resource_type != "kubernetes:core/v1:Namespace":
            continue
        labels, name = get(resource.props, "metadata", "labels"), get(resource.props, "metadata", "name")
        if labels is not UNKNOWN and isinstance(name, str) and dict(entries(labels)).get(key) == value:
            names.add(name)
    return names


def authorization_problems(args: StackValidationArgs) -> list[tuple[str, str]]:
    app = app_namespaces(args.resources)
    policies = []
    for resource in args.resources:
        if istio_kind(resource.resource_type, "security.istio.io", "AuthorizationPolicy") \
                and (namespace_of(resource) in app or namespace_of(resource) is UNKNOWN):
            policies.append(resource)
    problems = []
    for policy in policies:
        name = get(policy.props, "metadata", "name", default=policy.name)
        for index, rule in enumerate(elements(get(policy.props, "spec", "rules"))):
            if is_mapping(rule) and not entries(rule):
                problems.append((policy.urn, f"AuthorizationPolicy {namespace_of(policy)}/{name}: rules[{index}] is "
                                             f"empty and allows every request; name the callers in `from`"))
    for workload in args.resources:
        label_path = POD_LABEL_PATHS.get(workload.resource_type)
        namespace = namespace_of(workload)
        if label_path is None or namespace not in app:
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
            problems.append((workload.urn, f"{workload.resource_type.split(':')[-1]} {namespace}/{name} is "
                                           f"selected by no ALLOW AuthorizationPolicy; give it one whose "
                                           f"selector.matchLabels match its pod labels and whose rules name "
                                           f"its callers"))
    return problems


ecommerce_authorization = stack_policy(
    "ecommerce-workloads-authorized",
    f"Every workload in namespace {APP_NAMESPACE} or an app stack's namespace is selected by an "
    f"AuthorizationPolicy naming its callers.",
    authorization_problems,
)

POLICIES = [virtual_service_routes, mesh_strict_mtls, ecommerce_authorization]
