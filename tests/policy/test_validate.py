"""tools.validate: every stack file validates clean, and each check rejects a broken object."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from tests.policy.samples import sample_manifests
from tests.support import ROOT
from tools import validate
from tools.render import available_stacks, load_stack_config

K8S = "1.35.0"
ISTIO = "1.30.5"


@pytest.fixture(scope="module")
def checkov() -> str:
    executable = validate.find_checkov()
    assert executable, "checkov is not installed: run `make checkov-venv` (make test does)"
    return executable


@pytest.fixture
def manifests() -> dict[str, dict]:
    return sample_manifests()


def test_every_stack_file_validates_clean(checkov):
    stacks = available_stacks(ROOT)
    assert stacks, "no Pulumi.<stack>.yaml in the repository"
    result = subprocess.run([sys.executable, "-m", "tools.validate", "--checkov", checkov], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for stack in stacks:
        assert f"validate: {stack}: " in result.stdout
    assert "no problems" in result.stdout


def test_an_unknown_stack_is_a_clear_error():
    result = subprocess.run([sys.executable, "-m", "tools.validate", "--stack", "nope"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "unknown stack 'nope'" in result.stderr and "Traceback" not in result.stderr


def test_samples_of_what_mesh_and_app_emit_are_valid(manifests):
    render = validate.StackRender("dev", K8S, ISTIO, manifests)
    assert validate.manifest_problems(render) == []


def test_kubernetes_objects_are_strict(manifests):
    service = copy.deepcopy(manifests["orders-svc.yaml"])
    service["spec"]["ports"][0]["targetPort_"] = 8000
    [problem] = validate.object_problems(service, K8S, ISTIO)
    assert "Service e-commerce/orders" in problem and "spec.ports.0" in problem and "targetPort_" in problem
    deployment = copy.deepcopy(manifests["orders.yaml"])
    deployment["spec"]["replicas"] = "two"
    assert "spec.replicas" in validate.object_problems(deployment, K8S, ISTIO)[0]


def test_unknown_custom_resources_are_rejected():
    certificate = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "x"}, "spec": {}}
    assert "has no schema" in validate.object_problems(certificate, K8S, ISTIO)[0]


def test_istio_objects_are_strict(manifests):
    virtual_service = copy.deepcopy(manifests["orders-vs.yaml"])
    virtual_service["spec"]["http"][0]["timeOut"] = "5s"
    problems = validate.object_problems(virtual_service, K8S, ISTIO)
    assert problems and "timeOut" in problems[0] and "VirtualService/orders" in problems[0]
    policy = copy.deepcopy(manifests["mesh-mtls.yaml"])
    policy["spec"]["mtls"]["mode"] = "STRICTLY"
    assert validate.object_problems(policy, K8S, ISTIO)


def test_helm_values_use_only_keys_the_chart_defines(manifests):
    release = copy.deepcopy(manifests["istiod.release.yaml"])
    release["values"]["pilotResources"] = {}
    assert "pilotResources" in validate.release_problems(release, K8S, ISTIO)[0]
    gateway = {"release": "istio-ingressgateway", "chart": "gateway", "version": ISTIO,
               "values": {"service": {"type": "NodePort"}, "labels": {"istio": "ingressgateway"}}}
    assert validate.release_problems(gateway, K8S, ISTIO) == []
    assert "chart version 1.29.0" in validate.release_problems({**gateway, "version": "1.29.0"}, K8S, ISTIO)[0]
    other = {"release": "redis", "chart": "redis", "version": "20.0.0", "values": {}}
    assert "no vendored values reference" in validate.release_problems(other, K8S, ISTIO)[0]


def test_a_revisions_release_is_checked_against_its_own_istio_release(manifests):
    """An istiod revision (istioRevisions) may run another release than istioVersion; its values are checked
    against that release's vendored data, and a release with none is reported, never passed unchecked."""
    release = {**copy.deepcopy(manifests["istiod.release.yaml"]), "release": "istiod-canary", "version": "1.30.2"}
    release["values"]["revision"] = "canary"
    assert validate.release_problems(release, K8S, ISTIO, revision_versions=("1.30.2",)) == []
    release["values"]["pilotResources"] = {}
    assert "pilotResources" in validate.release_problems(release, K8S, ISTIO, revision_versions=("1.30.2",))[0]
    unknown = {**release, "version": "1.99.0"}
    assert validate.release_problems(unknown, K8S, ISTIO, revision_versions=("1.99.0",))
    assert "istioRevisions 1.30.2" in validate.release_problems(unknown, K8S, ISTIO, revision_versions=("1.30.2",))[0]


def test_stack_versions_come_from_the_stack_file():
    kubernetes_version, istio_version = validate.stack_versions("dev")
    config = load_stack_config("dev")  # the stack file's values and Pulumi.yaml's defaults
    assert kubernetes_version == f"{config['eks-istio-shop:kubernetesVersion']}.0"
    assert istio_version == config["eks-istio-shop:istioVersion"]


def test_checkov_skips_need_an_id_and_a_reason(tmp_path):
    path = tmp_path / "skips.yaml"
    path.write_text(yaml.safe_dump({"skips": [
        {"id": "CKV_K8S_43", "reason": "images are pinned by an immutable ECR tag"},
        {"id": "CKV_K8S_15"},
        {"id": "K8S_1", "reason": "a reason long enough"},
        {"id": "CKV2_K8S_6", "reason": "reason given here", "resources": ["Pod.e-commerce.orders"], "why": 1},
    ]}))
    skips, problems = validate.load_skips(path)
    assert [s.check_id for s in skips] == ["CKV_K8S_43", "CKV2_K8S_6"]
    assert len(problems) == 3 and any("reason" in p for p in problems) and any("K8S_1" in p for p in problems)
    assert skips[1].covers("CKV2_K8S_6", "Pod.e-commerce.orders") and not skips[1].covers("CKV2_K8S_6", "Pod.x.y")


def test_the_repository_skip_list_is_valid():
    skips, problems = validate.load_skips()
    assert problems == []


def _scan(checkov, tmp_path, manifests, skips=()):
    render = validate.StackRender("dev", K8S, ISTIO, manifests)
    stack_of_file = validate.write_kubernetes_manifests([render], tmp_path)
    return validate.checkov_problems(validate.run_checkov(checkov, tmp_path), list(skips), stack_of_file)


def test_checkov_passes_the_samples_and_fails_a_weakened_deployment(checkov, tmp_path, manifests):
    problems, passed, _ = _scan(checkov, tmp_path / "good", manifests)
    assert problems == [] and passed > 50
    weak = copy.deepcopy(manifests)
    container = weak["orders.yaml"]["spec"]["template"]["spec"]["containers"][0]
    container.pop("resources")
    container["securityContext"]["readOnlyRootFilesystem"] = False
    problems, _, _ = _scan(checkov, tmp_path / "weak", weak)
    text = "\n".join(problems)
    assert "dev: orders.yaml: Deployment.e-commerce.orders: CKV_K8S_10" in text
    assert "CKV_K8S_22" in text and "CKV_K8S_13" in text
    skips = [validate.Skip(p.split(": ")[3].split()[0], "reason") for p in problems]
    problems, _, skipped = _scan(checkov, tmp_path / "skipped", weak, skips)
    assert problems == [] and skipped == len(skips)
