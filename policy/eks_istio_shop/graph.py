"""Following the stack graph a stack policy sees.

Stack policies see what the engine recorded: the outputs of custom resources (their inputs plus
computed values) and, for components such as pulumi-eks's, only their registered outputs; so they
follow `property_dependencies` (recorded from the inputs) to find what a resource uses, and match
resources by the `id` in their outputs.
"""

from __future__ import annotations

from typing import Any, Iterable

from pulumi_policy import StackValidationArgs

from .values import UNKNOWN, get


def resources_by(args: StackValidationArgs, types: Iterable[str]) -> list:
    wanted = set(types)
    return [r for r in args.resources if r.resource_type in wanted]


def dependencies_of(resource, key: str, resource_type: str) -> list:
    """The resources of `resource_type` that the input `key` of `resource` was built from."""
    return [d for d in (resource.property_dependencies or {}).get(key, []) if d.resource_type == resource_type]


def by_id(resources: list, identifier: Any) -> list:
    if identifier is UNKNOWN or not isinstance(identifier, str):
        return []
    return [r for r in resources if get(r.props, "id") == identifier]
