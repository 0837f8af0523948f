"""Each policy passes on the dev stack and fires on a deliberately broken copy of what it guards."""

from __future__ import annotations

import copy

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from policy.eks_istio_shop import cluster, edge, mesh, nodes, tags, workloads
from pulumi_policy.policy import _NotApplicableError

from tests.policy.engine import (add_resource, broken, domain_modules, messages, not_applicable, of_type,
                                 pack_policies, resource_args, stack_args, stack_config, violations)
from tests.support import ROOT
from tools.render import available_stacks, engine_config, load_stack_config

MNG = "eks:index:ManagedNodeGroup"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
CLUSTER = "eks:index:Cluster"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
VS = "kubernetes:networking.istio.io/v1:VirtualService"
POLICIES = pack_policies()
MANDATORY = [p for p in POLICIES if p.enforcement_level == EnforcementLevel.MANDATORY]


def fired(policy, records, **kwargs) -> str:
    found = violations(policy, records, **kwargs)
    assert found, f"{policy.name} did not fire"
    return messages(found)


def quiet(policy, records, **kwargs) -> None:
    found = violations(policy, records, **kwargs)
    assert not found, f"{policy.name} fired:\n{messages(found)}"


# ---------------------------------------------------------------------------------------------
# The pack as a whole


def test_policy_names_are_unique_across_domains():
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)), "the engine tells policies apart by name"


def test_every_policy_a_domain_module_defines_is_in_its_policies_list():
    """A policy left out of its module's POLICIES would never reach the pack, and never run."""
    for module in domain_modules():
        defined = [v for v in vars(module).values() if isinstance(v, (ResourceValidationPolicy, StackValidationPolicy))]
        assert {id(p) for p in defined} == {id(p) for p in module.POLICIES}, module.__name__


@pytest.mark.parametrize("stack", available_stacks())
def test_every_mandatory_policy_passes_on_each_stack(stack, render_variant):
    records = render_variant(stack).resources
    with stack_config(engine_config(load_stack_config(stack))[0]):
        for policy in MANDATORY:
            quiet(policy, records)


def test_every_mandatory_policy_passes_with_what_mesh_and_app_add(graph, dev_config):
    with stack_config(dev_config):
        for policy in MANDATORY:
            quiet(policy, graph)
            quiet(policy, graph, components_as_outputs=True)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _paths(sub, prefix + (key,))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _paths(sub, prefix + (index,))


def _set_unknown(record, path):
    target = record["inputs"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "[unknown]"


def test_unknown_values_never_add_a_violation_or_crash(graph, dev_config):
    """Any input, or any part of one, may be unknown during a preview: a policy then reports less, never more."""
    resource_policies = [p for p in POLICIES if isinstance(p, ResourceValidationPolicy)]
    stack_policies = [p for p in POLICIES if isinstance(p, StackValidationPolicy)]

    def stack_violations(policy, args):
        found = []
        try:
            policy.validate(args, lambda message, urn=None: found.append((urn, message)))
        except _NotApplicableError:
            pass
        return set(found)

    with stack_config(dev_config):
        args = stack_args(graph)
        baseline = {p.name: stack_violations(p, args) for p in stack_policies}
        baseline.update({p.name: set(violations(p, graph)) for p in resource_policies})
        checked = 0
        for record, resource in zip(graph, args.resources):
            original_props = resource.props
            for path in list(_paths(record["inputs"]))[1:]:
                mutated = copy.deepcopy(record)
                _set_unknown(mutated, path)
                where = f"{record['name']} with {'.'.join(map(str, path))} unknown"
                for policy in resource_policies:
                    found = set(violations(policy, [mutated]))
                    allowed = {v for v in baseline[policy.name] if v[0] == record["urn"]}
                    assert found <= allowed, f"{policy.name} fired on {where}: {found - allowed}"
                resource.props = resource_args(mutated).props
                for policy in stack_policies:
                    found = stack_violations(policy, args)
                    assert found <= baseline[policy.name], f"{policy.name} fired on {where}: {found - baseline[policy.name]}"
                resource.props = original_props
                checked += 1
    assert checked > 200


# ---------------------------------------------------------------------------------------------
# Node groups


def test_instance_type_outside_the_list_fires(graph):
    bad = broken(graph, of_type(MNG), lambda r: r["inputs"].update(instanceTypes=["p5.48xlarge"]))
    assert "p5.48xlarge" in fired(nodes.node_group_instance_types, bad)


def test_instance_types_of_pulumi_eks_children_and_default_node_group_are_checked(graph):
    records = copy.deepcopy(graph)
    add_resource(records, "aws:eks/nodeGroup:NodeGroup", "shop-cluster-nodes",
                 {"instanceTypes": ["x2iedn.32xlarge"], "subnetIds": []})
    assert "x2iedn.32xlarge" in fired(nodes.node_group_instance_types, records)
    default_group = broken(graph, of_type(CLUSTER), lambda r: r["inputs"].pop("skipDefaultNodeGroup"))
    assert "t2.medium" in fired(nodes.node_group_instance_types, default_group)


def test_allowed_instance_types_come_from_policy_config(graph):
    config = {"allowedInstanceTypes": ["m7g.large"]}
    assert "t3.medium" in fired(nodes.node_group_instance_types, graph, config=config)


def _public_subnets(records):
    return [r["urn"] for r in records if r["type"] == "aws:ec2/subnet:Subnet" and "-public-" in r["name"]]


def test_node_group_in_public_subnets_fires(graph):
    def to_public(record):
        record["propertyDependencies"]["subnetIds"] = _public_subnets(graph)
    bad = broken(graph, of_type(MNG), to_public)
    assert "public" in fired(nodes.node_group_private_subnets, bad)
    # The engine shows a component's outputs, not its inputs; its property dependencies still tell.
    assert fired(nodes.node_group_private_subnets, bad, components_as_outputs=True)


def test_subnet_that_assigns_public_addresses_is_public(graph):
    bad = broken(graph, lambda r: r["type"] == "aws:ec2/subnet:Subnet" and "-private-" in r["name"],
                 lambda r: r["inputs"].update(mapPublicIpOnLaunch=True))
    assert "mapPublicIpOnLaunch" in fired(nodes.node_group_private_subnets, bad)


def test_subnet_routed_to_internet_gateway_is_public_even_untagged(graph):
    def untag(record):
        record["inputs"]["tags"].pop("kubernetes.io/role/elb", None)
    records = broken(graph, lambda r: r["type"] == "aws:ec2/subnet:Subnet" and "-public-" in r["name"], untag)
    records = broken(records, of_type(MNG),
                     lambda r: r["propertyDependencies"].update(subnetIds=_public_subnets(records)))
    assert "internet gateway" in fired(nodes.node_group_private_subnets, records)


def test_node_group_child_is_matched_to_its_public_subnet_by_id(graph):
    records = copy.deepcopy(graph)
    public = next(r for r in records if r["type"] == "aws:ec2/subnet:Subnet" and "-public-" in r["name"])
    public["inputs"]["id"] = "subnet-public0"  # outputs carry the id once it is known
    add_resource(records, "aws:eks/nodeGroup:NodeGroup", "shop-cluster-nodes-child",
                 {"subnetIds": ["subnet-public0"], "instanceTypes": ["t3.medium"]})
    assert "shop-cluster-nodes-child" in fired(nodes.node_group_private_subnets, records)


def test_launch_template_without_imdsv2_fires(graph):
    bad = broken(graph, of_type(LT), lambda r: r["inputs"]["metadataOptions"].update(httpTokens="optional"))
    assert "httpTokens" in fired(nodes.node_group_imdsv2, bad)
    hops = broken(graph, of_type(LT), lambda r: r["inputs"]["metadataOptions"].update(httpPutResponseHopLimit=2))
    assert "hop" in fired(nodes.node_group_imdsv2, hops).lower()


def test_node_group_without_launch_template_fires(graph):
    def drop(record):
        record["inputs"].pop("launchTemplate")
        record["propertyDependencies"].pop("launchTemplate")
    bad = broken(graph, of_type(MNG), drop)
    assert "launch template" in fired(nodes.node_group_imdsv2, bad)
    records = copy.deepcopy(graph)
    add_resource(records, "aws:eks/nodeGroup:NodeGroup", "child-without-template", {"instanceTypes": ["t3.medium"]})
    assert "child-without-template" in fired(nodes.node_group_imdsv2, records)
    # Seen through its outputs, the component cannot tell; its child is what the engine shows then.
    quiet(nodes.node_group_imdsv2, bad, components_as_outputs=True)


def test_node_group_child_with_a_template_not_created_yet_cannot_tell(graph):
    records = copy.deepcopy(graph)
    add_resource(records, "aws:eks/nodeGroup:NodeGroup", "child-new-template",
                 {"launchTemplate": {"id": "[unknown]", "version": "[unknown]"}, "instanceTypes": ["t3.medium"]})
    quiet(nodes.node_group_imdsv2, records)
    records[-1]["inputs"]["launchTemplate"] = {"id": "lt-0123456789abcdef0", "version": "1"}
    assert "child-new-template" in fired(nodes.node_group_imdsv2, records)
    template = next(r for r in records if r["type"] == LT)
    template["inputs"]["id"] = "lt-0123456789abcdef0"
    quiet(nodes.node_group_imdsv2, records)


# ---------------------------------------------------------------------------------------------
# The cluster


def test_cluster_without_kms_key_fires(graph):
    bad = broken(graph, of_type(CLUSTER), lambda r: r["inputs"].pop("encryptionConfigKeyArn"))
    assert "encryptionConfigKeyArn" in fired(cluster.eks_secrets_encryption, bad)
    records = copy.deepcopy(graph)
    add_resource(records, "aws:eks/cluster:Cluster", "alpha-dev",
                 {"encryptionConfig": {"provider": {"keyArn": "arn:aws:kms:x"}, "resources": ["configmaps"]}})
    assert "secrets" in fired(cluster.eks_secrets_encryption, records)


def test_cluster_missing_audit_logs_fires(graph):
    bad = broken(graph, of_type(CLUSTER), lambda r: r["inputs"].update(enabledClusterLogTypes=["api"]))
    found = fired(cluster.eks_control_plane_logs, bad)
    assert "audit" in found and "authenticator" in found


def test_open_endpoint_is_mandatory_without_the_setting(graph):
    with stack_config({"eks-istio-shop:endpointPublicAccessFromAnywhere": "false"}):
        assert "0.0.0.0/0" in fired(cluster.eks_endpoint_restricted, graph)
        quiet(cluster.eks_endpoint_open_by_setting, graph)
    with stack_config({}):
        assert fired(cluster.eks_endpoint_restricted, graph)


def test_open_endpoint_moves_to_the_advisory_policy_when_the_stack_opts_in(graph):
    with stack_config({"eks-istio-shop:endpointPublicAccessFromAnywhere": "true"}):
        quiet(cluster.eks_endpoint_restricted, graph)
        assert "0.0.0.0/0" in fired(cluster.eks_endpoint_open_by_setting, graph)
    # That this finding only warns (advisory): test_pack_process.py, through the pack's process.


def test_an_unreadable_opt_in_keeps_the_endpoint_rule_mandatory(graph):
    with stack_config({"eks-istio-shop:endpointPublicAccessFromAnywhere": "sure"}):
        assert fired(cluster.eks_endpoint_restricted, graph)
        quiet(cluster.eks_endpoint_open_by_setting, graph)


def test_endpoint_rules_follow_the_cidrs_and_the_aws_child(graph):
    narrow = broken(graph, of_type(CLUSTER), lambda r: r["inputs"].update(publicAccessCidrs=["203.0.113.0/24"]))
    private = broken(graph, of_type(CLUSTER), lambda r: r["inputs"].update(endpointPublicAccess=False))
    defaulted = broken(graph, of_type(CLUSTER), lambda r: r["inputs"].pop("publicAccessCidrs"))
    child = copy.deepcopy(narrow)
    add_resource(child, "aws:eks/cluster:Cluster", "alpha-dev", {"vpcConfig": {"endpointPublicAccess": True}})
    with stack_config({}):
        quiet(cluster.eks_endpoint_restricted, narrow)
        quiet(cluster.eks_endpoint_restricted, private)
        assert "default" in fired(cluster.eks_endpoint_restricted, defaulted)
        assert "alpha-dev" in fired(cluster.eks_endpoint_restricted, child)


# ---------------------------------------------------------------------------------------------
# Services


def _release(records, chart):
    return [r for r in records if r["type"] == "kubernetes:helm.sh/v3:Release" and workloads.chart_name(r["inputs"]) == chart]


def test_a_load_balancer_service_is_refused(graph):
    bad = broken(graph, of_type("kubernetes:core/v1:Service"), lambda r: r["inputs"]["spec"].update(type="LoadBalancer"))
    assert "LoadBalancer" in fired(edge.no_load_balancer_services, bad)


def test_node_port_outside_the_ingress_gateway_fires(graph):
    bad = broken(graph, of_type("kubernetes:core/v1:Service"), lambda r: r["inputs"]["spec"].update(type="NodePort"))
    assert "NodePort" in fired(edge.no_load_balancer_services, bad)


def test_gateway_chart_defaults_to_load_balancer(graph):
    records = copy.deepcopy(graph)
    add_resource(records, "kubernetes:helm.sh/v3:Release", "defaulted-gateway",
                 {"chart": "gateway", "name": "istio-ingressgateway", "namespace": "istio-ingress", "values": {}})
    assert "LoadBalancer" in fired(edge.no_load_balancer_services, records)
    records = copy.deepcopy(graph)
    add_resource(records, "kubernetes:helm.sh/v3:Release", "ingress",
                 {"chart": "gateway", "namespace": "istio-ingress", "values": {"service": {"type": "NodePort"}}})
    add_resource(records, "kubernetes:helm.sh/v3:Release", "egress",
                 {"chart": "gateway", "namespace": "istio-egress", "values": {"service": {"type": "ClusterIP"}}})
    quiet(edge.no_load_balancer_services, records)
    add_resource(records, "kubernetes:helm.sh/v3:Release", "egress-exposed",
                 {"chart": "gateway", "namespace": "istio-egress", "values": {"service": {"type": "NodePort"}}})
    assert "istio-egress" in fired(edge.no_load_balancer_services, records)


def test_the_mesh_gateway_releases_fire_when_asked_for_a_load_balancer(render):
    graph = render.resources
    gateways = _release(graph, "gateway")
    assert len(gateways) == 2, "the mesh installs an ingress and an egress gateway"
    bad = broken(graph, lambda r: r in gateways, lambda r: r["inputs"]["values"].setdefault("service", {}).update(type="LoadBalancer"))
    assert fired(edge.no_load_balancer_services, bad)


# ---------------------------------------------------------------------------------------------
# Containers


def _first_container(record):
    return record["inputs"]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("policy, change, expected", [
    (workloads.container_resources, lambda c: c["resources"]["limits"].pop("memory"), "limits.memory"),
    (workloads.container_resources, lambda c: c.pop("resources"), "requests.cpu"),
    (workloads.container_probes, lambda c: c.pop("livenessProbe"), "livenessProbe"),
    (workloads.container_probes, lambda c: c.pop("readinessProbe"), "readinessProbe"),
    (workloads.container_security, lambda c: c["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
    (workloads.container_security, lambda c: c["securityContext"].update(runAsUser=0), "runAsUser is 0"),
    (workloads.container_security, lambda c: c["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
    (workloads.container_security, lambda c: c["securityContext"].pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
    (workloads.container_images, lambda c: c.update(image="nginx:latest"), ":latest"),
    (workloads.container_images, lambda c: c.update(image="registry.example:5000/shop/orders"), "no tag"),
], ids=lambda v: getattr(v, "name", None) or (v if isinstance(v, str) else ""))
def test_container_rules_fire_on_a_broken_deployment(graph, policy, change, expected):
    bad = broken(graph, of_type(DEPLOYMENT), lambda r: change(_first_container(r)))
    assert expected in fired(policy, bad)


def test_pod_level_non_root_counts_and_init_containers_are_checked(graph):
    def init_container(record):
        spec = record["inputs"]["spec"]["template"]["spec"]
        spec["initContainers"] = [{"name": "migrate", "image": "busybox"}]
    found = fired(workloads.container_images, broken(graph, of_type(DEPLOYMENT), init_container))
    assert "migrate" in found
    def container_root(record):
        spec = record["inputs"]["spec"]["template"]["spec"]
        spec["securityContext"] = {"runAsNonRoot": True}
        _first_container(record)["securityContext"]["runAsNonRoot"] = False
    assert "runAsNonRoot" in fired(workloads.container_security, broken(graph, of_type(DEPLOYMENT), container_root))


# ---------------------------------------------------------------------------------------------
# Istio


def _first_route(record):
    """The first HTTP route that forwards (redirects have no timeout or retries)."""
    return next(route for route in record["inputs"]["spec"]["http"] if "route" in route)


@pytest.mark.parametrize("change, expected", [
    (lambda r: r.pop("timeout"), "no timeout"),
    (lambda r: r.update(timeout="0s"), "not a positive duration"),
    (lambda r: r.pop("retries"), "declares no retries"),
    (lambda r: r.update(match=[{"uri": {"prefix": "/"}}], retries={"attempts": 2, "retryOn": "5xx,connect-failure"}),
     "5xx"),
    (lambda r: r.update(retries={"attempts": 2}), "retryOn is not set"),
    (lambda r: r.update(retries={"attempts": 10, "retryOn": "connect-failure"}), "at most 3"),
    (lambda r: r.update(retries={"attempts": 2, "perTryTimeout": "1m", "retryOn": "connect-failure"}), "perTryTimeout"),
])
def test_virtual_service_route_rules_fire(graph, change, expected):
    bad = broken(graph, of_type(VS), lambda r: change(_first_route(r)))
    assert expected in fired(mesh.virtual_service_routes, bad)


def test_unsafe_retries_are_allowed_for_idempotent_matches_and_retries_off(graph):
    def get_only(route):
        route.update(match=[{"method": {"exact": "GET"}}], retries={"attempts": 2, "retryOn": "5xx,reset"})
    quiet(mesh.virtual_service_routes, broken(graph, of_type(VS), lambda r: get_only(_first_route(r))))
    def reads(route):
        route.update(match=[{"method": {"regex": "^(GET|HEAD)$"}, "uri": {"prefix": "/p"}}],
                     retries={"attempts": 2, "retryOn": "gateway-error,reset"})
    quiet(mesh.virtual_service_routes, broken(graph, of_type(VS), lambda r: reads(_first_route(r))))
    def writes(route):
        reads(route)
        route["match"].append({"method": {"regex": "^(GET|POST)$"}})
    assert "gateway-error" in fired(mesh.virtual_service_routes, broken(graph, of_type(VS), lambda r: writes(_first_route(r))))
    def any_method(route):
        reads(route)
        route["match"][0]["method"] = {"regex": ".*"}
    assert fired(mesh.virtual_service_routes, broken(graph, of_type(VS), lambda r: any_method(_first_route(r))))
    off = broken(graph, of_type(VS), lambda r: _first_route(r).update(retries={"attempts": 0}))
    quiet(mesh.virtual_service_routes, off)


def _without_istio(records):
    """The stack as it was before the mesh: no Helm releases, no Istio resources."""
    return [r for r in copy.deepcopy(records)
            if not r["type"].startswith("kubernetes:helm.sh/") and ".istio.io/" not in r["type"]]


def test_strict_mtls_does_not_apply_without_istio(render):
    assert "no Istio" in not_applicable(mesh.mesh_strict_mtls, _without_istio(render.resources))
    assert violations(mesh.mesh_strict_mtls, _without_istio(render.resources)) == []


def test_strict_mtls_missing_fires_once_istio_is_installed(graph):
    assert not_applicable(mesh.mesh_strict_mtls, graph) is None
    bad = [r for r in copy.deepcopy(graph) if "PeerAuthentication" not in r["type"]]
    assert "STRICT" in fired(mesh.mesh_strict_mtls, bad)
    permissive = broken(graph, of_type("kubernetes:security.istio.io/v1:PeerAuthentication"),
                        lambda r: r["inputs"]["spec"]["mtls"].update(mode="PERMISSIVE"))
    assert "PERMISSIVE" in fired(mesh.mesh_strict_mtls, permissive)
    scoped = broken(graph, of_type("kubernetes:security.istio.io/v1:PeerAuthentication"),
                    lambda r: r["inputs"]["metadata"].update(namespace="e-commerce"))
    assert "no PeerAuthentication" in fired(mesh.mesh_strict_mtls, scoped)


def test_istio_resources_alone_make_strict_mtls_apply(render):
    records = _without_istio(render.resources)
    add_resource(records, "kubernetes:security.istio.io/v1:AuthorizationPolicy", "lonely",
                 {"metadata": {"name": "x", "namespace": "e-commerce"}, "spec": {}})
    assert not_applicable(mesh.mesh_strict_mtls, records) is None
    assert fired(mesh.mesh_strict_mtls, records)


def test_workload_without_authorization_policy_fires(graph):
    bad = [r for r in copy.deepcopy(graph) if "AuthorizationPolicy" not in r["type"]]
    assert "AuthorizationPolicy" in fired(mesh.ecommerce_authorization, bad)
    other = broken(graph, lambda r: "AuthorizationPolicy" in r["type"] and "selector" in r["inputs"]["spec"],
                   lambda r: r["inputs"]["spec"]["selector"].update(matchLabels={"app": "products-nope"}))
    assert "selected by no" in fired(mesh.ecommerce_authorization, other)
    open_rule = broken(graph, of_type("kubernetes:security.istio.io/v1:AuthorizationPolicy"),
                       lambda r: r["inputs"]["spec"].update(rules=[{}]))
    assert "allows every request" in fired(mesh.ecommerce_authorization, open_rule)


def test_workload_namespace_resolved_through_its_namespace_object(graph):
    def unknown_namespace(record):
        record["inputs"]["metadata"]["namespace"] = "[unknown]"
        namespace = next(r["urn"] for r in graph if r["type"] == "kubernetes:core/v1:Namespace"
                         and r["inputs"]["metadata"].get("name") == "e-commerce")
        record["propertyDependencies"]["metadata"] = [namespace]
    records = [r for r in copy.deepcopy(graph) if "AuthorizationPolicy" not in r["type"]]
    records = broken(records, of_type(DEPLOYMENT), unknown_namespace)
    assert fired(mesh.ecommerce_authorization, records)


# ---------------------------------------------------------------------------------------------
# Load balancer, DNS


def test_a_tls_listener_without_a_tls13_policy_is_refused(graph):
    listener = of_type("aws:lb/listener:Listener")
    assert "2016-08" in fired(edge.lb_modern_tls, broken(graph, lambda r: listener(r) and r["inputs"].get("protocol") == "TLS",
                                                          lambda r: r["inputs"].update(sslPolicy="ELBSecurityPolicy-2016-08")))
    assert "TLS13-1-1" in fired(edge.lb_modern_tls, broken(graph, lambda r: listener(r) and r["inputs"].get("protocol") == "TLS",
                                                            lambda r: r["inputs"].update(sslPolicy="ELBSecurityPolicy-TLS13-1-1-2021-06")))
    assert "no sslPolicy" in fired(edge.lb_modern_tls, broken(graph, lambda r: listener(r) and r["inputs"].get("protocol") == "TLS",
                                                               lambda r: r["inputs"].pop("sslPolicy")))


def test_address_records_must_be_aliases_and_cnames_only_for_validation(graph):
    def plain(record):
        record["inputs"].pop("aliases")
        record["inputs"].update(records=["192.0.2.10"], ttl=300)
    bad = broken(graph, lambda r: r["type"] == "aws:route53/record:Record" and r["inputs"].get("type") == "A", plain)
    assert "not an alias" in fired(edge.route53_alias, bad)
    cname = broken(graph, lambda r: r["type"] == "aws:route53/record:Record" and r["inputs"].get("type") == "A",
                   lambda r: r["inputs"].update(type="CNAME", name="shop.lukemilo.com"))
    assert "CNAME" in fired(edge.route53_alias, cname)


# ---------------------------------------------------------------------------------------------
# Tags


def test_missing_or_wrong_tags_fire(graph):
    bad = broken(graph, of_type("aws:ec2/vpc:Vpc"), lambda r: r["inputs"]["tags"].pop("project"))
    assert "project=eks-istio-shop" in fired(tags.aws_tags, bad)
    wrong = broken(graph, of_type("aws:kms/key:Key"), lambda r: r["inputs"]["tags"].update(stack="prod"))
    assert "expected 'dev'" in fired(tags.aws_tags, wrong)
    untagged = broken(graph, of_type(MNG), lambda r: r["inputs"].pop("tags"))
    assert "lacks the tag" in fired(tags.aws_tags, untagged)


def test_launch_template_tags_what_it_launches(graph):
    def untag_volumes(record):
        record["inputs"]["tagSpecifications"] = [s for s in record["inputs"]["tagSpecifications"]
                                                 if s["resourceType"] != "volume"]
    assert "tagSpecifications[volume]" in fired(tags.aws_tags, broken(graph, of_type(LT), untag_volumes))


def test_untaggable_types_need_no_tags(graph):
    routes = [r for r in graph if r["type"] == "aws:ec2/route:Route" and "tags" not in r["inputs"]]
    assert routes, "the dev stack declares routes, which AWS cannot tag"
    quiet(tags.aws_tags, routes)
    untagged_vpc = broken(graph, of_type("aws:ec2/vpc:Vpc"), lambda r: r["inputs"].pop("tags"))
    assert "lacks the tag" in fired(tags.aws_tags, untagged_vpc)


def test_an_untagged_pulumi_eks_child_stops_the_preview(graph):
    """The stack transform tags what pulumi-eks registers too; a child without the tags is a bug."""
    records = copy.deepcopy(graph)
    cluster = next(r for r in records if r["type"] == CLUSTER)
    add_resource(records, "aws:iam/role:Role", "shop-cluster-eks-eksRole", {"assumeRolePolicy": "{}"},
                 parent=cluster["urn"])
    quiet(tags.aws_tags, records)
    assert "shop-cluster-eks-eksRole" in fired(tags.aws_component_children_tags, records)
    # That it stops the preview (a mandatory finding): test_pack_process.py, through the pack's process.


def test_a_pulumi_eks_child_tagged_by_the_stack_transform_passes(graph):
    import tagging
    records = copy.deepcopy(graph)
    cluster = next(r for r in records if r["type"] == CLUSTER)
    stack_tags = {"project": "eks-istio-shop", "stack": "dev", "owner": "platform-team"}
    inputs = tagging.tagged_props("aws:iam/role:Role", {"assumeRolePolicy": "{}"}, stack_tags)
    add_resource(records, "aws:iam/role:Role", "shop-cluster-eks-eksRole", inputs, parent=cluster["urn"])
    quiet(tags.aws_component_children_tags, records)


def test_taggable_type_list_is_regenerated_from_the_pinned_pulumi_aws():
    from tools import aws_taggable
    assert (ROOT / "policy" / "aws_taggable_types.txt").read_text() == aws_taggable.render_file(*aws_taggable.taggable_types())


# ---------------------------------------------------------------------------------------------
# PodDisruptionBudgets, the stack's own and the charts'

PDB = "kubernetes:policy/v1:PodDisruptionBudget"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _release_named(name: str):
    return lambda r: r["type"] == RELEASE and r["inputs"].get("name") == name


@pytest.mark.parametrize("where, change, expected", [
    (of_type(PDB), lambda r: r["inputs"]["spec"].pop("unhealthyPodEvictionPolicy"), "spec.unhealthyPodEvictionPolicy"),
    (of_type(PDB), lambda r: r["inputs"]["spec"].update(unhealthyPodEvictionPolicy="IfHealthyBudget"),
     "'IfHealthyBudget'"),
    (_release_named("istio-ingressgateway"),
     lambda r: r["inputs"]["values"]["podDisruptionBudget"].pop("unhealthyPodEvictionPolicy"),
     "values.podDisruptionBudget.unhealthyPodEvictionPolicy"),
    (_release_named("istiod"), lambda r: r["inputs"]["values"]["pdb"].pop("unhealthyPodEvictionPolicy"),
     "values.pdb.unhealthyPodEvictionPolicy"),
])
def test_pdb_policy_fires_on_budgets_that_block_drains(graph, where, change, expected):
    assert expected in fired(workloads.disruption_budgets_evict_unhealthy, broken(graph, where, change))


@pytest.mark.parametrize("where, change", [
    # The gateway chart creates no budget for an empty podDisruptionBudget; istiod none when disabled.
    (_release_named("istio-egressgateway"), lambda r: r["inputs"]["values"].update(podDisruptionBudget={})),
    (_release_named("istiod"), lambda r: (r["inputs"]["values"]["pdb"].pop("unhealthyPodEvictionPolicy"),
                                          r["inputs"]["values"]["global"].update(
                                              defaultPodDisruptionBudget={"enabled": False}))),
])
def test_pdb_policy_is_quiet_where_a_chart_creates_no_budget(graph, where, change):
    quiet(workloads.disruption_budgets_evict_unhealthy, broken(graph, where, change))


def test_pdb_policy_passes_on_the_rendered_stack(graph):
    assert any(r["type"] == PDB for r in graph)
    quiet(workloads.disruption_budgets_evict_unhealthy, graph)


@pytest.mark.parametrize("step", ["a-canary-beside-unrevisioned", "b-workloads-on-canary", "c-unrevisioned-removed"])
def test_every_mandatory_policy_passes_at_each_step_of_an_upgrade_by_revision(step, render_variant):
    """Revisioned istiod releases are still the istiod chart: mTLS, PDB and isolation checks keep judging them."""
    from tests.mesh.test_revisions import STEPS
    records = render_variant(sets=STEPS[step]).resources
    config = engine_config(load_stack_config("dev"))[0]
    with stack_config(config):
        for policy in MANDATORY:
            quiet(policy, records, config=config)
