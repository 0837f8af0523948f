"""The offline render itself: what it writes, how it fails."""

import subprocess
import sys

import pulumi
import pytest

from tools import render as render_tool
from tests.support import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.render", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_render_records_every_resource_with_its_graph(render):
    assert render.resources, "nothing rendered"
    urns = {r["urn"] for r in render.resources}
    # pulumi-eks components register as one resource each; their children (e.g. the aws.eks.NodeGroup
    # behind the ASG names) exist only as the mocks' resource references, named after the component.
    remote_names = {r["name"] for r in render.resources if r["type"].startswith("eks:index:")}
    for resource in render.resources:
        assert set(resource) >= {"urn", "type", "name", "parent", "custom", "provider", "dependencies",
                                 "propertyDependencies", "options", "inputs"}
        assert set(resource["options"]) >= {"protect", "ignoreChanges", "deleteBeforeReplace", "customTimeouts"}
        # Every dependency names a resource the program declared, or a child of a remote component.
        undeclared = set(resource["dependencies"]) - urns
        assert all(any(u.split("::")[-1].startswith(n + "-") for n in remote_names) for u in undeclared), \
            (resource["name"], undeclared)
    components = {r["type"] for r in render.resources if not r["custom"]}
    assert {"eks-istio-shop:network:Network", "eks-istio-shop:cluster:Cluster"} <= components


def test_every_child_is_parented_and_named_after_its_component(render):
    for resource in render.resources:
        parent = resource["parent"]
        assert parent, resource["name"]
        parent_type = parent.split("::")[2].split("$")[-1]
        if parent_type == "pulumi:pulumi:Stack":
            assert resource["type"].startswith("eks-istio-shop:"), f"{resource['name']} is not in a component"
        else:
            assert resource["name"].startswith(parent.split("::")[-1] + "-"), resource["name"]


def test_secrets_never_reach_the_render(render):
    text = (render.directory / "resources.json").read_text() + (render.directory / "outputs.json").read_text()
    assert "certificate-authority-data" not in text
    assert "get-token" not in text


def test_unknown_stack_fails_clearly(tmp_path):
    result = run("nosuchstack", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown stack 'nosuchstack'" in result.stderr and "dev" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_fail_clearly_and_declare_nothing(tmp_path):
    result = run("dev", "--out", str(tmp_path), "--set", "nodeCapacityType=reserved")
    assert result.returncode == 2
    assert "eks-istio-shop:nodeCapacityType: 'reserved' is not valid; expected one of on-demand, spot" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "resources.json").exists()


def test_unexpected_invoke_is_refused():
    with pytest.raises(render_tool.RenderError, match="aws:ec2/getAmi:getAmi"):
        render_tool.mock_invoke("aws:ec2/getAmi:getAmi", {}, "us-east-1")


def test_masking_of_engine_values():
    secret = {render_tool.SIG_KEY: render_tool.SECRET_SIG, "value": "hunter2"}
    assert render_tool.plain({"a": [secret, 4.0, render_tool.UNKNOWN]}) == {"a": ["[secret]", 4, "[unknown]"]}


def test_secure_config_values_stay_masked():
    values, secret_keys = render_tool.engine_config({"dbPassword": {"secure": "v1:abc"}, "n": 3})
    assert values == {"eks-istio-shop:dbPassword": "[secret]", "eks-istio-shop:n": "3"}
    assert secret_keys == ["eks-istio-shop:dbPassword"]


def test_every_component_is_typed_after_its_module_and_class(render):
    """Type tokens `eks-istio-shop:<module>:<Type>` name where a component lives: one module each."""
    import importlib
    tokens = {r["type"] for r in render.resources if r["type"].startswith("eks-istio-shop:")}
    assert len(tokens) >= 8
    modules = set()
    for token in tokens:
        _, module, class_name = token.split(":")
        component = getattr(importlib.import_module(f"components.{module}"), class_name)
        assert issubclass(component, pulumi.ComponentResource), token
        modules.add(module)
    assert len(modules) == len(tokens), "one component per module"
