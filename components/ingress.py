"""The one way into the cluster: an internet-facing network load balancer owned by Pulumi.

    clients -> NLB (public subnets, own security group)
                 :443 TLS (ACM certificate, TLS 1.3/1.2) -> target group -> node port `https` -> gateway :8080
                 :80  TCP                                 -> target group -> node port `http`  -> gateway :8081 (301)
               nodes (instance targets: the managed node group's autoscaling group)

Without a certificate (no domain) there is one listener, :80 TCP, forwarding to the serving port.

Design choices:
- Instance targets on the gateway's node ports (the Service is NodePort, `externalTrafficPolicy:
  Cluster`): every node is a target and kube-proxy forwards to a gateway pod on any node, so a
  node without a gateway pod still answers and health checks stay green through gateway rollouts.
- Health checks are HTTP on the node port of Envoy's status port 15021, path /healthz/ready: a
  node is healthy when it can reach a ready gateway, not merely when a TCP port is open.
- Client IP preservation and proxy protocol are off. kube-proxy rewrites the source address on the
  hop from node to pod (Cluster policy), so the gateway would not see the client address anyway;
  proxy protocol would need the gateway to parse it (`gatewayTopology.proxyProtocol`) on every port,
  health checks included, and is not needed for this application. Turn both on together if client
  addresses matter.
- The node security group admits the node ports only from the load balancer's security group, so
  the nodes are not reachable on those ports from anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_aws as aws

from components import lifecycle
from components.mesh import IngressGateway

# TLS 1.3 and 1.2 only, 1.2 restricted to forward-secret AEAD ciphers, with hybrid post-quantum key
# exchange offered to clients that support it (the AWS console's default for new TLS listeners).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"

HTTP_PORT = 80
HTTPS_PORT = 443
ANYWHERE_IPV4 = "0.0.0.0/0"

# Seconds a deregistering node keeps receiving in-flight traffic. The default (300 s) mostly slows
# down node replacements; requests to this application are short.
DEREGISTRATION_DELAY_SECONDS = 30

SERVING = "serving"
REDIRECT = "redirect"


@dataclass(frozen=True)
class TargetGroupPlan:
    role: str  # SERVING or REDIRECT
    node_port: int


@dataclass(frozen=True)
class ListenerPlan:
    port: int
    protocol: str  # "TCP" or "TLS"
    target_role: str


@dataclass(frozen=True)
class IngressPlan:
    listeners: tuple[ListenerPlan, ...]
    target_groups: tuple[TargetGroupPlan, ...]

    def target_group(self, role: str) -> TargetGroupPlan:
        return next(group for group in self.target_groups if group.role == role)

    def node_ports(self, status_port: int) -> tuple[int, ...]:
        """Every node port the load balancer reaches: traffic and health checks."""
        return tuple(sorted({group.node_port for group in self.target_groups} | {status_port}))


def ingress_plan(gateway: IngressGateway, tls: bool) -> IngressPlan:
    """Listeners and target groups. With TLS, :80 goes to the redirect port; without, it serves."""
    node_ports = gateway.node_ports
    serving = TargetGroupPlan(SERVING, node_ports.https)
    if not tls:
        return IngressPlan(listeners=(ListenerPlan(HTTP_PORT, "TCP", SERVING),), target_groups=(serving,))
    redirect = TargetGroupPlan(REDIRECT, node_ports.http)
    return IngressPlan(
        listeners=(ListenerPlan(HTTPS_PORT, "TLS", SERVING), ListenerPlan(HTTP_PORT, "TCP", REDIRECT)),
        target_groups=(serving, redirect),
    )


def health_check(gateway: IngressGateway) -> dict[str, Any]:
    return {
        "enabled": True,
        "protocol": "HTTP",
        "port": str(gateway.node_ports.status),
        "path": gateway.readiness_path,
        "matcher": "200",
        "interval": 10,
        "timeout": 5,
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
    }


def listener_ports(plan: IngressPlan) -> tuple[int, ...]:
    return tuple(sorted(listener.port for listener in plan.listeners))


def single_autoscaling_group(names: list[str]) -> str:
    """A managed node group runs in exactly one autoscaling group; anything else is a wiring mistake."""
    if len(names) != 1:
        raise ValueError(f"expected the managed node group's one autoscaling group, got {names}")
    return names[0]


@dataclass(frozen=True)
class IngressArgs:
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    node_security_group_id: pulumi.Input[str]
    node_group_asg_names: pulumi.Input[list[str]]
    # The mesh's ingress gateway: its node ports and readiness path.
    gateway: IngressGateway
    # The validated certificate's ARN, or None to serve plain HTTP on port 80 only.
    certificate_arn: Optional[pulumi.Input[str]]


class Ingress(pulumi.ComponentResource):
    load_balancer_dns_name: pulumi.Output[str]
    load_balancer_zone_id: pulumi.Output[str]
    load_balancer_arn: pulumi.Output[str]

    def __init__(self, name: str, args: IngressArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("eks-istio-shop:ingress:Ingress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = ingress_plan(args.gateway, tls=args.certificate_arn is not None)

        security_group = aws.ec2.SecurityGroup(
            f"{name}-nlb-sg",
            vpc_id=args.vpc_id,
            description="Network load balancer in front of the Istio ingress gateway",
            tags={"Name": f"{name}-nlb"},
            opts=child,
        )
        def allow(rule_type: type, suffix: str, group_id: pulumi.Input[str], port: int, description: str,
                  **peer: pulumi.Input[str]) -> None:
            rule_type(f"{name}-{suffix}", security_group_id=group_id, description=description,
                      ip_protocol="tcp", from_port=port, to_port=port, opts=child, **peer)

        for port in listener_ports(plan):
            allow(aws.vpc.SecurityGroupIngressRule, f"nlb-in-{port}", security_group.id, port,
                  f"Clients to listener {port}", cidr_ipv4=ANYWHERE_IPV4)
        for node_port in plan.node_ports(args.gateway.node_ports.status):
            allow(aws.vpc.SecurityGroupEgressRule, f"nlb-out-{node_port}", security_group.id, node_port,
                  f"Load balancer to node port {node_port}", referenced_security_group_id=args.node_security_group_id)
            allow(aws.vpc.SecurityGroupIngressRule, f"node-in-{node_port}", args.node_security_group_id, node_port,
                  f"Node port {node_port} from the ingress load balancer only",
                  referenced_security_group_id=security_group.id)

        load_balancer = aws.lb.LoadBalancer(
            f"{name}-nlb",
            load_balancer_type="network",
            internal=False,
            ip_address_type="ipv4",
            subnets=args.public_subnet_ids,
            security_groups=[security_group.id],
            enable_deletion_protection=False,
            opts=child,
        )

        autoscaling_group = pulumi.Output.from_input(args.node_group_asg_names).apply(single_autoscaling_group)
        target_groups: dict[str, aws.lb.TargetGroup] = {}
        for group in plan.target_groups:
            target_group = aws.lb.TargetGroup(
                f"{name}-{group.role}",
                target_type="instance",
                protocol="TCP",
                port=group.node_port,
                vpc_id=args.vpc_id,
                health_check=health_check(args.gateway),
                preserve_client_ip="false",
                proxy_protocol_v2=False,
                deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
                opts=child,
            )
            aws.autoscaling.Attachment(
                f"{name}-{group.role}-nodes",
                autoscaling_group_name=autoscaling_group,
                lb_target_group_arn=target_group.arn,
                opts=child,
            )
            target_groups[group.role] = target_group

        for listener in plan.listeners:
            tls = listener.protocol == "TLS"
            aws.lb.Listener(
                f"{name}-listener-{listener.port}",
                load_balancer_arn=load_balancer.arn,
                port=listener.port,
                protocol=listener.protocol,
                certificate_arn=args.certificate_arn if tls else None,
                ssl_policy=TLS_POLICY if tls else None,
                # Explicit, so the gateway's idle timeout stays below it (components/lifecycle.py). Only TCP
                # listeners take the attribute; a TLS listener's idle timeout is fixed at the same 350 s.
                tcp_idle_timeout_seconds=None if tls else lifecycle.NLB_IDLE_TIMEOUT_SECONDS,
                default_actions=[{"type": "forward", "target_group_arn": target_groups[listener.target_role].arn}],
                opts=child,
            )

        self.load_balancer_dns_name = load_balancer.dns_name
        self.load_balancer_zone_id = load_balancer.zone_id
        self.load_balancer_arn = load_balancer.arn
        self.register_outputs({
            "loadBalancerDnsName": self.load_balancer_dns_name,
            "loadBalancerZoneId": self.load_balancer_zone_id,
            "loadBalancerArn": self.load_balancer_arn,
        })
