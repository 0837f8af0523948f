"""AWS tags: every taggable resource carries the project, stack and owner tags (what a launch template launches too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from . import PROJECT
from .nodes import LAUNCH_TEMPLATE_TYPE
from .values import UNKNOWN, created_inside_eks_component, elements, entries, get, is_mapping, stack_of

REQUIRED_TAGS = ("project", "stack", "owner")

# Generated from the pinned pulumi-aws by `python -m tools.aws_taggable`.
_TAGGABLE_FILE = Path(__file__).resolve().parent.parent / "aws_taggable_types.txt"

# Components of pulumi-eks that take a `tags` map and hand it to what they create (NodeGroupV2 has none).
# The same set as the program's tagging.TAGGABLE_COMPONENT_TYPES, which a test holds equal.
TAGGED_EKS_COMPONENTS = frozenset({"eks:index:Cluster", "eks:index:ManagedNodeGroup"})


def taggable_aws_types() -> frozenset[str]:
    """Every pulumi-aws resource type with a `tags` input (generated from the pinned pulumi-aws)."""
    return frozenset(line.strip() for line in _TAGGABLE_FILE.read_text().splitlines()
                     if line.strip() and not line.startswith("#"))


_TAGGABLE: Optional[frozenset[str]] = None


def is_taggable(resource_type: str) -> bool:
    global _TAGGABLE
    if _TAGGABLE is None:
        _TAGGABLE = taggable_aws_types()
    return resource_type in _TAGGABLE or resource_type in TAGGED_EKS_COMPONENTS


def _tag_problems(tags: Any, stack: str, where: str) -> list[str]:
    if tags is UNKNOWN:
        return []
    # The owner is the stack's setting, which the pack does not know: any non-empty value.
    expected = {"project": PROJECT, "stack": stack, "owner": None}
    problems = []
    for key in REQUIRED_TAGS:
        value = get(tags, key)
        if value is UNKNOWN:
            continue
        if value is None:
            problems.append(f"{where} lacks the tag {key}={expected[key]}")
        elif expected[key] and value != expected[key] or not expected[key] and value in ("", None):
            problems.append(f"{where} has {key}={value!r}, expected {expected[key]!r}")
    return problems


def tag_problems(resource_type: str, props: Any, urn: str, provider_props: Any = None) -> list[str]:
    if not is_taggable(resource_type):
        return []
    stack = stack_of(urn)
    tags = get(props, "tags")
    default_tags = get(provider_props, "defaultTags", "tags") if provider_props is not None else None
    if is_mapping(default_tags) and is_mapping(tags):
        tags = {**dict(entries(default_tags)), **dict(entries(tags))}
    elif tags is None and default_tags is not None:
        tags = default_tags
    problems = _tag_problems(tags if tags is not None else {}, stack, "tags")
    if resource_type == LAUNCH_TEMPLATE_TYPE:
        # The instances and volumes launched from it are billed but are not Pulumi resources.
        specifications = {get(s, "resourceType"): get(s, "tags") for s in elements(get(props, "tagSpecifications"))}
        if UNKNOWN not in specifications and get(props, "tagSpecifications") is not UNKNOWN:
            for kind in ("instance", "volume"):
                kind_tags = specifications.get(kind)
                problems += _tag_problems(kind_tags if kind_tags is not None else {}, stack,
                                          f"tagSpecifications[{kind}]")
    return problems


def _validate_tags(args: ResourceValidationArgs, report: ReportViolation, inside_components: bool) -> None:
    if created_inside_eks_component(args.urn) != inside_components:
        return
    provider_props = args.provider.props if args.provider is not None else None
    for problem in tag_problems(args.resource_type, args.props, args.urn, provider_props):
        report(f"{args.name}: {problem}; tags say who pays for it and which stack owns it", None)


aws_tags = ResourceValidationPolicy(
    name="aws-resources-tagged",
    description="Every taggable AWS resource the program declares carries the project and stack tags.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=lambda args, report: _validate_tags(args, report, inside_components=False),
)

aws_component_children_tags = ResourceValidationPolicy(
    name="aws-eks-children-tagged",
    description="AWS resources pulumi-eks creates inside its components carry the project and stack tags.",
    # The program's stack transform (tagging.py) tags every resource registered in the stack, the
    # children pulumi-eks registers included, so a gap here is a bug to stop at preview.
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=lambda args, report: _validate_tags(args, report, inside_components=True),
)

POLICIES = [aws_tags, aws_component_children_tags]
