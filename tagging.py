"""The stack's tags, in one place: a stack transform puts them on every AWS resource.

Registered once in `__main__.py`, the transform sees every resource the stack registers, including
the children that packaged components (pulumi-eks) create in their own provider process, so no
component takes tags as an argument and nothing can forget them. The stack's `project`, `stack` and
`owner` always win; a resource's own tags (its `Name`, the `kubernetes.io/...` tags of subnets) win over
the user's `tags` setting, as the AWS provider's default tags would.

Launch templates also tag what they launch (instances, volumes, network interfaces): EC2 applies
those tags, and only the launch template's `tagSpecifications` carry them there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import pulumi

from settings import PROGRAM_TAGS

# Every pulumi-aws resource type that takes `tags`, generated from the SDK (python -m tools.aws_taggable).
TAGGABLE_TYPES_FILE = Path(__file__).resolve().parent / "policy" / "aws_taggable_types.txt"
# pulumi-eks's components take `tags` and pass them on to what they create.
TAGGABLE_COMPONENT_TYPES = frozenset({"eks:index:Cluster", "eks:index:ManagedNodeGroup"})
LAUNCH_TEMPLATE_TYPE = "aws:ec2/launchTemplate:LaunchTemplate"


@lru_cache(maxsize=1)
def taggable_aws_types() -> frozenset[str]:
    lines = TAGGABLE_TYPES_FILE.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def is_taggable(resource_type: str) -> bool:
    return resource_type in TAGGABLE_COMPONENT_TYPES or resource_type in taggable_aws_types()


def _plain_tags(value: Any) -> bool:
    """A tag map this transform can merge into: absent, or known strings under string keys. A value still
    unknown at preview, a secret or a computed one is left alone: the engine sees it again on update."""
    return value is None or (isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()))


def _with_tags(existing: Any, tags: Mapping[str, str]) -> Any:
    if not _plain_tags(existing):
        return existing
    program = {key: value for key, value in tags.items() if key in PROGRAM_TAGS}
    return {**tags, **(existing or {}), **program}


def tagged_props(resource_type: str, props: Mapping[str, Any], tags: Mapping[str, str]) -> Optional[dict]:
    """`props` with the stack's tags added, or None when the resource takes no tags."""
    if not is_taggable(resource_type):
        return None
    result = dict(props)
    result["tags"] = _with_tags(props.get("tags"), tags)
    specifications = props.get("tagSpecifications")
    if resource_type == LAUNCH_TEMPLATE_TYPE and isinstance(specifications, list):
        result["tagSpecifications"] = [
            {**spec, "tags": _with_tags(spec.get("tags"), tags)} if isinstance(spec, Mapping) else spec
            for spec in specifications]
    return result


def stack_tags_transform(tags: Mapping[str, str]) -> Callable[[pulumi.ResourceTransformArgs],
                                                             Optional[pulumi.ResourceTransformResult]]:
    """A stack transform that adds `tags` to every taggable resource."""
    frozen = dict(tags)

    def transform(args: pulumi.ResourceTransformArgs) -> Optional[pulumi.ResourceTransformResult]:
        props = tagged_props(args.type_, args.props, frozen)
        return pulumi.ResourceTransformResult(props, args.opts) if props is not None else None

    return transform
