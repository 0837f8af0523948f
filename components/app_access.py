"""A platform's grant to app stacks' deployers: what they need beyond their EKS access policy, and only in
app stacks' namespaces.

Their access entries (components/cluster.py) associate AmazonEKSAdminPolicy scoped to the namespaces
`shop-*`: the workloads, Services, NetworkPolicies and RoleBindings there. That policy has no cluster-scoped
objects and no custom resources, so an app stack could neither create its namespace nor its Gateway,
routes and AuthorizationPolicies. Kubernetes RBAC cannot limit a grant to names with a prefix, so the group
gets those verbs in a ClusterRole and a ValidatingAdmissionPolicy refuses every such request of the group
outside `shop-*` (and a namespace without the app stacks' label, which the platform's NetworkPolicies
trust). The policy is GA from Kubernetes 1.30; the cluster's versions are later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from settings import APP_NAMESPACE_PREFIX, APP_STACK_NAMESPACE_LABELS

# The Istio objects an app stack declares (components/shop.py, microservice.py, isolation.py).
ISTIO_RESOURCES = {
    "networking.istio.io": ("gateways", "virtualservices", "destinationrules", "sidecars"),
    "security.istio.io": ("authorizationpolicies",),
}
WRITE_VERBS = ("create", "update", "patch", "delete")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True)
class AppStackAccessArgs:
    # The Kubernetes group the deployers' access entries carry (the cluster's `app_deployers_group`).
    group: str
    # App stacks' namespaces are named <prefix><stack>.
    namespace_prefix: str = APP_NAMESPACE_PREFIX
    # Labels every app stack's namespace carries.
    namespace_labels: Mapping[str, str] = field(default_factory=lambda: dict(APP_STACK_NAMESPACE_LABELS))


def cluster_role_rules() -> list[dict[str, Any]]:
    return [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": [*READ_VERBS, *WRITE_VERBS]},
        *[{"apiGroups": [group], "resources": list(resources), "verbs": [*READ_VERBS, *WRITE_VERBS]}
          for group, resources in ISTIO_RESOURCES.items()],
    ]


def admission_policy_spec(args: AppStackAccessArgs) -> dict[str, Any]:
    """Requests of the group that write namespaces or Istio objects: only in `<prefix>*`, and a namespace
    only with the app stacks' labels."""
    prefix = args.namespace_prefix
    labels = " && ".join(f"'{key}' in object.metadata.labels && object.metadata.labels['{key}'] == '{value}'"
                         for key, value in sorted(args.namespace_labels.items()))
    operations = ["CREATE", "UPDATE", "DELETE"]
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": operations, "resources": ["namespaces"]},
            *[{"apiGroups": [group], "apiVersions": ["*"], "operations": operations, "resources": list(resources)}
              for group, resources in ISTIO_RESOURCES.items()],
        ]},
        "matchConditions": [{"name": "app-stack-deployers",
                             "expression": f"'{args.group}' in request.userInfo.groups"}],
        "validations": [
            {"expression": f"request.resource.resource != 'namespaces' || request.name.startsWith('{prefix}')",
             "message": f"app stacks' deployers manage only namespaces named {prefix}*"},
            {"expression": f"request.resource.resource == 'namespaces' || request.namespace.startsWith('{prefix}')",
             "message": f"app stacks' deployers manage Istio objects only in namespaces named {prefix}*"},
            {"expression": f"request.resource.resource != 'namespaces' || request.operation == 'DELETE' || "
                           f"(has(object.metadata.labels) && {labels})",
             "message": "an app stack's namespace carries the labels " + ", ".join(
                 f"{k}={v}" for k, v in sorted(args.namespace_labels.items()))},
        ],
    }


class AppStackAccess(pulumi.ComponentResource):
    """The Kubernetes provider comes through `opts` (`providers=[...]`)."""

    policy_name: pulumi.Output[str]

    def __init__(self, name: str, args: AppStackAccessArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:app_access:AppStackAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-policy", metadata={"name": "eks-istio-shop-app-deployer-namespaces"},
            spec=admission_policy_spec(args), opts=child)
        enforced = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-policy-binding", metadata={"name": "eks-istio-shop-app-deployer-namespaces"},
            spec={"policyName": policy.metadata.name, "validationActions": ["Deny"]}, opts=child)
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-role", metadata={"name": "eks-istio-shop-app-deployer"}, rules=cluster_role_rules(), opts=child)
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-binding", metadata={"name": "eks-istio-shop-app-deployer"},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata.name},
            subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": args.group}],
            # Granted only once the policy that confines it is enforced (no data says so); on destroy it
            # goes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[enforced]))
        self.policy_name = policy.metadata.name
        self.register_outputs({"policyName": self.policy_name})
