"""Istio from its official Helm charts: base (CRDs), istiod, an ingress and an egress gateway, mesh policy.

Install order is base -> istiod -> gateways and mesh policy: base brings the CRDs and the validating
webhook configuration; the gateway chart's `image: auto` and every Istio custom resource need a
running istiod (its injector fills in the image, its webhook validates the resources).

The ingress gateway is a NodePort Service with fixed node ports; the network load balancer in front
of it belongs to `components/ingress.py`. TLS ends at that load balancer, so the gateway receives
plain HTTP on two ports and tells the load balancer's two listeners apart by port:

    NLB :443 TLS -> node port `https` -> gateway port INGRESS_SERVING_PORT  (serves the application)
    NLB :80  TCP -> node port `http`  -> gateway port INGRESS_REDIRECT_PORT (answers 301 to https)

Only the redirect port redirects, so a request that arrived over TLS is never redirected again.
Without a domain there is no TLS listener: port 80 forwards to the serving port directly.
The Istio `Gateway` resource that binds these ports belongs to the application; it gets them, with
the gateway's labels and identity, from the component's `ingress_gateway` value.

Sizing for 4 x t3.medium (about 1930m CPU, 3200 MiB allocatable, 17 pods each; see
`tests/mesh/test_sizing.py`, which adds these requests to the application's and EKS's own pods and
packs them onto the nodes, with one extra pod per Deployment for a rolling update, and again with one
node drained):

    pod                      replicas  cpu req  mem req   cpu+mem limit
    istiod                   2         200m     512Mi     - / 1Gi     (chart default is 500m/2Gi)
    ingress gateway          2         100m     128Mi     1 / 512Mi
    egress gateway           2         100m     128Mi     1 / 512Mi
    sidecar (per app pod)    -          50m      64Mi     1 / 512Mi   (chart default is 100m/128Mi)

istiod serves xDS for a handful of workloads; 512Mi is several times what it uses at that size.
Autoscaling of the Istio gateways is off (the application scales with HPAs on metrics-server): a
fixed replica count keeps their PodDisruptionBudgets meaningful (2 replicas, at most 1 down).

Control planes by revision (Istio's canary upgrade with a revision tag; `ControlPlanes` below). Without
revisions this is one istiod release `istiod`, and namespaces opt in with `istio-injection=enabled`. With
them, each revision is its own istiod release `istiod-<revision>` of its own Istio release; the workloads'
and gateways' namespaces carry `istio.io/rev=prod`, and the revision tag `prod` (a webhook the istiod chart
renders from `revisionTags`) sends their new pods to the revision `istioDefaultRevision` names. Moving the tag
changes the pods' templates (an annotation naming the revision), so they roll onto the new proxies. The base
chart's `defaultRevision` follows the same revision: the default validating webhook calls its istiod.
The tag's webhook belongs to one release at a time: the release that gains it is upgraded after every other
istiod release, so the one that loses it has let it go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import json

import pulumi
import pulumi_kubernetes as k8s

from components import lifecycle
from settings import DEFAULT_ISTIO_VERSION, REVISION_TAG, UNREVISIONED, MeshSettings

ISTIO_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"

ISTIO_NAMESPACE = "istio-system"
INGRESS_NAMESPACE = "istio-ingress"
EGRESS_NAMESPACE = "istio-egress"

INGRESS_RELEASE = "istio-ingressgateway"
EGRESS_RELEASE = "istio-egressgateway"

# Pod labels the Istio Gateway resources select on. Set explicitly: the chart would otherwise derive
# `istio: <release name without "istio-">`.
INGRESS_GATEWAY_LABELS = {"istio": "ingressgateway"}
EGRESS_GATEWAY_LABELS = {"istio": "egressgateway"}

# Envoy's readiness endpoint on every gateway pod; the load balancer's health checks use it.
GATEWAY_STATUS_PORT = 15021
GATEWAY_READINESS_PATH = "/healthz/ready"

# Helm waits for every object of a release to be ready. On a fresh cluster istiod and the gateways
# pull their images first; 10 minutes covers that with room, 5 (the default) sometimes does not.
RELEASE_TIMEOUT_SECONDS = 600

ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone"
HOST_TOPOLOGY_KEY = "kubernetes.io/hostname"


@dataclass(frozen=True)
class GatewayPort:
    """A port the ingress gateway listens on: Service port = target port = the Istio Gateway server port."""

    name: str
    number: int


# Both carry plain HTTP (TLS ends at the load balancer). Unprivileged, so no extra capabilities.
INGRESS_SERVING_PORT = GatewayPort(name="http", number=8080)
INGRESS_REDIRECT_PORT = GatewayPort(name="http-redirect", number=8081)


@dataclass(frozen=True)
class IngressNodePorts:
    """Node ports of the ingress gateway Service, shared with the load balancer's target groups."""

    http: int  # behind the load balancer's port 80 listener: the redirect port (serving port without TLS)
    https: int  # behind the TLS listener: the serving port
    status: int  # the status port 15021, for health checks

    def __post_init__(self) -> None:
        ports = (self.http, self.https, self.status)
        if len(set(ports)) != 3 or not all(30000 <= p <= 32767 for p in ports):
            raise ValueError(f"ingress node ports must be three different ports in 30000-32767, got {ports}")


@dataclass(frozen=True)
class Resources:
    """A container's requests and limits; no CPU limit where throttling would only cause harm."""

    cpu_request: str
    memory_request: str
    cpu_limit: Optional[str]
    memory_limit: str

    def spec(self) -> dict[str, dict[str, str]]:
        """As Kubernetes' `resources` (and the Istio charts' values) take it."""
        limits = {"memory": self.memory_limit}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        return {"requests": {"cpu": self.cpu_request, "memory": self.memory_request}, "limits": limits}


def principal(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """The SPIFFE-derived principal Istio gives a workload running as `service_account`."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


ISTIOD_REPLICAS = 2
# No CPU limit on istiod: throttling the control plane only delays config pushes.
ISTIOD_RESOURCES = Resources(cpu_request="200m", memory_request="512Mi", cpu_limit=None, memory_limit="1Gi")
SIDECAR_RESOURCES = Resources(cpu_request="50m", memory_request="64Mi", cpu_limit="1000m", memory_limit="512Mi")
INGRESS_GATEWAY_REPLICAS = 2
EGRESS_GATEWAY_REPLICAS = 2
GATEWAY_RESOURCES = Resources(cpu_request="100m", memory_request="128Mi", cpu_limit="1000m", memory_limit="512Mi")


# Pod template annotation naming the control plane whose injector gives the pod its proxy: when it changes,
# the Deployment rolls and every pod gets that proxy (the application's pods carry it too, microservice.py).
PROXY_VERSION_ANNOTATION = "eks-istio-shop/istio-proxy-version"


@dataclass(frozen=True)
class ControlPlanes:
    """The istiod revisions installed (revision -> Istio release) and the one the workloads and gateways use.

    UNREVISIONED is the istiod installed without a revision, as before revisions existed.
    """

    revisions: Mapping[str, str]
    default_revision: str
    base_version: str  # the base chart's (CRDs): upgraded before a new revision is installed

    @classmethod
    def unrevisioned(cls, version: str) -> "ControlPlanes":
        return cls({UNREVISIONED: version}, UNREVISIONED, version)

    @classmethod
    def from_settings(cls, settings: MeshSettings) -> "ControlPlanes":
        return cls(dict(settings.istio_revisions), settings.istio_default_revision, settings.istio_version)

    @property
    def tagged(self) -> bool:
        """The workloads use a revision through the revision tag, not the unrevisioned istiod."""
        return self.default_revision != UNREVISIONED

    @property
    def default_version(self) -> str:
        return self.revisions[self.default_revision]

    def injection_labels(self) -> dict[str, str]:
        """Namespace labels that pick the injector (the tag's webhook wants no istio-injection label)."""
        return {"istio.io/rev": REVISION_TAG} if self.tagged else {"istio-injection": "enabled"}

    @property
    def proxy_version(self) -> str:
        """The injecting control plane as the pod annotation names it: its release, and its revision if any."""
        return f"{self.default_version}/{self.default_revision}" if self.tagged else self.default_version


def istiod_release_name(revision: str) -> str:
    return "istiod" if revision == UNREVISIONED else f"istiod-{revision}"


def namespace_labels(namespace: str, planes: Optional[ControlPlanes] = None) -> dict[str, str]:
    """Gateway namespaces opt into injection: the gateway pods are an injected template (`image: auto`)."""
    if namespace in (INGRESS_NAMESPACE, EGRESS_NAMESPACE):
        return planes.injection_labels() if planes else {"istio-injection": "enabled"}
    return {}


def base_values(planes: Optional[ControlPlanes] = None) -> dict[str, Any]:
    """The base chart's defaults: all CRDs, the default validating webhook calling the unrevisioned istiod,
    or the revision the workloads use."""
    if planes and planes.tagged:
        return {"defaultRevision": planes.default_revision}
    return {}


def _spread(topology_key: str, labels: Mapping[str, str], hard: bool) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": "DoNotSchedule" if hard else "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(labels)},
        # Spread each rollout's new pods on their own, not counted against the pods they replace.
        "matchLabelKeys": ["pod-template-hash"],
    }


def mesh_config() -> dict[str, Any]:
    """Mesh-wide settings (istio.mesh.v1alpha1.MeshConfig): access logs to stdout, registered egress only."""
    return {
        "accessLogFile": "/dev/stdout",
        "accessLogEncoding": "JSON",
        # Sidecars drop traffic to destinations not in the registry (Services, ServiceEntries).
        "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
    }


# A PodDisruptionBudget counts only healthy pods; with the default policy (IfHealthyBudget) one unready
# replica on a draining node blocks the eviction until EKS gives up on the node update. A pod that is not
# ready serves nothing, so evicting it costs nothing.
UNHEALTHY_POD_EVICTION_POLICY = "AlwaysAllow"


def istiod_values(revision: str = UNREVISIONED, tags: Sequence[str] = ()) -> dict[str, Any]:
    """istiod's values; a revision other than UNREVISIONED names the release's resources (istiod-<revision>)
    and its injector, and `tags` are the revision tags whose webhooks the release renders."""
    istiod_labels = {"app": "istiod"}
    revision_values = {} if revision == UNREVISIONED else {"revision": revision, "revisionTags": list(tags)}
    return {
        **revision_values,
        "autoscaleEnabled": False,
        "replicaCount": ISTIOD_REPLICAS,
        "resources": ISTIOD_RESOURCES.spec(),
        "topologySpreadConstraints": [_spread(ZONE_TOPOLOGY_KEY, istiod_labels, hard=False)],
        "pdb": {"minAvailable": 1, "unhealthyPodEvictionPolicy": UNHEALTHY_POD_EVICTION_POLICY},
        "env": {
            # Sidecars as Kubernetes native sidecars (init containers that restart), always: they start
            # before and stop after the application's containers. Left to auto-detection (every node's
            # kubelet 1.33+), a fallback would stop the proxy 5 s into the application's graceful shutdown.
            "ENABLE_NATIVE_SIDECARS": "true",
            # Gateways get only the clusters their routes use (they ignore Sidecar resources): the ingress
            # gateway knows graphql, the egress gateway nothing.
            "PILOT_FILTER_GATEWAY_CLUSTER_CONFIG": "true",
        },
        "meshConfig": mesh_config(),
        "global": {
            "proxy": {"resources": SIDECAR_RESOURCES.spec()},
        },
    }


def ingress_gateway_service_ports(node_ports: IngressNodePorts) -> list[dict[str, Any]]:
    return [
        {"name": "status-port", "port": GATEWAY_STATUS_PORT, "targetPort": GATEWAY_STATUS_PORT,
         "protocol": "TCP", "nodePort": node_ports.status},
        {"name": INGRESS_REDIRECT_PORT.name, "port": INGRESS_REDIRECT_PORT.number,
         "targetPort": INGRESS_REDIRECT_PORT.number, "protocol": "TCP", "nodePort": node_ports.http},
        {"name": INGRESS_SERVING_PORT.name, "port": INGRESS_SERVING_PORT.number,
         "targetPort": INGRESS_SERVING_PORT.number, "protocol": "TCP", "nodePort": node_ports.https},
    ]


def gateway_proxy_config(shutdown: lifecycle.ShutdownPlan) -> dict[str, Any]:
    """The gateways' ProxyConfig (the `proxy.istio.io/config` pod annotation): Envoy drains for as long as
    the longest route allows, and closes idle client connections before the load balancer forgets them."""
    return {
        "terminationDrainDuration": lifecycle.duration(shutdown.serve_seconds),
        # Node metadata IDLE_TIMEOUT sets the HTTP connection managers' idle_timeout (istio/istio
        # pilot/pkg/networking/core/listener_builder.go, buildHTTPConnectionManager).
        "proxyMetadata": {"ISTIO_META_IDLE_TIMEOUT": lifecycle.duration(lifecycle.GATEWAY_IDLE_TIMEOUT_SECONDS)},
    }


def _gateway_values(labels: Mapping[str, str], replicas: int, zone_spread_hard: bool,
                    planes: Optional[ControlPlanes]) -> dict[str, Any]:
    shutdown = lifecycle.gateway_shutdown()
    annotations = {"proxy.istio.io/config": json.dumps(gateway_proxy_config(shutdown), sort_keys=True)}
    revision_values: dict[str, Any] = {}
    if planes and planes.tagged:
        # The pods name the tag (istio.io/rev); the annotation changes when the tag moves, so they roll.
        revision_values = {"revision": REVISION_TAG}
        annotations[PROXY_VERSION_ANNOTATION] = planes.proxy_version
    return {
        **revision_values,
        "labels": dict(labels),
        "replicaCount": replicas,
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {"minAvailable": 1, "unhealthyPodEvictionPolicy": UNHEALTHY_POD_EVICTION_POLICY},
        # Kept serving while endpoints and the load balancer let go (the chart sets no preStop), then
        # drained for the longest request, within the grace period.
        "lifecycle": {"preStop": {"sleep": {"seconds": shutdown.pre_stop_seconds}}},
        "terminationGracePeriodSeconds": shutdown.grace_seconds,
        "podAnnotations": annotations,
        "resources": GATEWAY_RESOURCES.spec(),
        "topologySpreadConstraints": [
            _spread(ZONE_TOPOLOGY_KEY, labels, hard=zone_spread_hard),
            _spread(HOST_TOPOLOGY_KEY, labels, hard=False),
        ],
    }


def ingress_gateway_values(node_ports: IngressNodePorts, planes: Optional[ControlPlanes] = None) -> dict[str, Any]:
    values = _gateway_values(INGRESS_GATEWAY_LABELS, INGRESS_GATEWAY_REPLICAS, zone_spread_hard=True, planes=planes)
    # NodePort, never LoadBalancer: the load balancer is an aws.lb resource in Pulumi's state, so
    # nothing outside Pulumi creates AWS objects that `pulumi destroy` would not know about.
    values["service"] = {"type": "NodePort", "ports": ingress_gateway_service_ports(node_ports)}
    return values


def egress_gateway_values(planes: Optional[ControlPlanes] = None) -> dict[str, Any]:
    values = _gateway_values(EGRESS_GATEWAY_LABELS, EGRESS_GATEWAY_REPLICAS, zone_spread_hard=False, planes=planes)
    values["service"] = {"type": "ClusterIP"}
    return values


def peer_authentication() -> dict[str, Any]:
    """Mutual TLS required for every workload: a mesh-wide policy lives in istiod's root namespace."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": ISTIO_NAMESPACE},
        "spec": {"mtls": {"mode": "STRICT"}},
    }


def ingress_gateway_servers(hosts: list[str]) -> list[dict[str, Any]]:
    """The `servers` of an Istio Gateway on the ingress gateway, for the application's Gateway resource.

    Both are plain HTTP (TLS ends at the load balancer). The redirect server answers every request
    with a 301 to https; only the load balancer's port 80 listener reaches it.
    """
    return [
        {"port": {"number": INGRESS_SERVING_PORT.number, "name": INGRESS_SERVING_PORT.name, "protocol": "HTTP"},
         "hosts": list(hosts)},
        {"port": {"number": INGRESS_REDIRECT_PORT.number, "name": INGRESS_REDIRECT_PORT.name, "protocol": "HTTP"},
         "hosts": list(hosts), "tls": {"httpsRedirect": True}},
    ]


@dataclass(frozen=True)
class GatewayIdentity:
    """What the shop needs of the ingress gateway: its Istio Gateway selects the gateway's pods by
    `labels`, authorization names it by `principal`, NetworkPolicies name its `namespace` as a peer. An
    app stack reads these from its platform stack's outputs (components/platform.py)."""

    labels: pulumi.Input[Mapping[str, str]]
    principal: pulumi.Input[str]
    namespace: pulumi.Input[str] = INGRESS_NAMESPACE

    def servers(self, hosts: Sequence[str]) -> list[dict[str, Any]]:
        """The `servers` of an Istio Gateway bound to this gateway, for `hosts`."""
        return ingress_gateway_servers(list(hosts))


@dataclass(frozen=True, kw_only=True)
class IngressGateway(GatewayIdentity):
    """The platform's own ingress gateway, in one value: its identity, and what its load balancer needs:
    the `node_ports` it sends traffic to, and `readiness_path`, which it health-checks on the status
    node port."""

    node_ports: IngressNodePorts
    readiness_path: str


def ingress_gateway(node_ports: IngressNodePorts) -> IngressGateway:
    # The gateway chart names the gateway's service account after its release.
    return IngressGateway(labels=dict(INGRESS_GATEWAY_LABELS), principal=principal(INGRESS_NAMESPACE, INGRESS_RELEASE),
                          node_ports=node_ports, readiness_path=GATEWAY_READINESS_PATH)


def mesh_policy_objects() -> list[dict[str, Any]]:
    return [peer_authentication()]


@dataclass(frozen=True)
class ReleasePlan:
    role: str  # also the child resource's name suffix
    release: str
    chart: str
    namespace: str
    values: Mapping[str, Any]
    version: str  # the Istio release of the chart


def release_plans(node_ports: IngressNodePorts, planes: Optional[ControlPlanes] = None) -> list[ReleasePlan]:
    """base, one istiod per revision (the one the workloads use last), the two gateways: in install order.

    Without `planes`, the unrevisioned install at the default Istio release.
    """
    planes = planes or ControlPlanes.unrevisioned(DEFAULT_ISTIO_VERSION)
    gateway_version = planes.default_version
    ordered = sorted(planes.revisions, key=lambda revision: (revision == planes.default_revision, revision))
    istiods = [
        ReleasePlan(istiod_release_name(revision), istiod_release_name(revision), "istiod", ISTIO_NAMESPACE,
                    istiod_values(revision, [REVISION_TAG] if planes.tagged and revision == planes.default_revision
                                  else []),
                    planes.revisions[revision])
        for revision in ordered
    ]
    return [
        ReleasePlan("base", "istio-base", "base", ISTIO_NAMESPACE, base_values(planes), planes.base_version),
        *istiods,
        ReleasePlan("ingress-gateway", INGRESS_RELEASE, "gateway", INGRESS_NAMESPACE,
                    ingress_gateway_values(node_ports, planes), gateway_version),
        ReleasePlan("egress-gateway", EGRESS_RELEASE, "gateway", EGRESS_NAMESPACE, egress_gateway_values(planes),
                    gateway_version),
    ]


@dataclass(frozen=True)
class MeshArgs:
    settings: MeshSettings


class Mesh(pulumi.ComponentResource):
    """Istio control plane, gateways and mesh-wide policy. The Kubernetes provider comes through
    `opts` (`providers=[...]`); every child inherits it."""

    ingress_gateway_namespace: pulumi.Output[str]
    egress_gateway_namespace: pulumi.Output[str]
    istio_namespace: pulumi.Output[str]
    # Every namespace the mesh owns, by name, each read from what installs into it.
    namespaces: dict[str, pulumi.Output[str]]
    ingress_gateway: IngressGateway
    # Plain values for the application's namespace: the labels that pick its injector, and the Istio
    # release (and revision, if any) of the proxies that injector gives (a change must roll the pods).
    workload_injection_labels: Mapping[str, str]
    proxy_version: str

    def __init__(self, name: str, args: MeshArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:mesh:Mesh", name, None, opts)
        settings = args.settings
        planes = ControlPlanes.from_settings(settings)
        node_ports = IngressNodePorts(http=settings.ingress_http_node_port, https=settings.ingress_https_node_port,
                                      status=settings.ingress_status_node_port)

        def child(**kwargs: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, **kwargs)

        namespaces = {
            namespace: k8s.core.v1.Namespace(
                f"{name}-{namespace}",
                metadata={"name": namespace, "labels": namespace_labels(namespace, planes)},
                opts=child(),
            )
            for namespace in (ISTIO_NAMESPACE, INGRESS_NAMESPACE, EGRESS_NAMESPACE)
        }

        plans = {plan.role: plan for plan in release_plans(node_ports, planes)}

        def release(plan: ReleasePlan, after: list[pulumi.Resource]) -> k8s.helm.v3.Release:
            return k8s.helm.v3.Release(
                f"{name}-{plan.role}",
                name=plan.release,
                chart=plan.chart,
                version=plan.version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=ISTIO_CHART_REPOSITORY),
                # The namespace's name is an output of the Namespace: the release waits for it.
                namespace=namespaces[plan.namespace].metadata.name,
                values=dict(plan.values),
                timeout=RELEASE_TIMEOUT_SECONDS,
                # A failed first install is uninstalled again, so that the next `pulumi up` can retry
                # instead of failing on a release name that Helm still holds.
                atomic=True,
                opts=child(depends_on=after),
            )

        base = release(plans["base"], [])
        # istiod reads none of base's outputs, but needs its CRDs and webhook configuration. The revision the
        # workloads use goes last: the revision tag's webhook moves to its release from another one, which
        # must have let it go first (Helm refuses an object another release owns).
        others = [release(plans[istiod_release_name(revision)], [base])
                  for revision in planes.revisions if revision != planes.default_revision]
        istiod = release(plans[istiod_release_name(planes.default_revision)], [base, *others])
        # The gateway pods' image is filled in by istiod's injector: istiod must be up first.
        ingress_release = release(plans["ingress-gateway"], [istiod])
        egress_release = release(plans["egress-gateway"], [istiod])

        for policy in mesh_policy_objects():
            k8s.apiextensions.CustomResource(
                f"{name}-{policy['kind'].lower()}-{policy['metadata']['name']}",
                api_version=policy["apiVersion"],
                kind=policy["kind"],
                metadata=policy["metadata"],
                spec=policy["spec"],
                # Its CRD comes with base and istiod's webhook validates it: both must be installed.
                opts=child(depends_on=[istiod]),
            )

        # Read from the releases, so that whoever uses these waits for the gateways to be installed.
        self.istio_namespace = istiod.namespace
        self.ingress_gateway_namespace = ingress_release.namespace
        self.egress_gateway_namespace = egress_release.namespace
        self.namespaces = {ISTIO_NAMESPACE: self.istio_namespace, INGRESS_NAMESPACE: self.ingress_gateway_namespace,
                           EGRESS_NAMESPACE: self.egress_gateway_namespace}
        self.ingress_gateway = ingress_gateway(node_ports)
        self.workload_injection_labels = planes.injection_labels()
        self.proxy_version = planes.proxy_version
        self.register_outputs({
            "istioNamespace": self.istio_namespace,
            "ingressGatewayNamespace": self.ingress_gateway_namespace,
            "egressGatewayNamespace": self.egress_gateway_namespace,
        })
