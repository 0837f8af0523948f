"""One HTTP service of the application in the mesh: its workload, its Service and its Istio policy.

Every object's spec is built by a plain function below, so tests check the specs directly; the
component only declares them. Specs are Kubernetes/Istio JSON (camelCase), exactly as sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

import json

from components import lifecycle
from components.mesh import PROXY_VERSION_ANNOTATION, Resources

HTTP_PORT_NAME = "http"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
# The label Istio's telemetry names workloads by; the Service, PDB, spread constraints and Istio
# selectors select on it.
APP_LABEL = "app"

# Envoy retry conditions under which the upstream application never saw the request: the connection
# failed, the HTTP/2 stream was refused (the peer guarantees it did no work), or the stream was reset
# before any request byte was sent. Retrying these is safe for every method. Whether a route's retries
# are safe is the policy pack's rule (policy/eks_istio_shop/routes.py); the tests hold these routes to it.
RETRY_BEFORE_REQUEST = ("connect-failure", "refused-stream", "reset-before-request")
# What the idempotent (GET and HEAD) routes retry on. Not plain "5xx": a 500 is the application's own answer, and
# repeating the request would only multiply the load that caused it.
IDEMPOTENT_RETRY_ON = ("gateway-error", "reset", *RETRY_BEFORE_REQUEST)

# The shutdown sequence (components/lifecycle.py): the pod leaves the endpoints first (preStop sleep while
# Envoy and kube-proxy catch up), then the service finishes in-flight requests (GRACEFUL_SHUTDOWN_SECONDS),
# then its native sidecar drains and exits, then SIGKILL. A mesh route to the service may allow at most
# what SHUTDOWN serves after SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 20
SHUTDOWN = lifecycle.service_shutdown(GRACEFUL_SHUTDOWN_SECONDS)
PRE_STOP_SLEEP_SECONDS = SHUTDOWN.pre_stop_seconds
TERMINATION_GRACE_SECONDS = SHUTDOWN.grace_seconds
# The services keep idle connections for KEEPALIVE_SECONDS; the sidecar drops idle upstream
# connections sooner, so it never sends a request down a connection the service is closing.
KEEPALIVE_SECONDS = lifecycle.SERVICE_KEEPALIVE_SECONDS
UPSTREAM_IDLE_TIMEOUT = lifecycle.duration(lifecycle.MESH_UPSTREAM_IDLE_TIMEOUT_SECONDS)
# The backends are called by their full service names (4 dots); with the cluster default ndots:5 each new
# connection first tries the search domains (three NXDOMAIN answers). At ndots:2 a name with two or more dots
# is looked up as given first, while short names (`orders`, `orders.e-commerce`) still use the search list.
DNS_NDOTS = "2"

# The services' images run as this user; set here too, so that non-root holds whatever the image says.
RUN_AS_USER = 10001


# -------------------------------------------------------------------------------------------------
# Specs


# Sized for t3.medium nodes (about 1930m CPU and 3.2 GiB allocatable): three services with two
# replicas and one rollout surge pod each, every pod with its sidecar, next to Istio (see tests/app).
DEFAULT_RESOURCES = Resources(cpu_request="100m", memory_request="128Mi", cpu_limit="500m", memory_limit="256Mi")


@dataclass(frozen=True)
class MeshRoute:
    """Timeout and retries of the mesh route to a service (its VirtualService)."""
    timeout: str = "5s"
    attempts: int = 2
    per_try_timeout: str = "1.5s"


def labels(name: str) -> dict[str, str]:
    return {APP_LABEL: name, "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "e-commerce"}


def selector(name: str) -> dict[str, str]:
    return {APP_LABEL: name}


def service_host(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def pod_annotations(name: str, proxy_version: str) -> dict[str, str]:
    """The sidecar's resources are the mesh's defaults (istiod values, components/mesh.py), sized with it."""
    return {
        # A native sidecar (an init container that restarts) starts, and is ready, before the service's
        # container and stops after it: the service can call its backends from its first request on and
        # until its last. Explicit here as well as mesh-wide (ENABLE_NATIVE_SIDECARS), never auto-detected.
        "sidecar.istio.io/nativeSidecar": "true",
        "proxy.istio.io/config": json.dumps(
            {"terminationDrainDuration": lifecycle.duration(lifecycle.SIDECAR_DRAIN_SECONDS)}, sort_keys=True),
        "kubectl.kubernetes.io/default-container": name,
        PROXY_VERSION_ANNOTATION: proxy_version,
    }


def container_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def deployment_spec(name: str, image: pulumi.Input[str], port: int, env: Mapping[str, str], replicas: int,
                    resources: Resources, service_account: pulumi.Input[str], proxy_version: str) -> dict:
    probe_port = HTTP_PORT_NAME
    return {
        "replicas": replicas,
        "selector": {"matchLabels": selector(name)},
        # A new pod must be ready before an old one goes: capacity never drops during a rollout.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "minReadySeconds": 5,
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": labels(name), "annotations": pod_annotations(name, proxy_version)},
            "spec": {
                "serviceAccountName": service_account,
                # The services call no Kubernetes API. The sidecar gets its own projected token
                # (istio-token), injected by Istio, so the mesh identity does not need this one.
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "dnsConfig": {"options": [{"name": "ndots", "value": DNS_NDOTS}]},
                "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                                    "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
                     "labelSelector": {"matchLabels": selector(name)},
                     # Spread each rollout's pods on their own, not counting the old ones leaving.
                     "matchLabelKeys": ["pod-template-hash"]}
                    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                ],
                "containers": [{
                    "name": name,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": HTTP_PORT_NAME, "containerPort": port, "protocol": "TCP"}],
                    "env": [{"name": k, "value": v} for k, v in
                            {"PORT": str(port), "GRACEFUL_SHUTDOWN_SECONDS": str(GRACEFUL_SHUTDOWN_SECONDS),
                             "KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS), **env}.items()],
                    "startupProbe": {"httpGet": {"path": LIVENESS_PATH, "port": probe_port},
                                     "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 30},
                    "livenessProbe": {"httpGet": {"path": LIVENESS_PATH, "port": probe_port},
                                      "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
                    "readinessProbe": {"httpGet": {"path": READINESS_PATH, "port": probe_port},
                                       "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2},
                    "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
                    "resources": resources.spec(),
                    "securityContext": container_security_context(),
                    # The root filesystem is read-only; Python and uvicorn may still want a scratch dir.
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }


def service_spec(name: str, port: int) -> dict:
    return {
        "type": "ClusterIP",
        "selector": selector(name),
        "ports": [{"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP",
                   "appProtocol": "http"}],
    }


def pod_disruption_budget_spec(name: str) -> dict:
    return {
        "minAvailable": 1,
        "selector": {"matchLabels": selector(name)},
        # A pod that is not ready serves nothing; it must not block a node drain.
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def autoscaler_spec(deployment: pulumi.Input[str], container: str, min_replicas: int, max_replicas: int,
                    cpu_utilization: int) -> dict:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        # The service's own container: the sidecar's CPU would blur the signal.
        "metrics": [{"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": container,
            "target": {"type": "Utilization", "averageUtilization": cpu_utilization}}}],
    }


def destination_rule_spec(host: str) -> dict:
    return {
        "host": host,
        "trafficPolicy": {
            "tls": {"mode": "ISTIO_MUTUAL"},
            "connectionPool": {
                "tcp": {"maxConnections": 100, "connectTimeout": "1s"},
                "http": {"http1MaxPendingRequests": 100, "http2MaxRequests": 200,
                         # A cap on concurrent retries to the service, so retries cannot snowball.
                         "maxRetries": 10,
                         "idleTimeout": UPSTREAM_IDLE_TIMEOUT},
            },
            # With two replicas, ejecting at most half keeps one serving.
            "outlierDetection": {"consecutive5xxErrors": 5, "consecutiveGatewayErrors": 3,
                                 "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 50},
        },
    }


def method_regex(methods: Sequence[str]) -> dict:
    return {"regex": f"^({'|'.join(sorted(methods))})$"}


def retries(attempts: int, per_try_timeout: str, idempotent: bool) -> dict:
    retry_on = IDEMPOTENT_RETRY_ON if idempotent else RETRY_BEFORE_REQUEST
    return {"attempts": attempts, "perTryTimeout": per_try_timeout, "retryOn": ",".join(retry_on)}


def destination(host: str, port: int) -> list[dict]:
    return [{"destination": {"host": host, "port": {"number": port}}}]


def virtual_service_spec(host: str, port: int, route: MeshRoute) -> dict:
    """Mesh-internal routes to the service: reads retried on gateway errors and resets, every other
    method only where the request cannot have reached the service."""
    reads = {"name": "reads", "match": [{"method": method_regex(("GET", "HEAD"))}],
             "route": destination(host, port), "timeout": route.timeout,
             "retries": retries(route.attempts, route.per_try_timeout, idempotent=True)}
    others = {"name": "other-methods", "route": destination(host, port), "timeout": route.timeout,
              "retries": retries(route.attempts, route.per_try_timeout, idempotent=False)}
    return {"hosts": [host], "http": [reads, others]}


@dataclass(frozen=True)
class Access:
    """Who may call the service, and how: principals, methods and (optionally) paths."""
    principals: tuple[str, ...]
    methods: tuple[str, ...] = ("GET", "HEAD")
    paths: tuple[str, ...] = ()


def authorization_policy_spec(name: str, port: int, access: Access) -> dict:
    """ALLOW only the named callers, methods, port and paths; the namespace denies everything else."""
    if not access.principals:
        raise ValueError(f"{name}: an AuthorizationPolicy needs at least one caller principal")
    operation: dict[str, Any] = {"ports": [str(port)], "methods": list(access.methods)}
    if access.paths:
        operation["paths"] = list(access.paths)
    return {
        "selector": {"matchLabels": selector(name)},
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": list(access.principals)}}],
                   "to": [{"operation": operation}]}],
    }


# -------------------------------------------------------------------------------------------------
# The component


@dataclass(frozen=True)
class MicroserviceArgs:
    name: str
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    access: Access
    port: int = 8080
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 2
    max_replicas: int = 4
    cpu_utilization: int = 70
    resources: Resources = DEFAULT_RESOURCES
    route: MeshRoute = MeshRoute()
    # Istio release whose proxy the pods run (see PROXY_VERSION_ANNOTATION).
    proxy_version: str = ""
    # Istio objects wait for these (istiod: its webhook validates them, and base installs their CRDs).
    istio_dependencies: Sequence[pulumi.Resource] = ()


class Microservice(pulumi.ComponentResource):
    host: pulumi.Output[str]
    service_account: pulumi.Output[str]
    port: int

    def __init__(self, name: str, args: MicroserviceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:microservice:Microservice", name, None, opts)
        if args.replicas < 2:
            raise ValueError(f"{args.name}: replicas must be at least 2 to survive a node or zone loss")
        service_name = args.name
        # The Kubernetes provider comes from the parent's `providers`.
        child = pulumi.ResourceOptions(parent=self)
        # No data links an Istio object to istiod; only this option orders them.
        istio_child = pulumi.ResourceOptions(parent=self, depends_on=list(args.istio_dependencies))
        namespace = pulumi.Output.from_input(args.namespace)

        def metadata() -> dict:
            # Named explicitly, without Pulumi's random suffix: hosts and principals derive from it.
            return {"name": service_name, "namespace": namespace, "labels": labels(service_name)}

        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=metadata(), automount_service_account_token=False, opts=child)

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=metadata(),
            spec=deployment_spec(service_name, args.image, args.port, args.env, args.replicas,
                                 args.resources, account.metadata.name, args.proxy_version),
            # The autoscaler owns the replica count once the Deployment exists.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["spec.replicas"])))

        service = k8s.core.v1.Service(f"{name}-service", metadata=metadata(),
                                      spec=service_spec(service_name, args.port), opts=child)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=metadata(),
                                          spec=pod_disruption_budget_spec(service_name), opts=child)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa", metadata=metadata(),
            spec=autoscaler_spec(deployment.metadata.name, service_name, args.replicas, args.max_replicas,
                                 args.cpu_utilization),
            opts=child)

        host = pulumi.Output.all(service.metadata.name, namespace).apply(lambda v: service_host(v[0], v[1]))
        k8s.apiextensions.CustomResource(
            f"{name}-destination-rule", api_version="networking.istio.io/v1", kind="DestinationRule",
            metadata=metadata(), spec=host.apply(destination_rule_spec), opts=istio_child)
        k8s.apiextensions.CustomResource(
            f"{name}-virtual-service", api_version="networking.istio.io/v1", kind="VirtualService",
            metadata=metadata(), spec=host.apply(lambda h: virtual_service_spec(h, args.port, args.route)),
            opts=istio_child)
        k8s.apiextensions.CustomResource(
            f"{name}-authorization-policy", api_version="security.istio.io/v1", kind="AuthorizationPolicy",
            metadata=metadata(), spec=authorization_policy_spec(service_name, args.port, args.access),
            opts=istio_child)

        self.host = host
        self.service_account = account.metadata.name
        self.port = args.port
        self.register_outputs({"host": self.host, "serviceAccount": self.service_account})
