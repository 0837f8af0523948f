"""The Pulumi SDK modules a render of this program imports, for the render fork server (tests/support.py).

Most of a render's time goes into importing these: the provider SDKs load each module of resource types
on first use. The server imports them once and forks each render from itself. A module missing here only
costs the renders that use it its import. Nothing of this project is imported here, so that every render
runs the project's current code.
"""

import importlib

import pulumi
import pulumi.runtime.mocks
import pulumi_aws
import pulumi_docker_build
import pulumi_eks
import pulumi_kubernetes
import yaml

# The modules of resource types the program uses (the provider SDKs load them lazily, on the first read).
USED_MODULES = (
    "pulumi_aws.acm", "pulumi_aws.autoscaling", "pulumi_aws.cloudwatch", "pulumi_aws.ec2", "pulumi_aws.ecr",
    "pulumi_aws.eks", "pulumi_aws.iam", "pulumi_aws.kms", "pulumi_aws.lb", "pulumi_aws.route53", "pulumi_aws.vpc",
    "pulumi_kubernetes.admissionregistration.v1", "pulumi_kubernetes.apiextensions", "pulumi_kubernetes.apps.v1",
    "pulumi_kubernetes.autoscaling.v2", "pulumi_kubernetes.core.v1", "pulumi_kubernetes.helm.v3",
    "pulumi_kubernetes.meta.v1", "pulumi_kubernetes.networking.v1", "pulumi_kubernetes.policy.v1",
    "pulumi_kubernetes.rbac.v1",
)


def load(name: str) -> None:
    """Import `name` and each package above it, each one executed (a lazy module runs on its first read)."""
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        getattr(importlib.import_module(".".join(parts[:depth])), "__all__", None)


for module_name in USED_MODULES:
    load(module_name)
