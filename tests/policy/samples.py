"""Compliant examples of what the mesh and the application add to the stack, in the render's shape.

Until those components land on main, the policies that guard them are tested on these; once the
render has the same object (same kind, namespace and name; for AWS resources, the same type), the real
one is used and the sample is left out.
"""

from __future__ import annotations

import copy

from tests.policy.engine import add_resource

APP_LABELS = {"app": "orders"}


def _deployment() -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "orders", "namespace": "e-commerce", "labels": APP_LABELS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": APP_LABELS},
            "template": {
                "metadata": {"labels": {**APP_LABELS, "version": "v1"}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    # Istio's sidecar gets its own projected token; the app needs no API access.
                    "automountServiceAccountToken": False,
                    "containers": [{
                        "name": "orders",
                        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders@sha256:" + "a" * 64,
                        "ports": [{"containerPort": 8000, "name": "http"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }


SAMPLES: dict[str, tuple[str, dict]] = {
    "kubernetes:helm.sh/v3:Release": ("istio-istiod", {
        "chart": "istiod", "name": "istiod", "namespace": "istio-system", "version": "1.30.5",
        "repositoryOpts": {"repo": "https://istio-release.storage.googleapis.com/charts"},
        "values": {"resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}},
    }),
    "kubernetes:security.istio.io/v1:PeerAuthentication": ("mesh-mtls", {
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }),
    "kubernetes:core/v1:Namespace": ("e-commerce-ns", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "e-commerce", "labels": {"istio-injection": "enabled"}},
    }),
    "kubernetes:apps/v1:Deployment": ("orders", _deployment()),
    "kubernetes:core/v1:Service": ("orders-svc", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "orders", "namespace": "e-commerce"},
        "spec": {"selector": APP_LABELS, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }),
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": ("orders-netpol", {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "orders", "namespace": "e-commerce"},
        "spec": {"podSelector": {"matchLabels": APP_LABELS}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "graphql"}}}]}]},
    }),
    "kubernetes:networking.istio.io/v1:VirtualService": ("orders-vs", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "orders", "namespace": "e-commerce"},
        "spec": {"hosts": ["orders"], "http": [{
            "name": "orders", "timeout": "10s",
            "retries": {"attempts": 2, "perTryTimeout": "3s", "retryOn": "connect-failure,refused-stream"},
            "route": [{"destination": {"host": "orders", "port": {"number": 80}}}],
        }]},
    }),
    "kubernetes:security.istio.io/v1:AuthorizationPolicy": ("orders-authz", {
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "orders", "namespace": "e-commerce"},
        "spec": {"selector": {"matchLabels": APP_LABELS}, "action": "ALLOW",
                 "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/e-commerce/sa/graphql"]}}]}]},
    }),
    "aws:lb/listener:Listener": ("shop-ingress-https", {
        "loadBalancerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/shop/1",
        "port": 443, "protocol": "TLS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "certificateArn": "[unknown]",
        "defaultActions": [{"type": "forward", "targetGroupArn": "[unknown]"}],
        "tags": {"project": "eks-istio-shop", "stack": "dev", "owner": "platform-team"},
    }),
    "aws:route53/record:Record": ("shop-dns", {
        "zoneId": "Z0MOCKZONE000000000000", "name": "lukemilo.com", "type": "A",
        "aliases": [{"name": "[unknown]", "zoneId": "[unknown]", "evaluateTargetHealth": True}],
    }),
}


def sample_manifests() -> dict[str, dict]:
    """The samples as tools.render writes them: file name -> Kubernetes object or Helm release summary."""
    files = {}
    for typ, (name, inputs) in SAMPLES.items():
        if typ.startswith("kubernetes:helm.sh/"):
            files[f"{inputs['name']}.release.yaml"] = {
                "release": inputs["name"], "chart": inputs["chart"], "repository": inputs["repositoryOpts"]["repo"],
                "version": inputs["version"], "namespace": inputs["namespace"], "values": inputs["values"]}
        elif typ.startswith("kubernetes:"):
            files[f"{name}.yaml"] = copy.deepcopy(inputs)
    return files


def _identity(typ: str, inputs: dict) -> tuple:
    """Kubernetes objects are the same object when kind, namespace and name match; others by type."""
    if typ.startswith("kubernetes:") and not typ.startswith("kubernetes:helm.sh/"):
        metadata = inputs.get("metadata") or {}
        return typ, metadata.get("namespace"), metadata.get("name")
    return (typ,)


def with_samples(records: list[dict]) -> list[dict]:
    """The render plus a compliant sample of every guarded object it does not have yet."""
    result = copy.deepcopy(records)
    present = {_identity(r["type"], r["inputs"]) for r in records}
    istio_present = any(r["type"].startswith("kubernetes:helm.sh/") or ".istio.io/" in r["type"] for r in records)
    for typ, (name, inputs) in SAMPLES.items():
        if _identity(typ, inputs) in present:
            continue
        if istio_present and typ in ("kubernetes:helm.sh/v3:Release",
                                     "kubernetes:security.istio.io/v1:PeerAuthentication"):
            continue  # the mesh is real: its own releases and mTLS policy are what counts
        add_resource(result, typ, name, copy.deepcopy(inputs))
    # An ACM validation record is a CNAME by necessity; the alias rule must leave it alone.
    if not any(r["type"] == "aws:route53/record:Record" and r["inputs"].get("type") == "CNAME" for r in records):
        add_resource(result, "aws:route53/record:Record", "shop-cert-validation", {
            "zoneId": "Z0MOCKZONE000000000000", "name": "_mock.lukemilo.com.", "type": "CNAME",
            "records": ["_mock.acm-validations.aws."], "ttl": 60})
    return result
