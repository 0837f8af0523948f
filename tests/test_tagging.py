"""The stack's tags come from one stack transform (tagging.py), for every taggable resource."""

import pytest

import tagging

TAGS = {"project": "eks-istio-shop", "stack": "dev", "owner": "platform-team", "cost-center": "42"}


def test_a_taggable_resource_keeps_its_own_tags_and_gets_the_stacks():
    props = tagging.tagged_props("aws:ec2/vpc:Vpc", {"cidrBlock": "10.0.0.0/16", "tags": {"Name": "vpc"}}, TAGS)
    assert props == {"cidrBlock": "10.0.0.0/16", "tags": {"Name": "vpc", **TAGS}}


def test_a_resource_without_tags_of_its_own_gets_the_stacks():
    assert tagging.tagged_props("aws:iam/role:Role", {"assumeRolePolicy": "{}"}, TAGS)["tags"] == TAGS


@pytest.mark.parametrize("resource_type", ["aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                                           "aws:route53/record:Record", "docker-build:index:Image",
                                           "kubernetes:core/v1:Namespace", "eks-istio-shop:cluster:Cluster"])
def test_resources_that_take_no_tags_are_left_alone(resource_type):
    assert tagging.tagged_props(resource_type, {"tags": ["an image tag"]}, TAGS) is None


def test_pulumi_eks_components_pass_the_tags_on():
    for resource_type in ("eks:index:Cluster", "eks:index:ManagedNodeGroup"):
        assert tagging.tagged_props(resource_type, {}, TAGS)["tags"] == TAGS


def test_a_launch_template_also_tags_what_it_launches():
    props = tagging.tagged_props("aws:ec2/launchTemplate:LaunchTemplate", {"tagSpecifications": [
        {"resourceType": "instance", "tags": {"Name": "node"}},
        {"resourceType": "network-interface", "tags": {}}]}, TAGS)
    assert props["tagSpecifications"] == [{"resourceType": "instance", "tags": {"Name": "node", **TAGS}},
                                          {"resourceType": "network-interface", "tags": TAGS}]
    assert props["tags"] == TAGS


def test_the_stacks_tags_win_over_a_resources_own():
    props = tagging.tagged_props("aws:ec2/vpc:Vpc", {"tags": {"owner": "someone-else"}}, TAGS)
    assert props["tags"]["owner"] == "platform-team"


def test_a_resources_own_tags_win_over_the_users():
    """A user tag `Name` or `kubernetes.io/...` applies only where a resource has no tag of that key of its own."""
    users = {**TAGS, "Name": "from-settings", "kubernetes.io/role/elb": "1"}
    own = {"Name": "shop-network-private-a", "kubernetes.io/role/internal-elb": "1"}
    props = tagging.tagged_props("aws:ec2/subnet:Subnet", {"tags": own}, users)
    assert props["tags"]["Name"] == "shop-network-private-a"
    assert props["tags"]["kubernetes.io/role/internal-elb"] == "1"
    # Where a resource has no such tag of its own, the user's applies, as AWS default tags would.
    assert props["tags"]["kubernetes.io/role/elb"] == "1"
    assert tagging.tagged_props("aws:iam/role:Role", {}, users)["tags"]["Name"] == "from-settings"


def test_the_transform_changes_only_taggable_resources():
    import pulumi
    transform = tagging.stack_tags_transform(TAGS)
    opts = pulumi.ResourceOptions()
    result = transform(pulumi.ResourceTransformArgs(True, "aws:kms/key:Key", "key", {"tags": {"Name": "k"}}, opts))
    assert result.props["tags"] == {"Name": "k", **TAGS} and result.opts is opts
    assert transform(pulumi.ResourceTransformArgs(True, "aws:route53/record:Record", "r", {}, opts)) is None


def test_the_render_runs_the_transform_on_every_registration(render):
    """As the engine does: components declare no stack tags, yet every taggable resource has them."""
    tagged = [r for r in render.resources if tagging.is_taggable(r["type"])]
    assert {r["type"] for r in tagged} >= {"eks:index:Cluster", "eks:index:ManagedNodeGroup", "aws:ec2/vpc:Vpc",
                                           "aws:lb/loadBalancer:LoadBalancer", "aws:ecr/repository:Repository"}
    for resource in tagged:
        assert {k: resource["inputs"]["tags"].get(k) for k in ("project", "stack", "owner")} == \
            {"project": "eks-istio-shop", "stack": "dev", "owner": "platform-team"}, resource["name"]
    (template,) = render.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    for spec in template["inputs"]["tagSpecifications"]:
        assert spec["tags"]["stack"] == "dev", spec


def test_tags_not_known_yet_or_secret_are_left_for_the_engine_to_see_again():
    """At preview a computed tag map arrives unknown (and a secret one wrapped): merging must not crash."""
    from pulumi.runtime import rpc
    unknown = rpc.deserialize_properties({"tags": rpc.UNKNOWN}, keep_unknowns=True)["tags"]
    secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": {"Name": "x"}}
    for value in (unknown, secret, ["not", "a", "map"]):
        props = tagging.tagged_props("aws:ec2/vpc:Vpc", {"tags": value}, TAGS)
        assert props["tags"] is value
    template = tagging.tagged_props("aws:ec2/launchTemplate:LaunchTemplate",
                                    {"tagSpecifications": unknown}, TAGS)
    assert template["tagSpecifications"] is unknown and template["tags"] == TAGS
