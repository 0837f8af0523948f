"""bench/graph_bench.py: the critical path model, and what it says of the two kinds of stack."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.support import ROOT, Render

spec = importlib.util.spec_from_file_location("graph_bench", ROOT / "bench" / "graph_bench.py")
graph_bench = sys.modules.setdefault("graph_bench", importlib.util.module_from_spec(spec))
spec.loader.exec_module(graph_bench)


def resource(urn: str, typ: str, dependencies=(), parent=None, custom=True, provider=None) -> dict:
    return {"urn": urn, "type": typ, "name": urn, "custom": custom, "parent": parent, "provider": provider,
            "dependencies": list(dependencies), "propertyDependencies": {}}


def test_the_longest_chain_wins_and_a_component_stands_for_its_children():
    vpc, cluster = "aws:ec2/vpc:Vpc", "eks:index:Cluster"
    resources = [
        resource("component", "eks-istio-shop:network:Network", custom=False),
        resource("vpc", vpc, parent="component"),
        resource("cluster", cluster, dependencies=["component"]),
        resource("record", "aws:route53/record:Record"),
        resource("provider", "pulumi:providers:kubernetes", dependencies=["cluster"]),
        resource("deployment", "kubernetes:apps/v1:Deployment", provider="provider::id"),
    ]
    render = Render(Path("."), resources, {}, {})
    path = graph_bench.critical_path(render)
    assert [step.urn for step in path] == ["vpc", "cluster", "deployment"]
    assert graph_bench.total(path) == sum(graph_bench.DURATIONS[t][0] for t in (vpc, cluster, "kubernetes:apps/v1:Deployment"))
    destroy = graph_bench.critical_path(render, destroy=True)
    assert [step.urn for step in destroy] == ["deployment", "cluster", "vpc"]


def test_an_app_stack_is_up_within_two_and_a_half_minutes_and_destroys_off_the_environment(render, render_variant):
    app = render_variant("pr-example")
    up, down = graph_bench.critical_path(app), graph_bench.critical_path(app, destroy=True)
    assert graph_bench.total(up) <= 150
    assert graph_bench.on_environment(up) == [] and graph_bench.on_environment(down) == []
    platform = graph_bench.critical_path(render)
    assert "eks:index:Cluster" in [step.type for step in platform]
    assert graph_bench.total(platform) > 10 * graph_bench.total(up)
