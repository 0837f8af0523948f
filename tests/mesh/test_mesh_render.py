"""Istio, the ingress load balancer, the certificate and DNS as the dev stack renders them."""

import kubernetes_validate
import pytest

from components import mesh as mesh_module
from policy.eks_istio_shop import edge as edge_policies
from tests.support import provider_urn
from tools import istio_schema
from tools.render import load_stack_config, mock_state

RELEASE = "kubernetes:helm.sh/v3:Release"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
RECORD = "aws:route53/record:Record"
NODE_GROUP = "eks:index:ManagedNodeGroup"
EKS_CLUSTER = "eks:index:Cluster"


def releases(render) -> dict[str, dict]:
    return {r["inputs"]["chart"] if r["inputs"]["chart"] != "gateway" else r["inputs"]["name"]: r
            for r in render.of_type(RELEASE)}


def dev_config() -> dict:
    return load_stack_config("dev")


# ---- Helm releases ---------------------------------------------------------------------------------


def test_releases_install_in_order_base_istiod_gateways(render):
    by_chart = releases(render)
    base, istiod = by_chart["base"], by_chart["istiod"]
    ingress, egress = by_chart[mesh_module.INGRESS_RELEASE], by_chart[mesh_module.EGRESS_RELEASE]
    assert base["urn"] in istiod["dependencies"]
    for gateway in (ingress, egress):
        assert istiod["urn"] in gateway["dependencies"]
        assert render.depends_on(gateway, base["urn"])
    assert not render.depends_on(base, istiod["urn"])


def test_releases_come_from_istio_at_the_configured_version(render, render_variant):
    for release in render.of_type(RELEASE):
        inputs = release["inputs"]
        assert inputs["repositoryOpts"] == {"repo": mesh_module.ISTIO_CHART_REPOSITORY}
        assert inputs["version"] == dev_config()["eks-istio-shop:istioVersion"]
    other = render_variant(sets=("istioVersion=1.30.2",))
    assert {r["inputs"]["version"] for r in other.of_type(RELEASE)} == {"1.30.2"}


def test_releases_wait_long_enough_and_clean_up_failed_installs(render):
    for release in render.of_type(RELEASE):
        inputs = release["inputs"]
        assert inputs["timeout"] >= 600, release["name"]
        assert inputs.get("skipAwait") in (None, False), release["name"]
        assert inputs["atomic"] is True, release["name"]


def test_release_values_use_only_keys_the_charts_define(render):
    for name, document in render.manifests.items():
        if name.endswith(".release.yaml"):
            errors = istio_schema.check_helm_values(
                document["chart"], document["values"],
                kubernetes_version=str(dev_config().get("eks-istio-shop:kubernetesVersion", "1.35")))
            assert errors == [], (name, errors)


def test_ingress_gateway_pods_are_labelled_for_the_gateway_resource(render):
    values = releases(render)[mesh_module.INGRESS_RELEASE]["inputs"]["values"]
    assert values["labels"]["istio"] == "ingressgateway"
    assert values["replicaCount"] >= 2 and values["podDisruptionBudget"] == {"minAvailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def test_no_service_of_type_load_balancer_anywhere(render):
    for release in render.of_type(RELEASE):
        values = release["inputs"]["values"]
        if release["inputs"]["chart"] == "gateway":
            # The gateway chart's default Service type is LoadBalancer: it must be overridden.
            assert values.get("service", {}).get("type") in ("NodePort", "ClusterIP"), release["name"]
    for name, document in render.manifests.items():
        if document.get("kind") == "Service":
            assert document.get("spec", {}).get("type") != "LoadBalancer", name


# ---- Istio resources and namespaces --------------------------------------------------------------------


def test_istio_resources_pass_istios_schemas_strictly(render):
    istio_objects = [r for r in render.resources if ".istio.io/" in r["type"]]
    assert istio_objects, "expected the mesh policy objects"
    for resource in istio_objects:
        assert istio_schema.validate_istio_object(resource["inputs"]) == [], resource["name"]


def test_mesh_wide_mtls_is_strict_and_waits_for_istiod(render):
    [peer] = render.of_type("kubernetes:security.istio.io/v1:PeerAuthentication")
    assert peer["inputs"]["metadata"]["namespace"] == mesh_module.ISTIO_NAMESPACE
    assert peer["inputs"]["spec"] == {"mtls": {"mode": "STRICT"}}
    assert releases(render)["istiod"]["urn"] in peer["dependencies"]


def test_mesh_config_in_the_render_is_registry_only_with_access_logs(render):
    config = releases(render)["istiod"]["inputs"]["values"]["meshConfig"]
    assert config["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"
    assert config["accessLogFile"] == "/dev/stdout"


def test_namespaces_are_explicit_valid_objects_and_releases_use_them(render):
    namespaces = {r["inputs"]["metadata"]["name"]: r for r in render.of_type("kubernetes:core/v1:Namespace")}
    assert {mesh_module.ISTIO_NAMESPACE, mesh_module.INGRESS_NAMESPACE, mesh_module.EGRESS_NAMESPACE} <= set(namespaces)
    for namespace in namespaces.values():
        kubernetes_validate.validate(namespace["inputs"], "1.35", strict=True)
    for release in render.of_type(RELEASE):
        assert release["inputs"].get("createNamespace") in (None, False)
        assert release["propertyDependencies"]["namespace"] == [namespaces[release["inputs"]["namespace"]]["urn"]]


def test_kubernetes_objects_use_the_cluster_provider_and_go_before_the_node_group(render):
    [provider] = render.of_type("pulumi:providers:kubernetes")
    [node_group] = render.of_type(NODE_GROUP)
    [eks] = render.of_type(EKS_CLUSTER)
    kubernetes_objects = [r for r in render.resources if r["type"].startswith("kubernetes:") and r["custom"]]
    assert kubernetes_objects
    for resource in kubernetes_objects:
        assert resource["provider"] and provider_urn(resource["provider"]) == provider["urn"], resource["name"]
        # Destroy runs dependencies in reverse: these go while the nodes still run their finalizers.
        assert render.depends_on(resource, node_group["urn"]), resource["name"]
        assert render.depends_on(resource, eks["urn"]), resource["name"]


# ---- Load balancer ---------------------------------------------------------------------------------------


def gateway_node_ports(render) -> dict[int, int]:
    """Gateway target port -> node port, as the ingress gateway release declares them."""
    ports = releases(render)[mesh_module.INGRESS_RELEASE]["inputs"]["values"]["service"]["ports"]
    return {p["targetPort"]: p["nodePort"] for p in ports}


def test_node_ports_agree_across_service_target_groups_health_checks_and_security_groups(render):
    node_ports = gateway_node_ports(render)
    config = dev_config()
    assert node_ports[mesh_module.INGRESS_SERVING_PORT.number] == int(config.get(
        "eks-istio-shop:ingressHttpsNodePort", 30443))
    status_node_port = node_ports[mesh_module.GATEWAY_STATUS_PORT]

    target_groups = render.of_type(TARGET_GROUP)
    assert {tg["inputs"]["port"] for tg in target_groups} == {
        node_ports[mesh_module.INGRESS_SERVING_PORT.number], node_ports[mesh_module.INGRESS_REDIRECT_PORT.number]}
    for tg in target_groups:
        assert tg["inputs"]["targetType"] == "instance" and tg["inputs"]["protocol"] == "TCP"
        check = tg["inputs"]["healthCheck"]
        assert (check["protocol"], check["port"], check["path"]) == ("HTTP", str(status_node_port), "/healthz/ready")

    [nlb_sg] = [r for r in render.of_type("aws:ec2/securityGroup:SecurityGroup") if r["name"].endswith("-nlb-sg")]
    node_rules = [r for r in render.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                  if r["propertyDependencies"].get("referencedSecurityGroupId") == [nlb_sg["urn"]]]
    assert sorted(r["inputs"]["fromPort"] for r in node_rules) == sorted(node_ports.values())
    for rule in node_rules:
        assert rule["inputs"]["fromPort"] == rule["inputs"]["toPort"]
        assert rule["inputs"]["securityGroupId"] == render.outputs["nodeSecurityGroupId"]
        assert "cidrIpv4" not in rule["inputs"] and "cidrIpv6" not in rule["inputs"]


def test_changed_node_ports_flow_everywhere(render_variant):
    other = render_variant(sets=("ingressHttpNodePort=31080", "ingressHttpsNodePort=31443",
                                 "ingressStatusNodePort=31021"))
    node_ports = gateway_node_ports(other)
    assert sorted(node_ports.values()) == [31021, 31080, 31443]
    assert {tg["inputs"]["port"] for tg in other.of_type(TARGET_GROUP)} == {31080, 31443}
    assert {tg["inputs"]["healthCheck"]["port"] for tg in other.of_type(TARGET_GROUP)} == {"31021"}


def test_load_balancer_is_internet_facing_in_every_public_subnet_with_its_own_security_group(render):
    [nlb] = render.of_type(LOAD_BALANCER)
    inputs = nlb["inputs"]
    assert inputs["loadBalancerType"] == "network" and inputs["internal"] is False
    public_subnets = {r["urn"] for r in render.of_type("aws:ec2/subnet:Subnet") if "public" in r["name"]}
    assert set(nlb["propertyDependencies"]["subnets"]) == public_subnets
    [nlb_sg] = [r for r in render.of_type("aws:ec2/securityGroup:SecurityGroup") if r["name"].endswith("-nlb-sg")]
    assert nlb["propertyDependencies"]["securityGroups"] == [nlb_sg["urn"]]
    assert inputs.get("enableDeletionProtection") in (None, False)


def test_listeners_forward_to_the_right_target_groups(render):
    node_ports = gateway_node_ports(render)
    groups_by_arn = {tg["urn"]: tg for tg in render.of_type(TARGET_GROUP)}
    listeners = {l["inputs"]["port"]: l for l in render.of_type(LISTENER)}
    assert set(listeners) == {80, 443}
    forwarded = {}
    for port, listener in listeners.items():
        [target_urn] = listener["propertyDependencies"]["defaultActions"]
        forwarded[port] = groups_by_arn[target_urn]["inputs"]["port"]
    assert forwarded[443] == node_ports[mesh_module.INGRESS_SERVING_PORT.number]
    assert forwarded[80] == node_ports[mesh_module.INGRESS_REDIRECT_PORT.number]


def test_tls_listener_uses_the_validated_certificate_and_a_tls13_policy(render):
    https = next(l for l in render.of_type(LISTENER) if l["inputs"]["port"] == 443)
    [validation] = render.of_type("aws:acm/certificateValidation:CertificateValidation")
    assert https["inputs"]["protocol"] == "TLS"
    assert https["propertyDependencies"]["certificateArn"] == [validation["urn"]]
    # The policy pack's own rule judges the rendered policy: one of the ELB policies that negotiate TLS 1.3
    # and accept nothing below TLS 1.2 (the render's "[unknown]" is no such policy, so it cannot slip by).
    assert https["inputs"]["sslPolicy"]
    assert edge_policies.listener_tls_problems(LISTENER, https["inputs"]) == []


def test_certificate_is_for_the_hostname_and_validated_in_the_same_zone(render):
    [certificate] = render.of_type("aws:acm/certificate:Certificate")
    assert certificate["inputs"]["domainName"] == render.outputs["hostname"]
    assert certificate["inputs"]["validationMethod"] == "DNS"
    records = {r["name"]: r for r in render.of_type(RECORD)}
    validation_record = next(r for r in records.values() if r["inputs"]["type"] == "CNAME")
    alias = next(r for r in records.values() if r["inputs"]["type"] == "A")
    assert validation_record["propertyDependencies"]["name"] == [certificate["urn"]]
    assert validation_record["inputs"]["zoneId"] == alias["inputs"]["zoneId"]
    [validation] = render.of_type("aws:acm/certificateValidation:CertificateValidation")
    assert validation["propertyDependencies"]["validationRecordFqdns"] == [validation_record["urn"]]


def test_alias_record_targets_the_load_balancer(render):
    [nlb] = render.of_type(LOAD_BALANCER)
    alias = next(r for r in render.of_type(RECORD) if r["inputs"]["type"] == "A")
    assert alias["propertyDependencies"]["aliases"] == [nlb["urn"]]
    [target] = alias["inputs"]["aliases"]
    nlb_state = mock_state(LOAD_BALANCER, nlb["name"], nlb["inputs"], "us-east-1")
    assert target["name"] == nlb_state["dnsName"] == render.outputs["loadBalancerDnsName"]
    # The load balancer's canonical zone, not the domain's hosted zone.
    assert target["zoneId"] == nlb_state["zoneId"] != alias["inputs"]["zoneId"]
    assert target["evaluateTargetHealth"] is True
    assert alias["inputs"]["name"] == render.outputs["hostname"]


def test_dev_serves_the_domain_itself_over_https(render):
    domain = dev_config()["eks-istio-shop:domain"]
    assert render.outputs["hostname"] == domain
    assert render.outputs["url"] == f"https://{domain}"
    assert render.outputs["loadBalancerDnsName"].endswith(".elb.us-east-1.amazonaws.com")


def test_hostname_override_reaches_certificate_record_and_url(render_variant):
    other = render_variant(sets=("hostname=shop.lukemilo.com",))
    [certificate] = other.of_type("aws:acm/certificate:Certificate")
    alias = next(r for r in other.of_type(RECORD) if r["inputs"]["type"] == "A")
    assert certificate["inputs"]["domainName"] == alias["inputs"]["name"] == "shop.lukemilo.com"
    assert other.outputs["url"] == "https://shop.lukemilo.com"


def test_given_hosted_zone_id_is_used_for_every_record(render_variant):
    other = render_variant(sets=("hostedZoneId=Z0123456789GIVENZONE",))
    assert {r["inputs"]["zoneId"] for r in other.of_type(RECORD)} == {"Z0123456789GIVENZONE"}


def test_without_a_domain_the_stack_serves_plain_http_on_the_load_balancer_name(render_variant):
    plain = render_variant(unsets=("domain",))
    assert not plain.of_type("aws:acm/certificate:Certificate")
    assert not plain.of_type("aws:acm/certificateValidation:CertificateValidation")
    assert not plain.of_type(RECORD)
    [listener] = plain.of_type(LISTENER)
    assert (listener["inputs"]["port"], listener["inputs"]["protocol"]) == (80, "TCP")
    assert "certificateArn" not in listener["inputs"] and "sslPolicy" not in listener["inputs"]
    [target_group] = plain.of_type(TARGET_GROUP)
    assert target_group["inputs"]["port"] == gateway_node_ports(plain)[mesh_module.INGRESS_SERVING_PORT.number]
    dns_name = plain.outputs["loadBalancerDnsName"]
    assert plain.outputs["url"] == f"http://{dns_name}" and plain.outputs["hostname"] == dns_name
    # The node ports of the unused redirect listener stay closed.
    node_rules = [r["inputs"]["fromPort"] for r in plain.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                  if "node-in" in r["name"]]
    assert sorted(node_rules) == sorted([target_group["inputs"]["port"],
                                         gateway_node_ports(plain)[mesh_module.GATEWAY_STATUS_PORT]])


# ---- Destroy order -----------------------------------------------------------------------------------


def test_destroy_order_is_carried_by_the_graph(render):
    [nlb] = render.of_type(LOAD_BALANCER)
    [node_group] = render.of_type(NODE_GROUP)
    [eks] = render.of_type(EKS_CLUSTER)
    alias = next(r for r in render.of_type(RECORD) if r["inputs"]["type"] == "A")
    assert render.depends_on(alias, nlb["urn"])
    for attachment in render.of_type("aws:autoscaling/attachment:Attachment"):
        assert node_group["urn"] in attachment["propertyDependencies"]["autoscalingGroupName"]
    for rule in render.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        if "node-in" in rule["name"]:
            assert eks["urn"] in rule["propertyDependencies"]["securityGroupId"]


@pytest.mark.parametrize("option", ["deletedWith", "retainOnDelete"])
def test_nothing_skips_its_delete(render, option):
    for resource in render.resources:
        assert not resource["options"].get(option), (resource["name"], option)


def test_every_new_resource_sits_in_its_component(render):
    expected_parents = {
        "eks-istio-shop:mesh:Mesh": ("kubernetes:",),
        "eks-istio-shop:ingress:Ingress": ("aws:lb/", "aws:autoscaling/", "aws:vpc/", "aws:ec2/securityGroup:"),
        "eks-istio-shop:certificate:Certificate": ("aws:acm/", "aws:route53/"),
        "eks-istio-shop:dns:DnsRecord": ("aws:route53/",),
    }
    components = {r["urn"]: r["type"] for r in render.resources if r["type"] in expected_parents}
    assert set(components.values()) == set(expected_parents)
    for resource in render.resources:
        if resource["parent"] in components:
            prefixes = expected_parents[components[resource["parent"]]]
            assert resource["type"].startswith(prefixes), resource["name"]
