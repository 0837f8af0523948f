"""The stack's settings: read once from Pulumi config, validated, frozen.

Pulumi.yaml declares every setting with its type, default and description; it is the one place
defaults live. This module checks what a type cannot say (ranges, formats, choices, rules across
settings). Nothing else in the program reads config. Every problem found is reported at once, each
naming the setting, the bad value and what is accepted, before any resource is declared.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import pulumi
import yaml

PROJECT = "eks-istio-shop"
PROJECT_FILE = Path(__file__).resolve().parent / "Pulumi.yaml"
# Settings of other namespaces the program reads; Pulumi.yaml can declare only its own project's.
PROVIDER_SETTINGS = ("aws:region",)
# Tags the program sets on every AWS resource itself; a user tag may not name them, in any letter case.
PROGRAM_TAGS = ("project", "stack", "owner")

# Kubernetes versions in EKS standard support, with the day it ends (EKS gives each 14 months of it).
# Past that day EKS bills extended support ($0.60/h instead of $0.10/h for the control plane) and,
# with the STANDARD upgrade policy, upgrades the control plane itself: a stack still naming the old
# version would then ask for a downgrade. A version is refused from its end day on.
KUBERNETES_STANDARD_SUPPORT_ENDS = {
    "1.35": datetime.date(2027, 3, 27),
    "1.36": datetime.date(2027, 8, 2),
}
SUPPORTED_KUBERNETES_VERSIONS = ("1.35", "1.36")

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


_NO_DEFAULT = object()


@dataclass(frozen=True)
class Declaration:
    """A setting as Pulumi.yaml declares it under `config:`."""
    name: str
    type: Optional[str]
    description: str
    default: Any = _NO_DEFAULT

    @property
    def required(self) -> bool:
        """Without a default the Pulumi CLI refuses to run a stack that does not set it."""
        return self.default is _NO_DEFAULT


def qualify(key: str) -> str:
    """A config key with its namespace, as the CLI reads one: a bare key belongs to this project."""
    return key if ":" in key else f"{PROJECT}:{key}"


@functools.lru_cache(maxsize=None)
def project_config_entries(project_file: Path = PROJECT_FILE) -> dict[str, dict]:
    """The project file's `config:` block as the CLI reads it: 'namespace:key' -> declaration.

    The short form `key: x` declares a default for a key of this project and sets a value for a key of
    another namespace (pulumi/pulumi sdk/go/common/workspace/project.go RewriteShorthandConfigValues).
    """
    document = yaml.safe_load(project_file.read_text()) or {}
    entries = {}
    for key, entry in (document.get("config") or {}).items():
        key = qualify(key)
        if not isinstance(entry, dict):
            entry = {"default" if key.startswith(f"{PROJECT}:") else "value": entry}
        entries[key] = entry
    return entries


def declared_fallback(entry: Mapping[str, Any]) -> Any:
    """The value the CLI gives a stack that does not set this key: its default, else its value; None for
    none (the CLI takes a null default or value for none)."""
    return entry.get("default") if entry.get("default") is not None else entry.get("value")


def declared_settings(project_file: Path = PROJECT_FILE) -> dict[str, Declaration]:
    """The project's settings by name (without the namespace), as the project file declares them."""
    declarations = {}
    for key, entry in project_config_entries(project_file).items():
        namespace, _, name = key.rpartition(":")
        if namespace != PROJECT:
            continue  # another package's value, not a setting of this program
        # Without a fallback the setting is required.
        fallback = declared_fallback(entry)
        declarations[name] = Declaration(name, entry.get("type"), entry.get("description", ""),
                                         _NO_DEFAULT if fallback is None else fallback)
    return declarations


def engine_text(value: Any) -> str:
    """A config value as the Pulumi CLI hands it to the program.

    Text stays as it is; other values become JSON as Go's encoding/json writes it (compact, map keys
    sorted, <, > and & escaped): `4`, `true`, `["a","b"]`, `{}`. That is the form of a stack's value and
    of a project default alike (pulumi/pulumi pkg/workspace/config.go createConfigValue,
    sdk/go/common/resource/config object.MarshalString).
    """
    if isinstance(value, str):
        return value
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


# The EKS cluster is named <clusterName>-<stack>; tools that find a cluster without its stack's
# settings use the project's default, as the CLI would.
DEFAULT_CLUSTER_NAME: str = declared_settings()["clusterName"].default
# The versions a stack gets unless it sets its own: Pulumi.yaml's defaults, where Renovate updates them
# (Istio's charts and the reference data under schemas/istio-<version>/ must move together).
DEFAULT_KUBERNETES_VERSION: str = declared_settings()["kubernetesVersion"].default
DEFAULT_ISTIO_VERSION: str = declared_settings()["istioVersion"].default

# What a stack is: a whole environment, or only the shop on a platform stack's cluster and edge.
PLATFORM_KIND = "platform"
APP_KIND = "app"
STACK_KINDS = (PLATFORM_KIND, APP_KIND)
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


# An app stack's shop runs in namespace <prefix><stack>, which carries these labels: a platform grants app
# stacks' deployers (components/app_access.py) and lets its gateway and istiod reach (components/isolation.py)
# such namespaces by them, since a platform does not know its app stacks.
APP_NAMESPACE_PREFIX = "shop-"
APP_STACK_NAMESPACE_LABELS = {"eks-istio-shop/stack-kind": "app"}


def app_namespace(stack: str) -> str:
    return f"{APP_NAMESPACE_PREFIX}{stack}"

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
# A stack reference: <stack>, <project>/<stack> or <organization>/<project>/<stack>.
_STACK_REFERENCE = re.compile(r"^([A-Za-z0-9][\w.-]*/){0,2}[A-Za-z0-9][\w.-]*$")
_OWNER = re.compile(r"^(?=.*[^ ])[\w .:/=+@-]{1,256}$")
_ADMIN_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
# The VPC CNI enforces NetworkPolicies from this release on (its network policy agent).
NETWORK_POLICY_MIN_VPC_CNI = (1, 14, 0)

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


# The values below always come from load_settings: Pulumi.yaml holds the defaults, so these classes
# have none.


@dataclass(frozen=True)
class NodeGroupSettings:
    instance_type: str
    desired_size: int
    min_size: int
    max_size: int
    capacity_type: str

    @property
    def architecture(self) -> str:
        """CPU architecture of the instance type: Graviton families carry a `g` after the generation."""
        family = self.instance_type.split(".", 1)[0]
        return "arm64" if re.match(r"^[a-z]+\d+g", family) else "amd64"


@dataclass(frozen=True)
class ClusterSettings:
    # The EKS name: clusterName plus the stack, so that stacks in one account never collide.
    name: str
    kubernetes_version: str
    endpoint_public_access_cidrs: tuple[str, ...]
    endpoint_public_access_from_anywhere: bool
    admin_arns: tuple[str, ...]
    viewer_arns: tuple[str, ...]
    # A platform's grant to app stacks' deployers: their namespaces only (components/app_access.py).
    app_deployer_arns: tuple[str, ...]
    # EKS add-on name -> version, for vpc-cni, kube-proxy, coredns and metrics-server.
    addon_versions: Mapping[str, str]
    # The VPC CNI enforces NetworkPolicies, and the stack ships them (components/isolation.py).
    network_policy_enforcement: bool


@dataclass(frozen=True)
class NetworkSettings:
    vpc_cidr: str
    availability_zone_count: int
    nat_gateways: str


# Istio's name for the control plane installed without a revision (its webhooks carry istio.io/rev=default).
UNREVISIONED = "default"
# The revision tag the workloads' and gateways' namespaces name (istio.io/rev=prod) once they use a revision;
# a revision of that name would make the tag ambiguous.
REVISION_TAG = "prod"
# A revisioned istiod is the Helm release istiod-<revision>, and Helm release names have at most 53 characters.
_REVISION = re.compile(r"^[a-z0-9]([a-z0-9-]{0,44}[a-z0-9])?$")
# Istio supports canary upgrades between revisions up to two minor versions apart (istio.io, "Canary
# Upgrades": "jumping across two minor versions is supported"); in-place upgrades go one minor at a time.
MAX_CANARY_MINOR_DISTANCE = 2


@dataclass(frozen=True)
class MeshSettings:
    # The base chart's (CRDs and cluster-wide resources) Istio release: the newest of the revisions'.
    istio_version: str
    # Node ports of the ingress gateway Service; the load balancer's target groups use the same.
    ingress_http_node_port: int  # behind the NLB's port 80 listener
    ingress_https_node_port: int  # behind the NLB's TLS listener (TLS ends at the NLB)
    ingress_status_node_port: int  # Envoy's status port 15021, for health checks
    # Control planes by revision -> Istio release; UNREVISIONED is the istiod installed without a revision.
    istio_revisions: Mapping[str, str]
    # The revision the workloads and gateways use: UNREVISIONED through istio-injection=enabled, any other
    # through the revision tag REVISION_TAG pointing at it. Also Istio's default revision (validation).
    istio_default_revision: str


@dataclass(frozen=True)
class DnsSettings:
    domain: Optional[str]
    hosted_zone_id: Optional[str]
    hostname: Optional[str]  # resolved: None when no domain is set

    @property
    def enabled(self) -> bool:
        return self.hostname is not None


@dataclass(frozen=True)
class Settings:
    stack: str
    # platform or app (STACK_KINDS); an app stack reads the rest of its environment from `platform_stack`.
    kind: str
    platform_stack: Optional[str]
    region: str
    owner: str
    extra_tags: Mapping[str, str]
    cluster: ClusterSettings
    network: NetworkSettings
    node_group: NodeGroupSettings
    mesh: MeshSettings
    dns: DnsSettings
    # Service name -> prebuilt image reference; services not named here are built and pushed to ECR.
    images: Mapping[str, str]

    @property
    def app_namespace(self) -> str:
        """An app stack's shop runs in its own namespace (a platform's in components/shop.py's NAMESPACE)."""
        return app_namespace(self.stack)

    @property
    def tags(self) -> dict[str, str]:
        """Tags for every taggable AWS resource: the user's and the project's own (no user tag names those)."""
        return {**self.extra_tags, "project": PROJECT, "stack": self.stack, "owner": self.owner}


def resolve_hostname(stack: str, domain: Optional[str], override: Optional[str]) -> Optional[str]:
    """`dev` serves the domain itself; every other stack gets `<stack>.<domain>`."""
    if override:
        return override
    if not domain:
        return None
    return domain if stack == "dev" else f"{stack}.{domain}"


def program_config() -> dict[str, str]:
    """Every config value the engine gave this program: 'namespace:key' -> text.

    pulumi.Config reads one key at a time and cannot list them, and a misspelt key is found only by
    looking at all of them. The Python language host passes the whole map as JSON in PULUMI_CONFIG
    (pulumi.runtime.get_config_env()); the SDK's entry point (pulumi-language-python-exec) copies it into
    the SDK's config store with pulumi.runtime.set_all_config, which is also how the Automation API's
    inline programs and Pulumi's mocks receive config. pulumi.runtime.get_config reads that store, then
    the environment; this lists the keys of both and reads each as pulumi.Config would.
    """
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
    values = {key: pulumi.runtime.get_config(key) for key in keys}
    return {key: value for key, value in values.items() if value is not None}


class _Reader:
    """Reads config values and collects every problem instead of stopping at the first.

    A value the engine did not pass falls back to Pulumi.yaml's default, in the form the CLI would pass
    it. Under the Pulumi CLI that never happens: it merges the project's defaults into the stack's config
    before the program starts (`pulumi up --skip-config-validation` too). It happens when the program runs
    without the CLI, e.g. under a test's mocks with a few settings. Reading the same file the CLI reads
    keeps Pulumi.yaml the one source of defaults, and the program then behaves as under the CLI instead of
    failing over settings the stack never had to set. A setting without a default is required: missing,
    it is reported. Each method returns None after recording a problem.
    """

    def __init__(self, config: Mapping[str, str], declarations: Mapping[str, Declaration]):
        self.config = config
        self.declarations = declarations
        self.problems: list[str] = []

    def problem(self, key: str, value: Any, accepted: str) -> None:
        self.problems.append(f"{key}: {value!r} is not valid; expected {accepted}")

    def raw(self, key: str) -> Optional[str]:
        """The text for `key` ('namespace:name' or a name of this project), or None after a problem."""
        key = qualify(key)
        value = self.config.get(key)
        namespace, _, name = key.rpartition(":")
        declaration = self.declarations.get(name) if namespace == PROJECT else None
        if value is None and declaration is not None and not declaration.required:
            value = engine_text(declaration.default)
        if value is None:
            how = declaration.description if declaration else f"set it with `pulumi config set {key} <value>`"
            self.problems.append(f"{key}: not set; {how}")
        return value

    def string(self, key: str, pattern: re.Pattern, accepted: str, optional: bool = False) -> Optional[str]:
        """Text matching `pattern`. An empty value is refused unless `optional`, where it means none."""
        raw = self.raw(key)
        if raw is None or (optional and raw == ""):
            return None
        if not pattern.match(raw):
            self.problem(qualify(key), raw, accepted)
            return None
        return raw

    def choice(self, key: str, choices: tuple[str, ...]) -> Optional[str]:
        raw = self.raw(key)
        if raw is not None and raw not in choices:
            self.problem(qualify(key), raw, "one of " + ", ".join(choices))
            return None
        return raw

    def integer(self, key: str, low: int, high: int, allowed: Optional[tuple[int, ...]] = None) -> Optional[int]:
        raw = self.raw(key)
        if raw is None:
            return None
        accepted = ("one of " + ", ".join(map(str, allowed))) if allowed else f"a whole number from {low} to {high}"
        try:
            value = int(raw)
        except ValueError:
            self.problem(qualify(key), raw, accepted)
            return None
        if str(value) != raw.strip() or not low <= value <= high or (allowed and value not in allowed):
            self.problem(qualify(key), raw, accepted)
            return None
        return value

    def boolean(self, key: str) -> Optional[bool]:
        raw = self.raw(key)
        if raw is None:
            return None
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.problem(qualify(key), raw, "true or false")
        return None

    def principal_arns(self, key: str) -> Optional[tuple[str, ...]]:
        """A list of IAM role or user ARNs, each once (EKS access entries name the role, not a session)."""
        raw = self.json_value(key, list, "a list of IAM role or user ARNs")
        if raw is None:
            return None
        bad = [a for a in raw if not (isinstance(a, str) and _ADMIN_ARN.match(a))]
        if bad:
            self.problem(qualify(key), bad,
                         "IAM role or user ARNs such as arn:aws:iam::123456789012:role/deployer "
                         "(not assumed-role session ARNs)")
            return None
        if len(set(raw)) != len(raw):
            self.problem(qualify(key), raw, "each ARN once")
            return None
        return tuple(raw)

    def json_value(self, key: str, kind: type, accepted: str) -> Any:
        """A list or map: the JSON the engine passes for one (a YAML list or map in the stack's file)."""
        raw = self.raw(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if not isinstance(value, kind):
            self.problem(qualify(key), value, accepted)
            return None
        return value

    def undeclared(self) -> None:
        """Every key of this project's namespace that Pulumi.yaml does not declare (a misspelt setting)."""
        for key in sorted(self.config):
            namespace, _, name = key.rpartition(":")
            if namespace != PROJECT or name in self.declarations:
                continue
            close = difflib.get_close_matches(name, list(self.declarations), n=1)
            hint = f"did you mean {close[0]}?" if close else "Pulumi.yaml declares the settings (README \"Settings\")"
            self.problems.append(f"{key}: not a setting of this project; {hint}")


def pinned_image_reference(reference: str) -> bool:
    """True for a reference that names one image: it carries a tag other than `latest`, or a digest.

    A moving tag would let the running pods and a new node's pull disagree about what runs.
    """
    match = _IMAGE_REFERENCE.match(reference)
    if not match:
        return False
    tag, digest = match.group("tag"), match.group("digest")
    return bool(digest or tag) and tag != "latest"


def addon_release(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of an EKS add-on version such as v1.22.4-eksbuild.3."""
    major, minor, patch = version.lstrip("v").split("-", 1)[0].split(".")
    return int(major), int(minor), int(patch)


def istio_release(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.split(".")
    return int(major), int(minor), int(patch)


def istio_revision_problems(revisions: Mapping[str, Any], default_revision: str, istio_version: str) -> list[str]:
    """What makes a set of Istio control plane revisions impossible or unsafe, each naming its setting.

    `revisions` as the stack gives it (empty: only the unrevisioned control plane at `istio_version`).
    """
    revisions_key, default_key, version_key = (f"{PROJECT}:istioRevisions", f"{PROJECT}:istioDefaultRevision",
                                               f"{PROJECT}:istioVersion")
    found = []
    for name, version in revisions.items():
        if name != UNREVISIONED and (not _REVISION.match(name) or name == REVISION_TAG):
            found.append(f"{revisions_key}.{name}: {name!r} is not valid; expected a revision name of 1-46 "
                         f"lowercase letters, digits or hyphens (a DNS label, such as 1-31-0) other than the "
                         f"revision tag {REVISION_TAG!r}, or {UNREVISIONED!r} for the control plane installed "
                         f"without a revision")
        if not (isinstance(version, str) and _SEMVER.match(version)):
            found.append(f"{revisions_key}.{name}: {version!r} is not valid; expected an Istio release such as 1.30.5")
    if found:
        return found
    installed = dict(revisions) or {UNREVISIONED: istio_version}
    if default_revision not in installed:
        found.append(f"{default_key}: {default_revision!r} is not valid; expected a revision {revisions_key} "
                     f"installs: {', '.join(sorted(installed))} (move the workloads to another revision before "
                     f"removing the one they use)")
    releases = {name: istio_release(version) for name, version in installed.items()}
    newest = max(releases.values())
    if istio_release(istio_version) < newest:
        found.append(f"{version_key}: {istio_version!r} is not valid; expected the newest release of "
                     f"{revisions_key} or later ({'.'.join(map(str, newest))}): the CRDs and cluster-wide "
                     f"resources are upgraded before a new revision is installed")
    spread = sorted({*releases.values(), istio_release(istio_version)})
    lowest, highest = spread[0], spread[-1]
    if lowest[0] != highest[0] or highest[1] - lowest[1] > MAX_CANARY_MINOR_DISTANCE:
        found.append(f"{revisions_key}: {dict(installed)} with {version_key} {istio_version!r} is not valid; "
                     f"expected releases at most {MAX_CANARY_MINOR_DISTANCE} minor versions apart, the most "
                     f"Istio supports for a canary upgrade (upgrade through an intermediate minor)")
    return found


def _valid_network(value: str, min_prefix: int, max_prefix: int) -> bool:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return network.version == 4 and min_prefix <= network.prefixlen <= max_prefix


def load_settings(stack: Optional[str] = None, config: Optional[Mapping[str, str]] = None,
                  today: Optional[datetime.date] = None, project_file: Path = PROJECT_FILE) -> Settings:
    """Read and validate every setting; raise SettingsError listing all problems.

    `config` is the engine's config, 'namespace:key' -> text (default: what this program was given).
    `today` decides which Kubernetes versions are still in standard support (default: the real date).
    """
    stack = stack or pulumi.get_stack()
    r = _Reader(program_config() if config is None else config, declared_settings(project_file))
    r.undeclared()

    region = r.string("aws:region", _REGION, "an AWS region such as us-east-1")
    owner = r.string("owner", _OWNER,
                     "a team or person's name (1-256 letters, digits, spaces or _.:/=+-@, not only spaces)")
    cluster_name = r.string("clusterName", _NAME, "2-32 lowercase letters, digits or hyphens, starting with a letter")
    kubernetes_version = r.choice("kubernetesVersion", SUPPORTED_KUBERNETES_VERSIONS)
    today = today or datetime.date.today()
    if kubernetes_version is not None and today >= KUBERNETES_STANDARD_SUPPORT_ENDS[kubernetes_version]:
        support_ends = KUBERNETES_STANDARD_SUPPORT_ENDS[kubernetes_version]
        current = [v for v, ends in KUBERNETES_STANDARD_SUPPORT_ENDS.items() if today < ends]
        r.problem(f"{PROJECT}:kubernetesVersion", kubernetes_version,
                  f"a version in EKS standard support ({kubernetes_version}'s ended on {support_ends}; EKS upgrades "
                  f"such clusters itself): one of {', '.join(current) or 'none known: update settings.py'}")

    cidrs_raw = r.json_value("endpointPublicAccessCidrs", list, "a list of IPv4 CIDRs such as [\"203.0.113.0/24\"]")
    from_anywhere = r.boolean("endpointPublicAccessFromAnywhere")
    cidrs: Optional[tuple[str, ...]] = None
    if cidrs_raw is not None:
        bad = [c for c in cidrs_raw if not isinstance(c, str) or not _valid_network(c, 0, 32)]
        if bad:
            r.problem(f"{PROJECT}:endpointPublicAccessCidrs", cidrs_raw,
                      "a non-empty list of IPv4 CIDRs such as [\"203.0.113.0/24\"]")
        else:
            cidrs = tuple(cidrs_raw)
    if cidrs is not None and "0.0.0.0/0" in cidrs and from_anywhere is False:
        r.problem(f"{PROJECT}:endpointPublicAccessCidrs", list(cidrs),
                  f"narrower CIDRs than 0.0.0.0/0, or set {PROJECT}:endpointPublicAccessFromAnywhere to true "
                  f"to open the API endpoint to the internet on purpose")

    admins = r.principal_arns("clusterAdminArns")
    viewers = r.principal_arns("clusterViewerArns")
    both = sorted(set(admins or ()) & set(viewers or ()))
    if both:
        r.problem(f"{PROJECT}:clusterViewerArns", both,
                  f"ARNs not also in {PROJECT}:clusterAdminArns (an identity has one access entry)")
    deployers = r.principal_arns("appDeployerArns")
    twice = sorted(set(deployers or ()) & (set(admins or ()) | set(viewers or ())))
    if twice:
        r.problem(f"{PROJECT}:appDeployerArns", twice, f"ARNs not also in {PROJECT}:clusterAdminArns or "
                  f"{PROJECT}:clusterViewerArns (an identity has one access entry)")

    tags_raw = r.json_value("tags", dict, "a map of tag keys to string values")
    extra_tags: dict[str, str] = {}
    for key, value in (tags_raw or {}).items():
        if key.lower() in PROGRAM_TAGS:
            r.problem(f"{PROJECT}:tags.{key}", value,
                      f"a key other than {', '.join(PROGRAM_TAGS)} in any letter case: the program sets those "
                      f"tags itself (set {PROJECT}:owner for the owner)")
        elif not (isinstance(value, str) and _TAG_KEY.match(key) and _TAG_VALUE.match(value)) \
                or key.lower().startswith("aws:"):
            r.problem(f"{PROJECT}:tags.{key}", value,
                      "a string value under a key of 1-128 characters that does not start with aws:")
        else:
            extra_tags[key] = value

    vpc_cidr = r.raw("vpcCidr")
    if vpc_cidr is not None and not _valid_network(vpc_cidr, 16, 20):
        r.problem(f"{PROJECT}:vpcCidr", vpc_cidr, "an IPv4 network from /16 to /20 such as 10.0.0.0/16")
    availability_zone_count = r.integer("availabilityZoneCount", 2, 3, AVAILABILITY_ZONE_COUNTS)
    nat_gateways = r.choice("natGateways", NAT_GATEWAY_MODES)

    instance_type = r.string("nodeInstanceType", _INSTANCE_TYPE, "an EC2 instance type such as t3.medium")
    min_size = r.integer("nodeMinSize", 1, 100)
    desired_size = r.integer("nodeDesiredSize", 1, 100)
    max_size = r.integer("nodeMaxSize", 1, 100)
    if None not in (min_size, desired_size, max_size) and not min_size <= desired_size <= max_size:
        r.problems.append(f"{PROJECT}:nodeMinSize/nodeDesiredSize/nodeMaxSize: {min_size}/{desired_size}/{max_size} "
                          f"is not valid; expected min <= desired <= max")
    capacity = r.choice("nodeCapacityType", tuple(CAPACITY_TYPES))

    istio_version = r.string("istioVersion", _SEMVER, "an Istio release such as 1.30.5")
    ports = {attr: r.integer(key, *NODE_PORT_RANGE)
             for key, attr in (("ingressHttpNodePort", "ingress_http_node_port"),
                               ("ingressHttpsNodePort", "ingress_https_node_port"),
                               ("ingressStatusNodePort", "ingress_status_node_port"))}
    revisions_raw = r.json_value("istioRevisions", dict, "a map of revision name to Istio release, such as "
                                 "{\"1-30-5\": \"1.30.5\", \"1-31-0\": \"1.31.0\"}")
    default_revision = r.raw("istioDefaultRevision")
    if revisions_raw is not None and default_revision is not None and istio_version is not None:
        r.problems.extend(istio_revision_problems(revisions_raw, default_revision, istio_version))
    istio_revisions = dict(revisions_raw or {}) or {UNREVISIONED: istio_version}
    if None not in ports.values() and len(set(ports.values())) != len(ports):
        r.problems.append(f"{PROJECT}:ingressHttpNodePort/ingressHttpsNodePort/ingressStatusNodePort: "
                          f"{sorted(ports.values())} is not valid; expected three different node ports")

    # An empty domain, zone id or hostname is the declared default: none.
    domain = r.string("domain", _DOMAIN, "a lowercase DNS domain such as example.com", optional=True)
    zone_id = r.string("hostedZoneId", _ZONE_ID, "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ",
                       optional=True)
    hostname_override = r.string("hostname", _DOMAIN, "a lowercase DNS name such as shop.example.com", optional=True)
    if hostname_override and not domain:
        r.problems.append(f"{PROJECT}:hostname: {hostname_override!r} is not valid without {PROJECT}:domain; "
                          f"set the domain whose hosted zone holds it")
    elif hostname_override and domain and not (hostname_override == domain
                                               or hostname_override.endswith("." + domain)):
        r.problem(f"{PROJECT}:hostname", hostname_override, f"{domain} or a name under it")
    if zone_id and not domain:
        r.problems.append(f"{PROJECT}:hostedZoneId: {zone_id!r} is not valid without {PROJECT}:domain; "
                          f"set the domain the zone serves")

    overrides_raw = r.json_value("addonVersions", dict, "a map of EKS add-on name to version, such as "
                                 "{\"vpc-cni\": \"v1.20.4-eksbuild.1\"}")
    addon_versions = dict(DEFAULT_ADDON_VERSIONS[kubernetes_version]) if kubernetes_version else {}
    for addon, version in (overrides_raw or {}).items():
        if addon not in ADDONS:
            r.problem(f"{PROJECT}:addonVersions.{addon}", version, "a key naming one of the add-ons " + ", ".join(ADDONS))
        elif not (isinstance(version, str) and _ADDON_VERSION.match(version)):
            r.problem(f"{PROJECT}:addonVersions.{addon}", version,
                      "an EKS add-on version such as v1.20.4-eksbuild.1 (aws eks describe-addon-versions "
                      f"--addon-name {addon} --kubernetes-version {kubernetes_version or '<kubernetesVersion>'})")
        else:
            addon_versions[addon] = version

    enforcement = r.boolean("networkPolicyEnforcement")
    vpc_cni = addon_versions.get("vpc-cni")
    if enforcement and vpc_cni and addon_release(vpc_cni) < NETWORK_POLICY_MIN_VPC_CNI:
        minimum = "v" + ".".join(map(str, NETWORK_POLICY_MIN_VPC_CNI))
        r.problem(f"{PROJECT}:addonVersions.vpc-cni", vpc_cni,
                  f"a vpc-cni version from {minimum} on, the first that enforces NetworkPolicies, or set "
                  f"{PROJECT}:networkPolicyEnforcement to false")

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

    kind = r.choice("stackKind", STACK_KINDS)
    if kind == PLATFORM_KIND and cidrs == ():
        r.problem(f"{PROJECT}:endpointPublicAccessCidrs", [],
                  "a non-empty list of IPv4 CIDRs such as [\"203.0.113.0/24\"]: a platform stack's cluster API "
                  "endpoint is reached from them (`pulumi config set --path 'endpointPublicAccessCidrs[0]' <cidr>`)")
    platform_stack = r.string("platformStack", _STACK_REFERENCE, "the platform stack to run on: <stack>, "
                              "<project>/<stack> or <organization>/<project>/<stack>", optional=True)
    if kind == APP_KIND and not platform_stack and r.raw("platformStack") == "":
        r.problems.append(f"{PROJECT}:platformStack: not set; an app stack (stackKind app) runs on a platform "
                          f"stack: set `pulumi config set platformStack <stack>`, e.g. dev")
    elif kind == PLATFORM_KIND and platform_stack:
        r.problem(f"{PROJECT}:platformStack", platform_stack,
                  f"no value on a platform stack, or set {PROJECT}:stackKind to app")
    if kind == APP_KIND and deployers:
        r.problem(f"{PROJECT}:appDeployerArns", list(deployers),
                  "no value on an app stack: the platform stack grants app stacks' deployers their access")
    if kind == APP_KIND and platform_stack == stack:
        r.problem(f"{PROJECT}:platformStack", platform_stack, "another stack than this one")
    if kind == APP_KIND and r.raw("domain") == "":
        r.problems.append(f"{PROJECT}:domain: not set; an app stack is served at a name under its platform "
                          f"stack's domain: set the same domain as the platform stack")
    if kind == APP_KIND and domain and hostname_override and not re.fullmatch(
            rf"[a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?\.{re.escape(domain)}", hostname_override):
        r.problem(f"{PROJECT}:hostname", hostname_override,
                  f"on an app stack, a name directly under {domain} such as {stack}.{domain}: the platform's "
                  f"certificate covers *.{domain}")
    if kind == APP_KIND and not _NAMESPACE.match(app_namespace(stack)):
        r.problems.append(f"stack name {stack!r}: an app stack's namespace would be {app_namespace(stack)!r}, "
                          f"not a Kubernetes namespace name; name the stack with lowercase letters, digits and "
                          f"hyphens, at most 57 characters")

    if r.problems:
        raise SettingsError(r.problems, stack)
    return Settings(
        stack=stack,
        kind=kind,
        platform_stack=platform_stack,
        region=region,
        owner=owner,
        extra_tags=extra_tags,
        cluster=ClusterSettings(
            name=f"{cluster_name}-{stack}", kubernetes_version=kubernetes_version,
            endpoint_public_access_cidrs=cidrs, endpoint_public_access_from_anywhere=from_anywhere,
            admin_arns=admins, viewer_arns=viewers, app_deployer_arns=deployers, addon_versions=addon_versions,
            network_policy_enforcement=enforcement),
        network=NetworkSettings(vpc_cidr=vpc_cidr, availability_zone_count=availability_zone_count,
                                nat_gateways=nat_gateways),
        node_group=NodeGroupSettings(instance_type=instance_type, desired_size=desired_size, min_size=min_size,
                                     max_size=max_size, capacity_type=CAPACITY_TYPES[capacity]),
        mesh=MeshSettings(istio_version=istio_version, **ports, istio_revisions=istio_revisions,
                          istio_default_revision=default_revision),
        dns=DnsSettings(domain=domain, hosted_zone_id=zone_id,
                        hostname=resolve_hostname(stack, domain, hostname_override)),
        images=images,
    )
