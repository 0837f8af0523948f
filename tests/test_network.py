import ipaddress

import pytest

import pulumi

from components.network import EKS_UNSUPPORTED_ZONE_IDS, choose_zones, plan_subnets, subnet_tags


@pytest.mark.parametrize("vpc_cidr", ["10.0.0.0/16", "172.20.0.0/18", "192.168.16.0/20"])
@pytest.mark.parametrize("zones", [2, 3])
def test_subnet_plan_fits_the_vpc_without_overlap(vpc_cidr, zones):
    vpc = ipaddress.ip_network(vpc_cidr)
    plan = plan_subnets(vpc_cidr, zones)
    assert [p.zone_index for p in plan] == list(range(zones))
    subnets = [ipaddress.ip_network(c) for p in plan for c in (p.public_cidr, p.private_cidr)]
    assert all(s.subnet_of(vpc) for s in subnets)
    for i, a in enumerate(subnets):
        for b in subnets[i + 1:]:
            assert not a.overlaps(b), (a, b)
    for p in plan:
        # Pods take VPC addresses from the private subnets: they must be the big ones.
        assert ipaddress.ip_network(p.private_cidr).num_addresses > ipaddress.ip_network(p.public_cidr).num_addresses


def test_subnet_plan_for_default_vpc():
    plan = plan_subnets("10.0.0.0/16", 3)
    assert [p.private_cidr for p in plan] == ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"]
    assert [p.public_cidr for p in plan] == ["10.0.192.0/20", "10.0.208.0/20", "10.0.224.0/20"]


def test_subnet_plan_rejects_bad_zone_count():
    with pytest.raises(ValueError):
        plan_subnets("10.0.0.0/16", 4)


def test_subnet_tags_let_kubernetes_tooling_find_public_and_private_subnets():
    public = subnet_tags("n", True, "alpha-dev")
    private = subnet_tags("n", False, "alpha-dev")
    assert public["kubernetes.io/role/elb"] == "1" and "kubernetes.io/role/internal-elb" not in public
    assert private["kubernetes.io/role/internal-elb"] == "1" and "kubernetes.io/role/elb" not in private
    assert public["kubernetes.io/cluster/alpha-dev"] == "shared"


def test_the_rendered_network_has_public_and_private_subnets_per_zone(render):
    vpc = render.one("aws:ec2/vpc:Vpc")
    assert vpc["inputs"]["cidrBlock"] == "10.0.0.0/16"
    subnets = render.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s["inputs"]["tags"].get("kubernetes.io/role/elb") == "1"]
    private = [s for s in subnets if s["inputs"]["tags"].get("kubernetes.io/role/internal-elb") == "1"]
    assert len(public) == len(private) == 2
    assert all(s["inputs"]["vpcId"] == vpc["urn"].split("::")[-1] + "-id" for s in subnets)
    assert not any(s["inputs"].get("mapPublicIpOnLaunch") for s in subnets)
    # One NAT gateway by default, every private route table uses it.
    nats = render.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 1
    nat_id = nats[0]["name"] + "-id"
    private_routes = [r for r in render.of_type("aws:ec2/route:Route") if "private" in r["name"]]
    assert len(private_routes) == 2 and all(r["inputs"]["natGatewayId"] == nat_id for r in private_routes)


def test_nat_per_zone_and_three_zones(render_variant):
    variant = render_variant(sets=("natGateways=per-zone", "availabilityZoneCount=3"))
    nats = variant.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3
    routes = {r["name"]: r["inputs"]["natGatewayId"]
              for r in variant.of_type("aws:ec2/route:Route") if "private" in r["name"]}
    assert len(set(routes.values())) == 3
    assert len(variant.of_type("aws:ec2/subnet:Subnet")) == 6


def test_zones_skip_those_eks_refuses_and_those_without_the_instance_type():
    names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
    ids = ["use1-az1", "use1-az3", "use1-az4", "use1-az6"]
    assert "use1-az3" in EKS_UNSUPPORTED_ZONE_IDS
    # use1-az3 is unsupported; use1-az4 does not offer the instance type.
    assert choose_zones(names, ids, ["use1-az1", "use1-az3", "use1-az6"], 2) == ["us-east-1a", "us-east-1d"]


def test_too_few_usable_zones_is_a_clear_error():
    with pytest.raises(pulumi.RunError, match="availabilityZoneCount: 3 zones are needed, but only 1"):
        choose_zones(["a", "b"], ["use1-az1", "use1-az3"], ["use1-az1", "use1-az3"], 3)


def test_rendered_subnets_avoid_unsupported_zones(render_variant):
    variant = render_variant(sets=("availabilityZoneCount=3",))
    zones = {s["inputs"]["availabilityZone"] for s in variant.of_type("aws:ec2/subnet:Subnet")}
    # The mocked region lists zone ids use1-az1.. in name order: us-east-1c is use1-az3.
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1d"}
