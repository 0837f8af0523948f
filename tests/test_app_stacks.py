"""Platform and app stacks (issue 22): an app stack reads its platform through a stack reference and adds only
its shop; two app stacks on one platform cannot route each other's hosts or reach each other's workloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest

from components.certificate import validation_names
from components.platform import PLATFORM_OUTPUTS
from settings import SettingsError, load_settings
from tests.support import ROOT, Render, failed_render, run_render

APP = "pr-example"
APP_FILE = ROOT / f"Pulumi.{APP}.yaml"
MASK = "[secret]"
# Everything an environment has that an app stack must not create: network, cluster, mesh, edge.
PLATFORM_ONLY_TYPES = ("aws:ec2/vpc:Vpc", "aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip", "eks:index:Cluster",
                       "eks:index:ManagedNodeGroup", "kubernetes:helm.sh/v3:Release", "aws:lb/loadBalancer:LoadBalancer",
                       "aws:acm/certificate:Certificate", "pulumi:providers:eks")


def app_config(**overrides: str) -> dict[str, str]:
    config = {"aws:region": "us-east-1", "eks-istio-shop:owner": "team",
              "eks-istio-shop:endpointPublicAccessCidrs": '["203.0.113.0/24"]',
              "eks-istio-shop:stackKind": "app", "eks-istio-shop:platformStack": "dev",
              "eks-istio-shop:domain": "example.com"}
    config.update({f"eks-istio-shop:{k}": v for k, v in overrides.items()})
    return config


@pytest.fixture(scope="module")
def platform(render) -> Render:
    return render


@pytest.fixture(scope="module")
def platform_outputs(platform) -> str:
    return f"dev={platform.directory / 'outputs.json'}"


def render_app(out: Path, platform_outputs: str, stack_name: Optional[str] = None) -> Render:
    """The example app stack; under `stack_name`, the same settings as another pull request's stack."""
    return run_render(out, APP, platform_outputs=[platform_outputs], stack_name=stack_name)


@pytest.fixture(scope="module")
def app(render_variant) -> Render:
    """The example app stack on the dev render (the same render as render_variant(APP))."""
    return render_variant(APP)


@pytest.fixture(scope="module")
def two_apps(tmp_path_factory, platform_outputs) -> tuple[Render, Render]:
    return (render_app(tmp_path_factory.mktemp("pr-1"), platform_outputs, "pr-1"),
            render_app(tmp_path_factory.mktemp("pr-2"), platform_outputs, "pr-2"))


def kubernetes_objects(render: Render, kind: str) -> list[dict]:
    return [d for d in render.manifests.values() if d.get("kind") == kind]


# ---------------------------------------------------------------------------------------------
# Outcome 1: one program, two kinds


def test_the_platform_exports_what_app_stacks_read(platform):
    assert set(PLATFORM_OUTPUTS) <= set(platform.outputs)
    assert platform.outputs["kubeconfig"] == MASK
    assert platform.outputs["ingressGateway"] == {
        "labels": {"istio": "ingressgateway"}, "namespace": "istio-ingress",
        "principal": "cluster.local/ns/istio-ingress/sa/istio-ingressgateway"}
    assert platform.outputs["domain"] == "lukemilo.com"


def test_an_app_stack_creates_only_its_shop(app):
    types = {r["type"] for r in app.resources}
    assert not types & set(PLATFORM_ONLY_TYPES), types & set(PLATFORM_ONLY_TYPES)
    [reference] = app.of_type("pulumi:pulumi:StackReference")
    assert reference["inputs"]["name"] == "dev"
    namespaces = kubernetes_objects(app, "Namespace")
    assert [n["metadata"]["name"] for n in namespaces] == [f"shop-{APP}"]
    assert {d["metadata"].get("namespace") for d in app.manifests.values()} == {None, f"shop-{APP}"}
    assert app.outputs["url"] == f"https://{APP}.lukemilo.com"


def test_the_app_stack_reaches_the_cluster_with_the_platforms_secret_kubeconfig(app):
    [provider] = app.of_type("pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == MASK
    namespace = app.one("kubernetes:core/v1:Namespace")
    assert namespace["provider"].startswith(provider["urn"])


def test_the_alias_record_points_at_the_platforms_load_balancer_in_the_platforms_zone(app, platform):
    record = app.one("aws:route53/record:Record")["inputs"]
    assert record["name"] == f"{APP}.lukemilo.com"
    assert record["zoneId"] == platform.outputs["hostedZoneId"]
    assert record["aliases"][0]["name"] == platform.outputs["loadBalancerDnsName"]
    assert record["aliases"][0]["zoneId"] == platform.outputs["loadBalancerZoneId"]


def test_the_gateway_identity_comes_from_the_platforms_outputs(tmp_path, platform):
    outputs = dict(platform.outputs)
    outputs["ingressGateway"] = {"labels": {"istio": "edge"}, "namespace": "edge",
                                 "principal": "cluster.local/ns/edge/sa/edge-gateway"}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    app = render_app(tmp_path / "render", f"dev={tmp_path / 'outputs.json'}")
    [gateway] = kubernetes_objects(app, "Gateway")
    assert gateway["spec"]["selector"] == {"istio": "edge"}
    graphql = next(p for p in kubernetes_objects(app, "AuthorizationPolicy") if p["metadata"]["name"] == "graphql")
    assert graphql["spec"]["rules"][0]["from"][0]["source"]["principals"] == ["cluster.local/ns/edge/sa/edge-gateway"]
    policy = next(p for p in kubernetes_objects(app, "NetworkPolicy") if p["metadata"]["name"] == "graphql")
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}},
            "podSelector": {"matchLabels": {"istio": "edge"}}} in sources


# ---------------------------------------------------------------------------------------------
# Outcome 6: bad settings and a bad platform are refused by name


def test_an_app_stack_without_a_platform_is_refused():
    with pytest.raises(SettingsError) as error:
        load_settings(APP, app_config(platformStack=""))
    assert "eks-istio-shop:platformStack: not set" in str(error.value)


def test_an_app_stack_without_a_domain_is_refused():
    with pytest.raises(SettingsError) as error:
        load_settings(APP, app_config(domain=""))
    assert "eks-istio-shop:domain: not set" in str(error.value)


@pytest.mark.parametrize("hostname", ["shop.example.org", "a.b.example.com"])
def test_a_hostname_outside_the_domain_or_its_wildcard_is_refused(hostname):
    with pytest.raises(SettingsError) as error:
        load_settings(APP, app_config(hostname=hostname))
    assert f"eks-istio-shop:hostname: {hostname!r} is not valid" in str(error.value)


def test_a_platform_stack_naming_a_platform_is_refused():
    config = {**app_config(), "eks-istio-shop:stackKind": "platform"}
    with pytest.raises(SettingsError) as error:
        load_settings("dev", config)
    assert "eks-istio-shop:platformStack: 'dev' is not valid" in str(error.value)


def test_an_app_stack_name_that_is_no_namespace_name_is_refused():
    with pytest.raises(SettingsError) as error:
        load_settings("PR_1", app_config())
    assert "stack name 'PR_1'" in str(error.value)


def test_a_platform_stack_that_does_not_exist_is_refused(tmp_path, platform):
    message = failed_render(tmp_path, APP, platform_outputs=[f"staging={platform.directory / 'outputs.json'}"])
    assert "platform stack 'dev' does not exist" in message


@pytest.mark.parametrize("missing", ["ingressGateway", "kubeconfig", "hostedZoneId"])
def test_a_platform_stack_without_an_output_is_refused_with_its_name(tmp_path, platform, missing):
    outputs = {k: v for k, v in platform.outputs.items() if k != missing}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    message = failed_render(tmp_path / "render", APP, platform_outputs=[f"dev={tmp_path / 'outputs.json'}"])
    assert f"platform stack 'dev' has no output '{missing}'" in message


def test_an_app_stack_in_another_domain_than_its_platform_is_refused(tmp_path, platform_outputs):
    message = failed_render(tmp_path, APP, sets=["domain=example.com"], platform_outputs=[platform_outputs])
    assert "eks-istio-shop:domain: 'example.com' is not valid; expected the domain of platform stack 'dev'" in message


# ---------------------------------------------------------------------------------------------
# Outcome 2: sharing the edge safely


def test_the_platform_certificate_covers_every_app_stack_host(platform):
    certificate = platform.one("aws:acm/certificate:Certificate")["inputs"]
    assert certificate["domainName"] == "lukemilo.com"
    assert certificate["subjectAlternativeNames"] == ["*.lukemilo.com"]
    # The apex and its wildcard share one validation record.
    assert len(platform.of_type("aws:route53/record:Record")) == 2  # the validation record and the alias


def test_a_wildcard_is_validated_by_its_base_names_record():
    assert validation_names(["example.com", "*.example.com"]) == ["example.com"]
    assert validation_names(["staging.example.com", "*.example.com"]) == ["staging.example.com", "example.com"]


def test_a_platform_under_another_hostname_validates_both_names(render_variant):
    platform = render_variant(sets=("hostname=staging.lukemilo.com",))
    records = [r["inputs"]["name"] for r in platform.of_type("aws:route53/record:Record")]
    assert "_mock.staging.lukemilo.com." in records and "_mock.lukemilo.com." in records
    validation = platform.one("aws:acm/certificateValidation:CertificateValidation")
    assert len(validation["inputs"]["validationRecordFqdns"]) == 2


def test_two_app_stacks_serve_only_their_own_hosts(two_apps):
    hosts = []
    for stack, app in zip(("pr-1", "pr-2"), two_apps):
        host = f"{stack}.lukemilo.com"
        [gateway] = kubernetes_objects(app, "Gateway")
        assert {h for server in gateway["spec"]["servers"] for h in server["hosts"]} == {host}
        public = [v for v in kubernetes_objects(app, "VirtualService") if v["spec"].get("gateways")]
        assert [v["spec"]["hosts"] for v in public] == [[host]]
        assert public[0]["spec"]["gateways"] == [f"shop-{stack}/shop"]
        assert app.one("aws:route53/record:Record")["inputs"]["name"] == host
        hosts.append(host)
    assert hosts[0] != hosts[1]


def test_two_app_stacks_own_nothing_in_common(two_apps):
    first, second = two_apps
    for kind in ("aws:route53/record:Record", "aws:ecr/repository:Repository"):
        assert not {r["inputs"]["name"] for r in first.of_type(kind)} & {r["inputs"]["name"] for r in second.of_type(kind)}
    keys = [{(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in app.manifests.values()}
            for app in two_apps]
    assert not keys[0] & keys[1]


@pytest.mark.parametrize("index", [0, 1])
def test_an_app_stacks_workloads_admit_nothing_from_the_other(two_apps, index):
    """L7 and L3/L4: each namespace denies by default, and what it allows names only its own workloads,
    the platform's gateway, istiod, DNS and the nodes; the other app stack's namespace appears nowhere."""
    app, other = two_apps[index], f"shop-pr-{2 - index}"
    own = f"shop-pr-{index + 1}"
    text = json.dumps(app.manifests)
    assert other not in text
    policies = kubernetes_objects(app, "AuthorizationPolicy")
    assert any(p["metadata"]["name"] == "allow-nothing" and p["spec"] == {} for p in policies)
    principals = {p for policy in policies for rule in policy["spec"].get("rules", [])
                  for source in rule.get("from", []) for p in source["source"]["principals"]}
    assert principals == {f"cluster.local/ns/{own}/sa/graphql", "cluster.local/ns/istio-ingress/sa/istio-ingressgateway"}
    network = kubernetes_objects(app, "NetworkPolicy")
    assert any(p["metadata"]["name"] == "default-deny" and p["spec"]["podSelector"] == {} for p in network)
    allowed_namespaces = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                          for policy in network for direction in ("ingress", "egress")
                          for rule in policy["spec"].get(direction, []) for peer in rule.get("from", rule.get("to", []))
                          if "namespaceSelector" in peer}
    assert allowed_namespaces == {own, "istio-ingress", "istio-system", "kube-system"}
    for sidecar in kubernetes_objects(app, "Sidecar"):
        assert all(h == "~/*" or h.startswith("./") for h in sidecar["spec"]["egress"][0]["hosts"])


def test_the_platform_lets_its_gateway_and_istiod_serve_app_stack_namespaces_only(platform, app):
    """An app stack's pods need the platform's istiod, and its gateway needs their graphql; both are allowed
    by the app stacks' namespace label, which the app stack's namespace carries."""
    label = {"eks-istio-shop/stack-kind": "app"}
    [namespace] = kubernetes_objects(app, "Namespace")
    assert label.items() <= namespace["metadata"]["labels"].items()
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in kubernetes_objects(platform, "NetworkPolicy")}
    gateway_egress = [peer for rule in policies[("istio-ingress", "ingress-gateway")]["spec"]["egress"]
                      for peer in rule["to"] if peer.get("namespaceSelector", {}).get("matchLabels") == label]
    assert gateway_egress == [{"namespaceSelector": {"matchLabels": label}, "podSelector": {"matchLabels": {"app": "graphql"}}}]
    istiod_ingress = [(peer, rule["ports"]) for rule in policies[("istio-system", "istiod")]["spec"]["ingress"]
                      for peer in rule["from"] if peer.get("namespaceSelector", {}).get("matchLabels") == label]
    assert istiod_ingress == [({"namespaceSelector": {"matchLabels": label}, "podSelector": {"matchLabels": {}}},
                               [{"protocol": "TCP", "port": 15012}])]


def test_the_example_app_stack_file_is_an_app_stack_on_dev():
    settings = load_settings(APP, {**app_config(domain="lukemilo.com")})
    assert settings.kind == "app" and settings.platform_stack == "dev" and settings.app_namespace == f"shop-{APP}"
    assert APP_FILE.is_file()
