"""Every setting: its default from Pulumi.yaml, a good value, and a bad value that names the setting."""

import datetime
import re

import pytest

from settings import (PROJECT, SettingsError, declared_settings, engine_text, load_settings, resolve_hostname)
from tests.support import ROOT

# The settings a stack must set: what the CLI passes the program besides Pulumi.yaml's defaults.
REQUIRED = {
    "aws:region": "us-east-1",
    f"{PROJECT}:owner": "platform-team",
    f"{PROJECT}:endpointPublicAccessCidrs": '["203.0.113.0/24"]',
}


def engine_config(region: str | None = "us-east-1", **values) -> dict[str, str]:
    """Config as the engine passes it: 'namespace:key' -> text; a value of None leaves the key out."""
    config = {**REQUIRED, "aws:region": region, **{f"{PROJECT}:{k}": v for k, v in values.items()}}
    return {k: v for k, v in config.items() if v is not None}


def load(stack: str = "dev", region: str | None = "us-east-1", **values):
    return load_settings(stack, engine_config(region, **values))


def problems(**kwargs) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load(**kwargs)
    return raised.value.problems


def with_cli_defaults(config: dict[str, str]) -> dict[str, str]:
    """What the Pulumi CLI passes: the stack's values plus every declared default the stack does not set."""
    defaults = {f"{PROJECT}:{d.name}": engine_text(d.default) for d in declared_settings().values() if not d.required}
    return {**defaults, **config}


def test_a_stack_that_sets_only_what_is_required_gets_the_declared_defaults():
    declared = {name: d.default for name, d in declared_settings().items() if not d.required}
    s = load()
    assert s.cluster.name == f"{declared['clusterName']}-dev"
    assert s.cluster.kubernetes_version == declared["kubernetesVersion"]
    assert s.node_group.instance_type == declared["nodeInstanceType"]
    assert (s.node_group.min_size, s.node_group.desired_size, s.node_group.max_size) == \
        (declared["nodeMinSize"], declared["nodeDesiredSize"], declared["nodeMaxSize"])
    assert s.node_group.capacity_type == {"on-demand": "ON_DEMAND", "spot": "SPOT"}[declared["nodeCapacityType"]]
    assert s.network.vpc_cidr == declared["vpcCidr"]
    assert s.network.availability_zone_count == declared["availabilityZoneCount"]
    assert s.network.nat_gateways == declared["natGateways"]
    assert s.cluster.endpoint_public_access_from_anywhere is declared["endpointPublicAccessFromAnywhere"]
    assert list(s.cluster.admin_arns) == declared["clusterAdminArns"]
    assert list(s.cluster.viewer_arns) == declared["clusterViewerArns"]
    assert s.mesh.istio_version == declared["istioVersion"]
    assert (s.mesh.ingress_http_node_port, s.mesh.ingress_https_node_port, s.mesh.ingress_status_node_port) == \
        (declared["ingressHttpNodePort"], declared["ingressHttpsNodePort"], declared["ingressStatusNodePort"])
    assert s.dns.domain is None and s.dns.hostname is None and not s.dns.enabled
    assert s.images == declared["images"] and s.extra_tags == declared["tags"]
    assert s.tags == {"project": PROJECT, "stack": "dev", "owner": "platform-team"}


def test_the_program_reads_the_same_settings_with_or_without_the_cli_merging_the_defaults():
    """The CLI passes every declared default; without it (mocks, tests) settings.py reads Pulumi.yaml's."""
    assert load_settings("dev", with_cli_defaults(engine_config())) == load()
    assert load_settings("pr-7", with_cli_defaults(engine_config(domain="lukemilo.com"))) == \
        load("pr-7", domain="lukemilo.com")


def test_defaults_come_from_the_project_file(tmp_path):
    project = (ROOT / "Pulumi.yaml").read_text()
    changed = project.replace("    default: t3.medium\n", "    default: m7g.large\n")
    assert changed != project
    (tmp_path / "Pulumi.yaml").write_text(changed)
    s = load_settings("dev", engine_config(), project_file=tmp_path / "Pulumi.yaml")
    assert s.node_group.instance_type == "m7g.large" and s.node_group.architecture == "arm64"


def test_every_setting_the_program_reads_is_declared_and_every_declared_one_is_read():
    class Recording(dict):
        def __init__(self, values):
            super().__init__(values)
            self.read: set[str] = set()

        def get(self, key, default=None):
            self.read.add(key)
            return super().get(key, default)

    config = Recording(engine_config())
    load_settings("dev", config)
    declared = {f"{PROJECT}:{name}" for name in declared_settings()}
    assert {k for k in config.read if k.startswith(f"{PROJECT}:")} == declared
    from settings import PROVIDER_SETTINGS
    assert {k for k in config.read if not k.startswith(f"{PROJECT}:")} == set(PROVIDER_SETTINGS)


def test_settings_cannot_be_changed_once_read():
    s = load()
    with pytest.raises(Exception):
        s.cluster = None  # type: ignore[misc]


SHOWN = {
    '["not-a-cidr"]': "['not-a-cidr']", "[]": "[]", '"10.0.0.0/8"': "'10.0.0.0/8'",
    '["a"]': "['a']", '{"aws:reserved": "x"}': "tags.aws:reserved", '{"team": 5}': "tags.team: 5",
    '["arn:aws:sts::123456789012:assumed-role/x/y"]': "assumed-role/x/y",
    '"arn:aws:iam::123456789012:role/a"': "'arn:aws:iam::123456789012:role/a'",
    '{"aws-ebs-csi-driver": "v1.40.0-eksbuild.1"}': "addonVersions.aws-ebs-csi-driver",
    '{"coredns": "latest"}': "addonVersions.coredns: 'latest'",
    '["v1.20.4-eksbuild.1"]': "['v1.20.4-eksbuild.1']",
}


@pytest.mark.parametrize("key, value, accepted", [
    ("clusterName", "Alpha_1", "lowercase letters"),
    ("kubernetesVersion", "1.34", "one of 1.35, 1.36"),
    ("nodeInstanceType", "t3medium", "EC2 instance type"),
    ("nodeDesiredSize", "four", "whole number"),
    ("nodeMinSize", "0", "whole number from 1 to 100"),
    ("nodeMaxSize", "1000", "whole number from 1 to 100"),
    ("nodeCapacityType", "reserved", "one of on-demand, spot"),
    ("vpcCidr", "10.0.0.0/8", "/16 to /20"),
    ("vpcCidr", "10.0.0.1/16", "/16 to /20"),
    ("availabilityZoneCount", "4", "one of 2, 3"),
    ("natGateways", "none", "one of single, per-zone"),
    ("endpointPublicAccessCidrs", '["not-a-cidr"]', "IPv4 CIDRs"),
    ("endpointPublicAccessCidrs", "[]", "non-empty list"),
    ("endpointPublicAccessCidrs", '"10.0.0.0/8"', "list of IPv4 CIDRs"),
    ("endpointPublicAccessFromAnywhere", "yes", "true or false"),
    ("clusterAdminArns", '["arn:aws:sts::123456789012:assumed-role/x/y"]', "IAM role or user ARNs"),
    ("clusterAdminArns", '"arn:aws:iam::123456789012:role/a"', "list of IAM role or user ARNs"),
    ("clusterViewerArns", '["arn:aws:sts::123456789012:assumed-role/x/y"]', "IAM role or user ARNs"),
    ("addonVersions", '{"aws-ebs-csi-driver": "v1.40.0-eksbuild.1"}', "one of the add-ons vpc-cni, kube-proxy"),
    ("addonVersions", '{"coredns": "latest"}', "describe-addon-versions --addon-name coredns"),
    ("addonVersions", '["v1.20.4-eksbuild.1"]', "map of EKS add-on name to version"),
    ("tags", '["a"]', "map of tag keys"),
    ("tags", '{"aws:reserved": "x"}', "does not start with aws:"),
    ("tags", '{"team": 5}', "string value"),
    ("owner", "", "team or person"),
    ("owner", "   ", "team or person"),
    ("istioVersion", "latest", "Istio release"),
    ("ingressHttpNodePort", "80", "30000 to 32767"),
    ("ingressHttpsNodePort", "40000", "30000 to 32767"),
    ("ingressStatusNodePort", "x", "30000 to 32767"),
    ("domain", "Not A Domain", "DNS domain"),
    ("hostedZoneId", "zone", "hosted zone id"),
])
def test_bad_value_names_setting_and_accepted_values(key, value, accepted):
    found = problems(**{key: value})
    assert len(found) == 1, found
    assert found[0].startswith(f"{PROJECT}:{key}"), found
    assert accepted in found[0]
    # The bad value is quoted back: JSON settings as the parsed value, the rest as given.
    shown = SHOWN.get(value, repr(value))
    assert shown in found[0], found[0]


def test_a_missing_empty_or_unknown_region_is_refused_by_name():
    assert problems(region=None)[0].startswith("aws:region: not set")
    assert problems(region="mars-1")[0].startswith("aws:region: 'mars-1'")
    assert problems(region="")[0].startswith("aws:region: '' is not valid")


@pytest.mark.parametrize("name", [name for name, d in declared_settings().items() if d.required])
def test_a_setting_without_a_default_is_required(name):
    (found,) = problems(**{name: None})
    # The message says what the setting is for, from its description in Pulumi.yaml.
    assert found == f"{PROJECT}:{name}: not set; {declared_settings()[name].description}"


@pytest.mark.parametrize("name", [name for name, d in declared_settings().items() if d.default != ""])
def test_an_empty_value_is_refused_where_a_value_is_required(name):
    (found,) = problems(**{name: ""})
    assert found.startswith(f"{PROJECT}:{name}: '' is not valid; expected "), found


@pytest.mark.parametrize("name", [name for name, d in declared_settings().items() if d.default == ""])
def test_an_empty_value_means_none_where_none_is_the_default(name):
    s = load(**{name: ""})
    assert (s.dns.domain, s.dns.hosted_zone_id, s.dns.hostname) == (None, None, None)


def test_a_platform_stack_must_open_its_cluster_endpoint_to_some_cidrs():
    (found,) = problems(endpointPublicAccessCidrs=None)
    assert found.startswith(f"{PROJECT}:endpointPublicAccessCidrs: [] is not valid; expected a non-empty list"), found


def test_an_app_stack_needs_no_endpoint_cidrs_as_it_creates_no_cluster():
    s = load("pr-7", endpointPublicAccessCidrs=None, stackKind="app", platformStack="dev", domain="example.com")
    assert s.kind == "app" and s.cluster.endpoint_public_access_cidrs == ()


def test_a_misspelt_setting_is_refused_with_the_closest_declared_name():
    (found,) = problems(nodeDesiredSise="6")
    assert found == f"{PROJECT}:nodeDesiredSise: not a setting of this project; did you mean nodeDesiredSize?"
    (found,) = problems(zzz="1")
    assert found.startswith(f"{PROJECT}:zzz: not a setting of this project; ") and "Pulumi.yaml" in found


def test_keys_of_other_namespaces_are_left_to_their_packages():
    config = {**engine_config(), "aws:profile": "dev", "pulumi:tags": "{}", "kubernetes:context": "x"}
    assert load_settings("dev", config) == load()


def test_all_problems_come_in_one_message_with_the_unknown_keys():
    with pytest.raises(SettingsError) as raised:
        load(nodeDesiredSise="6", natGateways="none")
    message = str(raised.value)
    assert "did you mean nodeDesiredSize?" in message and "natGateways: 'none'" in message


def test_open_endpoint_needs_explicit_opt_in():
    found = problems(endpointPublicAccessCidrs='["0.0.0.0/0"]')
    assert "endpointPublicAccessFromAnywhere" in found[0]
    s = load(endpointPublicAccessCidrs='["0.0.0.0/0"]', endpointPublicAccessFromAnywhere="true")
    assert s.cluster.endpoint_public_access_cidrs == ("0.0.0.0/0",)


def test_node_sizes_must_be_ordered():
    found = problems(nodeMinSize="5", nodeDesiredSize="4")
    assert "min <= desired <= max" in found[0]


def test_node_ports_must_differ():
    found = problems(ingressHttpNodePort="30021")
    assert "three different node ports" in found[0]


def test_all_problems_reported_at_once():
    found = problems(clusterName="X", natGateways="none", kubernetesVersion="1.20")
    assert len(found) == 3


def test_dev_serves_the_domain_and_other_stacks_a_name_under_it():
    assert load(domain="lukemilo.com").dns.hostname == "lukemilo.com"
    assert load(stack="pr-12", domain="lukemilo.com").dns.hostname == "pr-12.lukemilo.com"
    assert load(domain="lukemilo.com", hostname="shop.lukemilo.com").dns.hostname == "shop.lukemilo.com"
    assert "without eks-istio-shop:domain" in problems(hostname="shop.lukemilo.com")[0]
    assert "or a name under it" in problems(domain="lukemilo.com", hostname="shop.other.com")[0]
    assert "without eks-istio-shop:domain" in problems(hostedZoneId="Z0123456789ABC")[0]
    assert resolve_hostname("dev", None, None) is None


def test_user_tags_are_added_to_the_project_tags():
    s = load(tags='{"cost-center": "42"}')
    assert s.tags == {"cost-center": "42", "project": PROJECT, "stack": "dev", "owner": "platform-team"}


@pytest.mark.parametrize("tag", ["project", "stack", "owner", "Project", "STACK", "Owner"])
def test_a_user_tag_that_would_override_a_project_tag_is_refused(tag):
    (found,) = problems(tags=f'{{"{tag}": "other", "cost-center": "42"}}')
    assert found.startswith(f"{PROJECT}:tags.{tag}: 'other' is not valid; expected a key other than "
                            f"project, stack, owner"), found


@pytest.mark.parametrize("instance_type, architecture", [
    ("t3.medium", "amd64"), ("m5.large", "amd64"), ("t4g.medium", "arm64"),
    ("m7g.large", "arm64"), ("c6gn.xlarge", "arm64"), ("g5.xlarge", "amd64"),
])
def test_architecture_follows_instance_type(instance_type, architecture):
    assert load(nodeInstanceType=instance_type).node_group.architecture == architecture


def test_spot_capacity_becomes_the_node_groups_spot_type():
    assert load(nodeCapacityType="spot").node_group.capacity_type == "SPOT"


def test_admin_and_viewer_arns_are_read_once_each_and_never_in_both_lists():
    arn = "arn:aws:iam::123456789012:role/github-deployer"
    viewer = "arn:aws:iam::123456789012:role/github-preview"
    s = load(clusterAdminArns=f'["{arn}"]', clusterViewerArns=f'["{viewer}"]')
    assert (s.cluster.admin_arns, s.cluster.viewer_arns) == ((arn,), (viewer,))
    assert "each ARN once" in problems(clusterAdminArns=f'["{arn}", "{arn}"]')[0]
    assert "each ARN once" in problems(clusterViewerArns=f'["{viewer}", "{viewer}"]')[0]
    (both,) = problems(clusterAdminArns=f'["{arn}"]', clusterViewerArns=f'["{arn}", "{viewer}"]')
    assert both.startswith(f"{PROJECT}:clusterViewerArns") and "not also in" in both and arn in both


def test_kubernetes_versions_are_refused_from_the_day_their_standard_support_ends():
    from settings import KUBERNETES_STANDARD_SUPPORT_ENDS
    ends = KUBERNETES_STANDARD_SUPPORT_ENDS["1.35"]
    day_before = ends - datetime.timedelta(days=1)
    config = engine_config(kubernetesVersion="1.35")
    assert load_settings("dev", config, today=day_before).cluster.kubernetes_version == "1.35"
    with pytest.raises(SettingsError) as raised:
        load_settings("dev", config, today=ends)
    (problem,) = raised.value.problems
    assert problem.startswith(f"{PROJECT}:kubernetesVersion: '1.35'")
    assert str(ends) in problem and "one of 1.36" in problem


def test_every_offered_kubernetes_version_has_a_support_end_and_pinned_addons():
    from settings import ADDONS, DEFAULT_ADDON_VERSIONS, KUBERNETES_STANDARD_SUPPORT_ENDS, SUPPORTED_KUBERNETES_VERSIONS
    assert set(SUPPORTED_KUBERNETES_VERSIONS) == set(KUBERNETES_STANDARD_SUPPORT_ENDS) == set(DEFAULT_ADDON_VERSIONS)
    for version in SUPPORTED_KUBERNETES_VERSIONS:
        assert set(DEFAULT_ADDON_VERSIONS[version]) == set(ADDONS), version


def test_the_default_kubernetes_version_is_in_standard_support_today():
    """Fails on the day the default leaves EKS standard support: time to move the default on."""
    from settings import DEFAULT_KUBERNETES_VERSION, KUBERNETES_STANDARD_SUPPORT_ENDS
    assert datetime.date.today() < KUBERNETES_STANDARD_SUPPORT_ENDS[DEFAULT_KUBERNETES_VERSION]


def test_addon_versions_follow_the_kubernetes_version_and_take_overrides():
    from settings import DEFAULT_ADDON_VERSIONS
    assert load().cluster.addon_versions == DEFAULT_ADDON_VERSIONS["1.35"]
    assert load(kubernetesVersion="1.36").cluster.addon_versions == DEFAULT_ADDON_VERSIONS["1.36"]
    pinned = load(addonVersions='{"coredns": "v1.99.0-eksbuild.7"}').cluster.addon_versions
    assert pinned == {**DEFAULT_ADDON_VERSIONS["1.35"], "coredns": "v1.99.0-eksbuild.7"}


def test_network_policy_enforcement_is_on_by_default_and_can_be_turned_off():
    assert load().cluster.network_policy_enforcement is True
    assert load(networkPolicyEnforcement="false").cluster.network_policy_enforcement is False
    assert problems(networkPolicyEnforcement="yes") == [
        f"{PROJECT}:networkPolicyEnforcement: 'yes' is not valid; expected true or false"]


def test_enforcement_needs_a_vpc_cni_that_enforces_network_policies():
    """The VPC CNI's network policy agent arrived in v1.14.0: an older pin would enforce nothing."""
    old = '{"vpc-cni": "v1.13.4-eksbuild.1"}'
    [problem] = problems(addonVersions=old)
    assert problem.startswith(f"{PROJECT}:addonVersions.vpc-cni: 'v1.13.4-eksbuild.1' is not valid")
    assert "v1.14.0" in problem and "networkPolicyEnforcement" in problem
    assert load(addonVersions=old, networkPolicyEnforcement="false").cluster.addon_versions["vpc-cni"] == "v1.13.4-eksbuild.1"
    assert load(addonVersions='{"vpc-cni": "v1.14.0-eksbuild.1"}').cluster.network_policy_enforcement is True


DIGEST = "sha256:" + "ab" * 32


def test_images_default_to_building_every_service():
    assert load().images == {}


def test_prebuilt_images_are_taken_per_service():
    reference = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/orders@{DIGEST}"
    s = load(images=f'{{"orders": "{reference}", "products": "ghcr.io/acme/products:1.4.2"}}')
    assert s.images == {"orders": reference, "products": "ghcr.io/acme/products:1.4.2"}


@pytest.mark.parametrize("images, key, accepted", [
    ('{"payments": "ghcr.io/acme/payments:1.0"}', "images.payments", "one of the services products, orders, graphql"),
    ('{"orders": "ghcr.io/acme/orders:latest"}', "images.orders", "tag other than latest"),
    ('{"orders": "ghcr.io/acme/orders"}', "images.orders", "tag other than latest or a digest"),
    ('{"orders": "ghcr.io/acme/orders@sha256:abc"}', "images.orders", "or a digest"),
    ('{"orders": "Not An Image:1"}', "images.orders", "image reference"),
    ('{"orders": 5}', "images.orders", "image reference"),
    ('["ghcr.io/acme/orders:1"]', "images", "map of service name to image reference"),
])
def test_bad_images_name_the_service_and_what_is_accepted(images, key, accepted):
    found = problems(images=images)
    assert len(found) == 1, found
    assert found[0].startswith(f"{PROJECT}:{key}:"), found[0]
    assert accepted in found[0], found[0]


@pytest.mark.parametrize("reference, pinned", [
    ("orders:1.0", True), (f"orders@{DIGEST}", True), (f"localhost:5000/shop/orders:v2@{DIGEST}", True),
    ("orders", False), ("orders:latest", False), (f"orders:latest@{DIGEST}", False), ("Orders:1", False),
])
def test_an_image_reference_is_pinned_by_a_tag_other_than_latest_or_a_digest(reference, pinned):
    from settings import pinned_image_reference
    assert pinned_image_reference(reference) is pinned


def readme_settings_rows() -> list[tuple[list[str], str]]:
    """(settings, default cell) of each row of the README's settings table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names, default = [cell.strip() for cell in line.strip().strip("|").split(" | ")][:2]
            rows.append((re.findall(r"`([^`]+)`", names), default))
    return rows


def test_the_readme_lists_every_declared_setting_with_its_default():
    from settings import PROVIDER_SETTINGS
    declared = declared_settings()
    listed = [name for names, _ in readme_settings_rows() for name in names]
    assert len(listed) == len(set(listed)), "a setting listed twice"
    assert {n for n in listed if ":" not in n} == set(declared), "the README's rows and Pulumi.yaml's settings"
    assert {n for n in listed if ":" in n} == set(PROVIDER_SETTINGS)
    for names, default in readme_settings_rows():
        shown = ["(required)" if n in PROVIDER_SETTINGS or declared[n].required
                 else f"`{engine_text(declared[n].default) or chr(34) * 2}`" for n in names]
        expected = shown[0] if set(shown) == {"(required)"} else " / ".join(shown)
        assert default.startswith(expected), f"README row {' / '.join(names)}: default {default!r}, Pulumi.yaml: {expected}"
