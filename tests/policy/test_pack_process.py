"""The pack as the Pulumi CLI runs it: `python -m pulumi.policy <engine> .` in policy/, spoken to over gRPC.

The CLI is not available offline; this drives the same entry point and the same Analyzer service the
engine calls, with requests built from the render, so what passes here is what a preview would see.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy.eks_istio_shop import PACK_NAME
from tests.policy.engine import add_resource, broken, engine_value, of_type, pack_policies
from tests.support import ROOT

MANDATORY = analyzer_pb2.MANDATORY
ADVISORY = analyzer_pb2.ADVISORY


def _struct(value: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(engine_value(value), struct_pb2.Struct())


def _options(record: dict) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(parent=record["parent"] or "")


@pytest.fixture(scope="module")
def analyzer(dev_config):
    env = {**os.environ, "PULUMI_CONFIG": json.dumps(dev_config), "PULUMI_PROJECT": "eks-istio-shop",
           "PULUMI_STACK": "dev", "PULUMI_DRY_RUN": "true"}
    process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
                               cwd=ROOT / "policy", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        try:
            port = int(lines.get(timeout=60).strip())
        except (queue.Empty, ValueError):
            process.kill()
            pytest.fail(f"the policy pack did not start:\n{process.stderr.read()}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.kill()
        process.wait(timeout=30)


def analyze(stub, records: list[dict]) -> list:
    diagnostics = []
    for record in records:
        response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
            type=record["type"], properties=_struct(record["inputs"]), urn=record["urn"], name=record["name"],
            options=_options(record)), timeout=60)
        diagnostics += list(response.diagnostics)
    response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(
            type=r["type"], properties=_struct(r["inputs"]), urn=r["urn"], name=r["name"], options=_options(r),
            parent=r["parent"] or "", dependencies=r["dependencies"],
            propertyDependencies={k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v)
                                  for k, v in r["propertyDependencies"].items()})
        for r in records]), timeout=60)
    return diagnostics + list(response.diagnostics)


def test_pack_declares_every_policy_of_every_domain_module_once(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
    assert info.name == PACK_NAME
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in pack_policies())
    declared = {p.name: p.enforcementLevel for p in info.policies}
    assert {name: level == ADVISORY for name, level in declared.items()} == \
        {p.name: p.enforcement_level.value == "advisory" for p in pack_policies()}


def test_dev_stack_has_only_the_advisory_open_endpoint(analyzer, graph):
    diagnostics = analyze(analyzer, graph)
    mandatory = [d.message for d in diagnostics if d.enforcementLevel == MANDATORY]
    assert mandatory == []
    assert [d.policyName for d in diagnostics if d.enforcementLevel == ADVISORY] == ["eks-public-endpoint-open-by-setting"]


def test_mandatory_violation_reaches_the_engine(analyzer, graph):
    bad = broken(graph, of_type("aws:ec2/launchTemplate:LaunchTemplate"),
                 lambda r: r["inputs"]["metadataOptions"].update(httpTokens="optional"))
    bad = broken(bad, of_type("aws:ec2/vpc:Vpc"), lambda r: r["inputs"]["tags"].pop("stack"))
    # A child of pulumi-eks's Cluster that the stack transform did not tag.
    cluster = next(r for r in bad if r["type"] == "eks:index:Cluster")
    add_resource(bad, "aws:iam/role:Role", "shop-cluster-eks-eksRole", {"assumeRolePolicy": "{}"},
                 parent=cluster["urn"])
    found = {(d.policyName, d.enforcementLevel) for d in analyze(analyzer, bad)}
    # The engine stops a preview or an update on a MANDATORY finding.
    assert {("node-group-imdsv2", MANDATORY), ("aws-resources-tagged", MANDATORY),
            ("aws-eks-children-tagged", MANDATORY)} <= found
