"""Offline render: run the real Pulumi program for a stack under Pulumi's mocks.

    python -m tools.render <stack> --out <dir> [--set KEY=VALUE ...] [--unset KEY ...]
                           [--platform-outputs STACK=FILE ...]

Needs no AWS credentials and no Pulumi CLI. Writes
- <dir>/resources.json: every registered resource with its type, parent, provider, dependencies,
  options and inputs (secrets masked as "[secret]");
- <dir>/outputs.json: the stack's outputs (secrets masked);
- <dir>/manifests/: every Kubernetes object as it would be sent to the cluster, one YAML file each,
  and every Helm release as <release>.release.yaml.

The program gets the stack's config as the Pulumi CLI would pass it: Pulumi.<stack>.yaml's values, and
Pulumi.yaml's default for every setting the stack does not set, checked against the declared types
(`project_config`). The mocks answer only the invokes listed in `KNOWN_INVOKES` and raise on any
other, so that a new data source cannot pass unnoticed. The program itself does not know it runs
under mocks.

An app stack reads its platform stack through a stack reference; the mock answers it with the outputs
given by `--platform-outputs STACK=FILE` (a platform stack's render's outputs.json, or any JSON map of
outputs) and refuses a platform stack it has no outputs for, as the Pulumi service refuses a stack that
does not exist. An output masked as a secret in FILE reaches the program as a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import os
import re
import runpy
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from settings import PROJECT, declared_fallback, declared_settings, engine_text, project_config_entries, qualify

ROOT = Path(__file__).resolve().parent.parent

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
SIG_KEY = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
MASK = "[secret]"


class RenderError(Exception):
    """A problem the user can fix: unknown stack, unreadable stack file, invalid settings."""


# ---------------------------------------------------------------------------------------------
# Stack configuration


def available_stacks(root: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def read_stack_file(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The config block of Pulumi.<stack>.yaml as written (keys with or without their namespace)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise RenderError(f"unknown stack '{stack}': no {path.name}; stacks in this repository: "
                          + (", ".join(available_stacks(root)) or "none"))
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise RenderError(f"{path.name} is not valid YAML: {error}") from None
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise RenderError(f"{path.name}: 'config' must be a map of settings")
    return config


def load_stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The stack's config as the Pulumi CLI gives it to the program: 'namespace:key' -> value, the stack
    file's values plus the project file's default of every setting the stack does not set."""
    return project_config(stack, read_stack_file(stack, root), root)


def project_config(stack: str, config: dict[str, Any], root: Path = ROOT) -> dict[str, Any]:
    """Merge the project file's config into a stack's as the CLI does before it runs the program.

    As pulumi/pulumi pkg/workspace/config.go mergeConfig (`pulumi up`, `preview`): a value the stack sets
    wins; otherwise the project's default (or, for another namespace, its value) applies; a setting of
    this project with neither stops the run, naming every missing key; then each value is checked
    against its declared type and the first mismatch stops the run. The messages are the CLI's.
    """
    entries = project_config_entries(root / "Pulumi.yaml")
    check_project_config(entries)
    merged = {qualify(k): v for k, v in config.items()}
    missing = []
    for key in sorted(entries):
        entry = entries[key]
        if key in merged:
            continue
        fallback = declared_fallback(entry)
        if fallback is not None:
            merged[key] = copy.deepcopy(fallback)  # the parsed project file is shared
        elif key.startswith(f"{PROJECT}:"):
            missing.append(key.split(":", 1)[1])
    if missing:
        names = [f"'{name}'" for name in missing]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        raise RenderError(f"Stack '{stack}' is missing configuration value{'s' if len(names) > 1 else ''} {listed}")
    for key in sorted(entries):
        entry, value = entries[key], merged[key]
        if not entry.get("type") or not key.startswith(f"{PROJECT}:") or _is_secure(value):
            continue  # untyped; another package's value; ciphertext the render cannot read
        # The CLI checks the text it would pass, parsed back only where it holds a list or map.
        content = value if isinstance(value, (list, dict)) else engine_text(value)
        if not _has_config_type(content, entry["type"], entry.get("items")):
            raise RenderError(f"Stack '{stack}' with configuration key '{key.split(':', 1)[1]}' must be of type "
                              f"'{_config_type_name(entry['type'], entry.get('items'))}'")
    return merged


def check_project_config(entries: dict[str, dict]) -> None:
    """Refuse a `config:` block the CLI would refuse to load, with its message.

    As pulumi/pulumi sdk/go/common/workspace/project.go Project.Validate: a setting of this project may
    declare a type (an array also its items' type) and a default of that type; a key of another
    namespace only sets a value.
    """
    for key, entry in entries.items():
        name = key.split(":", 1)[1] if key.startswith(f"{PROJECT}:") else key
        type_name, default = entry.get("type"), entry.get("default")
        if default is not None and entry.get("value") is not None:
            raise RenderError(f"project config '{name}' cannot have both a 'default' and 'value' attribute")
        if key.startswith(f"{PROJECT}:"):
            if type_name == "array" and entry.get("items") is None:
                raise RenderError(f"The configuration key '{name}' declares an array but does not specify the "
                                  f"underlying type via the 'items' attribute")
            if type_name and default is not None and not _has_config_type(default, type_name, entry.get("items")):
                raise RenderError(f"The default value specified for configuration key '{name}' is not of the "
                                  f"expected type '{_config_type_name(type_name, entry.get('items'))}'")
        elif type_name:
            raise RenderError(f"Configuration key '{name}' is not namespaced by the project and should not "
                              f"define a type")
        elif default is not None:
            raise RenderError(f"Configuration key '{name}' is not namespaced by the project and should not define "
                              f"a default value. Did you mean to use the 'value' attribute instead of 'default'?")
        elif entry.get("value") is None:
            raise RenderError(f"Configuration key '{name}' is namespaced and must provide an attribute 'value'")


def _has_config_type(value: Any, type_name: str, items: Optional[dict]) -> bool:
    """pulumi/pulumi sdk/go/common/workspace/project.go ValidateConfigValue."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return True
        return isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value) is not None
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_name == "object":
        return isinstance(value, dict)
    return isinstance(value, list) and items is not None and all(
        _has_config_type(item, items.get("type"), items.get("items")) for item in value)


def _config_type_name(type_name: str, items: Optional[dict]) -> str:
    return f"array<{_config_type_name(items.get('type'), items.get('items'))}>" if items else type_name


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def engine_config(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Config as the engine hands it to a program: text, with lists and maps as JSON (settings.engine_text)."""
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        key = qualify(key)
        if _is_secure(value):
            # Ciphertext cannot be decrypted offline; the program sees a placeholder.
            values[key] = MASK
            secret_keys.append(key)
        else:
            values[key] = engine_text(value)
    return values, secret_keys


# ---------------------------------------------------------------------------------------------
# What the mocks return


# Stack name -> its outputs, for stack references (`--platform-outputs`).
PLATFORM_OUTPUTS: dict[str, dict] = {}


def read_platform_outputs(items: list[str]) -> dict[str, dict]:
    """`STACK=FILE` items: each stack's outputs from a JSON map (such as a render's outputs.json)."""
    found: dict[str, dict] = {}
    for item in items:
        stack, sep, file_name = item.partition("=")
        if not sep or not stack or not file_name:
            raise RenderError(f"--platform-outputs takes STACK=FILE, not {item!r}")
        try:
            outputs = json.loads(Path(file_name).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RenderError(f"--platform-outputs {item}: cannot read the outputs: {error}") from None
        if not isinstance(outputs, dict):
            raise RenderError(f"--platform-outputs {item}: expected a JSON map of output names to values")
        found[stack] = outputs
    return found


def stack_reference_state(name: str) -> dict:
    """A stack reference's state as the Pulumi service gives it: the outputs and which are secrets."""
    if name not in PLATFORM_OUTPUTS:
        known = ", ".join(sorted(PLATFORM_OUTPUTS)) or "none (pass --platform-outputs STACK=FILE)"
        raise RenderError(f"stack reference: platform stack '{name}' does not exist; stacks with outputs "
                          f"here: {known}")
    outputs = PLATFORM_OUTPUTS[name]
    return {"name": name, "outputs": outputs, "secretOutputNames": sorted(k for k, v in outputs.items() if v == MASK)}


def _aws_region(config: dict[str, str]) -> str:
    return config.get("aws:region", "us-east-1")


def mock_invoke(token: str, args: dict, region: str) -> dict:
    handler = KNOWN_INVOKES.get(token)
    if handler is None:
        raise RenderError(f"the program calls invoke '{token}', which the offline render does not mock; "
                          f"add an answer for it to tools/render.py KNOWN_INVOKES")
    return handler(args, region)


def _availability_zones(args: dict, region: str) -> dict:
    names = [f"{region}{suffix}" for suffix in "abcdef"]
    return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)], "id": region,
            "groupNames": [region]}


def _instance_type_offerings(args: dict, region: str) -> dict:
    # Every mocked zone offers every instance type; the program still drops the zones EKS refuses.
    zone_ids = _availability_zones({}, region)["zoneIds"]
    instance_types = [v for f in args.get("filters") or [] for v in f.get("values", [])]
    return {"id": region, "locations": zone_ids, "locationTypes": ["availability-zone-id"] * len(zone_ids),
            "instanceTypes": instance_types * len(zone_ids) if instance_types else []}


def _route53_zone(args: dict, region: str) -> dict:
    name = (args.get("name") or "example.com").rstrip(".")
    zone_id = args.get("zoneId") or "Z0MOCKZONE000000000000"
    return {"id": zone_id, "zoneId": zone_id, "name": name, "arn": f"arn:aws:route53:::hostedzone/{zone_id}",
            "privateZone": False, "nameServers": [f"ns-1.awsdns-01.{name}"]}


def _caller_identity(args: dict, region: str) -> dict:
    return {"accountId": "123456789012", "arn": "arn:aws:iam::123456789012:role/deployer",
            "id": "123456789012", "userId": "AROAMOCK"}


def _session_context(args: dict, region: str) -> dict:
    """An assumed role's session ARN resolves to the role (without its path, which the mock cannot know)."""
    arn = args["arn"]
    match = re.match(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)$", arn)
    if not match:
        return {"arn": arn, "id": arn, "issuerArn": arn, "issuerId": "", "issuerName": "", "sessionName": ""}
    partition, account, role, session = match.groups()
    issuer = f"arn:{partition}:iam::{account}:role/{role}"
    return {"arn": arn, "id": arn, "issuerArn": issuer, "issuerId": "AROAMOCK", "issuerName": role,
            "sessionName": session}


def _eks_clusters(args: dict, region: str) -> dict:
    """The clusters already in the account: none, unless the render was told otherwise."""
    return {"id": region, "names": list(EXISTING_CLUSTERS)}


def _ecr_authorization_token(args: dict, region: str) -> dict:
    registry = args.get("registryId") or "123456789012"
    return {"id": region, "registryId": registry, "userName": "AWS", "password": "mock-ecr-password",
            "authorizationToken": "QVdTOm1vY2stZWNyLXBhc3N3b3Jk", "expiresAt": "2026-01-01T12:00:00Z",
            "proxyEndpoint": f"https://{registry}.dkr.ecr.{region}.amazonaws.com"}


KNOWN_INVOKES: dict[str, Callable[[dict, str], dict]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:route53/getZone:getZone": _route53_zone,
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _instance_type_offerings,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": _ecr_authorization_token,
    "aws:iam/getSessionContext:getSessionContext": _session_context,
    "aws:eks/getClusters:getClusters": _eks_clusters,
}
# EKS cluster names the mocked account already has (--existing-cluster): a render of a later update.
EXISTING_CLUSTERS: list[str] = []


def mock_state(typ: str, name: str, inputs: dict, region: str) -> dict:
    """Outputs a resource would have after create: its inputs plus what the cloud computes."""
    state = dict(inputs)
    if typ.startswith("aws:"):
        service = typ.split(":")[1].split("/")[0]
        state.setdefault("arn", f"arn:aws:{service}:{region}:123456789012:{name}")
        state.setdefault("name", inputs.get("namePrefix", "") + name)
    extra = MOCK_OUTPUTS.get(typ)
    if extra:
        state.update(extra(name, inputs, region))
    return state


def _eks_cluster(name: str, inputs: dict, region: str) -> dict:
    cluster = inputs.get("name") or name
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": f"https://{cluster}.eks.mock",
                                                    "certificate-authority-data": "bW9jaw=="}}],
        "contexts": [{"name": "aws", "context": {"cluster": cluster, "user": "aws"}}],
        "current-context": "aws",
        "users": [{"name": "aws", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster, "--output", "json"]}}}],
    }
    return {
        "kubeconfig": kubeconfig,
        "kubeconfigJson": json.dumps(kubeconfig),
        "oidcProviderArn": f"arn:aws:iam::123456789012:oidc-provider/oidc.eks.{region}.amazonaws.com/id/MOCK",
        "oidcProviderUrl": f"oidc.eks.{region}.amazonaws.com/id/MOCK",
        "clusterSecurityGroupId": "sg-cluster0mock",
        "nodeSecurityGroupId": "sg-cluster0mock",
    }


def _launch_template(name: str, inputs: dict, region: str) -> dict:
    return {"latestVersion": 1, "defaultVersion": 1}


def _load_balancer(name: str, inputs: dict, region: str) -> dict:
    return {"dnsName": f"{name}-0123456789.elb.{region}.amazonaws.com", "zoneId": "Z26RNL4JYFTOTI",
            "arnSuffix": f"net/{name}/0123456789"}


def _certificate(name: str, inputs: dict, region: str) -> dict:
    """One validation option per name, as ACM gives them: a wildcard shares its base name's record."""
    names = [inputs.get("domainName", "example.com"), *(inputs.get("subjectAlternativeNames") or [])]
    options = []
    for domain in names:
        base = domain[2:] if domain.startswith("*.") else domain
        options.append({"domainName": domain, "resourceRecordName": f"_mock.{base}.",
                        "resourceRecordType": "CNAME", "resourceRecordValue": f"_mock.{base}.acm-validations.aws."})
    return {"domainValidationOptions": options}


def _route53_record(name: str, inputs: dict, region: str) -> dict:
    return {"fqdn": (inputs.get("name") or name).rstrip(".")}


def _ecr_repository(name: str, inputs: dict, region: str) -> dict:
    repository = inputs.get("name") or name
    return {"registryId": "123456789012",
            "repositoryUrl": f"123456789012.dkr.ecr.{region}.amazonaws.com/{repository}"}


def _docker_build_image(name: str, inputs: dict, region: str) -> dict:
    """A pushed build: its digest follows what was built, as a registry's would."""
    built = json.dumps({k: inputs.get(k) for k in ("context", "dockerfile", "platforms", "tags")}, sort_keys=True)
    digest = "sha256:" + hashlib.sha256(built.encode()).hexdigest()
    tags = inputs.get("tags") or []
    return {"digest": digest, "ref": f"{tags[0]}@{digest}" if tags else ""}


MOCK_OUTPUTS: dict[str, Callable[[str, dict, str], dict]] = {
    "eks:index:Cluster": _eks_cluster,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:acm/certificate:Certificate": _certificate,
    "aws:route53/record:Record": _route53_record,
    "aws:ecr/repository:Repository": _ecr_repository,
    "docker-build:index:Image": _docker_build_image,
}


# ---------------------------------------------------------------------------------------------
# Turning what the engine receives into plain, masked JSON


def plain(value: Any) -> Any:
    """A deserialized protobuf value with secrets masked and engine sentinels made readable."""
    if isinstance(value, dict):
        sig = value.get(SIG_KEY)
        if sig == SECRET_SIG:
            return MASK
        if sig == RESOURCE_SIG:
            return {"resourceUrn": value.get("urn")}
        if sig == OUTPUT_SIG:
            if value.get("secret"):
                return MASK
            return plain(value.get("value")) if "value" in value else "[unknown]"
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if value == UNKNOWN:
        return "[unknown]"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return "[unknown]" if type(value).__name__ == "Unknown" else str(value)


def _struct_to_python(struct) -> Any:
    from google.protobuf import json_format
    return json_format.MessageToDict(struct, preserving_proto_field_name=True)


def _record(request, urn: str) -> dict:
    timeouts = request.customTimeouts
    return {
        "urn": urn,
        "type": request.type,
        "name": request.name,
        "parent": request.parent or None,
        "custom": bool(request.custom),
        "provider": request.provider or None,
        "dependencies": list(request.dependencies),
        "propertyDependencies": {k: list(v.urns) for k, v in request.propertyDependencies.items()},
        "options": {
            "protect": bool(request.protect),
            "ignoreChanges": list(request.ignoreChanges),
            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
            "retainOnDelete": bool(request.retainOnDelete),
            "deletedWith": request.deletedWith or None,
            "customTimeouts": {k: getattr(timeouts, k) for k in ("create", "update", "delete")
                               if getattr(timeouts, k)},
            "aliases": [str(a).strip() for a in request.aliases],
        },
        "inputs": plain(_struct_to_python(request.object)),
    }


# ---------------------------------------------------------------------------------------------
# Running the program


def apply_stack_transforms(request, transforms: list) -> None:
    """Run the program's stack transforms on a registration, in order, as the engine does.

    The mock monitor leaves this to the mocks (pulumi.runtime.Mocks.register_transform). Transforms
    here see the inputs as the engine would, in camelCase; what they change must be plain data.
    """
    import pulumi
    from pulumi.runtime import rpc

    for transform in transforms:
        props = rpc.deserialize_properties(request.object)
        result = transform(pulumi.ResourceTransformArgs(custom=bool(request.custom), type_=request.type,
                                                         name=request.name, props=props,
                                                         opts=pulumi.ResourceOptions()))
        if result is None:
            continue
        for key, value in result.props.items():
            if props.get(key) != value:
                request.object[key] = value


def run_program(stack: str, config: dict[str, Any], root: Path = ROOT) -> tuple[list[dict], dict]:
    """Run __main__.py for `stack` with `config` under mocks; return (resources, stack outputs)."""
    import pulumi
    from pulumi.runtime import mocks, rpc
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    values, secret_keys = engine_config(project_config(stack, config, root))
    region = _aws_region(values)
    records: list[dict] = []
    stack_outputs: dict = {}
    failures: list[BaseException] = []

    class RenderMocks(pulumi.runtime.Mocks):
        monitor: "RecordingMonitor"
        def __init__(self) -> None:
            super().__init__()
            # Stack transforms the program registers; the engine would run them on every registration.
            self.transforms: list = []

        def register_transform(self, transform) -> None:
            self.transforms.append(transform)

        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            if args.typ == "pulumi:pulumi:StackReference":
                try:
                    return args.resource_id or args.name, stack_reference_state(args.inputs.get("name") or args.name)
                except RenderError as error:
                    failures.append(error)
                    raise
            state = mock_state(args.typ, args.name, args.inputs, region)
            if args.typ == "eks:index:ManagedNodeGroup":
                state["nodeGroup"] = self.monitor.child_reference(
                    args.name, "aws:eks/nodeGroup:NodeGroup", f"{args.name}-nodegroup",
                    {"resources": [{"autoscalingGroups": [{"name": f"eks-{args.name}-asg"}]}],
                     "nodeGroupName": f"{args.name}-nodegroup", "arn": f"arn:aws:eks:{region}:123456789012:nodegroup"})
            # Components have no id; custom resources and providers do.
            is_custom = args.custom or args.typ.startswith("pulumi:providers:")
            return (f"{args.name}-id" if is_custom else None), state

        def call(self, args: pulumi.runtime.MockCallArgs):
            try:
                return mock_invoke(args.token, args.args, region)
            except RenderError as error:
                failures.append(error)
                raise

    # Event loops the mock monitor needs on the runtime's executor threads; it would make them itself and
    # never close them (see close_event_loop).
    thread_loops: list[asyncio.AbstractEventLoop] = []

    class RecordingMonitor(mocks.MockMonitor):
        @staticmethod
        def thread_loop() -> None:
            """Give the calling thread an event loop the render closes, before the mock monitor makes one."""
            try:
                asyncio.get_event_loop()
            except RuntimeError:
                thread_loop = asyncio.new_event_loop()
                asyncio.set_event_loop(thread_loop)
                thread_loops.append(thread_loop)

        def Invoke(self, request):
            self.thread_loop()
            return super().Invoke(request)

        def RegisterResource(self, request):
            self.thread_loop()
            if request.type != "pulumi:pulumi:Stack":
                apply_stack_transforms(request, render_mocks.transforms)
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                records.append(_record(request, response.urn))
            return response

        def ReadResource(self, request):
            # A read (a stack reference) is a resource of the graph too: recorded with the id it reads.
            self.thread_loop()
            response = super().ReadResource(request)
            records.append({
                "urn": response.urn, "type": request.type, "name": request.name, "parent": request.parent or None,
                "custom": True, "provider": request.provider or None, "dependencies": list(request.dependencies),
                "propertyDependencies": {}, "id": request.id,
                "options": {"protect": False, "ignoreChanges": [], "deleteBeforeReplace": False,
                            "retainOnDelete": False, "deletedWith": None, "customTimeouts": {}, "aliases": [],
                            "read": True},
                "inputs": plain(_struct_to_python(request.properties)),
            })
            return response

        # Multi-language components take resources as inputs; the mock monitor mishandles resource
        # references across event loops, so resource-valued inputs arrive as URN strings instead.
        def SupportsFeature(self, request):
            if request.id == "resourceReferences":
                return type("SupportsFeatureResponse", (object,), {"hasSupport": False})
            return super().SupportsFeature(request)

        def GetDeploymentInfo(self, request):
            info = super().GetDeploymentInfo(request)
            features = [f for f in info.supportedFeatures
                        if f != resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES]
            return resource_pb2.DeploymentInfo(supportedFeatures=features)

        def child_reference(self, parent_name: str, typ: str, name: str, state: dict) -> dict:
            """A resource reference to a child a remote component would create, resolvable by the SDK."""
            urn = f"urn:pulumi:{stack}::{PROJECT}::{typ}::{name}"
            self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, f"{name}-id", state)
            return {rpc._special_sig_key: rpc._special_resource_sig, "urn": urn, "id": f"{name}-id"}

    async def collect_stack_outputs() -> None:
        root_stack = pulumi.runtime.settings.get_root_resource()
        for key, value in (getattr(root_stack, "outputs", None) or {}).items():
            output = pulumi.Output.from_input(value)
            resolved = await output.future(with_unknowns=True)
            stack_outputs[key] = MASK if await output.is_secret() else plain(_to_jsonable(resolved))

    def program_then_outputs():
        runpy.run_path(str(program), run_name="__main__")
        return collect_stack_outputs()

    program = root / "__main__.py"
    sys.path.insert(0, str(root))
    previous_cwd = os.getcwd()
    # The program runs on a loop of the render's own (the mocks' runtime binds its futures to the loop that is
    # current while it is set up), closed with the executor threads' loops when the program is done: a loop
    # left for the interpreter to collect at exit can fail there, after the render ("Exception ignored in:
    # BaseEventLoop.__del__ ... Invalid file descriptor: -1").
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        render_mocks = RenderMocks()
        monitor = RecordingMonitor(render_mocks)
        render_mocks.monitor = monitor
        pulumi.runtime.set_mocks(render_mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(values, secret_keys)
        os.chdir(root)
        _sync_await(run_pulumi_func(program_then_outputs))
    finally:
        os.chdir(previous_cwd)
        close_event_loop(loop, thread_loops)
    if failures:
        raise failures[0]
    return records, stack_outputs


def close_event_loop(loop: asyncio.AbstractEventLoop, thread_loops: list[asyncio.AbstractEventLoop]) -> None:
    """Close the program's `loop` as asyncio.run closes its own (cancel what is still pending, as a refusal can
    leave registrations waiting; finish async generators; join the executor's threads), then the loops of
    those threads."""
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        for thread_loop in thread_loops:
            thread_loop.close()


# ---------------------------------------------------------------------------------------------
# Manifests


def _is_kubernetes_object(record: dict) -> bool:
    typ = record["type"]
    return (typ.startswith("kubernetes:") and record["custom"]
            and typ != "kubernetes:helm.sh/v3:Release")


def _file_stem(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def manifests(records: list[dict]) -> dict[str, dict]:
    """File name -> document, for every Kubernetes object and Helm release."""
    files: dict[str, dict] = {}
    for record in records:
        inputs = record["inputs"]
        if record["type"] == "kubernetes:helm.sh/v3:Release":
            release = inputs.get("name") or record["name"]
            files[f"{_file_stem(release)}.release.yaml"] = {
                "release": release,
                "chart": inputs.get("chart"),
                "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
                "version": inputs.get("version"),
                "namespace": inputs.get("namespace"),
                "values": inputs.get("values") or {},
            }
        elif _is_kubernetes_object(record):
            metadata = inputs.get("metadata") or {}
            namespace = metadata.get("namespace") or "cluster"
            stem = _file_stem(f"{inputs.get('kind', record['type'].split(':')[-1])}-{namespace}-"
                              f"{metadata.get('name') or record['name']}")
            files[f"{stem}.yaml"] = {k: v for k, v in inputs.items()}
    return files


def write_render(out: Path, records: list[dict], outputs: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "resources.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    (out / "outputs.json").write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    manifest_dir = out / "manifests"
    manifest_dir.mkdir(exist_ok=True)
    for stale in manifest_dir.glob("*.yaml"):
        stale.unlink()
    for file_name, document in manifests(records).items():
        (manifest_dir / file_name).write_text(yaml.safe_dump(document, sort_keys=False))


def apply_overrides(config: dict[str, Any], sets: list[str], unsets: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` as `pulumi config set` (a list or map setting takes JSON, as if set with --path)
    and `--unset KEY` as `pulumi config rm`: the project's default then applies."""
    declarations = declared_settings()
    config = {qualify(k): v for k, v in config.items()}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RenderError(f"--set takes KEY=VALUE, not {item!r}")
        namespace, _, name = qualify(key).partition(":")
        declaration = declarations.get(name) if namespace == PROJECT else None
        if declaration is not None and declaration.type in ("array", "object"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # left as text, which the type check refuses as the CLI would
        config[qualify(key)] = value
    for key in unsets:
        config.pop(qualify(key), None)
    return config


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", required=True, type=Path, help="directory to write the render to")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (KEY without a namespace means eks-istio-shop:KEY; "
                             "a list or map as JSON)")
    parser.add_argument("--unset", action="append", default=[], metavar="KEY",
                        help="remove a setting from the stack: its default in Pulumi.yaml applies")
    parser.add_argument("--existing-cluster", action="append", default=[], metavar="NAME",
                        help="render an update: the mocked account already has this EKS cluster")
    parser.add_argument("--stack-name", metavar="NAME",
                        help="run as stack NAME with the stack file's settings (e.g. a second app stack)")
    parser.add_argument("--platform-outputs", action="append", default=[], metavar="STACK=FILE",
                        help="a platform stack's outputs (e.g. its render's outputs.json) for stack references")
    args = parser.parse_args(argv)
    EXISTING_CLUSTERS[:] = args.existing_cluster

    import pulumi

    try:
        PLATFORM_OUTPUTS.clear()
        PLATFORM_OUTPUTS.update(read_platform_outputs(args.platform_outputs))
        config = apply_overrides(read_stack_file(args.stack), args.set, args.unset)
        records, outputs = run_program(args.stack_name or args.stack, config)
    except RenderError as error:
        print(f"render: {error}", file=sys.stderr)
        return 2
    except pulumi.RunError as error:
        print(f"render: {error}", file=sys.stderr)
        return 2
    write_render(args.out, records, outputs)
    print(f"render: {len(records)} resources for stack '{args.stack_name or args.stack}' written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
