"""How long things live and wait: shutdown sequences and idle timeouts, derived from one another.

Plain values and functions, shared by the mesh (gateways), the application (its pods and routes) and the
ingress (the load balancer); no resources here.

Shutdown of a pod that serves requests, on every rollout, node drain and chart change:

    t=0            pod is Terminating: it leaves the endpoints; the preStop hook runs (a sleep) and the pod
                   still serves everything that reaches it while kube-proxy, the sidecars and the load
                   balancer catch up (ENDPOINT_REMOVAL_SECONDS)
    t=preStop      SIGTERM: the server stops taking connections and gives in-flight requests `serve_seconds`
                   (an application's graceful shutdown; Envoy's terminationDrainDuration on a gateway)
    t=grace        SIGKILL; the grace period leaves EXIT_MARGIN_SECONDS for the process (and, for an
                   application pod, its native sidecar's own drain) to exit before it

A request that arrived just before SIGTERM may run for its route's whole timeout, so a route may allow at
most `serve_seconds` of the pods it reaches: `ShutdownPlan.serves` is that rule; tests hold every route
to it.

Idle timeouts, ordered from the load balancer inward: on each hop the side that would otherwise be
surprised closes first. The NLB forgets idle flows silently after its idle timeout, so the gateway closes
idle client connections before that; the sidecars close idle connections to a service before the
service's own keep-alive ends, so no request is sent down a connection the service is closing.
"""

from __future__ import annotations

from dataclasses import dataclass

# Time for a Terminating pod's endpoint removal to reach kube-proxy on every node, every Envoy (xDS push)
# and the load balancer's targets; the pod keeps serving meanwhile (preStop sleep).
ENDPOINT_REMOVAL_SECONDS = 5
# Between the end of serving and SIGKILL: the process exits, and an app pod's native sidecar drains.
EXIT_MARGIN_SECONDS = 5
# Envoy's own drain in an application pod: a native sidecar stops only after the app container has
# exited, so by then there is nothing left in flight; this only bounds its exit.
SIDECAR_DRAIN_SECONDS = 5

# The longest a request through the ingress gateway may take: the public routes' timeouts derive from it
# (components/shop.py), and so does the gateways' drain.
PUBLIC_REQUEST_SECONDS = 10

# Idle timeouts, seconds. AWS: an NLB tracks a TCP flow for 350 s without data (the default, and the fixed
# value of TLS listeners; TCP listeners accept 60-6000).
NLB_IDLE_TIMEOUT_SECONDS = 350
# Envoy's downstream (HTTP connection manager) idle timeout on the gateways, through the
# ISTIO_META_IDLE_TIMEOUT proxy metadata (unset, Envoy keeps idle connections for an hour).
GATEWAY_IDLE_TIMEOUT_SECONDS = 300
# The services' HTTP keep-alive (uvicorn's timeout_keep_alive) and the sidecars' idle timeout on
# connections to them (DestinationRule connectionPool.http.idleTimeout).
SERVICE_KEEPALIVE_SECONDS = 75
MESH_UPSTREAM_IDLE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class ShutdownPlan:
    """One kind of pod's shutdown: preStop sleep, time serving after SIGTERM, and the grace period."""

    pre_stop_seconds: int
    serve_seconds: int
    # Whatever else must fit before SIGKILL once serving ends (process exit, a sidecar's drain).
    after_serving_seconds: int

    @property
    def grace_seconds(self) -> int:
        return self.pre_stop_seconds + self.serve_seconds + self.after_serving_seconds

    def serves(self, route_timeout_seconds: float) -> bool:
        """A request admitted just before SIGTERM, allowed `route_timeout_seconds`, still completes."""
        return route_timeout_seconds <= self.serve_seconds


def gateway_shutdown(longest_request_seconds: int = PUBLIC_REQUEST_SECONDS) -> ShutdownPlan:
    """A gateway serves through its preStop sleep, then Envoy drains for as long as the longest route allows."""
    return ShutdownPlan(pre_stop_seconds=ENDPOINT_REMOVAL_SECONDS,
                        serve_seconds=longest_request_seconds + EXIT_MARGIN_SECONDS,
                        after_serving_seconds=EXIT_MARGIN_SECONDS)


def service_shutdown(graceful_shutdown_seconds: int) -> ShutdownPlan:
    """An application pod: the service's graceful shutdown, then its native sidecar's drain."""
    return ShutdownPlan(pre_stop_seconds=ENDPOINT_REMOVAL_SECONDS, serve_seconds=graceful_shutdown_seconds,
                        after_serving_seconds=SIDECAR_DRAIN_SECONDS + EXIT_MARGIN_SECONDS)


def duration(value: float) -> str:
    return f"{value:g}s"


def idle_timeout_chain() -> list[tuple[str, int]]:
    """Idle timeouts from the load balancer inward; each must be shorter than the one before it."""
    return [
        ("nlb listener (tcp.idle_timeout.seconds)", NLB_IDLE_TIMEOUT_SECONDS),
        ("gateway downstream (ISTIO_META_IDLE_TIMEOUT)", GATEWAY_IDLE_TIMEOUT_SECONDS),
        ("service keep-alive", SERVICE_KEEPALIVE_SECONDS),
        ("sidecar upstream (DestinationRule idleTimeout)", MESH_UPSTREAM_IDLE_TIMEOUT_SECONDS),
    ]


def idle_timeout_problems(chain: list[tuple[str, int]]) -> list[str]:
    return [f"{inner} ({inner_s}s) must be shorter than {outer} ({outer_s}s)"
            for (outer, outer_s), (inner, inner_s) in zip(chain, chain[1:]) if inner_s >= outer_s]
