"""Preflight: does the identity running this job have the Kubernetes access its Pulumi operation needs?

    python -m tools.access_check <stack> --needs view|admin [--cluster-name NAME] [--region R]

Run right after a workflow assumes its AWS role and before Pulumi touches the stack. IAM rights give
no Kubernetes RBAC: with access entries (authenticationMode API) an identity reaches the cluster only
through an access entry, its creator's included. Without one, `pulumi preview --refresh` fails on
every read ("unreachable cluster") and a destroy cannot delete the Helm releases; this check says so
in one line, naming the setting to change, before a 20-minute run finds out.

1. sts:GetCallerIdentity gives the assumed role; iam:GetRole gives its ARN with its path (access
   entries name roles by that ARN; without iam:GetRole the path-less ARN is tried too);
2. eks:DescribeCluster: a cluster that does not exist is fine (an up creates it and makes this
   identity its admin; a destroy has no Kubernetes objects to reach);
3. eks:ListAssociatedAccessPolicies for that principal: `admin` needs AmazonEKSClusterAdminPolicy at
   cluster scope; `view` is also met by AmazonEKSAdminViewPolicy at cluster scope.

Without --cluster-name the EKS name is worked out as the program does, from Pulumi.<stack>.yaml in
the current directory: <clusterName, default alpha>-<stack>.

Exit codes: 0 the access is there (or the cluster does not exist); 1 it is missing; 2 AWS could not
be asked (no credentials, no region, permission denied), with the reason on one line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from settings import DEFAULT_CLUSTER_NAME, PROJECT
from tools.access_model import ADMIN, VIEW, covers, missing_access_advice

POLICY_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
# Access policy name -> the level it gives at cluster scope (only the two the program grants count).
POLICY_LEVELS = {
    "AmazonEKSClusterAdminPolicy": ADMIN,
    "AmazonEKSAdminViewPolicy": VIEW,
}

_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")
_IAM_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")


class AccessCheckError(Exception):
    """AWS could not be asked, or the input is unusable: exit 2 with the message."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


def principal_candidates(caller_arn: str, iam: Any) -> list[str]:
    """The IAM principal ARNs an access entry could name for this caller, best first."""
    assumed = _ASSUMED_ROLE.match(caller_arn)
    if assumed is None:
        if _IAM_PRINCIPAL.match(caller_arn):
            return [caller_arn]  # an IAM user (or a role ARN given as is)
        raise AccessCheckError(
            f"the caller {caller_arn} is not an IAM role or user (root or a federated user cannot have an "
            "EKS access entry); run this job with an IAM role")
    plain = f"arn:{assumed['partition']}:iam::{assumed['account']}:role/{assumed['role']}"
    try:
        with_path = iam.get_role(RoleName=assumed["role"])["Role"]["Arn"]
    except Exception:  # iam:GetRole denied: the path-less ARN is still right for a role without a path
        return [plain]
    return [with_path] if with_path == plain else [with_path, plain]


def _level(policies: list[dict[str, Any]]) -> Optional[str]:
    best: Optional[str] = None
    for policy in policies:
        name = policy.get("policyArn", "").removeprefix(POLICY_PREFIX)
        level = POLICY_LEVELS.get(name)
        if level is None or policy.get("accessScope", {}).get("type") != "cluster":
            continue  # namespace-scoped, or a policy the program never grants: not enough to refresh the stack
        if best is None or covers(level, best):
            best = level
    return best


def check(session: Any, stack: str, cluster_name: str, needs: str) -> Verdict:
    from botocore.exceptions import ClientError

    caller = session.client("sts").get_caller_identity()["Arn"]
    candidates = principal_candidates(caller, session.client("iam"))
    eks = session.client("eks")
    try:
        cluster = eks.describe_cluster(name=cluster_name)["cluster"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return Verdict(True, f"cluster {cluster_name} does not exist: an up creates it and makes "
                                 f"{candidates[0]} its admin; a destroy has no Kubernetes objects to reach")
        raise
    mode = cluster.get("accessConfig", {}).get("authenticationMode", "CONFIG_MAP")
    if mode == "CONFIG_MAP":
        return Verdict(True, f"cluster {cluster_name} authenticates through the aws-auth ConfigMap only; "
                             "access entries cannot be checked (the program creates clusters with mode API)")
    for principal in candidates:
        try:
            pages = eks.get_paginator("list_associated_access_policies").paginate(
                clusterName=cluster_name, principalArn=principal)
            policies = [policy for page in pages for policy in page.get("associatedAccessPolicies", [])]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                continue  # no access entry for this ARN
            raise
        have = _level(policies)
        names = ", ".join(sorted(p.get("policyArn", "").removeprefix(POLICY_PREFIX) for p in policies)) or "none"
        if covers(have, needs):
            return Verdict(True, f"{principal} has {have} access on cluster {cluster_name} ({names}); "
                                 f"{needs} is needed")
        return Verdict(False, f"role {principal} has an access entry on cluster {cluster_name} but only "
                              f"{have or 'no cluster-wide'} access (policies: {names}); {needs} is needed: "
                              f"{missing_access_advice(stack, needs)}")
    if mode != "API":
        return Verdict(True, f"role {candidates[0]} has no access entry on cluster {cluster_name}, which also "
                             f"reads the aws-auth ConfigMap (mode {mode}); this check cannot see that, going on")
    return Verdict(False, f"role {candidates[0]} has no Kubernetes access on cluster {cluster_name}: "
                          f"{missing_access_advice(stack, needs)}")


def cluster_name_from_stack_file(stack: str, root: Path) -> str:
    """<clusterName>-<stack>, as settings.py names the EKS cluster, from Pulumi.<stack>.yaml."""
    import yaml

    bare = stack.rsplit("/", 1)[-1]
    path = root / f"Pulumi.{bare}.yaml"
    if not path.is_file():
        raise AccessCheckError(f"--cluster-name not given and {path.name} does not exist here; pass "
                               "--cluster-name <clusterName>-<stack>")
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    base = config.get(f"{PROJECT}:clusterName") or DEFAULT_CLUSTER_NAME
    return f"{base}-{bare}"


def _explain(exc: BaseException) -> str:
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: run after the job's configure-aws-credentials step"
    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        action = {"DescribeCluster": "eks:DescribeCluster",
                  "ListAssociatedAccessPolicies": "eks:ListAssociatedAccessPolicies",
                  "GetCallerIdentity": "sts:GetCallerIdentity"}.get(exc.operation_name, exc.operation_name)
        return (f"AWS refused {exc.operation_name}: {error.get('Code', '?')}: {error.get('Message', '')} "
                f"(the role needs {action}; see docs/delivery.md)")
    return f"{type(exc).__name__}: {exc}"


def main(argv: Optional[Sequence[str]] = None, session: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.access_check",
        description="Fail fast when this identity lacks the Kubernetes access its Pulumi operation needs.")
    parser.add_argument("stack", help="the stack, e.g. dev or pr-12")
    parser.add_argument("--needs", required=True, choices=(VIEW, ADMIN),
                        help="view for `pulumi preview --refresh`; admin for up, destroy and refresh")
    parser.add_argument("--cluster-name", default=None,
                        help="the EKS cluster (<clusterName>-<stack>); default: from Pulumi.<stack>.yaml")
    parser.add_argument("--region", default=None, help="default: AWS_REGION / AWS_DEFAULT_REGION")
    args = parser.parse_args(argv)
    annotate = os.environ.get("GITHUB_ACTIONS") == "true"

    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        print("access_check: error: boto3 is not installed; `pip install -r requirements-dev.txt`", file=sys.stderr)
        return 2
    try:
        cluster_name = args.cluster_name or cluster_name_from_stack_file(args.stack, Path.cwd())
        if not _CLUSTER_NAME.match(cluster_name):
            raise AccessCheckError(f"--cluster-name {cluster_name!r} is not an EKS cluster name")
        if session is None:
            region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            session = boto3.Session(region_name=region)
            if not session.region_name:
                raise AccessCheckError("no AWS region: pass --region or set AWS_REGION")
        verdict = check(session, args.stack, cluster_name, args.needs)
    except AccessCheckError as exc:
        print(f"{'::error::' if annotate else ''}access_check: error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"{'::error::' if annotate else ''}access_check: error: {_explain(exc)}", file=sys.stderr)
        return 2
    if verdict.ok:
        print(f"access_check: ok: {verdict.message}")
        return 0
    print(f"{'::error title=Kubernetes access::' if annotate else ''}access_check: {verdict.message}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
