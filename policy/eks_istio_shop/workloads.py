"""Workloads: every container's resources, probes, security context and image; where pods and charts sit."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from .checks import resource_policy
from .values import UNKNOWN, elements, get, number

HELM_RELEASE_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})

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


def chart_name(props: Any) -> Any:
    """The chart of a Helm release: "gateway" from "gateway", "istio/gateway" or ".../gateway-1.30.3.tgz"."""
    chart = get(props, "chart")
    if not isinstance(chart, str):
        return chart
    last = chart.rstrip("/").split("/")[-1]
    return re.sub(r"-\d+\.\d+\.\d+.*\.tgz$", "", last)


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

# ---- PodDisruptionBudgets: the stack's own, and those the Istio charts create from their values -----------

PDB_TYPE = "kubernetes:policy/v1:PodDisruptionBudget"
ALWAYS_ALLOW = "AlwaysAllow"
_EVICTION_WHY = ("a pod that is not ready serves nothing, but under the default policy (IfHealthyBudget) it "
                 "blocks node drains until EKS gives up on a node group update")


def _eviction_policy_problem(where: str, policy: Any) -> Optional[str]:
    if policy is UNKNOWN or policy == ALWAYS_ALLOW:
        return None
    return f"{where} is {policy!r}, not {ALWAYS_ALLOW!r}; {_EVICTION_WHY}"


def disruption_budget_problems(resource_type: str, props: Any) -> list[str]:
    """Every PodDisruptionBudget lets unhealthy pods be evicted, including those Istio's charts create:
    the gateway chart's (values.podDisruptionBudget, created when not empty) and istiod's (values.pdb,
    created unless values.global.defaultPodDisruptionBudget.enabled is false)."""
    if resource_type == PDB_TYPE:
        problem = _eviction_policy_problem("spec.unhealthyPodEvictionPolicy",
                                           get(props, "spec", "unhealthyPodEvictionPolicy"))
        return [problem] if problem else []
    if resource_type not in HELM_RELEASE_TYPES:
        return []
    values, chart = get(props, "values"), chart_name(props)
    if chart == "gateway":
        budget = get(values, "podDisruptionBudget")
        if budget is UNKNOWN or not budget:
            return []  # the chart creates no PodDisruptionBudget for an empty one
        problem = _eviction_policy_problem("values.podDisruptionBudget.unhealthyPodEvictionPolicy",
                                           get(budget, "unhealthyPodEvictionPolicy"))
        return [problem] if problem else []
    if chart == "istiod":
        if get(values, "global", "defaultPodDisruptionBudget", "enabled", default=True) is False:
            return []
        problem = _eviction_policy_problem("values.pdb.unhealthyPodEvictionPolicy",
                                           get(values, "pdb", "unhealthyPodEvictionPolicy"))
        return [problem] if problem else []
    return []


disruption_budgets_evict_unhealthy = resource_policy(
    "pdb-unhealthy-pods-evictable",
    "Every PodDisruptionBudget, and every one an Istio chart creates from its values, uses "
    "unhealthyPodEvictionPolicy AlwaysAllow.",
    disruption_budget_problems)

POLICIES = [container_resources, container_probes, container_security, container_images,
            disruption_budgets_evict_unhealthy]
