"""The isolation objects as the program renders them: NetworkPolicies only with enforcement, Sidecars always."""

from __future__ import annotations

from components.isolation import DEFAULT_DENY_NAME, kubernetes_service_addresses, owned_namespaces


def _kind(render, kind: str) -> list[dict]:
    return [m for m in render.manifests.values() if m.get("kind") == kind]


def test_every_owned_namespace_denies_everything_by_default(render):
    policies = _kind(render, "NetworkPolicy")
    deny = {p["metadata"]["namespace"]: p["spec"] for p in policies if p["metadata"]["name"] == DEFAULT_DENY_NAME}
    assert set(deny) == set(owned_namespaces()) == {"e-commerce", "istio-system", "istio-ingress", "istio-egress"}
    for spec in deny.values():
        assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_namespaces_the_policies_live_in_are_created_by_the_stack(render):
    namespaces = {n["metadata"]["name"] for n in _kind(render, "Namespace")}
    assert {p["metadata"]["namespace"] for p in _kind(render, "NetworkPolicy")} <= namespaces


def test_turning_enforcement_off_removes_the_policies_but_not_the_sidecars(render, render_variant):
    off = render_variant(sets=("networkPolicyEnforcement=false",))
    assert _kind(off, "NetworkPolicy") == []
    assert _kind(off, "Sidecar") == _kind(render, "Sidecar") != []


def test_the_gateways_only_learn_the_clusters_their_routes_use(render):
    istiod = next(m for m in render.manifests.values() if m.get("release") == "istiod")
    assert istiod["values"]["env"]["PILOT_FILTER_GATEWAY_CLUSTER_CONFIG"] == "true"


def test_each_sidecar_knows_only_what_its_workload_calls(render):
    sidecars = {s["metadata"]["name"]: s["spec"] for s in _kind(render, "Sidecar")}
    assert sidecars["default"] == {"egress": [{"hosts": ["~/*"]}]}  # no selector: every other workload
    assert sidecars["graphql"]["workloadSelector"] == {"labels": {"app": "graphql"}}
    assert sidecars["graphql"]["egress"] == [{"hosts": ["./orders.e-commerce.svc.cluster.local",
                                                         "./products.e-commerce.svc.cluster.local"]}]
    assert set(sidecars) == {"default", "graphql"}


def test_istiod_may_reach_the_api_servers_service_address_in_either_range_eks_may_pick(render):
    """The VPC CNI agent judges istiod's egress before kube-proxy translates the Service address."""
    assert set(kubernetes_service_addresses()) == {"10.100.0.1", "172.20.0.1"}
    (istiod,) = [p for p in _kind(render, "NetworkPolicy") if p["metadata"]["namespace"] == "istio-system"
                 and p["spec"]["podSelector"].get("matchLabels", {}).get("app") == "istiod"]
    https = {peer["ipBlock"]["cidr"] for rule in istiod["spec"]["egress"] for peer in rule.get("to", [])
             if "ipBlock" in peer and any(port.get("port") == 443 for port in rule.get("ports", []))}
    assert {"10.100.0.1/32", "172.20.0.1/32"} <= https


def test_a_vpc_cidr_setting_moves_every_address_block(render_variant):
    variant = render_variant(sets=("vpcCidr=172.16.0.0/16",))
    blocks = {peer["ipBlock"]["cidr"] for p in _kind(variant, "NetworkPolicy")
              for direction in ("ingress", "egress") for rule in p["spec"].get(direction, [])
              for peer in rule.get("from", rule.get("to", [])) if "ipBlock" in peer}
    assert blocks == {"172.16.0.0/16", "10.100.0.1/32", "172.20.0.1/32"}
