"""The environment's hostname in Route 53: an alias A record pointing at the ingress load balancer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws


def hosted_zone_id(domain: str, zone_id: Optional[str]) -> pulumi.Output[str]:
    """The public hosted zone serving `domain`: the given id, or looked up by the domain's name."""
    if zone_id:
        return pulumi.Output.from_input(zone_id)
    return aws.route53.get_zone_output(name=domain, private_zone=False).zone_id


@dataclass(frozen=True)
class DnsRecordArgs:
    hostname: str
    hosted_zone_id: pulumi.Input[str]
    load_balancer_dns_name: pulumi.Input[str]
    # The load balancer's canonical hosted zone (not the domain's): what an alias to it needs.
    load_balancer_zone_id: pulumi.Input[str]


class DnsRecord(pulumi.ComponentResource):
    fqdn: pulumi.Output[str]

    def __init__(self, name: str, args: DnsRecordArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:dns:DnsRecord", name, None, opts)
        record = aws.route53.Record(
            f"{name}-alias",
            zone_id=args.hosted_zone_id,
            name=args.hostname,
            type="A",
            aliases=[{
                "name": args.load_balancer_dns_name,
                "zone_id": args.load_balancer_zone_id,
                # Route 53 stops answering with the load balancer when none of its targets is healthy.
                "evaluate_target_health": True,
            }],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.fqdn = record.fqdn
        self.register_outputs({"fqdn": self.fqdn})
