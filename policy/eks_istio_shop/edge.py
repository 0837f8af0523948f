"""How traffic reaches the stack: no Kubernetes-made load balancers, the NLB's TLS, the Route 53 alias."""

from __future__ import annotations

import re
from typing import Any, Optional

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from .checks import resource_policy
from .values import UNKNOWN, elements, entries, get, is_mapping
from .workloads import HELM_RELEASE_TYPES, chart_name

# The namespace of the Istio ingress gateway: the only workload allowed a NodePort Service, because
# the Pulumi-owned NLB's target groups forward to those node ports.
INGRESS_GATEWAY_NAMESPACE = "istio-ingress"
SERVICE_TYPE = "kubernetes:core/v1:Service"
LISTENER_TYPES = frozenset({"aws:lb/listener:Listener", "aws:alb/listener:Listener"})
RECORD_TYPE = "aws:route53/record:Record"

# TLS policies of Elastic Load Balancing that negotiate TLS 1.3 and accept nothing below TLS 1.2
# (ELBSecurityPolicy-TLS13-1-2-2021-06, -Res-, -FIPS-, -PQ- and the TLS 1.3-only variants).
MODERN_TLS_POLICY = re.compile(r"^ELBSecurityPolicy-TLS13-1-[23]-[A-Za-z0-9-]+$")


def _namespace(props: Any) -> Any:
    return get(props, "metadata", "namespace", default="default")


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

POLICIES = [no_load_balancer_services, lb_modern_tls, route53_alias]
