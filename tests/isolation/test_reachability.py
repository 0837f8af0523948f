"""The two layers computed, not restated: network-config-analyzer reads the rendered NetworkPolicies (L3/L4)
and the rendered AuthorizationPolicies, PeerAuthentication and Sidecars (L7), with the chart pods described
(tests/isolation/reachability.py), and the matrices it computes must equal the intended tables below."""

from __future__ import annotations

import copy

import pytest

from components.isolation import owned_namespaces
from tests.isolation.reachability import CHART_WORKLOADS, find_nca, flows, run_nca, workload_objects

SHOP = ("graphql", "orders", "products")
PROXIES = (*SHOP, "ingress-gateway", "egress-gateway")

# source(s)  destination  ports. `vpc` stands for node addresses (kubelet; the load balancer's traffic and
# health checks, masqueraded by kube-proxy) and the EKS control plane's interfaces in the VPC.
INTENDED_L3 = """
vpc                                    ingress-gateway     8080/TCP 8081/TCP 15021/TCP
vpc                                    egress-gateway      15021/TCP
vpc                                    graphql             15020/TCP 15021/TCP
vpc                                    orders              15020/TCP 15021/TCP
vpc                                    products            15020/TCP 15021/TCP
vpc                                    istiod              8080/TCP 15017/TCP
ingress-gateway                        graphql             8080/TCP
graphql                                orders              8080/TCP
graphql                                products            8080/TCP
PROXIES                                istiod              15012/TCP
PROXIES,istiod                         coredns             53/UDP 53/TCP
istiod                                 vpc                 443/TCP
istiod                                 kubernetes-service  443/TCP
"""
# Requests the sidecars authorize on the application port: the same calls, and no others.
INTENDED_L7 = """
ingress-gateway                        graphql             8080/TCP
graphql                                orders              8080/TCP
graphql                                products            8080/TCP
"""


def table(text: str) -> set[tuple[str, str, str]]:
    rows = set()
    for line in text.strip().splitlines():
        sources, destination, *ports = line.split()
        for source in sources.replace("PROXIES", ",".join(PROXIES)).split(","):
            rows |= {(source, destination, port) for port in ports}
    return rows


@pytest.fixture(scope="module")
def nca() -> str:
    executable = find_nca()
    assert executable, "network-config-analyzer is not installed: run `make nca-venv` (make test does)"
    return executable


@pytest.fixture(scope="module")
def rendered(render) -> list[dict]:
    return [m for f, m in render.manifests.items() if not f.endswith(".release.yaml")]


def matrices(nca: str, manifests: list[dict], directory) -> tuple[set, set]:
    """(L3/L4 flows, L7 flows) computed from `manifests`, limited to what the tables cover."""
    objects = workload_objects(manifests)
    workloads = {o["metadata"]["name"]: (o["metadata"]["namespace"], o["spec"]["template"]["metadata"]["labels"])
                 for o in objects if o["kind"] == "Deployment"}
    services = [m for m in manifests if m.get("kind") == "Service"]
    owned = {name for name, (namespace, _) in workloads.items() if namespace in owned_namespaces()}
    network = [m for m in manifests if m.get("kind") == "NetworkPolicy"]
    mesh = [m for m in manifests if m.get("kind") in ("AuthorizationPolicy", "PeerAuthentication", "Sidecar")]
    l3 = flows(run_nca(nca, directory / "l3", network, objects + services), workloads)
    l7 = flows(run_nca(nca, directory / "l7", mesh, objects + services), workloads)
    l3 = {f for f in l3 if f[0] in owned or f[1] in owned}
    # Authorization is enforced by the shop's sidecars on the application port; 15020/15021 are not captured.
    l7 = {f for f in l7 if f[1] in SHOP and f[2] == "8080/TCP"}
    return l3, l7


def differences(nca: str, manifests: list[dict], directory) -> list[str]:
    l3, l7 = matrices(nca, manifests, directory)
    found = [f"L3 extra {f}" for f in sorted(l3 - table(INTENDED_L3))]
    found += [f"L3 missing {f}" for f in sorted(table(INTENDED_L3) - l3)]
    found += [f"L7 extra {f}" for f in sorted(l7 - table(INTENDED_L7))]
    found += [f"L7 missing {f}" for f in sorted(table(INTENDED_L7) - l7)]
    both = {f for f in l3 if f[1] in SHOP and f[2] == "8080/TCP"}
    found += [f"layers disagree on {f}" for f in sorted(both ^ l7)]
    return found


def test_the_computed_matrices_are_the_intended_ones(nca, rendered, tmp_path):
    assert differences(nca, rendered, tmp_path) == []


def test_the_chart_pods_described_carry_the_labels_the_stack_selects():
    from components.mesh import EGRESS_GATEWAY_LABELS, INGRESS_GATEWAY_LABELS
    assert INGRESS_GATEWAY_LABELS.items() <= CHART_WORKLOADS["ingress-gateway"][1].items()
    assert EGRESS_GATEWAY_LABELS.items() <= CHART_WORKLOADS["egress-gateway"][1].items()


def _change(manifests, kind, namespace, name, edit):
    copied = copy.deepcopy(manifests)
    hits = [m for m in copied if m.get("kind") == kind and m["metadata"]["namespace"] == namespace
            and m["metadata"]["name"] == name]
    assert len(hits) == 1
    result = edit(hits[0])
    return [m for m in copied if m is not hits[0]] if result == "delete" else copied


BROKEN = {
    "a policy deleted": ("NetworkPolicy", "e-commerce", "orders", lambda m: "delete"),
    "a label misspelt": ("NetworkPolicy", "e-commerce", "graphql",
                         lambda m: m["spec"]["podSelector"]["matchLabels"].update(app="grapql")),
    "a port changed": ("NetworkPolicy", "istio-ingress", "ingress-gateway",
                       lambda m: m["spec"]["ingress"][0]["ports"][0].update(port=8090)),
    "an L7 caller misspelt": ("AuthorizationPolicy", "e-commerce", "products",
                              lambda m: m["spec"]["rules"][0]["from"][0]["source"].update(
                                  principals=["cluster.local/ns/e-commerce/sa/graphq1"])),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_policy_changes_the_reachability_matrices(nca, rendered, tmp_path, case):
    kind, namespace, name, edit = BROKEN[case]
    found = differences(nca, _change(rendered, kind, namespace, name, edit), tmp_path)
    assert found, f"{case}: the matrices did not change"
