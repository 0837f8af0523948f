"""The offline render itself: what it writes, how it fails."""

import re
import subprocess
import sys

import pulumi
import pytest

from tools import render as render_tool
from tests.support import ROOT, failed_render


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


@pytest.mark.parametrize("setting, message", [
    ("nodeCapacityType=reserved",
     "eks-istio-shop:nodeCapacityType: 'reserved' is not valid; expected one of on-demand, spot"),
    # The program sees every key it was given, not only those it asks for.
    ("nodeDesiredSise=6",
     "eks-istio-shop:nodeDesiredSise: not a setting of this project; did you mean nodeDesiredSize?"),
    # Refused before the program runs, as by the CLI.
    ("nodeDesiredSize=four", "Stack 'dev' with configuration key 'nodeDesiredSize' must be of type 'integer'"),
])
def test_invalid_settings_fail_clearly_and_declare_nothing(tmp_path, setting, message):
    printed = failed_render(tmp_path, sets=(setting,))
    assert message in printed
    assert not (tmp_path / "resources.json").exists()


def test_the_command_itself_refuses_a_setting_and_exits_cleanly(tmp_path):
    """The tests fork renders from a warmed process that skips the interpreter's shutdown; the command
    itself must also end its program's event loops before exit, or Python reports them at shutdown."""
    result = run("dev", "--set", "nodeCapacityType=reserved", "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "eks-istio-shop:nodeCapacityType: 'reserved' is not valid" in result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "resources.json").exists()


def test_unexpected_invoke_is_refused():
    with pytest.raises(render_tool.RenderError, match="aws:ec2/getAmi:getAmi"):
        render_tool.mock_invoke("aws:ec2/getAmi:getAmi", {}, "us-east-1")


def test_secrets_and_unknowns_are_masked_and_whole_floats_become_integers():
    secret = {render_tool.SIG_KEY: render_tool.SECRET_SIG, "value": "hunter2"}
    assert render_tool.plain({"a": [secret, 4.0, render_tool.UNKNOWN]}) == {"a": ["[secret]", 4, "[unknown]"]}


PROJECT_FILE = """\
name: eks-istio-shop
runtime: python
config:
  count: {type: integer, default: 4}
  enabled: {type: boolean, default: false}
  names: {type: array, items: {type: string}, default: []}
  labels: {type: object, default: {}}
  label: {type: string, default: ""}
  size: 5
  aws:region: us-west-2
  kubernetes:context: {value: ctx}
  owner: {type: string}
  zone: {type: string, default: null}
"""


def project(tmp_path, text: str = PROJECT_FILE):
    (tmp_path / "Pulumi.yaml").write_text(text)
    return tmp_path


def test_the_stack_wins_and_project_defaults_fill_in_as_the_cli_passes_them(tmp_path):
    stack = {"count": "7", "owner": "me", "zone": "z", "names": ["a", "b"], "labels": {"b": "<1>", "a": "2"},
             "aws:region": "eu-west-1"}
    values, _ = render_tool.engine_config(render_tool.project_config("dev", stack, project(tmp_path)))
    # Text as it is; other values as Go's encoding/json writes them (compact, sorted, HTML-escaped).
    assert values == {
        "eks-istio-shop:count": "7", "eks-istio-shop:owner": "me", "eks-istio-shop:zone": "z",
        "eks-istio-shop:names": '["a","b"]', "eks-istio-shop:labels": '{"a":"2","b":"\\u003c1\\u003e"}',
        "eks-istio-shop:enabled": "false", "eks-istio-shop:label": "", "eks-istio-shop:size": "5",
        "aws:region": "eu-west-1", "kubernetes:context": "ctx",
    }


def test_settings_without_a_default_must_be_set_as_the_cli_requires(tmp_path):
    root = project(tmp_path)
    with pytest.raises(render_tool.RenderError, match="^Stack 'dev' is missing configuration value 'zone'$"):
        render_tool.project_config("dev", {"owner": "me"}, root)
    with pytest.raises(render_tool.RenderError,
                       match="^Stack 'dev' is missing configuration values 'owner' and 'zone'$"):
        render_tool.project_config("dev", {}, root)


@pytest.mark.parametrize("key, value, accepted", [
    ("count", "four", False), ("count", "4", True), ("count", 4, True), ("count", 4.5, False), ("count", True, False),
    ("enabled", "yes", False), ("enabled", "true", True), ("enabled", True, True),
    ("names", '["a"]', False), ("names", ["a"], True), ("names", ["a", 1], False),
    ("labels", '{"a": "b"}', False), ("labels", {"a": 1}, True), ("labels", ["a"], False),
    ("owner", 5, True),  # the CLI checks the text it passes, and 5 is passed as "5"
])
def test_values_are_checked_against_the_declared_type_as_the_cli_does(tmp_path, key, value, accepted):
    root = project(tmp_path)
    stack = {"owner": "me", "zone": "z", key: value}
    if accepted:
        render_tool.project_config("dev", stack, root)
    else:
        type_name = {"names": "array<string>", "labels": "object", "count": "integer", "enabled": "boolean"}[key]
        with pytest.raises(render_tool.RenderError,
                           match=f"^Stack 'dev' with configuration key '{key}' must be of type '{type_name}'$"):
            render_tool.project_config("dev", stack, root)


@pytest.mark.parametrize("declaration, message", [
    ("version: {type: string, default: 1.36}",
     "The default value specified for configuration key 'version' is not of the expected type 'string'"),
    ("names: {type: array, default: []}",
     "The configuration key 'names' declares an array but does not specify the underlying type"),
    ("names: {type: array, items: {type: integer}, default: [a]}",
     "The default value specified for configuration key 'names' is not of the expected type 'array<integer>'"),
    ("aws:region: {default: us-east-1}", "Configuration key 'aws:region' is not namespaced by the project and "
                                         "should not define a default value"),
    ("aws:region: {type: string, value: us-east-1}",
     "Configuration key 'aws:region' is not namespaced by the project and should not define a type"),
])
def test_a_project_file_the_cli_would_not_load_is_refused(tmp_path, declaration, message):
    root = project(tmp_path, f"name: eks-istio-shop\nruntime: python\nconfig:\n  {declaration}\n")
    with pytest.raises(render_tool.RenderError, match=re.escape(message)):
        render_tool.project_config("dev", {}, root)


def test_unset_gives_the_project_default_and_set_takes_lists_and_maps_as_json():
    stack = {"eks-istio-shop:domain": "lukemilo.com", **render_tool.read_stack_file("dev")}
    config = render_tool.apply_overrides(stack, ['clusterAdminArns=["arn:aws:iam::123456789012:role/a"]',
                                                 "tags={}", "nodeDesiredSize=5"], ["domain"])
    merged = render_tool.project_config("dev", config)
    assert merged["eks-istio-shop:domain"] == ""
    assert merged["eks-istio-shop:clusterAdminArns"] == ["arn:aws:iam::123456789012:role/a"]
    assert merged["eks-istio-shop:tags"] == {} and merged["eks-istio-shop:nodeDesiredSize"] == "5"


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
