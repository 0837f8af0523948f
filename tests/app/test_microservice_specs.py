"""The Microservice's object specs and the retry rule, checked as plain data."""

import kubernetes_validate
import pytest

from components import microservice as ms
from policy.eks_istio_shop import routes
from settings import DEFAULT_KUBERNETES_VERSION

HOST = "orders.e-commerce.svc.cluster.local"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/alpha-dev/orders@sha256:" + "0" * 64


def deployment(**overrides) -> dict:
    values = dict(name="orders", image=IMAGE, port=8080, env={"LOG_LEVEL": "info"}, replicas=2,
                  resources=ms.DEFAULT_RESOURCES, service_account="orders", proxy_version="1.30.5")
    values.update(overrides)
    return ms.deployment_spec(**values)


def wrapped(kind: str, api_version: str, spec: dict) -> dict:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "orders", "namespace": "e-commerce"},
            "spec": spec}


@pytest.mark.parametrize("kind, api_version, spec", [
    ("Deployment", "apps/v1", deployment()),
    ("Service", "v1", ms.service_spec("orders", 8080)),
    ("PodDisruptionBudget", "policy/v1", ms.pod_disruption_budget_spec("orders")),
    ("HorizontalPodAutoscaler", "autoscaling/v2", ms.autoscaler_spec("orders", "orders", 2, 4, 70)),
])
def test_kubernetes_specs_are_valid_strictly(kind, api_version, spec):
    kubernetes_validate.validate(wrapped(kind, api_version, spec), f"{DEFAULT_KUBERNETES_VERSION}.0", strict=True)


def test_deployment_is_highly_available_and_rolls_without_downtime():
    spec = deployment(replicas=3)
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    constraints = {c["topologyKey"]: c for c in spec["template"]["spec"]["topologySpreadConstraints"]}
    assert set(constraints) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in constraints.values():
        assert constraint["maxSkew"] == 1 and constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_probes_use_the_health_endpoints_on_the_named_port():
    container = deployment()["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_container_and_pod_are_locked_down():
    pod = deployment()["template"]["spec"]
    container = pod["containers"][0]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] > 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "orders"
    # The read-only root filesystem leaves /tmp writable through an emptyDir.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])


def test_resources_have_requests_and_limits_within_them():
    resources = deployment()["template"]["spec"]["containers"][0]["resources"]
    assert set(resources) == {"requests", "limits"}
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"] and kind in resources["limits"]
    assert ms.DEFAULT_RESOURCES.cpu_request == "100m" and ms.DEFAULT_RESOURCES.memory_request == "128Mi"


def test_environment_sets_the_port_and_a_shutdown_within_the_grace_period():
    pod = deployment(port=9090, env={"X": "1"})["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["PORT"] == "9090" and env["X"] == "1"
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop + int(env["GRACEFUL_SHUTDOWN_SECONDS"]) < pod["terminationGracePeriodSeconds"]


def test_service_exposes_a_named_http_port():
    spec = ms.service_spec("orders", 8080)
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP",
                              "appProtocol": "http"}]


def test_autoscaler_targets_the_service_container_cpu():
    spec = ms.autoscaler_spec("orders", "orders", 2, 5, 60)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
    metric = spec["metrics"][0]["containerResource"]
    assert metric["name"] == "cpu" and metric["container"] == "orders"
    assert metric["target"] == {"type": "Utilization", "averageUtilization": 60}


def test_destination_rule_requires_mesh_tls_and_limits_connections():
    policy = ms.destination_rule_spec(HOST)["trafficPolicy"]
    assert policy["tls"] == {"mode": "ISTIO_MUTUAL"}
    assert policy["connectionPool"]["tcp"]["maxConnections"] > 0
    assert policy["connectionPool"]["http"]["http1MaxPendingRequests"] > 0
    assert policy["outlierDetection"]["maxEjectionPercent"] <= 50
    # The sidecar closes idle upstream connections before the service's keep-alive does.
    env = {e["name"]: e["value"] for e in deployment()["template"]["spec"]["containers"][0]["env"]}
    assert routes.duration_seconds(policy["connectionPool"]["http"]["idleTimeout"]) < int(env["KEEPALIVE_SECONDS"])


def test_authorization_policy_names_callers_port_and_methods():
    access = ms.Access(principals=("cluster.local/ns/e-commerce/sa/graphql",), methods=("GET",), paths=("/a",))
    spec = ms.authorization_policy_spec("orders", 8080, access)
    assert spec["action"] == "ALLOW"
    assert spec["selector"] == {"matchLabels": {"app": "orders"}}
    assert spec["rules"] == [{"from": [{"source": {"principals": ["cluster.local/ns/e-commerce/sa/graphql"]}}],
                              "to": [{"operation": {"ports": ["8080"], "methods": ["GET"], "paths": ["/a"]}}]}]
    with pytest.raises(ValueError, match="at least one caller"):
        ms.authorization_policy_spec("orders", 8080, ms.Access(principals=()))


def test_mesh_routes_all_have_timeouts_and_retries_the_pack_finds_safe():
    spec = ms.virtual_service_spec(HOST, 8080, ms.MeshRoute(timeout="4s", attempts=3, per_try_timeout="1s"))
    assert spec["hosts"] == [HOST]
    reads, others = spec["http"]
    assert routes.idempotent_only(reads) is True and routes.idempotent_only(others) is False
    for route in spec["http"]:
        assert route["timeout"] == "4s"
        assert route["route"] == [{"destination": {"host": HOST, "port": {"number": 8080}}}]
        assert route["retries"]["attempts"] == 3
        assert routes.retry_problems(route) == []
    assert routes.http_route_problems(spec) == []
    # Reads also retry where the service may have seen the request; other methods only where it cannot.
    assert "gateway-error" in reads["retries"]["retryOn"]
    assert set(others["retries"]["retryOn"].split(",")) == set(ms.RETRY_BEFORE_REQUEST) <= routes.SAFE_RETRY_ON


def test_a_per_try_timeout_beyond_the_route_timeout_is_caught_by_the_pack():
    spec = ms.virtual_service_spec(HOST, 8080, ms.MeshRoute(timeout="1s", attempts=2, per_try_timeout="2s"))
    assert all("perTryTimeout is longer" in p for p in routes.http_route_problems(spec))
    assert len(routes.http_route_problems(spec)) == 2


@pytest.mark.parametrize("kind, api_version, spec", [
    ("DestinationRule", "networking.istio.io/v1", ms.destination_rule_spec(HOST)),
    ("VirtualService", "networking.istio.io/v1", ms.virtual_service_spec(HOST, 8080, ms.MeshRoute())),
    ("AuthorizationPolicy", "security.istio.io/v1",
     ms.authorization_policy_spec("orders", 8080, ms.Access(principals=("cluster.local/ns/e-commerce/sa/graphql",),
                                                            paths=("/orders", "/orders/*")))),
])
def test_istio_specs_are_valid_against_istios_crds(kind, api_version, spec):
    from tools import istio_schema
    assert istio_schema.validate_istio_object(wrapped(kind, api_version, spec)) == []
