"""namespaces-default-deny: quiet on the stack as rendered, firing on copies that lose a default deny."""

from __future__ import annotations

from policy.eks_istio_shop import isolation
from tests.policy.engine import broken, messages, not_applicable, of_type, stack_config, violations

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CLUSTER = "eks:index:Cluster"
RULE = isolation.namespaces_default_deny


def _is_deny(namespace: str):
    return lambda r: (r["type"] == NETWORK_POLICY and r["inputs"]["metadata"]["name"] == "default-deny"
                      and r["inputs"]["metadata"]["namespace"] == namespace)


def test_quiet_on_the_dev_stack_and_firing_per_namespace_that_loses_its_default_deny(render, dev_config):
    with stack_config(dev_config):
        assert not_applicable(RULE, render.resources) is None
        assert violations(RULE, render.resources) == []
        for namespace in ("e-commerce", "istio-system", "istio-ingress", "istio-egress"):
            without = [r for r in render.resources if not _is_deny(namespace)(r)]
            found = messages(violations(RULE, without))
            assert f"namespace {namespace} has no default-deny" in found
            assert found.count("has no default-deny") == 1


def test_a_weakened_default_deny_does_not_count(render, dev_config):
    with stack_config(dev_config):
        selective = broken(render.resources, _is_deny("e-commerce"),
                           lambda r: r["inputs"]["spec"].update(podSelector={"matchLabels": {"app": "graphql"}}))
        assert "namespace e-commerce" in messages(violations(RULE, selective))
        ingress_only = broken(render.resources, _is_deny("istio-system"),
                              lambda r: r["inputs"]["spec"].update(policyTypes=["Ingress"]))
        assert "namespace istio-system" in messages(violations(RULE, ingress_only))
        opened = broken(render.resources, _is_deny("istio-ingress"),
                        lambda r: r["inputs"]["spec"].update(ingress=[{}]))
        assert "namespace istio-ingress" in messages(violations(RULE, opened))


def test_not_applicable_while_the_vpc_cni_does_not_enforce(render_variant):
    off = render_variant(sets=("networkPolicyEnforcement=false",)).resources
    with stack_config({"eks-istio-shop:networkPolicyEnforcement": "false"}):
        assert "does not enforce" in not_applicable(RULE, off)
        assert violations(RULE, off) == []


def test_enforcement_is_read_from_the_add_on_configuration_or_the_setting(render):
    without_policies = [r for r in render.resources if r["type"] != NETWORK_POLICY]
    as_configuration = broken(without_policies, of_type(CLUSTER), lambda r: r["inputs"]["vpcCniOptions"].update(
        enableNetworkPolicy=None, configurationValues={"enableNetworkPolicy": "true"}))
    with stack_config({}):
        assert "has no default-deny" in messages(violations(RULE, as_configuration))
    # The engine may show the pulumi-eks component without its inputs: the stack's setting decides then.
    with stack_config({"eks-istio-shop:networkPolicyEnforcement": "true"}):
        assert "has no default-deny" in messages(violations(RULE, without_policies, components_as_outputs=True))
    with stack_config({"eks-istio-shop:networkPolicyEnforcement": "false"}):
        assert violations(RULE, without_policies, components_as_outputs=True) == []


def test_namespaces_not_known_at_preview_are_followed_to_their_namespace_objects(render, dev_config):
    """On a new stack's preview the istio-* policies' namespace comes from a Helm release not installed yet:
    the rule follows it to the Namespace, so one unknown name does not silence it for every namespace."""
    from tests.policy.engine import RENDER_UNKNOWN
    istio_unknown = broken(render.resources,
                           lambda r: r["type"] == NETWORK_POLICY
                           and r["inputs"]["metadata"]["namespace"].startswith("istio-"),
                           lambda r: r["inputs"]["metadata"].update(namespace=RENDER_UNKNOWN))
    with stack_config(dev_config):
        assert violations(RULE, istio_unknown) == []
        without_shop_deny = [r for r in istio_unknown if not _is_deny("e-commerce")(r)]
        assert "namespace e-commerce has no default-deny" in messages(violations(RULE, without_shop_deny))
        without_ingress_deny = [r for r in istio_unknown if not (
            r["type"] == NETWORK_POLICY and r["name"].endswith("istio-ingress-default-deny"))]
        assert len(without_ingress_deny) == len(istio_unknown) - 1
        assert "namespace istio-ingress has no default-deny" in messages(violations(RULE, without_ingress_deny))
