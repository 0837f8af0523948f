"""Who can reach whom, computed by network-config-analyzer from the rendered objects, per layer.

The Helm charts' pods (istiod, the gateways) and CoreDNS are not in the render; `CHART_WORKLOADS`
describes them as the charts create them (labels, service accounts). Addresses outside the pod network
are represented by one address each: `vpc` (nodes, so kubelet and the load balancer through kube-proxy,
and the EKS control plane's interfaces), `kubernetes-service` (the API server's Service address) and
`internet`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Iterable, Optional

import yaml

ROOT = Path(__file__).resolve().parents[2]
NCA_VENV = ROOT / ".venv-nca"

# name -> (namespace, pod labels, service account), as the charts (and EKS, for CoreDNS) create them.
CHART_WORKLOADS = {
    "istiod": ("istio-system", {"app": "istiod", "istio": "pilot"}, "istiod"),
    "ingress-gateway": ("istio-ingress", {"app": "istio-ingressgateway", "istio": "ingressgateway"},
                        "istio-ingressgateway"),
    "egress-gateway": ("istio-egress", {"app": "istio-egressgateway", "istio": "egressgateway"},
                       "istio-egressgateway"),
    "coredns": ("kube-system", {"k8s-app": "kube-dns"}, "coredns"),
}
ADDRESSES = {"vpc": "10.0.7.9", "kubernetes-service": "172.20.0.1", "internet": "198.51.100.7"}
# Every port a pod of the stack listens on that a peer may be let in on, and DNS.
PORTS = ("53/UDP", "53/TCP", "443/TCP", "8080/TCP", "8081/TCP", "15012/TCP", "15017/TCP", "15020/TCP",
         "15021/TCP")


def find_nca() -> Optional[str]:
    for candidate in (os.environ.get("NCA"), str(NCA_VENV / "bin" / "nca")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def workload_objects(manifests: Iterable[dict]) -> list[dict]:
    """Namespaces and Deployments: the render's own, and the chart workloads described."""
    objects = [m for m in manifests if m.get("kind") == "Deployment"]
    namespaces = {m["metadata"]["name"] for m in manifests if m.get("kind") == "Namespace"} | {"kube-system"}
    objects += [{"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}} for n in sorted(namespaces)]
    for name, (namespace, labels, account) in CHART_WORKLOADS.items():
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                        "spec": {"selector": {"matchLabels": labels}, "template": {
                            "metadata": {"labels": labels},
                            "spec": {"serviceAccountName": account, "containers": [{"name": name, "image": "x"}]}}}})
    return objects


def run_nca(nca: str, directory: Path, policies: list[dict], workloads: list[dict]) -> list[dict]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policies.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": policies}))
    (directory / "workloads.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": workloads}))
    result = subprocess.run([nca, "--connectivity", "policies.yaml", "--pod_list", "workloads.yaml", "--ns_list",
                             "workloads.yaml", "-o", "json", "--output_endpoints", "deployments"],
                            cwd=directory, capture_output=True, text=True, timeout=300)
    start = result.stdout.find("[")
    if result.returncode not in (0, 1) or start < 0:
        raise AssertionError(f"nca failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout[start:result.stdout.rindex("]") + 1])


def _selected(expression: str, labels: dict) -> bool:
    if expression == "*":
        return True
    for term in re.split(r",\s*(?![^()]*\))", expression):
        term = term.strip()
        if match := re.fullmatch(r"([\w./-]+)\s+(in|not in)\s+\(([^)]*)\)", term):
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
        else:
            raise ValueError(f"unparsed nca pod selector {expression!r}")
    return True


def _endpoints(rule: dict, side: str, workloads: dict[str, tuple[str, dict]]) -> set[str]:
    blocks = rule.get(f"{side}_ip_block")
    if blocks is not None:
        networks = [ipaddress.ip_network(b, strict=False) for b in blocks]
        return {name for name, address in ADDRESSES.items()
                if any(ipaddress.ip_address(address) in n for n in networks)}
    namespaces, pods = set(rule[f"{side}_ns"]), rule[f"{side}_pods"]
    return {name for name, (namespace, labels) in workloads.items()
            if namespace in namespaces and any(_selected(p, labels) for p in pods)}


def _ports(connection: list, protocols_default: str) -> set[str]:
    found = set()
    for item in connection:
        if item == "All connections":
            found |= {p for p in PORTS if p.split("/")[1] in protocols_default}
            continue
        protocols = [p.strip() for p in str(item.get("protocols", protocols_default)).split(",")]
        numbers = set()
        for port in item.get("dst_ports", []) or []:
            low, _, high = str(port).partition("-")
            numbers |= set(range(int(low), int(high or low) + 1))
        if not item.get("dst_ports"):
            numbers = {int(p.split("/")[0]) for p in PORTS}
        found |= {p for p in PORTS if int(p.split("/")[0]) in numbers and p.split("/")[1] in protocols}
    return found


def flows(report: list[dict], workloads: dict[str, tuple[str, dict]]) -> set[tuple[str, str, str]]:
    """(source, destination, port) for every allowed connection nca reports, on the ports in PORTS."""
    result = set()
    for explanation in report[0]["explanation"]:
        for key, default in (("rules", "TCP, UDP"), ("TCP_rules", "TCP"), ("non-TCP_rules", "UDP")):
            for rule in explanation.get(key, []):
                for source in _endpoints(rule, "src", workloads):
                    for destination in _endpoints(rule, "dst", workloads):
                        result |= {(source, destination, port) for port in _ports(rule["connection"], default)}
    return result
