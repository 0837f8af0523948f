"""Critical paths of `pulumi up` and `pulumi destroy` from the render's dependency graph (a model, not a
timing): a platform stack against an app stack on it.

    python bench/graph_bench.py [--platform dev] [--app pr-example]

Each resource of the offline render takes the typical time of its type (DURATIONS, the one table of them)
once everything it waits for is done: its dependencies, its inputs' resources, its provider. The longest
chain from zero is the critical path of `up`; `destroy` runs the same graph backwards (a resource goes after
everything that depends on it). Image builds are left out (they depend on the machine and the cache), so
the figures are what the stack itself takes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import Render, load_render, provider_urn  # noqa: E402

# Typical seconds to create and to delete one resource of each type, from AWS's and the providers'
# documented waits (EKS control plane ~10 min; a managed node group's nodes joining; an NLB becoming
# active; Route 53 changes reaching INSYNC; Helm releases and Deployments awaited until ready). A type
# not listed takes DEFAULT_DURATION; components and providers take no time of their own.
DURATIONS: dict[str, tuple[int, int]] = {
    "eks:index:Cluster": (600, 300),
    "eks:index:ManagedNodeGroup": (240, 300),
    "aws:eks/addon:Addon": (60, 30),
    "aws:ec2/vpc:Vpc": (5, 5),
    "aws:ec2/subnet:Subnet": (5, 5),
    "aws:ec2/internetGateway:InternetGateway": (5, 10),
    "aws:ec2/eip:Eip": (2, 2),
    "aws:ec2/natGateway:NatGateway": (120, 60),
    "aws:ec2/routeTable:RouteTable": (3, 3),
    "aws:ec2/route:Route": (3, 3),
    "aws:ec2/launchTemplate:LaunchTemplate": (2, 2),
    "aws:kms/key:Key": (5, 5),
    "aws:lb/loadBalancer:LoadBalancer": (180, 30),
    "aws:lb/targetGroup:TargetGroup": (3, 3),
    "aws:lb/listener:Listener": (3, 3),
    "aws:acm/certificate:Certificate": (5, 3),
    "aws:acm/certificateValidation:CertificateValidation": (60, 0),
    "aws:route53/record:Record": (45, 45),
    "aws:ecr/repository:Repository": (2, 2),
    "aws:iam/role:Role": (3, 3),
    "kubernetes:helm.sh/v3:Release": (60, 30),
    "kubernetes:apps/v1:Deployment": (60, 30),
    "kubernetes:core/v1:Namespace": (2, 20),
    "kubernetes:core/v1:Service": (3, 3),
    "pulumi:pulumi:StackReference": (1, 0),
    "docker-build:index:Image": (0, 0),  # left out: builds depend on the machine and its cache
}
DEFAULT_DURATION = (2, 2)
# Types whose presence on a path means it waits on the environment itself.
ENVIRONMENT_TYPES = ("eks:index:", "aws:eks/", "aws:ec2/", "aws:lb/")


@dataclass(frozen=True)
class Step:
    urn: str
    type: str
    name: str
    seconds: int


def seconds_of(resource: Mapping, destroy: bool) -> int:
    if resource["type"].startswith("pulumi:providers:"):
        return 0
    if not resource["custom"] and resource["type"] not in DURATIONS:
        return 0  # a component of this program: its children are the steps
    return DURATIONS.get(resource["type"], DEFAULT_DURATION)[1 if destroy else 0]


def waits_for(render: Render) -> dict[str, set[str]]:
    """URN -> the URNs it waits for: dependencies, inputs' resources, its provider (a component stands for
    every resource under it)."""
    children: dict[str, list[str]] = {}
    for resource in render.resources:
        if resource["parent"]:
            children.setdefault(resource["parent"], []).append(resource["urn"])

    def expand(urn: str) -> set[str]:
        found = {urn}
        for child in children.get(urn, []):
            found |= expand(child)
        return found

    known = {r["urn"] for r in render.resources}
    graph: dict[str, set[str]] = {}
    for resource in render.resources:
        direct = set(resource["dependencies"])
        for urns in resource["propertyDependencies"].values():
            direct |= set(urns)
        if resource["provider"]:
            direct.add(provider_urn(resource["provider"]))
        graph[resource["urn"]] = {u for d in direct for u in expand(d) if u in known and u != resource["urn"]}
    return graph


def critical_path(render: Render, destroy: bool = False) -> list[Step]:
    """The longest chain of steps, first to last."""
    graph = waits_for(render)
    if destroy:  # a resource is deleted once everything that waits for it is gone
        reversed_graph: dict[str, set[str]] = {urn: set() for urn in graph}
        for urn, before in graph.items():
            for other in before:
                reversed_graph[other].add(urn)
        graph = reversed_graph
    by_urn = {r["urn"]: r for r in render.resources}
    finish: dict[str, tuple[int, Optional[str]]] = {}

    def finish_of(urn: str) -> int:
        if urn not in finish:
            previous = max(graph[urn], key=finish_of, default=None)
            start = finish_of(previous) if previous else 0
            finish[urn] = (start + seconds_of(by_urn[urn], destroy), previous)
        return finish[urn][0]

    last = max(graph, key=finish_of, default=None)
    path: list[Step] = []
    while last:
        resource = by_urn[last]
        path.append(Step(last, resource["type"], resource["name"], seconds_of(resource, destroy)))
        last = finish[last][1]
    return [step for step in reversed(path) if step.seconds]


def total(path: Iterable[Step]) -> int:
    return sum(step.seconds for step in path)


def on_environment(path: Iterable[Step]) -> list[Step]:
    return [step for step in path if step.type.startswith(ENVIRONMENT_TYPES)]


def minutes(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60:02d} s"


def render(stack: str, out: Path, platform_outputs: Optional[Path] = None, platform: str = "") -> Render:
    command = [sys.executable, "-m", "tools.render", stack, "--out", str(out)]
    if platform_outputs:
        command += ["--platform-outputs", f"{platform}={platform_outputs}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"render of {stack} failed:\n{result.stderr}")
    return load_render(out)


def report(kind: str, stack: str, rendered: Render) -> None:
    for destroy in (False, True):
        path = critical_path(rendered, destroy)
        action = "destroy" if destroy else "up"
        print(f"{kind} stack '{stack}', {action}: critical path {minutes(total(path))} "
              f"({len(path)} steps; EKS/VPC steps on it: {len(on_environment(path)) or 'none'})")
        for step in path:
            print(f"    {step.seconds:>4} s  {step.type}  {step.name}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", default="dev", help="the platform stack (Pulumi.<stack>.yaml)")
    parser.add_argument("--app", default="pr-example", help="an app stack on it (Pulumi.<stack>.yaml)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as scratch:
        platform = render(args.platform, Path(scratch) / "platform")
        app = render(args.app, Path(scratch) / "app", platform.directory / "outputs.json", args.platform)
    report("platform", args.platform, platform)
    report("app", args.app, app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
