import pytest

from components.cluster import CONTROL_PLANE_LOG_TYPES, IMDS_HOP_LIMIT, ami_type, creator_listed
from tests.support import failed_render


def test_the_cluster_is_named_per_stack_api_authenticated_and_logged(render):
    cluster = render.one("eks:index:Cluster")["inputs"]
    assert cluster["name"] == "alpha-dev"
    assert cluster["version"] == "1.35"
    assert cluster["skipDefaultNodeGroup"] is True
    assert cluster["authenticationMode"] == "API"
    assert cluster["createOidcProvider"] is True
    assert cluster["upgradePolicy"] == {"supportType": "STANDARD"}
    assert sorted(cluster["enabledClusterLogTypes"]) == sorted(CONTROL_PLANE_LOG_TYPES)
    assert cluster["endpointPublicAccess"] is True and cluster["endpointPrivateAccess"] is True
    assert cluster["publicAccessCidrs"] == ["0.0.0.0/0"]
    assert cluster["nodeAssociatePublicIpAddress"] is False
    private_ids = {s["name"] + "-id" for s in render.of_type("aws:ec2/subnet:Subnet") if "private" in s["name"]}
    assert set(cluster["privateSubnetIds"]) == private_ids


def test_secrets_are_encrypted_with_a_rotating_stack_owned_key(render):
    key = render.one("aws:kms/key:Key")
    assert key["inputs"]["enableKeyRotation"] is True
    cluster = render.one("eks:index:Cluster")
    assert cluster["propertyDependencies"]["encryptionConfigKeyArn"] == [key["urn"]]


def test_the_node_group_runs_the_chosen_nodes_in_private_subnets_once_its_role_can_join(render):
    group = render.one("eks:index:ManagedNodeGroup")
    inputs = group["inputs"]
    assert inputs["instanceTypes"] == ["t3.medium"]
    assert inputs["scalingConfig"] == {"desiredSize": 4, "minSize": 2, "maxSize": 6}
    assert inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert inputs["capacityType"] == "ON_DEMAND"
    assert inputs["version"] == "1.35"
    private_ids = {s["name"] + "-id" for s in render.of_type("aws:ec2/subnet:Subnet") if "private" in s["name"]}
    assert set(inputs["subnetIds"]) == private_ids
    assert inputs["cluster"] == render.one("eks:index:Cluster")["urn"]
    # The node role's policies are attached before nodes try to join.
    attachments = render.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert {a["urn"] for a in attachments} <= set(group["dependencies"])


def test_nodes_require_imdsv2_out_of_reach_of_pods_and_encrypt_gp3_roots(render):
    template = render.one("aws:ec2/launchTemplate:LaunchTemplate")
    group = render.one("eks:index:ManagedNodeGroup")
    assert group["propertyDependencies"]["launchTemplate"] == [template["urn"]]
    metadata = template["inputs"]["metadataOptions"]
    assert metadata["httpTokens"] == "required"
    assert metadata["httpPutResponseHopLimit"] == IMDS_HOP_LIMIT == 1
    (root,) = template["inputs"]["blockDeviceMappings"]
    assert root["ebs"]["volumeType"] == "gp3"
    assert root["ebs"]["encrypted"] == "true"


# A remote builder of the nodes' architecture: the program does not judge this machine's emulators then.
REMOTE_ARM_BUILDER = (("BUILDX_BUILDER", "remote-arm64"),)


def test_graviton_nodes_get_arm_images(render_variant):
    variant = render_variant(sets=("nodeInstanceType=t4g.medium",), env=REMOTE_ARM_BUILDER)
    assert variant.one("eks:index:ManagedNodeGroup")["inputs"]["amiType"] == ami_type("arm64")


def test_one_kubernetes_provider_from_the_kubeconfig_after_the_nodes(render):
    provider = render.one("pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == "[secret]"
    cluster = render.one("eks:index:Cluster")
    assert provider["propertyDependencies"]["kubeconfig"] == [cluster["urn"]]
    # Deleting nodes before the objects that run on them would strand pods and finalizers.
    assert render.one("eks:index:ManagedNodeGroup")["urn"] in provider["dependencies"]


def test_the_outputs_expose_the_cluster_and_keep_the_kubeconfig_secret(render):
    assert render.outputs["kubeconfig"] == "[secret]"
    assert render.outputs["clusterName"] == "alpha-dev"
    assert render.outputs["oidcProviderArn"].startswith("arn:aws:iam::")
    assert render.outputs["nodeSecurityGroupId"]
    assert render.outputs["nodeGroupAsgNames"] and all(render.outputs["nodeGroupAsgNames"])


def test_every_taggable_aws_resource_carries_the_stack_tags(render):
    untaggable = {"aws:ec2/route:Route", "aws:ec2/routeTableAssociation:RouteTableAssociation",
                  "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:route53/record:Record",
                  "aws:acm/certificateValidation:CertificateValidation", "aws:autoscaling/attachment:Attachment",
                  "aws:ecr/lifecyclePolicy:LifecyclePolicy"}
    for resource in render.resources:
        if resource["type"] in untaggable or not (resource["type"].startswith("aws:")
                                                  or resource["type"].startswith("eks:")):
            continue
        tags = resource["inputs"].get("tags") or {}
        assert {k: tags.get(k) for k in ("project", "stack", "owner")} == \
            {"project": "eks-istio-shop", "stack": "dev", "owner": "platform-team"}, resource["name"]


DEPLOYER = "arn:aws:iam::123456789012:role/github-deployer"
PREVIEWER = "arn:aws:iam::123456789012:role/github-preview"
# The identity the offline render runs as (tools/render.py's caller identity).
RUNNER = "arn:aws:iam::123456789012:role/deployer"


def test_access_entries_are_keyed_by_principal_not_by_place_in_a_list():
    from components.cluster import access_entries
    before = access_entries((DEPLOYER, PREVIEWER), ())
    after = access_entries((PREVIEWER,), (DEPLOYER,))
    # Removing one principal or moving it to the other list keeps every entry's key, so no entry is
    # replaced (EKS refuses a second entry for the same principal while the first still exists).
    assert set(before) == set(after)
    assert {k: v.principal_arn for k, v in before.items()} == {k: v.principal_arn for k, v in after.items()}
    deployer = next(k for k, v in before.items() if v.principal_arn == DEPLOYER)
    assert list(before[deployer].access_policies) == ["cluster-admin"]
    assert list(after[deployer].access_policies) == ["cluster-viewer"]
    assert all(set(key) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") for key in before)


def test_api_authentication_with_admin_and_viewer_access_entries(render, render_variant):
    assert render.one("eks:index:Cluster")["inputs"].get("accessEntries") in (None, {})
    variant = render_variant(sets=(f'clusterAdminArns=["{DEPLOYER}"]', f'clusterViewerArns=["{PREVIEWER}"]'))
    cluster = variant.one("eks:index:Cluster")["inputs"]
    assert cluster["authenticationMode"] == "API"
    policies = {}
    for entry in cluster["accessEntries"].values():
        (policy,) = entry["accessPolicies"].values()
        assert policy["accessScope"] == {"type": "cluster"}
        policies[entry["principalArn"]] = policy["policyArn"].rsplit("/", 1)[1]
    # A refreshing preview reads Helm's release Secrets, which AmazonEKSViewPolicy hides.
    assert policies == {DEPLOYER: "AmazonEKSClusterAdminPolicy", PREVIEWER: "AmazonEKSAdminViewPolicy"}


@pytest.mark.parametrize("setting", ["clusterAdminArns", "clusterViewerArns"])
def test_the_identity_creating_the_cluster_is_refused_in_an_access_list(setting, tmp_path):
    message = failed_render(tmp_path, sets=(f'{setting}=["{RUNNER}"]',))
    assert f"eks-istio-shop:{setting} lists {RUNNER}" in message
    assert "ResourceInUseException" in message and "alpha-dev" in message


def test_a_later_run_by_a_listed_identity_is_not_refused(render_variant):
    """Once the cluster exists the program cannot tell its creator: a listed CI role that did not create
    it must still be able to update the stack."""
    variant = render_variant(sets=(f'clusterAdminArns=["{RUNNER}"]',), existing_clusters=("alpha-dev",))
    (entry,) = variant.one("eks:index:Cluster")["inputs"]["accessEntries"].values()
    assert entry["principalArn"] == RUNNER


@pytest.mark.parametrize("lists, runner, exists, refused", [
    ({"clusterAdminArns": (DEPLOYER,), "clusterViewerArns": ()}, DEPLOYER, False, "clusterAdminArns"),
    ({"clusterAdminArns": (), "clusterViewerArns": (PREVIEWER,)}, PREVIEWER, False, "clusterViewerArns"),
    ({"clusterAdminArns": (DEPLOYER,), "clusterViewerArns": ()}, DEPLOYER, True, None),
    ({"clusterAdminArns": (DEPLOYER,), "clusterViewerArns": (PREVIEWER,)}, RUNNER, False, None),
])
def test_only_the_identity_about_to_create_the_cluster_is_refused(lists, runner, exists, refused):
    assert creator_listed(lists, runner, exists) == refused


def test_an_assumed_role_session_is_checked_as_its_role(tmp_path):
    from tools.render import _session_context
    context = _session_context({"arn": "arn:aws:sts::123456789012:assumed-role/github-deployer/run-42"}, "us-east-1")
    assert context["issuerArn"] == DEPLOYER


def test_control_plane_log_group_is_owned_and_made_first(render):
    logs = render.one("aws:cloudwatch/logGroup:LogGroup")
    assert logs["inputs"]["name"] == "/aws/eks/alpha-dev/cluster"
    assert 1 <= logs["inputs"]["retentionInDays"] <= 365
    assert logs["urn"] in render.one("eks:index:Cluster")["dependencies"]


def test_addons_are_pinned_and_follow_the_kubernetes_version(render, render_variant):
    from settings import DEFAULT_ADDON_VERSIONS
    for variant, version in ((render, "1.35"), (render_variant(sets=("kubernetesVersion=1.36",)), "1.36")):
        pins = DEFAULT_ADDON_VERSIONS[version]
        cluster = variant.one("eks:index:Cluster")["inputs"]
        assert cluster["vpcCniOptions"]["addonVersion"] == pins["vpc-cni"]
        assert cluster["kubeProxyAddonOptions"]["version"] == pins["kube-proxy"]
        # pulumi-eks would leave CoreDNS self-managed without a default node group; the stack owns it.
        assert cluster["corednsAddonOptions"]["enabled"] is False
        addons = {a["inputs"]["addonName"]: a for a in variant.of_type("aws:eks/addon:Addon")}
        assert set(addons) == {"coredns", "metrics-server"}
        for name, addon in addons.items():
            assert addon["inputs"]["addonVersion"] == pins[name]
            assert addon["inputs"]["clusterName"] == "alpha-dev"
            assert addon["inputs"]["resolveConflictsOnCreate"] == "OVERWRITE"
            # Their pods need nodes; without them the add-on never turns ACTIVE.
            assert variant.one("eks:index:ManagedNodeGroup")["urn"] in addon["dependencies"]


def test_the_vpc_cni_enforces_network_policies_unless_the_stack_turns_it_off(render, render_variant):
    """pulumi-eks turns enableNetworkPolicy into the add-on's configuration value enableNetworkPolicy: "true"."""
    options = render.one("eks:index:Cluster")["inputs"]["vpcCniOptions"]
    assert options["enableNetworkPolicy"] is True
    assert "configurationValues" not in options  # one source for the flag: no second value to disagree
    off = render_variant(sets=("networkPolicyEnforcement=false",)).one("eks:index:Cluster")["inputs"]
    assert off["vpcCniOptions"]["enableNetworkPolicy"] is False
    assert off["vpcCniOptions"]["addonVersion"] == options["addonVersion"]


def test_an_addon_override_changes_that_addon_only(render, render_variant):
    variant = render_variant(sets=('addonVersions={"coredns": "v1.99.0-eksbuild.1"}',))
    versions = {a["inputs"]["addonName"]: a["inputs"]["addonVersion"] for a in variant.of_type("aws:eks/addon:Addon")}
    before = {a["inputs"]["addonName"]: a["inputs"]["addonVersion"] for a in render.of_type("aws:eks/addon:Addon")}
    assert versions == {**before, "coredns": "v1.99.0-eksbuild.1"}
    assert variant.one("eks:index:Cluster")["inputs"]["vpcCniOptions"] == \
        render.one("eks:index:Cluster")["inputs"]["vpcCniOptions"]


def test_an_up_that_cannot_build_the_nodes_architecture_is_refused_by_name(tmp_path):
    import platform
    from pathlib import Path
    if platform.machine() in ("aarch64", "arm64") or Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        pytest.skip("this machine can build arm64 images")
    env = {"BUILDX_BUILDER": "", "DOCKER_HOST": ""}
    message = failed_render(tmp_path, sets=("nodeInstanceType=t4g.medium",), env=env)
    assert "eks-istio-shop:nodeInstanceType" in message and "qemu-aarch64" in message
