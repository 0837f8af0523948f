"""tools.access_check against stubbed AWS answers (botocore's Stubber; moto has no EKS access entries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import boto3
import pytest
from botocore.stub import Stubber

from tools import access_check

ACCOUNT = "123456789012"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-shop-preview/preview-pr-7"
ROLE_WITH_PATH = f"arn:aws:iam::{ACCOUNT}:role/ci/eks-shop-preview"
ROLE_PLAIN = f"arn:aws:iam::{ACCOUNT}:role/eks-shop-preview"
CLUSTER = "alpha-dev"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"
NAMESPACE_VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"


class StubSession:
    """What access_check asks of a boto3 Session: clients (here stubbed) and a region."""

    region_name = "us-east-1"

    def __init__(self) -> None:
        self.clients = {name: boto3.client(name, region_name="us-east-1", aws_access_key_id="x",
                                           aws_secret_access_key="x")
                        for name in ("sts", "iam", "eks")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}

    def client(self, name: str) -> Any:
        return self.clients[name]

    def __enter__(self) -> "StubSession":
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()
            stub.deactivate()


def caller(session: StubSession, arn: str = CALLER) -> None:
    session.stubs["sts"].add_response("get_caller_identity", {"Arn": arn, "Account": ACCOUNT, "UserId": "AROA:x"})


def role(session: StubSession, arn: Optional[str] = ROLE_WITH_PATH, name: str = "eks-shop-preview") -> None:
    if arn is None:
        session.stubs["iam"].add_client_error("get_role", "AccessDenied", "not allowed", 403,
                                              expected_params={"RoleName": name})
        return
    session.stubs["iam"].add_response("get_role", {"Role": {
        "Path": "/", "RoleName": name, "RoleId": "AROAEXAMPLEEXAMPLE12", "Arn": arn,
        "CreateDate": "2026-01-01T00:00:00Z", "AssumeRolePolicyDocument": "{}"}},
        expected_params={"RoleName": name})


def cluster(session: StubSession, mode: Optional[str] = "API", name: str = CLUSTER) -> None:
    if mode is None:
        session.stubs["eks"].add_client_error("describe_cluster", "ResourceNotFoundException", "No cluster found",
                                              404, expected_params={"name": name})
        return
    session.stubs["eks"].add_response("describe_cluster", {"cluster": {
        "name": name, "status": "ACTIVE", "accessConfig": {"authenticationMode": mode}}},
        expected_params={"name": name})


def policies(session: StubSession, principal: str, *associated: tuple[str, str], name: str = CLUSTER) -> None:
    stub = session.stubs["eks"]
    params = {"clusterName": name, "principalArn": principal}
    if not associated:
        stub.add_client_error("list_associated_access_policies", "ResourceNotFoundException",
                              "The specified principalArn could not be found", 404, expected_params=params)
        return
    stub.add_response("list_associated_access_policies", {
        "clusterName": name, "principalArn": principal,
        "associatedAccessPolicies": [
            {"policyArn": arn, "accessScope": {"type": scope, **({"namespaces": ["e-commerce"]} if scope == "namespace"
                                                                 else {})}}
            for arn, scope in associated]}, expected_params=params)


def run(session: StubSession, stack: str, needs: str, name: str = CLUSTER) -> access_check.Verdict:
    with session:
        return access_check.check(session, stack, name, needs)


def test_a_viewer_entry_is_enough_for_a_refreshing_preview():
    session = StubSession()
    caller(session), role(session), cluster(session), policies(session, ROLE_WITH_PATH, (VIEW_POLICY, "cluster"))
    verdict = run(session, "dev", "view")
    assert verdict.ok, verdict.message
    assert ROLE_WITH_PATH in verdict.message, "the role is named with its path, as the access entry names it"


def test_a_viewer_entry_is_not_enough_to_update():
    session = StubSession()
    caller(session), role(session), cluster(session), policies(session, ROLE_WITH_PATH, (VIEW_POLICY, "cluster"))
    verdict = run(session, "dev", "admin")
    assert not verdict.ok
    assert "eks-istio-shop:clusterAdminArns of stack dev" in verdict.message
    assert "admin is needed" in verdict.message


def test_no_access_entry_names_the_viewer_setting_of_dev():
    session = StubSession()
    caller(session), role(session), cluster(session)
    policies(session, ROLE_WITH_PATH)
    policies(session, ROLE_PLAIN)  # a role with a path is also tried without it
    verdict = run(session, "dev", "view")
    assert not verdict.ok
    assert verdict.message.startswith(f"role {ROLE_WITH_PATH} has no Kubernetes access on cluster alpha-dev")
    assert "repository variable PREVIEW_ROLE_ARN" in verdict.message
    assert "eks-istio-shop:clusterViewerArns of stack dev" in verdict.message


def test_the_creator_found_under_the_path_less_arn_is_admin():
    session = StubSession()
    caller(session), role(session), cluster(session)
    policies(session, ROLE_WITH_PATH)
    policies(session, ROLE_PLAIN, (ADMIN_POLICY, "cluster"))
    verdict = run(session, "dev", "admin")
    assert verdict.ok and ROLE_PLAIN in verdict.message


def test_without_iam_get_role_the_path_less_arn_is_used():
    session = StubSession()
    caller(session), role(session, arn=None), cluster(session)
    policies(session, ROLE_PLAIN, (ADMIN_POLICY, "cluster"))
    assert run(session, "dev", "admin").ok


def test_namespace_scoped_or_other_policies_do_not_count():
    session = StubSession()
    caller(session), role(session), cluster(session)
    policies(session, ROLE_WITH_PATH, (ADMIN_POLICY, "namespace"), (NAMESPACE_VIEW, "cluster"))
    verdict = run(session, "dev", "view")
    assert not verdict.ok
    assert "AmazonEKSClusterAdminPolicy" in verdict.message and "clusterViewerArns" in verdict.message


def test_a_cluster_that_does_not_exist_is_fine_for_up_and_destroy():
    session = StubSession()
    caller(session), role(session), cluster(session, mode=None, name="alpha-pr-5")
    verdict = run(session, "pr-5", "admin", name="alpha-pr-5")
    assert verdict.ok and "does not exist" in verdict.message


def test_a_demo_stack_points_at_the_teardown_variable():
    session = StubSession()
    teardown = f"arn:aws:iam::{ACCOUNT}:role/eks-shop-demo-teardown"
    caller(session, f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-shop-demo-teardown/demo-pr-5")
    role(session, teardown, name="eks-shop-demo-teardown")
    cluster(session, name="alpha-pr-5")
    policies(session, teardown, name="alpha-pr-5")
    verdict = run(session, "org/eks-istio-shop/pr-5", "admin", name="alpha-pr-5")
    assert not verdict.ok
    assert "DEMO_TEARDOWN_ROLE_ARN" in verdict.message and "eks-istio-shop:clusterAdminArns" in verdict.message


def test_an_iam_user_is_checked_as_is():
    user = f"arn:aws:iam::{ACCOUNT}:user/alice"
    session = StubSession()
    caller(session, user), cluster(session), policies(session, user, (ADMIN_POLICY, "cluster"))
    assert run(session, "dev", "admin").ok


def test_a_config_map_only_cluster_cannot_be_checked_and_is_let_through():
    session = StubSession()
    caller(session), role(session), cluster(session, mode="CONFIG_MAP")
    verdict = run(session, "dev", "admin")
    assert verdict.ok and "aws-auth" in verdict.message


def test_root_is_refused_with_a_reason():
    session = StubSession()
    caller(session, f"arn:aws:iam::{ACCOUNT}:root")
    with pytest.raises(access_check.AccessCheckError, match="not an IAM role or user"):
        run(session, "dev", "view")


# -- the command line -----------------------------------------------------------------------------

def test_main_exits_1_with_the_advice_and_an_annotation_in_actions(capsys, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    session = StubSession()
    caller(session), role(session), cluster(session)
    policies(session, ROLE_WITH_PATH), policies(session, ROLE_PLAIN)
    with session:
        code = access_check.main(["dev", "--needs", "view", "--cluster-name", CLUSTER], session=session)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("::error title=Kubernetes access::access_check: role ")
    assert "clusterViewerArns" in err


def test_main_derives_the_cluster_name_from_the_stack_file(capsys, monkeypatch, tmp_path: Path):
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  eks-istio-shop:clusterName: beta\n")
    monkeypatch.chdir(tmp_path)
    session = StubSession()
    caller(session), role(session), cluster(session, name="beta-dev")
    policies(session, ROLE_WITH_PATH, (ADMIN_POLICY, "cluster"), name="beta-dev")
    with session:
        assert access_check.main(["dev", "--needs", "admin"], session=session) == 0
    assert "beta-dev" in capsys.readouterr().out


def test_main_defaults_the_cluster_base_name_like_the_program(tmp_path: Path):
    (tmp_path / "Pulumi.pr-3.yaml").write_text("config:\n  aws:region: us-east-1\n")
    assert access_check.cluster_name_from_stack_file("pr-3", tmp_path) == "alpha-pr-3"
    with pytest.raises(access_check.AccessCheckError, match="--cluster-name"):
        access_check.cluster_name_from_stack_file("pr-4", tmp_path)


def test_main_exits_2_naming_the_permission_aws_refused(capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    session = StubSession()
    caller(session), role(session)
    session.stubs["eks"].add_client_error("describe_cluster", "AccessDeniedException", "not authorized", 403)
    with session:
        code = access_check.main(["dev", "--needs", "view", "--cluster-name", CLUSTER], session=session)
    assert code == 2
    assert "eks:DescribeCluster" in capsys.readouterr().err


def test_main_refuses_a_bad_needs_value(capsys):
    with pytest.raises(SystemExit) as exited:
        access_check.main(["dev", "--needs", "edit"])
    assert exited.value.code == 2
    assert "invalid choice: 'edit'" in capsys.readouterr().err
