"""Pure functions of components/mesh.py: Helm values and mesh policy, checked against Istio's own definitions."""

import pytest

from components import mesh
from tools import istio_schema

NODE_PORTS = mesh.IngressNodePorts(http=30080, https=30443, status=30021)


@pytest.mark.parametrize("plan", mesh.release_plans(NODE_PORTS), ids=lambda plan: plan.role)
def test_every_release_uses_only_values_its_chart_defines(plan):
    assert istio_schema.check_helm_values(plan.chart, plan.values) == []


def test_release_plans_install_base_then_istiod_then_gateways():
    plans = mesh.release_plans(NODE_PORTS)
    assert [p.chart for p in plans][:2] == ["base", "istiod"]
    assert {p.chart for p in plans[2:]} == {"gateway"}
    assert {(p.release, p.namespace) for p in plans[2:]} == {
        (mesh.INGRESS_RELEASE, mesh.INGRESS_NAMESPACE), (mesh.EGRESS_RELEASE, mesh.EGRESS_NAMESPACE)}


def test_ingress_gateway_is_a_highly_available_node_port_service():
    values = mesh.ingress_gateway_values(NODE_PORTS)
    assert values["labels"]["istio"] == "ingressgateway"
    assert values["replicaCount"] >= 2 and values["autoscaling"] == {"enabled": False}
    assert values["podDisruptionBudget"]["minAvailable"] < values["replicaCount"]
    zone = [c for c in values["topologySpreadConstraints"] if c["topologyKey"] == mesh.ZONE_TOPOLOGY_KEY]
    assert len(zone) == 1 and zone[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert zone[0]["labelSelector"]["matchLabels"] == mesh.INGRESS_GATEWAY_LABELS
    assert values["service"]["type"] == "NodePort"


def test_ingress_gateway_service_ports_carry_the_configured_node_ports():
    ports = {p["targetPort"]: p for p in mesh.ingress_gateway_service_ports(NODE_PORTS)}
    assert ports[mesh.INGRESS_SERVING_PORT.number]["nodePort"] == NODE_PORTS.https
    assert ports[mesh.INGRESS_REDIRECT_PORT.number]["nodePort"] == NODE_PORTS.http
    assert ports[mesh.GATEWAY_STATUS_PORT]["nodePort"] == NODE_PORTS.status
    for port in ports.values():
        # The Istio Gateway server binds the same number the Service exposes: no port translation to get wrong.
        assert port["port"] == port["targetPort"]
    other = mesh.IngressNodePorts(http=31000, https=31001, status=31002)
    assert sorted(p["nodePort"] for p in mesh.ingress_gateway_service_ports(other)) == [31000, 31001, 31002]


def test_serving_and_redirect_ports_differ():
    assert mesh.INGRESS_SERVING_PORT.number != mesh.INGRESS_REDIRECT_PORT.number
    assert mesh.INGRESS_SERVING_PORT.name != mesh.INGRESS_REDIRECT_PORT.name


@pytest.mark.parametrize("ports", [(30080, 30080, 30021), (80, 30443, 30021), (30080, 30443, 40000)])
def test_bad_node_ports_are_rejected(ports):
    with pytest.raises(ValueError, match="node ports"):
        mesh.IngressNodePorts(*ports)


def test_egress_gateway_is_cluster_internal():
    values = mesh.egress_gateway_values()
    assert values["service"] == {"type": "ClusterIP"}
    assert values["labels"]["istio"] == "egressgateway"
    assert values["replicaCount"] >= 2 and values["podDisruptionBudget"]["minAvailable"] == 1


def test_mesh_config_limits_egress_to_registered_destinations_and_logs_to_stdout():
    config = mesh.istiod_values()["meshConfig"]
    assert config["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    assert config["accessLogFile"] == "/dev/stdout"
    assert istio_schema.mesh_config_errors(config) == []


def test_istiod_and_sidecars_request_less_than_the_chart_defaults():
    """The charts' defaults (istiod 500m/2Gi) do not fit next to the shop on t3.medium nodes."""
    from tests.mesh.test_sizing import cpu_millicores, memory_mebibytes
    defaults = istio_schema.chart_defaults("istiod")
    values = mesh.istiod_values()
    for ours, theirs in ((values["resources"]["requests"], defaults["resources"]["requests"]),
                         (values["global"]["proxy"]["resources"]["requests"],
                          defaults["global"]["proxy"]["resources"]["requests"])):
        assert cpu_millicores(ours["cpu"]) < cpu_millicores(theirs["cpu"])
        assert memory_mebibytes(ours["memory"]) < memory_mebibytes(theirs["memory"])
    assert values["autoscaleEnabled"] is False and values["replicaCount"] >= 2


def test_mesh_policy_is_strict_mutual_tls_in_the_root_namespace_and_valid():
    policies = mesh.mesh_policy_objects()
    [peer] = [p for p in policies if p["kind"] == "PeerAuthentication"]
    assert peer["metadata"] == {"name": "default", "namespace": mesh.ISTIO_NAMESPACE}
    assert peer["spec"] == {"mtls": {"mode": "STRICT"}}
    for policy in policies:
        assert istio_schema.validate_istio_object(policy) == []


def test_gateway_namespaces_opt_into_injection_and_istio_system_does_not():
    assert mesh.namespace_labels(mesh.INGRESS_NAMESPACE) == {"istio-injection": "enabled"}
    assert mesh.namespace_labels(mesh.EGRESS_NAMESPACE) == {"istio-injection": "enabled"}
    assert mesh.namespace_labels(mesh.ISTIO_NAMESPACE) == {}


def test_gateway_servers_for_the_application_are_valid_and_redirect_only_on_the_redirect_port():
    servers = mesh.ingress_gateway_servers(["shop.example.com"])
    gateway = {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"selector": dict(mesh.INGRESS_GATEWAY_LABELS), "servers": servers},
    }
    assert istio_schema.validate_istio_object(gateway) == []
    redirecting = {s["port"]["number"] for s in servers if s.get("tls", {}).get("httpsRedirect")}
    assert redirecting == {mesh.INGRESS_REDIRECT_PORT.number}
    assert {s["port"]["number"] for s in servers} == {mesh.INGRESS_SERVING_PORT.number,
                                                      mesh.INGRESS_REDIRECT_PORT.number}
    service_ports = {p["port"] for p in mesh.ingress_gateway_service_ports(NODE_PORTS)}
    assert {s["port"]["number"] for s in servers} <= service_ports


def test_the_ingress_gateway_value_describes_the_gateway_the_charts_install():
    """Others bind to the gateway only through this value; it must name what the release creates."""
    node_ports = mesh.IngressNodePorts(http=31080, https=31443, status=31021)
    gateway = mesh.ingress_gateway(node_ports)
    plan = next(p for p in mesh.release_plans(node_ports) if p.role == "ingress-gateway")
    assert gateway.labels == plan.values["labels"]
    # The chart names the service account after the release, in the release's namespace.
    assert gateway.principal == f"cluster.local/ns/{plan.namespace}/sa/{plan.release}"
    service_node_ports = {p["targetPort"]: p["nodePort"] for p in plan.values["service"]["ports"]}
    assert service_node_ports[mesh.GATEWAY_STATUS_PORT] == gateway.node_ports.status == 31021
    served = {server["port"]["number"] for server in gateway.servers(["shop.example.com"])}
    assert served <= set(service_node_ports)
    assert gateway.readiness_path.startswith("/healthz")
