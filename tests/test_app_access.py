"""Least access for app stacks (issue 22, outcome 3): a platform grants app stacks' deployers their
namespaces only, through EKS access policies scoped to `shop-*` and an admission policy for what those
policies lack."""

from __future__ import annotations

import pytest
from cel_expr_python import cel
from cel_expr_python.ext import ext_strings
from google.protobuf import descriptor_pool

from components.app_access import AppStackAccessArgs, admission_policy_spec, cluster_role_rules
from components.cluster import APP_DEPLOYER_POLICY, APP_DEPLOYERS_GROUP, access_entries
from settings import APP_STACK_NAMESPACE_LABELS
from settings import SettingsError, load_settings

DEPLOYER = "arn:aws:iam::123456789012:role/demo-deployer"
ARGS = AppStackAccessArgs(group=APP_DEPLOYERS_GROUP, namespace_prefix="shop-", namespace_labels=APP_STACK_NAMESPACE_LABELS)
SPEC = admission_policy_spec(ARGS)
ENVIRONMENT = cel.NewEnv(descriptor_pool.DescriptorPool(), variables={"request": cel.Type.DYN, "object": cel.Type.DYN},
                         extensions=[ext_strings.ExtStrings()])


def holds(expression: str, request: dict, obj: dict | None) -> bool:
    result = ENVIRONMENT.compile(expression).eval(data={"request": request, "object": obj})
    assert result.type() == cel.Type.BOOL, result.value()
    return result.value()


def admitted(resource: str, operation: str, name: str, namespace: str = "", labels=None,
             groups=(APP_DEPLOYERS_GROUP,)) -> bool:
    """As the API server decides: a request the match condition selects must pass every validation."""
    request = {"userInfo": {"groups": list(groups)}, "resource": {"resource": resource}, "operation": operation,
               "name": name, "namespace": namespace}
    obj = None if operation == "DELETE" else {"metadata": {"name": name, **({"labels": labels} if labels else {})}}
    if not all(holds(c["expression"], request, obj) for c in SPEC["matchConditions"]):
        return True
    return all(holds(v["expression"], request, obj) for v in SPEC["validations"])


def test_a_deployer_gets_admin_in_app_stacks_namespaces_only_and_the_group():
    [entry] = access_entries((), (), (DEPLOYER,)).values()
    assert entry.kubernetes_groups == [APP_DEPLOYERS_GROUP]
    [association] = entry.access_policies.values()
    assert association.policy_arn == APP_DEPLOYER_POLICY
    assert association.access_scope.type == "namespace" and association.access_scope.namespaces == ["shop-*"]


@pytest.mark.parametrize("name, labels, allowed", [
    ("shop-pr-7", APP_STACK_NAMESPACE_LABELS, True),
    ("shop-pr-7", {}, False),  # the platform's NetworkPolicies trust the label: no unlabelled app namespace
    ("istio-system", APP_STACK_NAMESPACE_LABELS, False),
    ("e-commerce", APP_STACK_NAMESPACE_LABELS, False),
])
def test_a_deployer_creates_only_app_stack_namespaces(name, labels, allowed):
    assert admitted("namespaces", "CREATE", name, labels=labels) is allowed


@pytest.mark.parametrize("name, allowed", [("shop-pr-7", True), ("istio-system", False), ("kube-system", False)])
def test_a_deployer_deletes_only_app_stack_namespaces(name, allowed):
    assert admitted("namespaces", "DELETE", name) is allowed


@pytest.mark.parametrize("namespace, allowed", [("shop-pr-7", True), ("istio-system", False), ("e-commerce", False)])
def test_a_deployer_writes_istio_objects_only_in_app_stack_namespaces(namespace, allowed):
    for resource in ("authorizationpolicies", "gateways", "virtualservices"):
        assert admitted(resource, "CREATE", "x", namespace) is allowed


def test_other_identities_are_not_confined():
    assert admitted("namespaces", "DELETE", "istio-system", groups=("system:masters",))


def test_the_policy_matches_every_resource_the_group_may_write():
    matched = {r for rule in SPEC["matchConstraints"]["resourceRules"] for r in rule["resources"]}
    granted = {r for rule in cluster_role_rules() for r in rule["resources"]
               if set(rule["verbs"]) & {"create", "update", "patch", "delete"}}
    assert granted <= matched


def test_a_platform_grants_it_through_a_setting(render_variant):
    platform = render_variant(sets=(f'appDeployerArns=["{DEPLOYER}"]',))
    entries = platform.one("eks:index:Cluster")["inputs"]["accessEntries"]
    assert [e["kubernetesGroups"] for e in entries.values()] == [[APP_DEPLOYERS_GROUP]]
    binding = platform.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    enforced = platform.one("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding")
    assert platform.depends_on(binding, enforced["urn"])
    assert enforced["inputs"]["spec"]["validationActions"] == ["Deny"]


def test_without_the_setting_nothing_is_granted(render):
    assert not render.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")


def base_config(**overrides: str) -> dict[str, str]:
    config = {"aws:region": "us-east-1", "eks-istio-shop:owner": "team",
              "eks-istio-shop:endpointPublicAccessCidrs": '["203.0.113.0/24"]'}
    config.update({f"eks-istio-shop:{k}": v for k, v in overrides.items()})
    return config


def test_an_app_stack_cannot_grant_access():
    with pytest.raises(SettingsError) as error:
        load_settings("pr-1", base_config(stackKind="app", platformStack="dev", domain="example.com",
                                          appDeployerArns=f'["{DEPLOYER}"]'))
    assert "eks-istio-shop:appDeployerArns" in str(error.value) and "no value on an app stack" in str(error.value)


def test_a_deployer_is_not_also_an_admin():
    with pytest.raises(SettingsError) as error:
        load_settings("dev", base_config(clusterAdminArns=f'["{DEPLOYER}"]', appDeployerArns=f'["{DEPLOYER}"]'))
    assert "eks-istio-shop:appDeployerArns" in str(error.value)
