"""Teardown check: ask AWS what is still there for a stack after `pulumi destroy`.

    python -m tools.leftovers <stack> [--region R] [--project P] [--cluster-name NAME] [--strict]

Looks in one region, in these ways, and reports every finding once:
1. the Resource Groups Tagging API, for anything tagged `project=<project>` and `stack=<stack>`
   (every resource the program creates carries both tags);
2. EC2's own describe calls with the same tag filters, for instances, volumes, network interfaces,
   NAT gateways, elastic IPs and security groups (they also show state, which the tagging API does
   not), and EKS's, for clusters carrying both tags;
3. inside every VPC still found by (1) or (2): load balancers, network interfaces, NAT gateways and
   non-default security groups whatever their tags. This is what a real leftover looks like: a load
   balancer that a Kubernetes controller made holds untagged interfaces and security groups in the
   VPC and so keeps the VPC from being deleted. With --cluster-name, resources tagged
   `kubernetes.io/cluster/<name>` (how EKS and its controllers mark what they create) are added too,
   and the control plane log group EKS keeps after the cluster (/aws/eks/<name>/...).

Each finding is judged: BILLABLE (costs money while it exists; unknown kinds count as billable),
NOT BILLABLE (free, but left behind), or FINE (on its way out: a KMS key pending deletion, a NAT
gateway AWS still lists as deleted, an instance shutting down).

Exit codes: 0 nothing billable left (with --strict: nothing left at all but FINE findings);
1 something billable (or, with --strict, anything not FINE) is left; 2 AWS could not be asked
(no credentials, no region, access denied).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from settings import PROJECT

PROJECT_TAG = "project"
STACK_TAG = "stack"

BILLABLE = "BILLABLE"
NOT_BILLABLE = "NOT BILLABLE"
FINE = "FINE"

# Kinds (service, resource type) that cost nothing while they exist. Anything not listed here and
# not judged by its state below is treated as billable: a wrong "free" would hide a bill.
FREE_KINDS = frozenset({
    ("ec2", "security-group"), ("ec2", "security-group-rule"), ("ec2", "network-interface"),
    ("ec2", "subnet"), ("ec2", "vpc"), ("ec2", "route-table"), ("ec2", "internet-gateway"),
    ("ec2", "egress-only-internet-gateway"), ("ec2", "network-acl"), ("ec2", "dhcp-options"),
    ("ec2", "launch-template"), ("ec2", "key-pair"), ("ec2", "placement-group"),
    ("elasticloadbalancing", "targetgroup"), ("elasticloadbalancing", "listener"),
    ("elasticloadbalancing", "listener-rule"),
    ("iam", "role"), ("iam", "policy"), ("iam", "instance-profile"), ("iam", "oidc-provider"),
    ("acm", "certificate"), ("autoscaling", "autoScalingGroup"),
    ("eks", "addon"), ("eks", "access-entry"), ("eks", "podidentityassociation"),
})


class LeftoversError(Exception):
    """AWS could not be asked; the message says why. Never shown as a traceback."""


@dataclass(frozen=True)
class Finding:
    service: str
    kind: str
    resource_id: str
    verdict: str
    note: str
    how_found: str

    def line(self) -> str:
        note = f"  {self.note}" if self.note else ""
        return f"{self.verdict:<12} {self.service}:{self.kind} {self.resource_id}{note}  [{self.how_found}]"


def parse_arn(arn: str) -> tuple[str, str, str]:
    """(service, resource type, resource id) from an ARN; the id keeps any inner slashes."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return ("unknown", "unknown", arn)
    service, resource = parts[2], parts[5]
    # The type ends at the first separator, whichever it is: log-group:/aws/eks/<name>/cluster has
    # slashes in its id, autoScalingGroup:<uuid>:autoScalingGroupName/<name> has a colon first.
    separators = [index for index in (resource.find("/"), resource.find(":")) if index >= 0]
    if separators:
        split = min(separators)
        kind, rest = resource[:split], resource[split + 1:]
    else:
        kind, rest = resource, resource
    if service == "logs" and kind == "log-group" and rest.endswith(":*"):
        rest = rest[:-2]  # describe_log_groups' `arn` ends in :*; the tagging API's does not
    # elasticloadbalancing: loadbalancer/net/<name>/<id> and loadbalancer/app/... are v2 (the id
    # keeps the slashes); loadbalancer/<name> is a classic load balancer.
    return (service, kind, rest)


def finding_id(service: str, kind: str, resource_id: str, arn: str) -> str:
    """The id a resource is reported (and de-duplicated) under, whichever way it was found."""
    if service == "ec2":
        return resource_id  # EC2 ids are unique and what the console shows
    if service == "elasticloadbalancing" and kind == "loadbalancer" and "/" not in resource_id:
        return resource_id  # a classic load balancer is known by its name
    if service == "logs" and kind == "log-group":
        return log_group_arn(arn)  # found by the tagging API and by name: one finding
    return arn  # elsewhere the ARN is what describe calls take


def log_group_arn(arn: str) -> str:
    """A log group's ARN without the `:*` that describe_log_groups' `arn` field carries."""
    return arn[:-2] if arn.endswith(":*") else arn


def judge(service: str, kind: str, state: Optional[str]) -> tuple[str, str]:
    """Verdict and note for one resource of a kind in a state (None when the state is unknown)."""
    if service == "kms" and kind == "key":
        if state == "PendingDeletion":
            return FINE, "pending deletion (no charge while pending; AWS deletes it at the end of the window)"
        return BILLABLE, f"key state {state or 'unknown'}: a KMS key costs about $1 a month until deleted"
    if service == "ec2" and kind == "natgateway":
        if state == "deleted":
            return FINE, "deleted (AWS keeps listing deleted NAT gateways for about an hour)"
        if state == "deleting":
            return FINE, "being deleted"
    if service == "ec2" and kind == "instance" and state in ("terminated", "shutting-down"):
        return FINE, f"instance {state}"
    if service == "ec2" and kind == "volume" and state in ("deleting", "deleted"):
        return FINE, f"volume {state}"
    if (service, kind) in FREE_KINDS:
        note = f"state {state}" if state else ""
        if (service, kind) == ("ec2", "network-interface"):
            note = (note + "; " if note else "") + "an interface left in a VPC keeps the VPC from being deleted"
        return NOT_BILLABLE, note
    return BILLABLE, f"state {state}" if state else ""


# EC2 kinds whose existence the tagging API may report after the fact, and how to confirm it.
_EC2_DESCRIBE = {
    "vpc": ("describe_vpcs", "VpcIds", "Vpcs"),
    "subnet": ("describe_subnets", "SubnetIds", "Subnets"),
    "security-group": ("describe_security_groups", "GroupIds", "SecurityGroups"),
    "network-interface": ("describe_network_interfaces", "NetworkInterfaceIds", "NetworkInterfaces"),
    "elastic-ip": ("describe_addresses", "AllocationIds", "Addresses"),
}


def _tag_filters(project: str, stack: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{PROJECT_TAG}", "Values": [project]}, {"Name": f"tag:{STACK_TAG}", "Values": [stack]}]


class Inspector:
    """Asks AWS (through a boto3 session) and collects findings, each resource once."""

    def __init__(self, session: Any, project: str, stack: str, cluster_name: Optional[str] = None):
        self.project = project
        self.stack = stack
        self.cluster_name = cluster_name
        self.ec2 = session.client("ec2")
        self.elbv2 = session.client("elbv2")
        self.elb = session.client("elb")
        self.kms = session.client("kms")
        self.tagging = session.client("resourcegroupstaggingapi")
        self.logs = session.client("logs")
        self.eks = session.client("eks")
        self.autoscaling = session.client("autoscaling")
        self.findings: dict[str, Finding] = {}
        self.vpc_ids: set[str] = set()

    # -- collection -----------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        self._from_tagging_api([{"Key": PROJECT_TAG, "Values": [self.project]},
                                {"Key": STACK_TAG, "Values": [self.stack]}], "project+stack tags")
        self._from_ec2(_tag_filters(self.project, self.stack), "project+stack tags")
        self._eks_clusters()
        if self.cluster_name:
            cluster_key = f"kubernetes.io/cluster/{self.cluster_name}"
            self._from_tagging_api([{"Key": cluster_key}], f"tag {cluster_key}")
            self._from_ec2([{"Name": "tag-key", "Values": [cluster_key]}], f"tag {cluster_key}")
            self._eks_log_groups(self.cluster_name)
        for vpc_id in sorted(self.vpc_ids):
            self._inside_vpc(vpc_id)
        return sorted(self.findings.values(), key=lambda f: (f.verdict != BILLABLE, f.service, f.kind, f.resource_id))

    def _add(self, service: str, kind: str, resource_id: str, state: Optional[str], how_found: str,
             extra_note: str = "") -> None:
        if resource_id in self.findings:
            return
        verdict, note = judge(service, kind, state)
        if extra_note:
            note = f"{note}; {extra_note}" if note else extra_note
        self.findings[resource_id] = Finding(service, kind, resource_id, verdict, note, how_found)
        if service == "ec2" and kind == "vpc":
            self.vpc_ids.add(resource_id)

    def _from_tagging_api(self, tag_filters: list[dict[str, Any]], how_found: str) -> None:
        pages = self.tagging.get_paginator("get_resources").paginate(TagFilters=tag_filters)
        for page in pages:
            for mapping in page.get("ResourceTagMappingList", []):
                arn = mapping["ResourceARN"]
                service, kind, resource_id = parse_arn(arn)
                # The tagging API can list a resource for a while after it is gone: confirm where a
                # describe call tells the state.
                state, exists = self._state_of(service, kind, resource_id, arn)
                if exists is False:
                    continue
                unconfirmed = "" if exists else "seen only by the tagging API; if just deleted, check again in a few minutes"
                self._add(service, kind, finding_id(service, kind, resource_id, arn), state, how_found, unconfirmed)

    def _state_of(self, service: str, kind: str, resource_id: str, arn: str) -> tuple[Optional[str], Optional[bool]]:
        """(state, exists): exists is None when no describe call is known for the kind."""
        from botocore.exceptions import ClientError

        try:
            if service == "kms" and kind == "key":
                return self.kms.describe_key(KeyId=arn)["KeyMetadata"].get("KeyState"), True
            if service == "elasticloadbalancing" and kind == "loadbalancer" and "/" in resource_id:
                balancers = self.elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
                return (balancers[0].get("State", {}).get("Code"), True) if balancers else (None, False)
            if service == "elasticloadbalancing" and kind == "loadbalancer":
                balancers = self.elb.describe_load_balancers(LoadBalancerNames=[resource_id])
                return None, bool(balancers["LoadBalancerDescriptions"])
            if service == "elasticloadbalancing" and kind == "targetgroup":
                return None, bool(self.elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"])
            if service == "eks" and kind == "cluster":
                return self.eks.describe_cluster(name=resource_id)["cluster"].get("status"), True
            if service == "ec2" and kind == "natgateway":
                gateways = self.ec2.describe_nat_gateways(NatGatewayIds=[resource_id])["NatGateways"]
                return (gateways[0]["State"], True) if gateways else (None, False)
            if service == "ec2" and kind == "volume":
                volumes = self.ec2.describe_volumes(VolumeIds=[resource_id])["Volumes"]
                return (volumes[0]["State"], True) if volumes else (None, False)
            if service == "ec2" and kind == "instance":
                reservations = self.ec2.describe_instances(InstanceIds=[resource_id])["Reservations"]
                instances = [i for r in reservations for i in r["Instances"]]
                return (instances[0]["State"]["Name"], True) if instances else (None, False)
            if service == "eks" and kind == "nodegroup":
                # nodegroup/<cluster>/<nodegroup>/<uuid>
                cluster, _, rest = resource_id.partition("/")
                nodegroup = rest.partition("/")[0]
                return self.eks.describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup)[
                    "nodegroup"].get("status"), True
            if service == "logs" and kind == "log-group":
                name = log_group_arn(resource_id)
                pages = self.logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
                return None, any(group["logGroupName"] == name for page in pages for group in page["logGroups"])
            if service == "autoscaling" and kind == "autoScalingGroup":
                # <uuid>:autoScalingGroupName/<name>
                name = resource_id.partition("autoScalingGroupName/")[2]
                groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
                    "AutoScalingGroups"]
                return (groups[0].get("Status"), True) if groups else (None, False)  # Status: only while deleting
            if service == "ec2" and kind in _EC2_DESCRIBE:
                call, id_argument, result_key = _EC2_DESCRIBE[kind]
                return None, bool(getattr(self.ec2, call)(**{id_argument: [resource_id]})[result_key])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            # EC2: InvalidVpcID.NotFound, NatGatewayNotFound, ...; ELB: LoadBalancerNotFound,
            # TargetGroupNotFound, AccessPointNotFound; KMS: NotFoundException; EKS: ResourceNotFoundException.
            if code.endswith("NotFound") or code.endswith("NotFoundException"):
                return None, False
            raise
        return None, None

    def _from_ec2(self, filters: list[dict[str, Any]], how_found: str) -> None:
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    self._add("ec2", "instance", instance["InstanceId"], instance["State"]["Name"], how_found)
        for page in self.ec2.get_paginator("describe_volumes").paginate(Filters=filters):
            for volume in page["Volumes"]:
                self._add("ec2", "volume", volume["VolumeId"], volume["State"], how_found)
        for page in self.ec2.get_paginator("describe_network_interfaces").paginate(Filters=filters):
            for interface in page["NetworkInterfaces"]:
                self._add_interface(interface, how_found)
        for page in self.ec2.get_paginator("describe_nat_gateways").paginate(Filter=filters):
            for gateway in page["NatGateways"]:
                self._add("ec2", "natgateway", gateway["NatGatewayId"], gateway["State"], how_found)
        for address in self.ec2.describe_addresses(Filters=filters)["Addresses"]:
            self._add("ec2", "elastic-ip", address.get("AllocationId") or address["PublicIp"], None, how_found,
                      "an allocated public IPv4 address is billed hourly")
        for page in self.ec2.get_paginator("describe_security_groups").paginate(Filters=filters):
            for group in page["SecurityGroups"]:
                self._add("ec2", "security-group", group["GroupId"], None, how_found)
        for page in self.ec2.get_paginator("describe_vpcs").paginate(Filters=filters):
            for vpc in page["Vpcs"]:
                self._add("ec2", "vpc", vpc["VpcId"], vpc.get("State"), how_found)

    def _eks_clusters(self) -> None:
        # The costliest leftover; asked for directly too, since it must not depend on one API alone.
        for page in self.eks.get_paginator("list_clusters").paginate():
            for name in page["clusters"]:
                cluster = self.eks.describe_cluster(name=name)["cluster"]
                cluster_tags = cluster.get("tags", {})
                if cluster_tags.get(PROJECT_TAG) == self.project and cluster_tags.get(STACK_TAG) == self.stack:
                    self._add("eks", "cluster", cluster["arn"], cluster.get("status"), "project+stack tags")

    def _eks_log_groups(self, cluster_name: str) -> None:
        # EKS writes control plane logs to a log group of its own, tagged with nothing of ours, and
        # keeps it (and bills its storage) after the cluster is gone.
        prefix = f"/aws/eks/{cluster_name}/"
        for page in self.logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
            for group in page["logGroups"]:
                arn = log_group_arn(group.get("logGroupArn") or group["arn"])
                self._add("logs", "log-group", arn, None, f"name {prefix}*",
                          f"{group.get('storedBytes', 0)} bytes stored")

    def _add_interface(self, interface: dict[str, Any], how_found: str) -> None:
        note = interface.get("Description") or ""
        association = interface.get("Association", {})
        if association.get("AllocationId"):
            self._add("ec2", "elastic-ip", association["AllocationId"], None, how_found,
                      f"attached to {interface['NetworkInterfaceId']}; billed hourly")
        elif association.get("PublicIp"):
            # A public IPv4 address on an interface is billed even when nothing else is.
            self._add("ec2", "public-ipv4", association["PublicIp"], None, how_found,
                      f"on {interface['NetworkInterfaceId']}")
        self._add("ec2", "network-interface", interface["NetworkInterfaceId"], interface.get("Status"),
                  how_found, note)

    def _inside_vpc(self, vpc_id: str) -> None:
        how_found = f"inside leftover {vpc_id}"
        in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
        for page in self.elbv2.get_paginator("describe_load_balancers").paginate():
            for balancer in page["LoadBalancers"]:
                if balancer.get("VpcId") == vpc_id:
                    self._add("elasticloadbalancing", "loadbalancer", balancer["LoadBalancerArn"],
                              balancer.get("State", {}).get("Code"), how_found, balancer.get("Type", ""))
        # Kubernetes' in-tree controller makes classic load balancers for Services of type LoadBalancer.
        for page in self.elb.get_paginator("describe_load_balancers").paginate():
            for balancer in page["LoadBalancerDescriptions"]:
                if balancer.get("VPCId") == vpc_id:
                    self._add("elasticloadbalancing", "loadbalancer", balancer["LoadBalancerName"], None,
                              how_found, "classic")
        for page in self.ec2.get_paginator("describe_network_interfaces").paginate(Filters=in_vpc):
            for interface in page["NetworkInterfaces"]:
                self._add_interface(interface, how_found)
        for page in self.ec2.get_paginator("describe_nat_gateways").paginate(Filter=in_vpc):
            for gateway in page["NatGateways"]:
                self._add("ec2", "natgateway", gateway["NatGatewayId"], gateway["State"], how_found)
        for page in self.ec2.get_paginator("describe_security_groups").paginate(Filters=in_vpc):
            for group in page["SecurityGroups"]:
                if group.get("GroupName") != "default":  # every VPC has one; it goes with the VPC
                    self._add("ec2", "security-group", group["GroupId"], None, how_found, group.get("GroupName", ""))


def exit_code(findings: Iterable[Finding], strict: bool) -> int:
    verdicts = {finding.verdict for finding in findings}
    if BILLABLE in verdicts:
        return 1
    if strict and NOT_BILLABLE in verdicts:
        return 1
    return 0


def _explain_aws_error(exc: BaseException) -> str:
    from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                     NoRegionError, PartialCredentialsError)

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or run in a job that assumed a role")
    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(exc, EndpointConnectionError):
        return f"could not reach AWS: {exc}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"AWS refused {exc.operation_name}: {error.get('Code', '?')}: {error.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


_STACK_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")


def main(argv: Optional[Sequence[str]] = None, session: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.leftovers",
        description="After `pulumi destroy`, list what AWS still has for a stack and exit non-zero "
                    "if anything billable is left.")
    parser.add_argument("stack", help="the stack name, e.g. dev or pr-12")
    parser.add_argument("--project", default=PROJECT, help=f"value of the `project` tag (default {PROJECT})")
    parser.add_argument("--region", default=None,
                        help="AWS region to look in (default: AWS_REGION / AWS_DEFAULT_REGION / profile)")
    parser.add_argument("--cluster-name", default=None,
                        help="also report resources tagged kubernetes.io/cluster/<name> (the EKS cluster's name, "
                             "<clusterName>-<stack>, e.g. alpha-pr-12)")
    parser.add_argument("--strict", action="store_true",
                        help="exit non-zero for anything left that is not FINE, billable or not")
    args = parser.parse_args(argv)
    if not _STACK_NAME.match(args.stack):
        parser.error(f"stack: {args.stack!r} is not a stack name (letters, digits, _ . - /)")

    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        print("leftovers: error: boto3 is not installed; `pip install -r requirements-dev.txt`", file=sys.stderr)
        return 2
    try:
        if session is None:
            region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            session = boto3.Session(region_name=region)
            if not session.region_name:
                raise LeftoversError("no AWS region: pass --region or set AWS_REGION")
        findings = Inspector(session, args.project, args.stack, args.cluster_name).run()
    except LeftoversError as exc:
        print(f"leftovers: error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:  # credentials, region, access, network
        print(f"leftovers: error: {_explain_aws_error(exc)}", file=sys.stderr)
        return 2

    where = f"project={args.project} stack={args.stack} in {session.region_name}"
    if not findings:
        print(f"Nothing left for {where}.")
        return 0
    for finding in findings:
        print(finding.line())
    counts = {verdict: sum(1 for f in findings if f.verdict == verdict) for verdict in (BILLABLE, NOT_BILLABLE, FINE)}
    print(f"{where}: {counts[BILLABLE]} billable, {counts[NOT_BILLABLE]} not billable, {counts[FINE]} fine.")
    return exit_code(findings, args.strict)


if __name__ == "__main__":
    sys.exit(main())
