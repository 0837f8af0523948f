"""Policies built from plain functions that list problems (the functions are what the tests call)."""

from __future__ import annotations

from typing import Any, Callable, Optional

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)


def resource_policy(name: str, description: str, problems: Callable[[str, Any], list[str]],
                    level: EnforcementLevel = EnforcementLevel.MANDATORY) -> ResourceValidationPolicy:
    """A resource policy reporting `problems(resource_type, props)`, each prefixed with the resource's name."""
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for problem in problems(args.resource_type, args.props):
            report(f"{args.name}: {problem}", None)

    return ResourceValidationPolicy(name=name, description=description, enforcement_level=level, validate=validate)


def stack_policy(name: str, description: str,
                 problems: Callable[[StackValidationArgs], list[tuple[Optional[str], str]]]) -> StackValidationPolicy:
    """A mandatory stack policy reporting each (urn, message) of `problems(args)`."""
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for urn, message in problems(args):
            report(message, urn)

    return StackValidationPolicy(name=name, description=description, enforcement_level=EnforcementLevel.MANDATORY,
                                 validate=validate)


def conditional_stack_policy(name: str, description: str, not_applicable_reason: str,
                             problems: Callable[[StackValidationArgs], tuple[bool, list[tuple[Optional[str], str]]]],
                             ) -> StackValidationPolicy:
    """A mandatory stack policy for `problems(args)` -> (applies, problems); not applicable when it does not apply."""
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        applies, found = problems(args)
        if not applies:
            args.not_applicable(not_applicable_reason)
        for urn, message in found:
            report(message, urn)

    return StackValidationPolicy(name=name, description=description, enforcement_level=EnforcementLevel.MANDATORY,
                                 validate=validate)
