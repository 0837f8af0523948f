"""The eks-istio-shop guardrails: CrossGuard policies grouped by what they guard.

- ``nodes``: node groups (instance types, private subnets, IMDSv2)
- ``cluster``: the EKS control plane (secrets encryption, logs, the public endpoint)
- ``workloads``: containers (resources, probes, security context, pinned images)
- ``mesh``: Istio (VirtualService routes, STRICT mTLS, AuthorizationPolicies)
- ``isolation``: NetworkPolicies (a default deny in every namespace once the VPC CNI enforces them)
- ``edge``: how traffic reaches the stack (no LoadBalancer Services, the NLB's TLS, Route 53 aliases)
- ``tags``: AWS tags
- ``routes``: the HTTP route rules (timeouts, retry safety) as plain functions, for the pack and the
  program's components alike
- ``values``, ``graph``, ``checks``: reading values that may be unknown, following the stack graph,
  and turning a function that lists problems into a policy

Each domain module lists its policies in ``POLICIES``; ``policy/__main__.py`` assembles them into the
pack. Nothing here constructs a ``PolicyPack`` (its constructor serves gRPC and never returns), so
tests call each policy's ``validate`` directly.

This file imports nothing, and ``routes`` and ``values`` need no pulumi-policy: the program's tests
hold the components' routes to the retry rule in an environment that has only the program's
requirements and the test tools.
"""

PROJECT = "eks-istio-shop"
PACK_NAME = "eks-istio-shop-guardrails"
