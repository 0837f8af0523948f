"""Istio and the application fit on 4 x t3.medium, with room for a rolling update and for a drained node.

Requests come from the Helm values the program sends (components/mesh.py), so changing a value
changes the outcome. The application's pods are its three services at two replicas each, with the
requests the shop plans for them (components/shop.py) and the injected sidecar.
"""

import re
from dataclasses import dataclass

import pytest

from components import mesh

# t3.medium on EKS (AL2023): allocatable after kube-reserved and system-reserved; ENI limit on pods.
NODE_CPU_M = 1930
NODE_MEMORY_MI = 3200
NODE_MAX_PODS = 17
NODE_COUNT = 4

# EKS add-on pods: one aws-node (25m) and one kube-proxy (100m) per node; two CoreDNS (100m/70Mi);
# two metrics-server (100m/200Mi, the EKS add-on's defaults).
DAEMONSET_CPU_M_PER_NODE = 25 + 100
DAEMONSET_PODS_PER_NODE = 2

APP_REPLICAS = 2


def app_requests() -> dict[str, dict[str, str]]:
    """Each service's container requests, as the shop plans them."""
    from components import shop
    return {plan.name: plan.resources.spec()["requests"] for plan in shop.service_plans("e-commerce", "gateway")}


def cpu_millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def memory_mebibytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


@dataclass(frozen=True)
class Pod:
    owner: str
    cpu_m: int
    memory_mi: int


def pods_of(owner: str, replicas: int, *request_sets: dict) -> list[Pod]:
    cpu = sum(cpu_millicores(r["cpu"]) for r in request_sets)
    memory = sum(memory_mebibytes(r["memory"]) for r in request_sets)
    return [Pod(owner, cpu, memory) for _ in range(replicas)]


def workload() -> dict[str, list[Pod]]:
    """Every Deployment's pods, by owner."""
    istiod = mesh.istiod_values()
    sidecar = istiod["global"]["proxy"]["resources"]["requests"]
    ingress = mesh.ingress_gateway_values(mesh.IngressNodePorts(30080, 30443, 30021))
    egress = mesh.egress_gateway_values()
    deployments = {
        "istiod": pods_of("istiod", istiod["replicaCount"], istiod["resources"]["requests"]),
        "ingress": pods_of("ingress", ingress["replicaCount"], ingress["resources"]["requests"]),
        "egress": pods_of("egress", egress["replicaCount"], egress["resources"]["requests"]),
        "coredns": pods_of("coredns", 2, {"cpu": "100m", "memory": "70Mi"}),
        "metrics-server": pods_of("metrics-server", 2, {"cpu": "100m", "memory": "200Mi"}),
    }
    for name, requests in app_requests().items():
        deployments[f"app-{name}"] = pods_of(f"app-{name}", APP_REPLICAS, requests, sidecar)
    return deployments


def pack(pods: list[Pod], nodes: int) -> bool:
    """First-fit decreasing onto `nodes` nodes, each already running its DaemonSet pods."""
    free = [[NODE_CPU_M - DAEMONSET_CPU_M_PER_NODE, NODE_MEMORY_MI, NODE_MAX_PODS - DAEMONSET_PODS_PER_NODE]
            for _ in range(nodes)]
    for pod in sorted(pods, key=lambda p: (p.cpu_m, p.memory_mi), reverse=True):
        node = next((n for n in free if n[0] >= pod.cpu_m and n[1] >= pod.memory_mi and n[2] >= 1), None)
        if node is None:
            return False
        node[0] -= pod.cpu_m
        node[1] -= pod.memory_mi
        node[2] -= 1
    return True


def test_everything_fits_with_one_extra_pod_per_deployment_during_a_rollout():
    deployments = workload()
    steady = [pod for pods in deployments.values() for pod in pods]
    surge = [pods[0] for pods in deployments.values()]
    assert pack(steady + surge, NODE_COUNT)


def test_everything_still_fits_with_one_node_drained():
    steady = [pod for pods in workload().values() for pod in pods]
    assert pack(steady, NODE_COUNT - 1)


def test_a_canary_revision_fits_beside_the_running_one_while_the_workloads_roll_onto_it():
    """During a revision upgrade two istiods run (istioRevisions); the workloads then roll onto the new one."""
    deployments = workload()
    canary = mesh.istiod_values("canary", ["prod"])
    deployments["istiod-canary"] = pods_of("istiod-canary", canary["replicaCount"], canary["resources"]["requests"])
    steady = [pod for pods in deployments.values() for pod in pods]
    surge = [pods[0] for pods in deployments.values()]
    assert pack(steady + surge, NODE_COUNT)


def test_requests_leave_headroom():
    steady = [pod for pods in workload().values() for pod in pods]
    cpu = sum(p.cpu_m for p in steady) + NODE_COUNT * DAEMONSET_CPU_M_PER_NODE
    memory = sum(p.memory_mi for p in steady)
    # At most half of the cluster is requested: the rest is for rollouts, bursts and the app's growth.
    assert cpu <= 0.5 * NODE_COUNT * NODE_CPU_M, cpu
    assert memory <= 0.5 * NODE_COUNT * NODE_MEMORY_MI, memory


@pytest.mark.parametrize("quantity,expected", [("200m", 200), ("1", 1000), ("0.5", 500)])
def test_cpu_quantities_convert_to_millicores(quantity, expected):
    assert cpu_millicores(quantity) == expected
