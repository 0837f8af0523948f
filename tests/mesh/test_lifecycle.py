"""Restarts drop no request, idle connections close from the inside out: the rendered stack's numbers."""

import json

import pytest

from components import lifecycle
from policy.eks_istio_shop import routes

RELEASE = "kubernetes:helm.sh/v3:Release"
LISTENER = "aws:lb/listener:Listener"
GATEWAY_RELEASES = ("istio-ingressgateway", "istio-egressgateway")


def release_values(render, name: str) -> dict:
    return next(r["inputs"]["values"] for r in render.of_type(RELEASE) if r["inputs"]["name"] == name)


def manifests(render, kind: str) -> list[dict]:
    return [m for m in render.manifests.values() if m.get("kind") == kind]


def gateway_proxy_config(values: dict) -> dict:
    return json.loads(values["podAnnotations"]["proxy.istio.io/config"])


def route_timeouts(virtual_service: dict) -> list[tuple[str, float]]:
    return [(route.get("name", "?"), routes.duration_seconds(route["timeout"]))
            for route in virtual_service["spec"]["http"] if "route" in route]


def pod_env(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


# ---- the rule itself ---------------------------------------------------------------------------------


def test_a_route_longer_than_the_drain_is_refused():
    plan = lifecycle.gateway_shutdown(longest_request_seconds=10)
    assert plan.serves(10) and plan.serves(plan.serve_seconds)
    assert not plan.serves(plan.serve_seconds + 0.5)
    assert plan.grace_seconds == plan.pre_stop_seconds + plan.serve_seconds + plan.after_serving_seconds


# ---- gateways ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", GATEWAY_RELEASES)
def test_gateway_drains_for_the_longest_public_route_within_its_grace_period(render, release):
    values = release_values(render, release)
    drain = routes.duration_seconds(gateway_proxy_config(values)["terminationDrainDuration"])
    pre_stop = values["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= lifecycle.ENDPOINT_REMOVAL_SECONDS, "serves until endpoints and the NLB let go"
    assert pre_stop + drain < values["terminationGracePeriodSeconds"], "SIGKILL must not cut the drain"
    [public] = [v for v in manifests(render, "VirtualService") if v["spec"].get("gateways")]
    for name, timeout in route_timeouts(public):
        assert timeout <= drain, f"public route {name} allows {timeout}s; a draining gateway serves {drain}s"


# ---- application pods ----------------------------------------------------------------------------------


def test_every_mesh_route_fits_in_its_services_graceful_shutdown(render):
    deployments = {d["metadata"]["name"]: d for d in manifests(render, "Deployment")}
    mesh_routes = [v for v in manifests(render, "VirtualService") if not v["spec"].get("gateways")]
    assert len(mesh_routes) == len(deployments)
    for virtual_service in mesh_routes:
        host = virtual_service["spec"]["hosts"][0]
        deployment = deployments[host.split(".")[0]]
        pod = deployment["spec"]["template"]["spec"]
        graceful = int(pod_env(deployment)["GRACEFUL_SHUTDOWN_SECONDS"])
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = routes.duration_seconds(json.loads(
            deployment["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"])
            ["terminationDrainDuration"])
        assert pre_stop + graceful + drain < pod["terminationGracePeriodSeconds"]
        for name, timeout in route_timeouts(virtual_service):
            assert timeout <= graceful, f"{host} route {name} allows {timeout}s; a stopping pod serves {graceful}s"
    # The gateway's route to graphql counts as well: graphql must serve it through its own shutdown.
    [public] = [v for v in manifests(render, "VirtualService") if v["spec"].get("gateways")]
    graphql = int(pod_env(deployments["graphql"])["GRACEFUL_SHUTDOWN_SECONDS"])
    assert all(timeout <= graphql for _, timeout in route_timeouts(public))


def test_sidecars_are_native_explicitly(render):
    istiod = release_values(render, "istiod")
    assert istiod["env"]["ENABLE_NATIVE_SIDECARS"] == "true"
    for deployment in manifests(render, "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["sidecar.istio.io/nativeSidecar"] == "true"
        # A no-op with native sidecars: it would only suggest an ordering that something else provides.
        assert "holdApplicationUntilProxyStarts" not in annotations["proxy.istio.io/config"]


# ---- idle timeouts -------------------------------------------------------------------------------------


def test_idle_timeout_chain_is_ordered_and_a_disordered_one_is_caught():
    assert lifecycle.idle_timeout_problems(lifecycle.idle_timeout_chain()) == []
    broken = [("nlb", 350), ("gateway", 3600), ("service", 75)]
    assert lifecycle.idle_timeout_problems(broken) == ["gateway (3600s) must be shorter than nlb (350s)"]


def test_idle_timeouts_are_set_from_the_chain_on_every_hop(render):
    nlb, gateway, keepalive, upstream = (seconds for _, seconds in lifecycle.idle_timeout_chain())
    tcp_listeners = [r["inputs"] for r in render.of_type(LISTENER) if r["inputs"]["protocol"] == "TCP"]
    assert tcp_listeners and all(listener["tcpIdleTimeoutSeconds"] == nlb for listener in tcp_listeners)
    for release in GATEWAY_RELEASES:
        metadata = gateway_proxy_config(release_values(render, release))["proxyMetadata"]
        assert routes.duration_seconds(metadata["ISTIO_META_IDLE_TIMEOUT"]) == gateway
    for deployment in manifests(render, "Deployment"):
        assert int(pod_env(deployment)["KEEPALIVE_SECONDS"]) == keepalive
    for rule in manifests(render, "DestinationRule"):
        assert routes.duration_seconds(rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["idleTimeout"]) \
            == upstream


# ---- DNS -----------------------------------------------------------------------------------------------


def test_backend_names_are_looked_up_as_given_first(render):
    [graphql] = [d for d in manifests(render, "Deployment") if d["metadata"]["name"] == "graphql"]
    options = {o["name"]: o.get("value") for o in graphql["spec"]["template"]["spec"]["dnsConfig"]["options"]}
    env = pod_env(graphql)
    for key in ("PRODUCTS_URL", "ORDERS_URL"):
        host = env[key].split("//", 1)[1].split(":", 1)[0]
        # resolv.conf: a name with at least ndots dots is tried as is before the search list.
        assert host.count(".") >= int(options["ndots"]), f"{host} would first walk the search domains"


# ---- patches reach every proxy -------------------------------------------------------------------------


def test_an_istio_version_change_alone_rolls_the_application_pods(render, render_variant):
    other = render_variant(sets=("istioVersion=1.30.4",))
    assert other.outputs["proxyVersion"] != render.outputs["proxyVersion"], "the variant must change the version"
    before = {d["metadata"]["name"]: d["spec"]["template"] for d in manifests(render, "Deployment")}
    after = {d["metadata"]["name"]: d["spec"]["template"] for d in manifests(other, "Deployment")}
    assert before.keys() == after.keys()
    for name in before:
        assert before[name] != after[name], f"{name}: the pod template did not change, so its pods keep the old proxy"
        assert before[name]["spec"] == after[name]["spec"]
