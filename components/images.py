"""Container images of the application's services: an ECR repository and a build per service.

A service with a prebuilt reference (the `images` setting) gets neither: its reference is used as is,
so that a deploy works on a machine without Docker.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

# Enough to roll back a few deploys; older images only cost storage.
KEEP_IMAGES = 10
# Untagged images are left over from interrupted pushes; nothing can reference them by tag.
UNTAGGED_EXPIRY_DAYS = 1


def image_platform(architecture: str) -> str:
    """The build platform of the nodes' CPU architecture (settings.node_group.architecture)."""
    platforms = {"amd64": "linux/amd64", "arm64": "linux/arm64"}
    if architecture not in platforms:
        raise ValueError(f"no image platform for architecture {architecture!r}; known: {sorted(platforms)}")
    return platforms[architecture]


def source_digest(context: Path, dockerfile: Path) -> str:
    """A hash of everything a build could read: every file of the context, and the Dockerfile.

    It must change whenever docker-build's own context hash does: that one decides whether the image
    is rebuilt, and a rebuild under an unchanged tag is refused by the immutable repository. So it
    covers every file, .dockerignore'd or not; hashing more than the build reads costs at most an
    extra image, hashing less could fail a deploy.
    """
    digest = hashlib.sha256()
    files = sorted(p for p in context.rglob("*") if p.is_file())
    if dockerfile.resolve() not in {p.resolve() for p in files}:
        files.append(dockerfile)
    for path in files:
        digest.update(str(path.relative_to(context) if path.is_relative_to(context) else path.name).encode())
        digest.update(b"\0")
        # docker-build's hash counts permission bits too (a checkout under another umask, an exec bit).
        digest.update(stat.filemode(path.stat().st_mode).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def image_tag(context: Path, dockerfile: Path, platform: str) -> str:
    """An immutable tag: the same source for the same platform always gets the same tag, and any change
    a new one, so an unchanged image is never rebuilt and a rebuilt one never reuses a tag."""
    return f"{platform.split('/')[-1]}-{source_digest(context, dockerfile)[:20]}"


def lifecycle_policy(keep: int = KEEP_IMAGES, untagged_days: int = UNTAGGED_EXPIRY_DAYS) -> str:
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"Expire untagged images after {untagged_days} day(s)",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": untagged_days},
         "action": {"type": "expire"}},
        # ECR evaluates a tagStatus "any" rule last, whatever its number; it must carry the highest one.
        {"rulePriority": 2, "description": f"Keep the {keep} most recent images",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}},
    ]})


@dataclass(frozen=True)
class ImageSource:
    """Where a service's image is built from: the build context and its Dockerfile."""
    context: Path
    dockerfile: Path


def service_source(services_dir: Path, service: str) -> ImageSource:
    """The services share code (services/common), so each builds from the services directory with
    its own Dockerfile. A change anywhere in it changes every service's build context, and so every
    image's tag: docker-build would rebuild all three anyway."""
    return ImageSource(context=services_dir, dockerfile=services_dir / service / "Dockerfile")


@dataclass(frozen=True)
class ServiceImagesArgs:
    services: tuple[str, ...]
    # ECR repository names are `<repository_prefix>/<service>`; the prefix keeps stacks apart.
    repository_prefix: str
    architecture: str
    services_dir: Path
    # Service -> prebuilt image reference: no repository and no build for these.
    prebuilt: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


class ServiceImages(pulumi.ComponentResource):
    """One image reference per service, each pinned by digest or as given in the settings."""

    references: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ServiceImagesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:images:ServiceImages", name, None, opts)
        unknown = sorted(set(args.prebuilt) - set(args.services))
        if unknown:
            raise ValueError(f"prebuilt images for unknown services {unknown}; services: {list(args.services)}")
        child = pulumi.ResourceOptions(parent=self)
        platform = image_platform(args.architecture)
        self.references = {}

        for service in args.services:
            if service in args.prebuilt:
                self.references[service] = pulumi.Output.from_input(args.prebuilt[service])
                continue
            repository = aws.ecr.Repository(
                f"{name}-{service}-repo",
                name=f"{args.repository_prefix}/{service}",
                image_scanning_configuration={"scan_on_push": True},
                image_tag_mutability="IMMUTABLE",
                # The AWS-managed key: no key to administer, and ECR grants the nodes' pulls by itself.
                encryption_configurations=[{"encryption_type": "KMS"}],
                # The images are build output, reproducible from git; without this `pulumi destroy`
                # stops at a repository that still holds images and leaves it billing storage.
                force_delete=True,
                tags={**args.tags, "Name": f"{args.repository_prefix}/{service}"},
                opts=child,
            )
            aws.ecr.LifecyclePolicy(f"{name}-{service}-lifecycle", repository=repository.name,
                                    policy=lifecycle_policy(), opts=child)

            credentials = aws.ecr.get_authorization_token_output(
                registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self))
            source = service_source(args.services_dir, service)
            if not source.dockerfile.is_file():
                # A RunError: Pulumi prints the message alone, without a traceback.
                raise pulumi.RunError(
                    f"{source.dockerfile} not found, so the image of {service} cannot be built; check out "
                    f"the services, or set eks-istio-shop:images to a prebuilt reference for {service}")
            tag = image_tag(source.context, source.dockerfile, platform)
            image = docker_build.Image(
                f"{name}-{service}-image",
                context={"location": str(source.context)},
                dockerfile={"location": str(source.dockerfile)},
                platforms=[platform],
                push=True,
                tags=[repository.repository_url.apply(lambda url, tag=tag: f"{url}:{tag}")],
                registries=[{
                    "address": repository.repository_url,
                    "username": credentials.user_name,
                    "password": pulumi.Output.secret(credentials.password),
                }],
                labels={"org.opencontainers.image.title": service},
                opts=child,
            )
            # By digest: what runs is exactly what this build pushed, whatever happens to tags later.
            self.references[service] = pulumi.Output.concat(repository.repository_url, "@", image.digest)

        self.register_outputs({"references": self.references})
