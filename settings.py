"""The stack's settings: read once from Pulumi config, validated, frozen.

Nothing in the program reads `pulumi.Config` except `load_settings`. Every problem found is
reported at once, each naming the setting, the bad value and what is accepted, before any
resource is declared.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi

PROJECT = "eks-istio-shop"

# Kubernetes versions in EKS standard support, with the day it ends (EKS gives each 14 months of it).
# Past that day EKS bills extended support ($0.60/h instead of $0.10/h for the control plane) and,
# with the STANDARD upgrade policy, upgrades the control plane itself: a stack still naming the old
# version would then ask for a downgrade. A version is refused from its end day on.
KUBERNETES_STANDARD_SUPPORT_ENDS = {
    "1.35": datetime.date(2027, 3, 27),
    "1.36": datetime.date(2027, 8, 2),
}
SUPPORTED_KUBERNETES_VERSIONS = ("1.35", "1.36")
DEFAULT_KUBERNETES_VERSION = "1.35"

# The EKS add-ons the cluster runs, each pinned per Kubernetes version so that nothing changes unless
# a setting does (unpinned, pulumi-eks resolves vpc-cni and kube-proxy to the newest release on every
# run). `kubernetesVersion` picks the column; `addonVersions` overrides single entries. Renovate
# proposes updates through the comments (.github/renovate.json).
ADDONS = ("vpc-cni", "kube-proxy", "coredns", "metrics-server")
DEFAULT_ADDON_VERSIONS = {
    "1.35": {
        # renovate: datasource=aws-eks-addon depName=vpc-cni kubernetesVersion=1.35
        "vpc-cni": "v1.22.4-eksbuild.3",
        # renovate: datasource=aws-eks-addon depName=kube-proxy kubernetesVersion=1.35
        "kube-proxy": "v1.35.3-eksbuild.13",
        # renovate: datasource=aws-eks-addon depName=coredns kubernetesVersion=1.35
        "coredns": "v1.14.3-eksbuild.3",
        # renovate: datasource=aws-eks-addon depName=metrics-server kubernetesVersion=1.35
        "metrics-server": "v0.8.1-eksbuild.6",
    },
    "1.36": {
        # renovate: datasource=aws-eks-addon depName=vpc-cni kubernetesVersion=1.36
        "vpc-cni": "v1.22.4-eksbuild.3",
        # renovate: datasource=aws-eks-addon depName=kube-proxy kubernetesVersion=1.36
        "kube-proxy": "v1.36.0-eksbuild.14",
        # renovate: datasource=aws-eks-addon depName=coredns kubernetesVersion=1.36
        "coredns": "v1.14.3-eksbuild.3",
        # renovate: datasource=aws-eks-addon depName=metrics-server kubernetesVersion=1.36
        "metrics-server": "v0.9.0-eksbuild.11",
    },
}

# Istio's charts and the reference data under schemas/istio-<version>/ must move together.
DEFAULT_ISTIO_VERSION = "1.30.3"  # renovate: datasource=github-releases depName=istio/istio
# The EKS cluster is named <clusterName>-<stack>; tools that find it use this default too.
DEFAULT_CLUSTER_NAME = "alpha"

CAPACITY_TYPES = {"on-demand": "ON_DEMAND", "spot": "SPOT"}
NAT_GATEWAY_MODES = ("single", "per-zone")
AVAILABILITY_ZONE_COUNTS = (2, 3)
NODE_PORT_RANGE = (30000, 32767)

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w .:/=+@-]{0,256}$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_OWNER = re.compile(r"^[\w .:/=+@-]{1,256}$")
_ADMIN_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")

# The application's services, each built from services/<name> unless `images` names a prebuilt image.
APP_SERVICES = ("products", "orders", "graphql")
# A container image reference as Docker's distribution grammar has it: [registry[:port]/]path[:tag][@digest].
_IMAGE_REFERENCE = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::\d+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


class SettingsError(pulumi.RunError):
    """Invalid stack settings. A RunError, so Pulumi prints the message without a traceback."""

    def __init__(self, problems: list[str], stack: str):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"Invalid settings for stack '{stack}' (set them with `pulumi config set`):\n{lines}"
        )


@dataclass(frozen=True)
class NodeGroupSettings:
    instance_type: str = "t3.medium"
    desired_size: int = 4
    min_size: int = 2
    max_size: int = 6
    capacity_type: str = "ON_DEMAND"

    @property
    def architecture(self) -> str:
        """CPU architecture of the instance type: Graviton families carry a `g` after the generation."""
        family = self.instance_type.split(".", 1)[0]
        return "arm64" if re.match(r"^[a-z]+\d+g", family) else "amd64"


@dataclass(frozen=True)
class NetworkSettings:
    vpc_cidr: str = "10.0.0.0/16"
    availability_zone_count: int = 2
    nat_gateways: str = "single"


@dataclass(frozen=True)
class MeshSettings:
    istio_version: str = DEFAULT_ISTIO_VERSION
    # Node ports of the ingress gateway Service; the load balancer's target groups use the same.
    ingress_http_node_port: int = 30080  # behind the NLB's port 80 listener
    ingress_https_node_port: int = 30443  # behind the NLB's TLS listener (TLS ends at the NLB)
    ingress_status_node_port: int = 30021  # Envoy's status port 15021, for health checks


@dataclass(frozen=True)
class DnsSettings:
    domain: Optional[str] = None
    hosted_zone_id: Optional[str] = None
    hostname: Optional[str] = None  # resolved: None when no domain is set

    @property
    def enabled(self) -> bool:
        return self.hostname is not None


@dataclass(frozen=True)
class Settings:
    stack: str
    region: str
    owner: str
    cluster_name: str = DEFAULT_CLUSTER_NAME
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    endpoint_public_access_cidrs: tuple[str, ...] = ()
    endpoint_public_access_from_anywhere: bool = False
    cluster_admin_arns: tuple[str, ...] = ()
    cluster_viewer_arns: tuple[str, ...] = ()
    addon_versions: Mapping[str, str] = field(default_factory=dict)
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    node_group: NodeGroupSettings = field(default_factory=NodeGroupSettings)
    mesh: MeshSettings = field(default_factory=MeshSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    # Service name -> prebuilt image reference; services not named here are built and pushed to ECR.
    images: Mapping[str, str] = field(default_factory=dict)

    @property
    def eks_cluster_name(self) -> str:
        """The EKS name: the base name plus the stack, so that stacks in one account never collide."""
        return f"{self.cluster_name}-{self.stack}"

    @property
    def tags(self) -> dict[str, str]:
        """Tags for every taggable AWS resource. The project's own keys win over user tags."""
        return {**self.extra_tags, "project": PROJECT, "stack": self.stack, "owner": self.owner}


def resolve_hostname(stack: str, domain: Optional[str], override: Optional[str]) -> Optional[str]:
    """`dev` serves the domain itself; every other stack gets `<stack>.<domain>`."""
    if override:
        return override
    if not domain:
        return None
    return domain if stack == "dev" else f"{stack}.{domain}"


class _Reader:
    """Reads raw config values and collects every problem instead of stopping at the first."""

    def __init__(self, config: pulumi.Config, aws_config: pulumi.Config):
        self.config = config
        self.aws_config = aws_config
        self.problems: list[str] = []

    def problem(self, key: str, value: Any, accepted: str) -> None:
        self.problems.append(f"{key}: {value!r} is not valid; expected {accepted}")

    def string(self, key: str, default: Optional[str], pattern: Optional[re.Pattern] = None,
               accepted: str = "a string", config: Optional[pulumi.Config] = None) -> Optional[str]:
        raw = (config or self.config).get(key)
        if raw is None or raw == "":
            return default
        if pattern is not None and not pattern.match(raw):
            self.problem(_qualified(config or self.config, key), raw, accepted)
            return default
        return raw

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.config.get(key)
        if raw is None:
            return default
        if raw not in choices:
            self.problem(_qualified(self.config, key), raw, "one of " + ", ".join(choices))
            return default
        return raw

    def integer(self, key: str, default: int, low: int, high: int,
                allowed: Optional[tuple[int, ...]] = None) -> int:
        raw = self.config.get(key)
        if raw is None:
            return default
        accepted = ("one of " + ", ".join(map(str, allowed))) if allowed else f"a whole number from {low} to {high}"
        try:
            value = int(raw)
        except ValueError:
            self.problem(_qualified(self.config, key), raw, accepted)
            return default
        if str(value) != raw.strip() or not low <= value <= high or (allowed and value not in allowed):
            self.problem(_qualified(self.config, key), raw, accepted)
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.config.get(key)
        if raw is None:
            return default
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.problem(_qualified(self.config, key), raw, "true or false")
        return default

    def principal_arns(self, key: str) -> tuple[str, ...]:
        """A list of IAM role or user ARNs, each once (EKS access entries name the role, not a session)."""
        raw = self.json_value(key, list, "a list of IAM role or user ARNs")
        if raw is None:
            return ()
        bad = [a for a in raw if not (isinstance(a, str) and _ADMIN_ARN.match(a))]
        if bad:
            self.problem(_qualified(self.config, key), bad,
                         "IAM role or user ARNs such as arn:aws:iam::123456789012:role/deployer "
                         "(not assumed-role session ARNs)")
            return ()
        if len(set(raw)) != len(raw):
            self.problem(_qualified(self.config, key), raw, "each ARN once")
            return ()
        return tuple(raw)

    def json_value(self, key: str, kind: type, accepted: str) -> Any:
        raw = self.config.get(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if not isinstance(value, kind):
            self.problem(_qualified(self.config, key), value, accepted)
            return None
        return value


def pinned_image_reference(reference: str) -> bool:
    """True for a reference that names one image: it carries a tag other than `latest`, or a digest.

    A moving tag would let the running pods and a new node's pull disagree about what runs.
    """
    match = _IMAGE_REFERENCE.match(reference)
    if not match:
        return False
    tag, digest = match.group("tag"), match.group("digest")
    return bool(digest or tag) and tag != "latest"


def _qualified(config: pulumi.Config, key: str) -> str:
    return f"{config.name}:{key}"


def _valid_network(value: str, min_prefix: int, max_prefix: int) -> bool:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return network.version == 4 and min_prefix <= network.prefixlen <= max_prefix


def load_settings(stack: Optional[str] = None, config: Optional[pulumi.Config] = None,
                  aws_config: Optional[pulumi.Config] = None, today: Optional[datetime.date] = None) -> Settings:
    """Read and validate every setting; raise SettingsError listing all problems.

    `today` decides which Kubernetes versions are still in standard support (default: the real date).
    """
    stack = stack or pulumi.get_stack()
    reader = _Reader(config or pulumi.Config(PROJECT), aws_config or pulumi.Config("aws"))
    r = reader

    region = r.string("region", None, _REGION, "an AWS region such as us-east-1", config=r.aws_config)
    if region is None and not any(p.startswith("aws:region") for p in r.problems):
        r.problems.append("aws:region: not set; set it with `pulumi config set aws:region us-east-1`")

    owner = r.string("owner", None, _OWNER, "a team or person's name (1-256 letters, digits, spaces or _.:/=+-@)")
    if owner is None and not any(p.startswith(f"{PROJECT}:owner") for p in r.problems):
        r.problems.append(f"{PROJECT}:owner: not set; every AWS resource is tagged with its owner, "
                          f"set it with `pulumi config set owner <team or person>`")

    cluster_name = r.string("clusterName", DEFAULT_CLUSTER_NAME, _NAME,
                            "2-32 lowercase letters, digits or hyphens, starting with a letter")
    kubernetes_version = r.choice("kubernetesVersion", DEFAULT_KUBERNETES_VERSION, SUPPORTED_KUBERNETES_VERSIONS)
    support_ends = KUBERNETES_STANDARD_SUPPORT_ENDS[kubernetes_version]
    today = today or datetime.date.today()
    if today >= support_ends:
        current = [v for v, ends in KUBERNETES_STANDARD_SUPPORT_ENDS.items() if today < ends]
        r.problem(f"{PROJECT}:kubernetesVersion", kubernetes_version,
                  f"a version in EKS standard support ({kubernetes_version}'s ended on {support_ends}; EKS upgrades "
                  f"such clusters itself): one of {', '.join(current) or 'none known: update settings.py'}")

    cidrs_raw = r.json_value("endpointPublicAccessCidrs", list, "a list of IPv4 CIDRs such as [\"203.0.113.0/24\"]")
    from_anywhere = r.boolean("endpointPublicAccessFromAnywhere", False)
    cidrs: tuple[str, ...] = ()
    if cidrs_raw is not None:
        bad = [c for c in cidrs_raw if not isinstance(c, str) or not _valid_network(c, 0, 32)]
        if bad or not cidrs_raw:
            r.problem(f"{PROJECT}:endpointPublicAccessCidrs", cidrs_raw,
                      "a non-empty list of IPv4 CIDRs such as [\"203.0.113.0/24\"]")
        else:
            cidrs = tuple(cidrs_raw)
    if r.config.get("endpointPublicAccessCidrs") is None:
        r.problems.append(f"{PROJECT}:endpointPublicAccessCidrs: not set; list the CIDRs allowed to reach the "
                          f"cluster's public API endpoint, e.g. your office or runner addresses")
    if "0.0.0.0/0" in cidrs and not from_anywhere:
        r.problem(f"{PROJECT}:endpointPublicAccessCidrs", list(cidrs),
                  f"narrower CIDRs than 0.0.0.0/0, or set {PROJECT}:endpointPublicAccessFromAnywhere to true "
                  f"to open the API endpoint to the internet on purpose")

    admins = r.principal_arns("clusterAdminArns")
    viewers = r.principal_arns("clusterViewerArns")
    both = sorted(set(admins) & set(viewers))
    if both:
        r.problem(f"{PROJECT}:clusterViewerArns", both,
                  f"ARNs not also in {PROJECT}:clusterAdminArns (an identity has one access entry)")

    tags_raw = r.json_value("tags", dict, "a map of tag keys to string values")
    extra_tags: dict[str, str] = {}
    if tags_raw:
        for key, value in tags_raw.items():
            if not (isinstance(value, str) and _TAG_KEY.match(key) and _TAG_VALUE.match(value)) \
                    or key.lower().startswith("aws:"):
                r.problem(f"{PROJECT}:tags.{key}", value,
                          "a string value under a key of 1-128 characters that does not start with aws:")
            else:
                extra_tags[key] = value

    vpc_cidr = r.string("vpcCidr", "10.0.0.0/16", None)
    if not _valid_network(vpc_cidr, 16, 20):
        r.problem(f"{PROJECT}:vpcCidr", vpc_cidr, "an IPv4 network from /16 to /20 such as 10.0.0.0/16")
        vpc_cidr = "10.0.0.0/16"
    network = NetworkSettings(
        vpc_cidr=vpc_cidr,
        availability_zone_count=r.integer("availabilityZoneCount", 2, 2, 3, AVAILABILITY_ZONE_COUNTS),
        nat_gateways=r.choice("natGateways", "single", NAT_GATEWAY_MODES),
    )

    instance_type = r.string("nodeInstanceType", "t3.medium", _INSTANCE_TYPE,
                             "an EC2 instance type such as t3.medium")
    min_size = r.integer("nodeMinSize", 2, 1, 100)
    desired_size = r.integer("nodeDesiredSize", 4, 1, 100)
    max_size = r.integer("nodeMaxSize", 6, 1, 100)
    if not min_size <= desired_size <= max_size:
        r.problems.append(f"{PROJECT}:nodeMinSize/nodeDesiredSize/nodeMaxSize: {min_size}/{desired_size}/{max_size} "
                          f"is not valid; expected min <= desired <= max")
    capacity = r.choice("nodeCapacityType", "on-demand", tuple(CAPACITY_TYPES))
    node_group = NodeGroupSettings(instance_type=instance_type, desired_size=desired_size, min_size=min_size,
                                   max_size=max_size, capacity_type=CAPACITY_TYPES[capacity])

    istio_version = r.string("istioVersion", DEFAULT_ISTIO_VERSION, _SEMVER, "an Istio release such as 1.30.3")
    ports = {}
    defaults = MeshSettings()
    for key, attr in (("ingressHttpNodePort", "ingress_http_node_port"),
                      ("ingressHttpsNodePort", "ingress_https_node_port"),
                      ("ingressStatusNodePort", "ingress_status_node_port")):
        ports[attr] = r.integer(key, getattr(defaults, attr), *NODE_PORT_RANGE)
    if len(set(ports.values())) != len(ports):
        r.problems.append(f"{PROJECT}:ingressHttpNodePort/ingressHttpsNodePort/ingressStatusNodePort: "
                          f"{sorted(ports.values())} is not valid; expected three different node ports")
    mesh = MeshSettings(istio_version=istio_version, **ports)

    domain = r.string("domain", None, _DOMAIN, "a lowercase DNS domain such as example.com")
    zone_id = r.string("hostedZoneId", None, _ZONE_ID, "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ")
    hostname_override = r.string("hostname", None, _DOMAIN, "a lowercase DNS name such as shop.example.com")
    if hostname_override and not domain:
        r.problems.append(f"{PROJECT}:hostname: {hostname_override!r} is not valid without {PROJECT}:domain; "
                          f"set the domain whose hosted zone holds it")
    elif hostname_override and domain and not (hostname_override == domain
                                               or hostname_override.endswith("." + domain)):
        r.problem(f"{PROJECT}:hostname", hostname_override, f"{domain} or a name under it")
    if zone_id and not domain:
        r.problems.append(f"{PROJECT}:hostedZoneId: {zone_id!r} is not valid without {PROJECT}:domain; "
                          f"set the domain the zone serves")
    dns = DnsSettings(domain=domain, hosted_zone_id=zone_id,
                      hostname=resolve_hostname(stack, domain, hostname_override))

    overrides_raw = r.json_value("addonVersions", dict, "a map of EKS add-on name to version, such as "
                                 "{\"vpc-cni\": \"v1.20.4-eksbuild.1\"}")
    addon_versions = dict(DEFAULT_ADDON_VERSIONS[kubernetes_version])
    for addon, version in (overrides_raw or {}).items():
        if addon not in ADDONS:
            r.problem(f"{PROJECT}:addonVersions.{addon}", version, "a key naming one of the add-ons " + ", ".join(ADDONS))
        elif not (isinstance(version, str) and _ADDON_VERSION.match(version)):
            r.problem(f"{PROJECT}:addonVersions.{addon}", version,
                      "an EKS add-on version such as v1.20.4-eksbuild.1 (aws eks describe-addon-versions "
                      f"--addon-name {addon} --kubernetes-version {kubernetes_version})")
        else:
            addon_versions[addon] = version

    images_raw = r.json_value("images", dict, "a map of service name to image reference, such as "
                              "{\"orders\": \"<registry>/orders@sha256:<digest>\"}")
    images: dict[str, str] = {}
    for service, reference in (images_raw or {}).items():
        if service not in APP_SERVICES:
            r.problem(f"{PROJECT}:images.{service}", reference,
                      "a key naming one of the services " + ", ".join(APP_SERVICES))
        elif not isinstance(reference, str) or not pinned_image_reference(reference):
            r.problem(f"{PROJECT}:images.{service}", reference,
                      "an image reference with a tag other than latest or a digest, such as "
                      "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/orders@sha256:<64 hex digits>")
        else:
            images[service] = reference

    if r.problems:
        raise SettingsError(r.problems, stack)
    return Settings(
        stack=stack,
        region=region,
        owner=owner,
        cluster_name=cluster_name,
        kubernetes_version=kubernetes_version,
        endpoint_public_access_cidrs=cidrs,
        endpoint_public_access_from_anywhere=from_anywhere,
        cluster_admin_arns=admins,
        cluster_viewer_arns=viewers,
        addon_versions=addon_versions,
        extra_tags=extra_tags,
        network=network,
        node_group=node_group,
        mesh=mesh,
        dns=dns,
        images=images,
    )
