"""The environment a shop is wired to: one value for both kinds of stack (components/platform.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi

from components.mesh import GatewayIdentity


@dataclass(frozen=True)
class Edge:
    """What the shop runs on, whichever kind of stack it is: the cluster, the mesh's ingress gateway, the load
    balancer and the zone. A platform stack fills it from its own components, an app stack from its platform's
    outputs (PlatformReference)."""
    in_cluster: pulumi.ResourceOptions
    vpc_cidr: pulumi.Input[str]
    gateway: GatewayIdentity
    zone_id: Optional[pulumi.Input[str]]
    load_balancer_dns_name: pulumi.Input[str]
    load_balancer_zone_id: pulumi.Input[str]
    proxy_version: pulumi.Input[str]
    injection_labels: pulumi.Input[Mapping[str, str]]
    istio_dependencies: list
    shop_namespace: str
    # More labels for the shop's namespace: an app stack's.
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    # The mesh's namespaces, for a stack that owns them (a platform stack).
    mesh_namespaces: Mapping[str, Any] = field(default_factory=dict)
