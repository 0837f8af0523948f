"""Pure functions of components/ingress.py: listeners, target groups, health checks."""

import pytest

from components import ingress, mesh

NODE_PORTS = mesh.IngressNodePorts(http=30080, https=30443, status=30021)
GATEWAY = mesh.ingress_gateway(NODE_PORTS)


def test_with_tls_port_443_serves_and_port_80_goes_to_the_redirect_port():
    plan = ingress.ingress_plan(GATEWAY, tls=True)
    listeners = {listener.port: listener for listener in plan.listeners}
    assert set(listeners) == {80, 443}
    assert listeners[443].protocol == "TLS" and listeners[80].protocol == "TCP"
    assert plan.target_group(listeners[443].target_role).node_port == NODE_PORTS.https
    assert plan.target_group(listeners[80].target_role).node_port == NODE_PORTS.http
    # No redirect loop: what arrives over TLS never reaches the port that redirects.
    assert listeners[443].target_role != listeners[80].target_role


def test_without_tls_port_80_serves_directly():
    plan = ingress.ingress_plan(GATEWAY, tls=False)
    [listener] = plan.listeners
    assert (listener.port, listener.protocol) == (80, "TCP")
    assert plan.target_group(listener.target_role).node_port == NODE_PORTS.https
    assert [group.role for group in plan.target_groups] == [ingress.SERVING]


@pytest.mark.parametrize("tls", [True, False])
def test_load_balancer_reaches_exactly_the_node_ports_it_uses(tls):
    plan = ingress.ingress_plan(GATEWAY, tls=tls)
    used = {group.node_port for group in plan.target_groups} | {NODE_PORTS.status}
    assert set(plan.node_ports(NODE_PORTS.status)) == used
    assert (NODE_PORTS.http in used) is tls


def test_health_check_asks_envoy_readiness_on_the_status_node_port():
    check = ingress.health_check(GATEWAY)
    assert check["protocol"] == "HTTP"
    assert check["port"] == str(NODE_PORTS.status)
    assert check["path"] == GATEWAY.readiness_path == "/healthz/ready"
    # NLB limits: interval 5-300 s, timeout 2-120 s and shorter than the interval, thresholds 2-10.
    assert 5 <= check["interval"] <= 300 and 2 <= check["timeout"] < check["interval"]
    assert 2 <= check["healthy_threshold"] <= 10 and 2 <= check["unhealthy_threshold"] <= 10


def test_one_autoscaling_group_is_expected():
    assert ingress.single_autoscaling_group(["eks-nodes-asg"]) == "eks-nodes-asg"
    for names in ([], ["a", "b"]):
        with pytest.raises(ValueError, match="one autoscaling group"):
            ingress.single_autoscaling_group(names)
