"""Container images of the application's services: an ECR repository and a build per service.

A service with a prebuilt reference (the `images` setting) gets neither: its reference is used as is,
so that a deploy works on a machine without Docker.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as host_platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import docker.utils.build as docker_build_utils
import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

# Enough to roll back a few deploys; older images only cost storage. The build cache's manifests count
# among them too (about two per build), so this keeps roughly the last five builds.
KEEP_IMAGES = 10
# Untagged images are left over from interrupted pushes; nothing can reference them by tag.
UNTAGGED_EXPIRY_DAYS = 1


def image_platform(architecture: str) -> str:
    """The build platform of the nodes' CPU architecture (settings.node_group.architecture)."""
    platforms = {"amd64": "linux/amd64", "arm64": "linux/arm64"}
    if architecture not in platforms:
        raise ValueError(f"no image platform for architecture {architecture!r}; known: {sorted(platforms)}")
    return platforms[architecture]


def build_inputs(context: Path, dockerfile: Path) -> list[Path]:
    """The files of the context a build can read: all of it less what the Dockerfile's own ignore file
    (`<Dockerfile>.dockerignore`, as BuildKit and docker-build read it) or the context's `.dockerignore`
    excludes."""
    ignore_file = next((p for p in (Path(f"{dockerfile}.dockerignore"), context / ".dockerignore") if p.is_file()), None)
    lines = ignore_file.read_text().splitlines() if ignore_file else []
    patterns = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    dockerfile_name = dockerfile.relative_to(context).as_posix() if dockerfile.is_relative_to(context) else None
    included = docker_build_utils.exclude_paths(str(context), patterns, dockerfile=dockerfile_name)
    return sorted(context / name for name in included if (context / name).is_file())


def source_digest(context: Path, dockerfile: Path) -> str:
    """A hash of what goes into the image: the files the build can read, by content, and the Dockerfile.

    Modes, timestamps and ignored files (tests' `__pycache__`) do not count, so a laptop and CI, or a
    checkout under another umask, get the same tag for the same source.
    """
    digest = hashlib.sha256()
    for path in [*build_inputs(context, dockerfile), dockerfile]:
        name = path.relative_to(context) if path.is_relative_to(context) else Path(path.name)
        digest.update(name.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def image_tag(context: Path, dockerfile: Path, platform: str) -> str:
    """A tag that names the source: the same source for the same platform gets the same tag.

    Repositories allow a tag to move (a revert rebuilds an image under a tag pushed before, with a new
    digest); what runs is pinned by digest, so a moved tag never changes a running workload.
    """
    return f"{platform.split('/')[-1]}-{source_digest(context, dockerfile)[:20]}"


def cache_reference(repository_url: str, platform: str) -> str:
    """The registry cache of one platform's builds, kept beside the images in their repository."""
    return f"{repository_url}:buildcache-{platform.split('/')[-1]}"


def cross_build_problem(architecture: str, host_machine: str, host_system: str, binfmt_dir: Path,
                        remote_builder: bool) -> Optional[str]:
    """Why this machine cannot build images for `architecture`, or None.

    The Dockerfiles have RUN steps, which need the target CPU or an emulator: Docker Desktop (macOS,
    Windows) brings one, on Linux QEMU must be registered with binfmt_misc. A remote builder
    (DOCKER_HOST, BUILDX_BUILDER) is its own machine and is not judged here.
    """
    host = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(host_machine.lower())
    if remote_builder or host == architecture or host_system != "Linux":
        return None
    emulator = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}[architecture]
    if (binfmt_dir / emulator).exists():
        return None
    return (f"the nodes are {architecture} (eks-istio-shop:nodeInstanceType) but this {host or host_machine} "
            f"machine has no {emulator} emulator registered, so the images' RUN steps cannot build. Register "
            f"QEMU (docker run --privileged --rm tonistiigi/binfmt --install {architecture}), build on an "
            f"{architecture} machine, or set eks-istio-shop:images to prebuilt {architecture} images.")


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
    its own Dockerfile; the Dockerfile's ignore file narrows that context to what the image copies."""
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
        if set(args.services) - set(args.prebuilt):
            problem = cross_build_problem(
                args.architecture, host_platform.machine(), host_platform.system(),
                Path("/proc/sys/fs/binfmt_misc"), remote_builder=bool(os.environ.get("DOCKER_HOST")
                                                                      or os.environ.get("BUILDX_BUILDER")))
            if problem and pulumi.runtime.is_dry_run():
                # A preview builds nothing, so it can still show the rest of the plan.
                pulumi.log.warn(problem, resource=self)
            elif problem:
                raise pulumi.RunError(problem)

        for service in args.services:
            if service in args.prebuilt:
                self.references[service] = pulumi.Output.from_input(args.prebuilt[service])
                continue
            repository = aws.ecr.Repository(
                f"{name}-{service}-repo",
                name=f"{args.repository_prefix}/{service}",
                image_scanning_configuration={"scan_on_push": True},
                # Tags name sources, and a revert brings a source back: its rebuild (a new digest)
                # must be able to take the tag again, and the build cache tag moves on every build.
                # Workloads pin digests, so a moved tag never changes what runs.
                image_tag_mutability="MUTABLE",
                # The AWS-managed key: no key to administer, and ECR grants the nodes' pulls by itself.
                encryption_configurations=[{"encryption_type": "KMS"}],
                # The images are build output, reproducible from git; without this `pulumi destroy`
                # stops at a repository that still holds images and leaves it billing storage.
                force_delete=True,
                tags={"Name": f"{args.repository_prefix}/{service}"},
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
            cache = repository.repository_url.apply(lambda url: cache_reference(url, platform))
            image = docker_build.Image(
                f"{name}-{service}-image",
                context={"location": str(source.context)},
                dockerfile={"location": str(source.dockerfile)},
                platforms=[platform],
                push=True,
                # A preview shows the change without building it or pushing anything.
                build_on_preview=False,
                # ECR serves BuildKit's registry cache only as an OCI image manifest.
                cache_from=[{"registry": {"ref": cache}}],
                cache_to=[{"registry": {"ref": cache, "mode": "max", "image_manifest": True,
                                        "oci_media_types": True}}],
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
