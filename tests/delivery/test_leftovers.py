"""The teardown check against moto's mocked AWS APIs (no network, no credentials)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tools import leftovers

REGION = "us-east-1"
STACK = "pr-12"


def tags(stack: str = STACK, project: str = leftovers.PROJECT) -> list[dict[str, str]]:
    return [{"Key": "project", "Value": project}, {"Key": "stack", "Value": stack},
            {"Key": "owner", "Value": "platform-team"}]


def spec(resource_type: str, stack: str = STACK) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": tags(stack)}]


@pytest.fixture
def aws(monkeypatch):
    # Fake credentials so that nothing can reach a real account even if moto were bypassed.
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
                       "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def run(capsys, *argv: str, session=None) -> tuple[int, str]:
    code = leftovers.main([*argv], session=session)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def make_network(session, stack: str = STACK) -> tuple[str, list[str]]:
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec("vpc", stack))["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}",
                                 TagSpecifications=spec("subnet", stack))["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab")]
    return vpc, subnets


def test_nothing_left_exits_zero(aws, capsys):
    # Another stack's resources in the same account are not this stack's leftovers.
    vpc, subnets = make_network(aws, stack="dev")
    aws.client("elbv2").create_load_balancer(Name="dev-nlb", Subnets=subnets, Type="network",
                                             Tags=tags(stack="dev"))
    code, out = run(capsys, STACK, session=aws)
    assert code == 0
    assert "Nothing left" in out
    assert "dev-nlb" not in out


def test_one_load_balancer_left_is_billable_and_exits_non_zero(aws, capsys):
    vpc, subnets = make_network(aws, stack="dev")  # the subnets belong to another stack
    arn = aws.client("elbv2").create_load_balancer(Name="pr-12-nlb", Subnets=subnets, Type="network",
                                                   Tags=tags())["LoadBalancers"][0]["LoadBalancerArn"]
    code, out = run(capsys, STACK, session=aws)
    assert code == 1
    billable = [line for line in out.splitlines() if line.startswith(leftovers.BILLABLE)]
    assert len(billable) == 1 and arn in billable[0]
    assert "1 billable" in out


def test_pending_deletion_kms_key_is_fine_and_exits_zero(aws, capsys):
    kms = aws.client("kms")
    key_id = kms.create_key(Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags()])["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    code, out = run(capsys, STACK, session=aws)
    assert code == 0
    fine = [line for line in out.splitlines() if line.startswith(leftovers.FINE)]
    assert len(fine) == 1 and key_id in fine[0] and "pending deletion" in fine[0]


def test_enabled_kms_key_is_billable(aws, capsys):
    kms = aws.client("kms")
    key_id = kms.create_key(Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags()])["KeyMetadata"]["KeyId"]
    code, out = run(capsys, STACK, session=aws)
    assert code == 1
    assert any(line.startswith(leftovers.BILLABLE) and key_id in line for line in out.splitlines())


def test_untagged_load_balancer_inside_a_leftover_vpc_is_found(aws, capsys):
    """What a failed destroy really leaves: a VPC held by a load balancer Kubernetes made, without our tags."""
    vpc, subnets = make_network(aws)
    ec2 = aws.client("ec2")
    k8s_group = ec2.create_security_group(GroupName="k8s-elb-a1b2", Description="made by a controller",
                                          VpcId=vpc)["GroupId"]
    arn = aws.client("elbv2").create_load_balancer(Name="k8s-istio-ingress", Subnets=subnets, Type="network",
                                                   SecurityGroups=[k8s_group])["LoadBalancers"][0]["LoadBalancerArn"]
    code, out = run(capsys, STACK, session=aws)
    assert code == 1
    lines = out.splitlines()
    assert any(line.startswith(leftovers.BILLABLE) and arn in line and "inside leftover" in line for line in lines)
    assert any(line.startswith(leftovers.NOT_BILLABLE) and k8s_group in line for line in lines)
    assert any(line.startswith(leftovers.NOT_BILLABLE) and vpc in line for line in lines)


def test_free_leftovers_pass_unless_strict(aws, capsys):
    make_network(aws)
    code, out = run(capsys, STACK, session=aws)
    assert code == 0 and "2 billable" not in out and leftovers.NOT_BILLABLE in out
    code, _ = run(capsys, STACK, "--strict", session=aws)
    assert code == 1


def test_nat_gateway_and_elastic_ip_are_billable_until_deleted(aws, capsys):
    vpc, subnets = make_network(aws)
    ec2 = aws.client("ec2")
    allocation = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip"))["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=allocation,
                                 TagSpecifications=spec("natgateway"))["NatGateway"]["NatGatewayId"]
    code, out = run(capsys, STACK, session=aws)
    billable = "\n".join(line for line in out.splitlines() if line.startswith(leftovers.BILLABLE))
    assert code == 1 and nat in billable and allocation in billable

    ec2.delete_nat_gateway(NatGatewayId=nat)
    ec2.release_address(AllocationId=allocation)
    code, out = run(capsys, STACK, session=aws)
    assert code == 0
    assert any(line.startswith(leftovers.FINE) and nat in line for line in out.splitlines())


def test_cluster_tagged_volume_is_found_with_cluster_name(aws, capsys):
    ec2 = aws.client("ec2")
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, TagSpecifications=[{
        "ResourceType": "volume", "Tags": [{"Key": "kubernetes.io/cluster/alpha-pr-12", "Value": "owned"}]}])["VolumeId"]
    code, _ = run(capsys, STACK, session=aws)
    assert code == 0, "without --cluster-name only the project's tags are asked for"
    code, out = run(capsys, STACK, "--cluster-name", "alpha-pr-12", session=aws)
    assert code == 1
    assert any(line.startswith(leftovers.BILLABLE) and volume in line for line in out.splitlines())


@pytest.mark.parametrize("state, verdict", [
    ("PendingDeletion", leftovers.FINE), ("Enabled", leftovers.BILLABLE), ("Disabled", leftovers.BILLABLE)])
def test_a_kms_key_is_a_leftover_unless_it_is_pending_deletion(state, verdict):
    assert leftovers.judge("kms", "key", state)[0] == verdict


def test_unknown_kinds_count_as_billable():
    assert leftovers.judge("logs", "log-group", None)[0] == leftovers.BILLABLE
    assert leftovers.judge("ec2", "vpc-endpoint", "available")[0] == leftovers.BILLABLE
    assert leftovers.judge("elasticloadbalancing", "targetgroup", None)[0] == leftovers.NOT_BILLABLE


def test_parse_arn_keeps_load_balancer_ids():
    assert leftovers.parse_arn(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/pr-12-nlb/50dc6c495c0c9188"
    ) == ("elasticloadbalancing", "loadbalancer", "net/pr-12-nlb/50dc6c495c0c9188")
    assert leftovers.parse_arn("arn:aws:ec2:us-east-1:123456789012:natgateway/nat-0abc") == (
        "ec2", "natgateway", "nat-0abc")


def test_no_credentials_is_a_clear_error(monkeypatch, tmp_path, capsys):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, out = run(capsys, STACK, "--region", REGION)
    assert code == 2
    assert "no AWS credentials" in out and "Traceback" not in out


def test_no_region_is_a_clear_error(monkeypatch, tmp_path, capsys):
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, out = run(capsys, STACK)
    assert code == 2
    assert "region" in out


def test_bad_stack_name_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        leftovers.main(["pr 12; rm -rf /"])
    assert exit_info.value.code == 2
    assert "not a stack name" in capsys.readouterr().err


def test_eks_control_plane_log_group_is_found_with_cluster_name(aws, capsys):
    aws.client("logs").create_log_group(logGroupName="/aws/eks/alpha-pr-12/cluster")
    aws.client("logs").create_log_group(logGroupName="/aws/eks/alpha-dev/cluster")
    code, out = run(capsys, STACK, "--cluster-name", "alpha-pr-12", session=aws)
    assert code == 1
    assert "/aws/eks/alpha-pr-12/cluster" in out and "alpha-dev" not in out


def test_stale_tagging_api_entries_are_confirmed_with_describe_calls(aws, capsys):
    """The tagging API lists resources for a while after deletion; they must not be reported."""
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16", TagSpecifications=spec("vpc"))["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="gone", Description="gone", VpcId=vpc,
                                      TagSpecifications=spec("security-group"))["GroupId"]
    stale = {"ResourceTagMappingList": [
        {"ResourceARN": f"arn:aws:ec2:{REGION}:123456789012:security-group/{group}", "Tags": tags()},
        {"ResourceARN": f"arn:aws:ec2:{REGION}:123456789012:vpc/{vpc}", "Tags": tags()}]}
    ec2.delete_security_group(GroupId=group)
    ec2.delete_vpc(VpcId=vpc)

    class StaleTagging:
        def get_paginator(self, _name):
            return type("Pages", (), {"paginate": staticmethod(lambda **_: [stale])})()

    inspector = leftovers.Inspector(aws, leftovers.PROJECT, STACK)
    inspector.tagging = StaleTagging()
    assert inspector.run() == []


def test_eks_cluster_left_is_billable(aws, capsys):
    vpc, subnets = make_network(aws)
    role = "arn:aws:iam::123456789012:role/eks"
    aws.client("eks").create_cluster(name="alpha-pr-12", roleArn=role, resourcesVpcConfig={"subnetIds": subnets},
                                     tags={t["Key"]: t["Value"] for t in tags()})
    code, out = run(capsys, STACK, session=aws)
    assert code == 1
    assert any(line.startswith(leftovers.BILLABLE) and "cluster/alpha-pr-12" in line for line in out.splitlines())


@pytest.mark.parametrize("arn, expected", [
    ("arn:aws:logs:us-east-1:123456789012:log-group:/aws/eks/alpha-pr-1/cluster",
     ("logs", "log-group", "/aws/eks/alpha-pr-1/cluster")),
    ("arn:aws:logs:us-east-1:123456789012:log-group:/aws/eks/alpha-pr-1/cluster:*",
     ("logs", "log-group", "/aws/eks/alpha-pr-1/cluster")),
    ("arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:4957ee02-e92a-47a5-8f4d-4fd280dce992"
     ":autoScalingGroupName/eks-ng-1",
     ("autoscaling", "autoScalingGroup", "4957ee02-e92a-47a5-8f4d-4fd280dce992:autoScalingGroupName/eks-ng-1")),
    ("arn:aws:eks:us-east-1:123456789012:nodegroup/alpha-pr-1/ng/1ac6", ("eks", "nodegroup", "alpha-pr-1/ng/1ac6")),
])
def test_parse_arn_splits_at_the_first_separator(arn, expected):
    assert leftovers.parse_arn(arn) == expected


def test_an_auto_scaling_group_is_judged_free():
    service, kind, _ = leftovers.parse_arn(
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:4957ee02:autoScalingGroupName/eks-ng-1")
    assert leftovers.judge(service, kind, None)[0] == leftovers.NOT_BILLABLE


def test_a_tagged_control_plane_log_group_is_reported_once(aws, capsys):
    """Found both by the tagging API (ARN) and by its name prefix: one finding, not two."""
    aws.client("logs").create_log_group(logGroupName="/aws/eks/alpha-pr-12/cluster",
                                        tags={t["Key"]: t["Value"] for t in tags()})
    code, out = run(capsys, STACK, "--cluster-name", "alpha-pr-12", session=aws)
    assert code == 1
    found = [line for line in out.splitlines() if "/aws/eks/alpha-pr-12/cluster" in line]
    assert len(found) == 1, found
    assert "logs:log-group " in found[0]


def stale_tagging(*arns: str):
    page = {"ResourceTagMappingList": [{"ResourceARN": arn, "Tags": tags()} for arn in arns]}

    class StaleTagging:
        def get_paginator(self, _name):
            return type("Pages", (), {"paginate": staticmethod(lambda **_: [page])})()

    return StaleTagging()


def make_auto_scaling_group(session, name: str) -> str:
    autoscaling = session.client("autoscaling")
    autoscaling.create_launch_configuration(LaunchConfigurationName=f"{name}-lc", ImageId="ami-12c6146b",
                                            InstanceType="t3.medium")
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName=f"{name}-lc",
                                          MinSize=0, MaxSize=1, AvailabilityZones=[f"{REGION}a"])
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"][0]["AutoScalingGroupARN"]


def test_tagging_api_ghosts_of_nodegroups_log_groups_and_asgs_are_dropped(aws):
    """Right after a destroy the tagging API still lists them; the describe calls say they are gone."""
    account = "123456789012"
    ghosts = (f"arn:aws:eks:{REGION}:{account}:nodegroup/alpha-pr-12/alpha-pr-12-ng/6ec6",
              f"arn:aws:logs:{REGION}:{account}:log-group:/aws/eks/alpha-pr-12/cluster",
              f"arn:aws:autoscaling:{REGION}:{account}:autoScalingGroup:9c1f:autoScalingGroupName/eks-ng-6ec6")
    inspector = leftovers.Inspector(aws, leftovers.PROJECT, STACK)
    inspector.tagging = stale_tagging(*ghosts)
    assert inspector.run() == []


def test_tagging_api_hits_that_still_exist_are_confirmed(aws):
    _, subnets = make_network(aws)
    eks = aws.client("eks")
    role = "arn:aws:iam::123456789012:role/eks"
    eks.create_cluster(name="alpha-pr-12", roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    nodegroup = eks.create_nodegroup(clusterName="alpha-pr-12", nodegroupName="alpha-pr-12-ng", subnets=subnets,
                                     nodeRole=role)["nodegroup"]["nodegroupArn"]
    aws.client("logs").create_log_group(logGroupName="/aws/eks/alpha-pr-12/cluster")
    log_group = f"arn:aws:logs:{REGION}:123456789012:log-group:/aws/eks/alpha-pr-12/cluster"
    group = make_auto_scaling_group(aws, "eks-ng-6ec6")
    inspector = leftovers.Inspector(aws, leftovers.PROJECT, STACK)
    inspector.tagging = stale_tagging(nodegroup, log_group, group)
    findings = {finding.resource_id: finding for finding in inspector.run()}
    assert set(findings) >= {nodegroup, log_group, group}
    for arn in (nodegroup, log_group, group):
        assert "seen only by the tagging API" not in findings[arn].note, findings[arn]
    assert findings[nodegroup].verdict == leftovers.BILLABLE
    assert findings[group].verdict == leftovers.NOT_BILLABLE
