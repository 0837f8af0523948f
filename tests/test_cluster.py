from components.cluster import CONTROL_PLANE_LOG_TYPES, IMDS_HOP_LIMIT, ami_type


def test_cluster_inputs(render):
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


def test_node_group_inputs(render):
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


def test_graviton_nodes_get_arm_images(render_variant):
    variant = render_variant(sets=("nodeInstanceType=t4g.medium",))
    assert variant.one("eks:index:ManagedNodeGroup")["inputs"]["amiType"] == ami_type("arm64")


def test_one_kubernetes_provider_from_the_kubeconfig_after_the_nodes(render):
    provider = render.one("pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == "[secret]"
    cluster = render.one("eks:index:Cluster")
    assert provider["propertyDependencies"]["kubeconfig"] == [cluster["urn"]]
    # Deleting nodes before the objects that run on them would strand pods and finalizers.
    assert render.one("eks:index:ManagedNodeGroup")["urn"] in provider["dependencies"]


def test_cluster_outputs(render):
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


def test_api_authentication_with_admin_access_entries(render, render_variant):
    assert render.one("eks:index:Cluster")["inputs"].get("accessEntries") in (None, {})
    arn = "arn:aws:iam::123456789012:role/github-deployer"
    variant = render_variant(sets=(f'clusterAdminArns=["{arn}"]',))
    cluster = variant.one("eks:index:Cluster")["inputs"]
    assert cluster["authenticationMode"] == "API"
    (entry,) = cluster["accessEntries"].values()
    assert entry["principalArn"] == arn
    (policy,) = entry["accessPolicies"].values()
    assert policy["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")
    assert policy["accessScope"] == {"type": "cluster"}


def test_control_plane_log_group_is_owned_and_made_first(render):
    logs = render.one("aws:cloudwatch/logGroup:LogGroup")
    assert logs["inputs"]["name"] == "/aws/eks/alpha-dev/cluster"
    assert 1 <= logs["inputs"]["retentionInDays"] <= 365
    assert logs["urn"] in render.one("eks:index:Cluster")["dependencies"]


def test_metrics_server_runs_for_the_autoscalers(render):
    addon = render.one("aws:eks/addon:Addon")
    assert addon["inputs"]["addonName"] == "metrics-server"
    assert addon["inputs"]["clusterName"] == "alpha-dev"
    assert render.one("eks:index:ManagedNodeGroup")["urn"] in addon["dependencies"]
