"""Policy arguments built from the offline render, shaped as the Pulumi engine hands them to a pack.

The render records each resource's inputs with "[unknown]" for values not known yet; the engine
sends those as sentinel strings, and pulumi_policy wraps the properties in a proxy that raises
UnknownValueError when one is read. Both are reproduced here, so a policy that reads an unknown
value carelessly fails its test the way it would fail a preview.
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Optional

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policy import eks_istio_shop

RENDER_UNKNOWN = "[unknown]"


def domain_modules() -> list:
    """Every module of the pack that declares policies (a `POLICIES` list), found by walking the package,
    so that a new domain module is tested (and checked to reach the pack) without being listed here."""
    modules = [importlib.import_module(f"{eks_istio_shop.__name__}.{info.name}")
               for info in pkgutil.iter_modules(eks_istio_shop.__path__)]
    return [module for module in modules if hasattr(module, "POLICIES")]


def pack_policies() -> list:
    """Every policy of every domain module: what policy/__main__.py must hand the PolicyPack."""
    return [policy for module in domain_modules() for policy in module.POLICIES]


def engine_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: engine_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [engine_value(v) for v in value]
    return UNKNOWN_STRING_VALUE if value == RENDER_UNKNOWN else value


def _options(record: dict) -> PolicyResourceOptions:
    options = record["options"]
    return PolicyResourceOptions(
        protect=options["protect"], ignore_changes=list(options["ignoreChanges"]),
        delete_before_replace=options["deleteBeforeReplace"], aliases=list(options["aliases"]),
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[], parent=record["parent"])


def resource_args(record: dict, config: Optional[dict] = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        record["type"], unknown_checking_proxy(engine_value(record["inputs"])), record["urn"], record["name"],
        _options(record), None, config)


def stack_args(records: list[dict], components_as_outputs: bool = False) -> StackValidationArgs:
    """The stack as AnalyzeStack shows it. With components_as_outputs, components show no inputs
    (the engine shows their registered outputs, which for pulumi-eks are resource references)."""
    resources = []
    for record in records:
        props = {} if components_as_outputs and not record["custom"] else record["inputs"]
        resources.append(PolicyResource(record["type"], unknown_checking_proxy(engine_value(props)), record["urn"],
                                        record["name"], _options(record), None, None, [], {}))
    by_urn = {r.urn: r for r in resources}
    for record, resource in zip(records, resources):
        resource.parent = by_urn.get(record["parent"])
        resource.dependencies = [by_urn[u] for u in record["dependencies"] if u in by_urn]
        resource.property_dependencies = {key: [by_urn[u] for u in urns if u in by_urn]
                                          for key, urns in record["propertyDependencies"].items()}
    return StackValidationArgs(resources)


def violations(policy, records: list[dict], config: Optional[dict] = None,
               components_as_outputs: bool = False) -> list[tuple[Optional[str], str]]:
    """Every (urn, message) the policy reports on the stack; raises if the policy crashes.

    A resource policy runs on every resource, as in a preview; a stack policy once.
    A stack policy that declares itself not applicable reports nothing.
    """
    found: list[tuple[Optional[str], str]] = []
    if isinstance(policy, ResourceValidationPolicy):
        for record in records:
            args = resource_args(record, config)
            policy.validate(args, lambda message, urn=None, args=args: found.append((args.urn, message)))
    elif isinstance(policy, StackValidationPolicy):
        args = stack_args(records, components_as_outputs)
        try:
            policy.validate(args, lambda message, urn=None: found.append((urn, message)))
        except _NotApplicableError:
            return []
    else:
        raise TypeError(f"not a policy: {policy!r}")
    return found


def not_applicable(policy: StackValidationPolicy, records: list[dict]) -> Optional[str]:
    """The reason a stack policy gives for not applying, or None if it applies."""
    try:
        policy.validate(stack_args(records), lambda message, urn=None: None)
    except _NotApplicableError as error:
        return error.reason or ""
    return None


# ---------------------------------------------------------------------------------------------
# Broken copies


def broken(records: list[dict], where: Callable[[dict], bool], change: Callable[[dict], Any]) -> list[dict]:
    """A deep copy of the graph with `change(record)` applied to every record `where` selects (at least one)."""
    copied = copy.deepcopy(records)
    hits = [r for r in copied if where(r)]
    assert hits, "the broken copy selects no resource: the test would prove nothing"
    for record in hits:
        change(record)
    return copied


def of_type(typ: str, name: Optional[str] = None) -> Callable[[dict], bool]:
    return lambda r: r["type"] == typ and (name is None or r["name"] == name)


def add_resource(records: list[dict], typ: str, name: str, inputs: dict, stack: str = "dev",
                 parent: Optional[str] = None, custom: bool = True,
                 property_dependencies: Optional[dict] = None) -> dict:
    """Append a resource to `records` (for resources that the program does not declare yet)."""
    chain = typ if parent is None else f"{parent.split('::')[2]}${typ}"
    record = {
        "urn": f"urn:pulumi:{stack}::eks-istio-shop::{chain}::{name}", "type": typ, "name": name,
        "parent": parent, "custom": custom, "provider": None, "dependencies": [],
        "propertyDependencies": property_dependencies or {},
        "options": {"protect": False, "ignoreChanges": [], "deleteBeforeReplace": False, "retainOnDelete": False,
                    "deletedWith": None, "customTimeouts": {}, "aliases": []},
        "inputs": inputs,
    }
    records.append(record)
    return record


@contextmanager
def stack_config(values: dict[str, str]):
    """The stack's config as the engine hands it to a policy pack: the PULUMI_CONFIG environment variable."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PULUMI_CONFIG", json.dumps(values))
        yield


def messages(found: Iterable[tuple[Optional[str], str]]) -> str:
    return "\n".join(message for _, message in found)
