"""A dedicated VPC: public subnets for the load balancer, private subnets for the nodes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from settings import NetworkSettings

NAT_SINGLE = "single"
NAT_PER_ZONE = "per-zone"

# Zones in which EKS refuses to place a cluster (UnsupportedAvailabilityZoneException). Zone names
# map to different physical zones in each account; these ids do not.
EKS_UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3", "usw1-az2", "cac1-az3"})


def choose_zones(names: list[str], zone_ids: list[str], offered_zone_ids: list[str], count: int) -> list[str]:
    """The first `count` zones that EKS supports and that offer the node instance type, by name.

    Zones keep the order AWS lists them in, so a stack keeps its zones from one run to the next.
    """
    offered = set(offered_zone_ids)
    usable = [name for name, zone_id in zip(names, zone_ids)
              if zone_id not in EKS_UNSUPPORTED_ZONE_IDS and zone_id in offered]
    if len(usable) < count:
        raise pulumi.RunError(
            f"availabilityZoneCount: {count} zones are needed, but only {len(usable)} zone(s) here support EKS "
            f"and offer the node instance type: {', '.join(usable) or 'none'}")
    return usable[:count]


@dataclass(frozen=True)
class SubnetPlan:
    zone_index: int
    public_cidr: str
    private_cidr: str


def plan_subnets(vpc_cidr: str, zone_count: int) -> list[SubnetPlan]:
    """Split the VPC into one large private and one small public subnet per zone.

    The VPC is cut into quarters: the first three quarters are private subnets (pods take their IPs
    from these with the VPC CNI, so they get the room), the last quarter is cut into sixteenths of
    which the first ones are public subnets (only load balancer and NAT addresses live there).
    """
    vpc = ipaddress.ip_network(vpc_cidr, strict=True)
    if not 1 <= zone_count <= 3:
        raise ValueError(f"zone_count must be 1 to 3, not {zone_count}")
    quarters = list(vpc.subnets(prefixlen_diff=2))
    public_pool = list(quarters[3].subnets(prefixlen_diff=2))
    return [
        SubnetPlan(zone_index=i, public_cidr=str(public_pool[i]), private_cidr=str(quarters[i]))
        for i in range(zone_count)
    ]


def subnet_tags(name: str, public: bool, cluster_name: str) -> dict[str, str]:
    """Tags that let Kubernetes tooling find the subnets (the stack's own come from tagging.py)."""
    role = "kubernetes.io/role/elb" if public else "kubernetes.io/role/internal-elb"
    return {"Name": name, role: "1", f"kubernetes.io/cluster/{cluster_name}": "shared"}


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkSettings
    # Zones are chosen among those that offer the nodes' instance type.
    node_instance_type: str
    cluster_name: str


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        def named(role: str) -> dict[str, str]:
            return {"Name": f"{name}-{role}"}

        available = aws.get_availability_zones_output(
            state="available",
            # Local and Wavelength zones cannot host EKS nodes.
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        offerings = aws.ec2.get_instance_type_offerings_output(
            location_type="availability-zone-id",
            filters=[{"name": "instance-type", "values": [args.node_instance_type]}],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        zone_names = pulumi.Output.all(available.names, available.zone_ids, offerings.locations).apply(
            lambda found: choose_zones(found[0], found[1], found[2], args.settings.availability_zone_count))

        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.settings.vpc_cidr, enable_dns_hostnames=True,
                          enable_dns_support=True, tags=named("vpc"), opts=child)
        # Take every rule off the default security group, so nothing can fall back on it.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=named("default-sg"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=named("igw"), opts=child)

        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags=named("public-rt"), opts=child)
        aws.ec2.Route(f"{name}-public-default-route", route_table_id=public_rt.id,
                      destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        nat_gateways: list[aws.ec2.NatGateway] = []
        plan = plan_subnets(args.settings.vpc_cidr, args.settings.availability_zone_count)
        nat_count = len(plan) if args.settings.nat_gateways == NAT_PER_ZONE else 1

        for zone in plan:
            az = zone_names.apply(lambda names, i=zone.zone_index: names[i])
            public = aws.ec2.Subnet(
                f"{name}-public-{zone.zone_index}", vpc_id=vpc.id, cidr_block=zone.public_cidr,
                availability_zone=az, map_public_ip_on_launch=False,
                tags=subnet_tags(f"{name}-public-{zone.zone_index}", True, args.cluster_name), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone.zone_index}-rta", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=child)
            public_subnets.append(public)
            if zone.zone_index < nat_count:
                eip = aws.ec2.Eip(f"{name}-nat-{zone.zone_index}-eip", domain="vpc",
                                  tags=named(f"nat-{zone.zone_index}-eip"), opts=child)
                nat_gateways.append(aws.ec2.NatGateway(
                    f"{name}-nat-{zone.zone_index}", allocation_id=eip.id, subnet_id=public.id,
                    tags=named(f"nat-{zone.zone_index}"),
                    # A NAT gateway only forwards once the VPC has its internet gateway attached.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))

        for zone in plan:
            az = zone_names.apply(lambda names, i=zone.zone_index: names[i])
            private = aws.ec2.Subnet(
                f"{name}-private-{zone.zone_index}", vpc_id=vpc.id, cidr_block=zone.private_cidr,
                availability_zone=az,
                tags=subnet_tags(f"{name}-private-{zone.zone_index}", False, args.cluster_name), opts=child)
            route_table = aws.ec2.RouteTable(f"{name}-private-{zone.zone_index}-rt", vpc_id=vpc.id,
                                             tags=named(f"private-{zone.zone_index}-rt"), opts=child)
            nat = nat_gateways[zone.zone_index if args.settings.nat_gateways == NAT_PER_ZONE else 0]
            aws.ec2.Route(f"{name}-private-{zone.zone_index}-default-route", route_table_id=route_table.id,
                          destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{zone.zone_index}-rta", subnet_id=private.id,
                                          route_table_id=route_table.id, opts=child)
            private_subnets.append(private)

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.register_outputs({
            "vpcId": self.vpc_id,
            "publicSubnetIds": self.public_subnet_ids,
            "privateSubnetIds": self.private_subnet_ids,
        })
