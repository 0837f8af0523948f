"""The application as the dev stack renders it: every object valid, routes and policies consistent with
the Services, ServiceAccounts and ingress gateway that actually exist in the render."""

import re

import kubernetes_validate
import pytest

from components import microservice as ms
from policy.eks_istio_shop import routes
from components.shop import NAMESPACE
from settings import APP_SERVICES
from tests.support import provider_urn
from tools import istio_schema
from tools.render import load_stack_config

ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/")
GATEWAY_RELEASE_CHART = "gateway"
ISTIOD_RELEASE_FILE = "istiod.release.yaml"
REPOSITORY = "aws:ecr/repository:Repository"
IMAGE = "docker-build:index:Image"
DIGEST_REFERENCE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9/-]+@sha256:[a-f0-9]{64}$")


def objects(render, kind=None, namespace=None) -> list[dict]:
    return [m for name, m in render.manifests.items() if not name.endswith(".release.yaml")
            and (kind is None or m["kind"] == kind)
            and (namespace is None or m["metadata"].get("namespace") == namespace)]


def one(render, kind, name, namespace=NAMESPACE) -> dict:
    found = [m for m in objects(render, kind, namespace) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


def releases(render) -> list[dict]:
    return [m for name, m in render.manifests.items() if name.endswith(".release.yaml")]


def kubernetes_version(stack: str = "dev") -> str:
    return str(load_stack_config(stack).get("eks-istio-shop:kubernetesVersion", "1.35"))


def is_istio(obj: dict) -> bool:
    return obj["apiVersion"].startswith(ISTIO_GROUPS)


def http_routes(render):
    for service in objects(render, "VirtualService"):
        for route in service["spec"].get("http", []):
            yield service, route


def trust_domain(render) -> str:
    values = render.manifests[ISTIOD_RELEASE_FILE]["values"]
    return (values.get("meshConfig") or {}).get("trustDomain", "cluster.local")


def gateway_service_accounts(render) -> set[tuple[str, str]]:
    """(namespace, service account) of every gateway release: the chart names it after the release."""
    return {(r["namespace"], (r["values"].get("serviceAccount") or {}).get("name") or r["release"])
            for r in releases(render) if r["chart"] == GATEWAY_RELEASE_CHART}


def resources_of(render, typ: str, name_part: str = "") -> list[dict]:
    return [r for r in render.of_type(typ) if name_part in r["name"]]


# ---- validity ----------------------------------------------------------------------------------------


def test_every_kubernetes_object_is_valid_for_the_cluster_version_strictly(render):
    version = f"{kubernetes_version()}.0"
    checked = 0
    for obj in objects(render):
        if is_istio(obj):
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= len(APP_SERVICES) * 5 + 1


def test_every_istio_object_is_valid_against_istios_crds_strictly(render):
    istio_objects = [o for o in objects(render) if is_istio(o)]
    # Per service: DestinationRule, VirtualService, AuthorizationPolicy; plus Gateway, public routes, deny;
    # Sidecars: the namespace's default and graphql's (components/isolation.py).
    assert len([o for o in istio_objects if o["metadata"].get("namespace") == NAMESPACE]) == 3 * 3 + 3 + 2
    errors = [e for o in istio_objects for e in istio_schema.validate_istio_object(o)]
    assert errors == []


def test_custom_resources_are_istio_kinds_and_nothing_else(render):
    for obj in objects(render):
        try:
            kubernetes_validate.validate(obj, f"{kubernetes_version()}.0", strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert is_istio(obj), f"{obj['kind']} has neither a Kubernetes nor an Istio schema"


def test_istio_validator_rejects_a_misspelt_field(render):
    """The check above is only worth something if the validator notices an unknown field."""
    service = one(render, "VirtualService", "orders")
    broken = {**service, "spec": {**service["spec"], "http": [{**service["spec"]["http"][0], "timout": "5s"}]}}
    assert any("timout" in e for e in istio_schema.validate_istio_object(broken))


# ---- the services --------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_has_its_objects(render, service):
    for kind in ("ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                 "DestinationRule", "VirtualService", "AuthorizationPolicy"):
        one(render, kind, service)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_workload_runs_hardened_probed_and_spread(render, service):
    deployment = one(render, "Deployment", service)["spec"]
    pod = deployment["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["replicas"] >= 2
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {"topology.kubernetes.io/zone"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert {e["name"]: e["value"] for e in container["env"]}["PORT"] == "8080"
    # The service account exists and does not hand out a token either.
    account = one(render, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_pdb_and_autoscaler_select_the_deployments_pods(render, service):
    deployment = one(render, "Deployment", service)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    k8s_service = one(render, "Service", service)["spec"]
    assert k8s_service["selector"].items() <= pod_labels.items()
    assert k8s_service["type"] == "ClusterIP"
    port_names = {p["name"] for p in container["ports"]}
    for port in k8s_service["ports"]:
        assert port["targetPort"] in port_names and port["name"] == "http"
    pdb = one(render, "PodDisruptionBudget", service)["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["minAvailable"] < deployment["spec"]["replicas"]
    hpa = one(render, "HorizontalPodAutoscaler", service)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert hpa["minReplicas"] == deployment["spec"]["replicas"]
    assert hpa["metrics"][0]["containerResource"]["container"] == container["name"]


def test_replicas_are_left_to_the_autoscaler_after_create(render):
    for deployment in render.of_type("kubernetes:apps/v1:Deployment"):
        if deployment["inputs"]["metadata"].get("namespace") == NAMESPACE:
            assert deployment["options"]["ignoreChanges"] == ["spec.replicas"]


def test_the_shop_namespace_injects_sidecars(render):
    namespace = one(render, "Namespace", NAMESPACE, namespace=None)
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"


# ---- routing --------------------------------------------------------------------------------------------


def services_by_host(render) -> dict[str, dict]:
    return {ms.service_host(s["metadata"]["name"], s["metadata"]["namespace"]): s
            for s in objects(render, "Service")}


def test_routes_point_at_services_and_ports_that_exist(render):
    services = services_by_host(render)
    destinations = 0
    for virtual_service, route in http_routes(render):
        for target in route.get("route", []):
            host = target["destination"]["host"]
            assert host in services, f"{virtual_service['metadata']['name']}/{route['name']}: no Service {host}"
            ports = {p["port"] for p in services[host]["spec"]["ports"]}
            assert target["destination"]["port"]["number"] in ports, f"{host} has ports {ports}"
            destinations += 1
    assert destinations >= 3 * 2 + 2


def test_destination_rules_and_mesh_routes_name_existing_services(render):
    services = services_by_host(render)
    for rule in objects(render, "DestinationRule", NAMESPACE):
        assert rule["spec"]["host"] in services
        assert rule["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
        # The sidecar drops idle connections before the service behind them would close them.
        deployment = one(render, "Deployment", services[rule["spec"]["host"]]["metadata"]["name"])
        env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        idle = rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["idleTimeout"]
        assert routes.duration_seconds(idle) < int(env["KEEPALIVE_SECONDS"])
    mesh_routes = [v for v in objects(render, "VirtualService", NAMESPACE) if not v["spec"].get("gateways")]
    assert len(mesh_routes) == len(APP_SERVICES)
    for virtual_service in mesh_routes:
        assert all(host in services for host in virtual_service["spec"]["hosts"]), virtual_service["metadata"]


def test_every_route_has_a_timeout_and_safe_retries(render):
    for virtual_service, route in http_routes(render):
        where = f"{virtual_service['metadata']['name']}/{route.get('name')}"
        if "redirect" in route:
            # Answered by the gateway itself: nothing upstream to wait for or retry.
            assert "route" not in route and "retries" not in route, where
            continue
        assert "timeout" in route, f"{where}: no timeout"
        assert routes.duration_seconds(route["timeout"]) > 0, where
        assert routes.retry_problems(route) == [], where


def test_graphql_gives_up_on_a_backend_before_the_mesh_does(render):
    graphql = one(render, "Deployment", "graphql")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in graphql["env"]}
    backend_timeout = float(env["BACKEND_TIMEOUT_SECONDS"])
    services = services_by_host(render)
    for key, backend in (("ORDERS_URL", "orders"), ("PRODUCTS_URL", "products")):
        host = ms.service_host(backend, NAMESPACE)
        assert env[key] == f"http://{host}:{services[host]['spec']['ports'][0]['port']}"
        for route in one(render, "VirtualService", backend)["spec"]["http"]:
            assert backend_timeout < routes.duration_seconds(route["timeout"]), (backend, route["name"])
            # A per-try timeout is retriable to Envoy: a shorter one would repeat every slow call.
            per_try = route.get("retries", {}).get("perTryTimeout")
            assert per_try is None or backend_timeout < routes.duration_seconds(per_try), (backend, route["name"])


def public_routes(render) -> dict:
    [public] = [v for v in objects(render, "VirtualService") if v["spec"].get("gateways")]
    return public


def ingress_gateway_release(render) -> dict:
    [release] = [r for r in releases(render) if r["chart"] == GATEWAY_RELEASE_CHART
                 and (r["values"].get("service") or {}).get("type") == "NodePort"]
    return release


def test_gateway_selects_the_ingress_gateway_pods_and_serves_its_ports(render):
    [gateway] = objects(render, "Gateway", NAMESPACE)
    release = ingress_gateway_release(render)
    assert gateway["spec"]["selector"].items() <= release["values"]["labels"].items()
    gateway_ports = {p["port"] for p in release["values"]["service"]["ports"]}
    for server in gateway["spec"]["servers"]:
        assert server["port"]["number"] in gateway_ports
    hostname = load_stack_config("dev")["eks-istio-shop:domain"]
    assert all(server["hosts"] == [hostname] for server in gateway["spec"]["servers"])
    assert any(s.get("tls", {}).get("httpsRedirect") for s in gateway["spec"]["servers"])
    public = public_routes(render)
    assert public["spec"]["gateways"] == [f"{NAMESPACE}/{gateway['metadata']['name']}"]
    assert public["spec"]["hosts"] == [hostname]


def test_public_routes_send_graphql_and_playground_to_graphql_and_redirect_root(render):
    routes = {r["name"]: r for r in public_routes(render)["spec"]["http"]}
    graphql_host = ms.service_host("graphql", NAMESPACE)
    assert routes["root"]["match"] == [{"uri": {"exact": "/"}}]
    assert routes["root"]["redirect"]["uri"] == "/graphql"
    for name, path in (("graphql", "/graphql"), ("playground", "/playground")):
        assert any(m["uri"] == {"exact": path} for m in routes[name]["match"])
        assert [t["destination"]["host"] for t in routes[name]["route"]] == [graphql_host]


def test_without_a_domain_any_host_is_served_without_redirect(render_variant):
    plain = render_variant(unsets=("domain",))
    [gateway] = objects(plain, "Gateway", NAMESPACE)
    assert [s["hosts"] for s in gateway["spec"]["servers"]] == [["*"]]
    assert not any(s.get("tls") for s in gateway["spec"]["servers"])
    routes = {r["name"]: r for r in public_routes(plain)["spec"]["http"]}
    assert "scheme" not in routes["root"]["redirect"]
    lb = plain.outputs["loadBalancerDnsName"]
    assert plain.outputs["graphqlUrl"] == f"http://{lb}/graphql"
    assert plain.outputs["playgroundUrl"] == f"http://{lb}/playground"


def test_outputs_are_the_environments_urls(render):
    assert render.outputs["graphqlUrl"] == render.outputs["url"] + "/graphql"
    assert render.outputs["playgroundUrl"] == render.outputs["url"] + "/playground"
    assert render.outputs["url"].startswith("https://")


# ---- least privilege -------------------------------------------------------------------------------------


def test_namespace_denies_by_default(render):
    policies = objects(render, "AuthorizationPolicy", NAMESPACE)
    deny_all = [p for p in policies if p.get("spec") in ({}, None)]
    assert len(deny_all) == 1, "one ALLOW policy with an empty spec: allow nothing"


def test_every_workload_admits_only_its_callers(render):
    policies = [p for p in objects(render, "AuthorizationPolicy", NAMESPACE) if p.get("spec")]
    expected_callers = {
        "graphql": {f"{trust_domain(render)}/ns/{ns}/sa/{sa}" for ns, sa in gateway_service_accounts(render)
                    if ns == ingress_gateway_release(render)["namespace"]},
        "orders": {f"{trust_domain(render)}/ns/{NAMESPACE}/sa/graphql"},
        "products": {f"{trust_domain(render)}/ns/{NAMESPACE}/sa/graphql"},
    }
    for deployment in objects(render, "Deployment", NAMESPACE):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        name = deployment["metadata"]["name"]
        applying = [p for p in policies if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(applying) == 1, name
        policy = applying[0]["spec"]
        assert policy["action"] == "ALLOW"
        principals = {p for rule in policy["rules"] for source in rule["from"] for p in source["source"]["principals"]}
        assert principals == expected_callers[name], name
        ports = {p for rule in policy["rules"] for op in rule["to"] for p in op["operation"]["ports"]}
        assert ports == {str(p["containerPort"]) for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}


def test_authorization_principals_are_service_accounts_that_exist(render):
    domain = trust_domain(render)
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in objects(render, "ServiceAccount")}
    accounts |= gateway_service_accounts(render)
    principals = [p for policy in objects(render, "AuthorizationPolicy") for rule in policy["spec"].get("rules", [])
                  for source in rule.get("from", []) for p in source["source"].get("principals", [])]
    assert principals
    for principal in principals:
        match = re.fullmatch(rf"{re.escape(domain)}/ns/([a-z0-9-]+)/sa/([a-z0-9-]+)", principal)
        assert match, principal
        assert match.groups() in accounts, f"{principal}: no such service account"


def test_pods_run_as_the_service_accounts_the_policies_name(render):
    for deployment in objects(render, "Deployment", NAMESPACE):
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == deployment["metadata"]["name"]


# ---- ordering and provider -------------------------------------------------------------------------------


def app_kubernetes_resources(render) -> list[dict]:
    return [r for r in render.resources if r["type"].startswith("kubernetes:") and r["custom"]
            and any(a["type"] == "eks-istio-shop:shop:Shop" for a in render.ancestors(r))]


def test_namespace_and_istio_objects_wait_for_istiod(render):
    [istiod] = [r for r in render.of_type("kubernetes:helm.sh/v3:Release") if r["inputs"]["chart"] == "istiod"]
    app = app_kubernetes_resources(render)
    namespace = [r for r in app if r["type"] == "kubernetes:core/v1:Namespace"]
    istio_objects = [r for r in app if r["type"].split(":")[1].startswith(ISTIO_GROUPS)]
    assert namespace and len(istio_objects) == 12
    for resource in namespace + istio_objects:
        assert istiod["urn"] in resource["dependencies"], resource["name"]


def test_every_kubernetes_object_uses_the_clusters_provider(render):
    [provider] = render.of_type("pulumi:providers:kubernetes")
    for resource in app_kubernetes_resources(render):
        assert provider_urn(resource["provider"]) == provider["urn"], resource["name"]


# ---- images ---------------------------------------------------------------------------------------------


def test_each_service_has_a_locked_down_repository(render):
    repositories = render.of_type(REPOSITORY)
    assert {r["inputs"]["name"].rsplit("/", 1)[-1] for r in repositories} == set(APP_SERVICES)
    for repository in repositories:
        inputs = repository["inputs"]
        # Tags name sources and may move (a revert rebuilds under an old tag); workloads pin digests.
        assert inputs["imageTagMutability"] == "MUTABLE"
        assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert inputs["encryptionConfigurations"][0]["encryptionType"] in ("KMS", "AES256")
        assert inputs["forceDelete"] is True
        assert inputs["tags"]["owner"]
    lifecycle = render.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(lifecycle) == len(repositories)
    for policy in lifecycle:
        assert any(r["urn"] in policy["propertyDependencies"]["repository"] for r in repositories)


def test_each_image_is_built_from_its_service_for_the_nodes_and_pushed(render):
    builds = {r["inputs"]["dockerfile"]["location"]: r for r in render.of_type(IMAGE)}
    assert set(builds) == {f"services/{s}/Dockerfile" for s in APP_SERVICES}
    for build in builds.values():
        inputs = build["inputs"]
        # The services share services/common, so the context is the services directory.
        assert inputs["context"]["location"] == "services"
        assert inputs["platforms"] == ["linux/amd64"]
        assert inputs["push"] is True
        assert inputs["registries"][0]["password"] == "[secret]"
        [tag] = inputs["tags"]
        assert not tag.endswith(":latest") and tag.split(":")[-1].startswith("amd64-")


def test_images_build_on_up_only_with_a_registry_cache_beside_them(render):
    for build in render.of_type(IMAGE):
        inputs = build["inputs"]
        assert inputs["buildOnPreview"] is False
        repository = inputs["tags"][0].rsplit(":", 1)[0]
        [cache_from] = inputs["cacheFrom"]
        [cache_to] = inputs["cacheTo"]
        assert cache_from["registry"]["ref"] == cache_to["registry"]["ref"] == f"{repository}:buildcache-amd64"
        # ECR takes BuildKit's cache only as an OCI image manifest.
        assert cache_to["registry"]["imageManifest"] is True and cache_to["registry"]["ociMediaTypes"] is True
        assert cache_to["registry"]["mode"] == "max"


def test_workloads_run_the_pushed_images_by_digest(render):
    for service in APP_SERVICES:
        image = one(render, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert DIGEST_REFERENCE.match(image), image
        assert image.split("@")[0].endswith(f"/{service}")


def test_graviton_nodes_get_arm64_images(render_variant):
    graviton = render_variant(sets=("nodeInstanceType=t4g.medium",), env=(("BUILDX_BUILDER", "remote-arm64"),))
    assert {tuple(r["inputs"]["platforms"]) for r in graviton.of_type(IMAGE)} == {("linux/arm64",)}


def test_prebuilt_images_skip_the_repository_and_the_build(render_variant):
    reference = "ghcr.io/acme/orders@sha256:" + "1" * 64
    variant = render_variant(sets=(f'images={{"orders": "{reference}"}}',))
    assert "orders" not in {r["inputs"]["name"].rsplit("/", 1)[-1] for r in variant.of_type(REPOSITORY)}
    assert "services/orders/Dockerfile" not in {r["inputs"]["dockerfile"]["location"] for r in variant.of_type(IMAGE)}
    assert len(variant.of_type(IMAGE)) == len(APP_SERVICES) - 1
    assert one(variant, "Deployment", "orders")["spec"]["template"]["spec"]["containers"][0]["image"] == reference


# ---- sizing ------------------------------------------------------------------------------------------------


def test_the_rendered_application_fits_next_to_istio_during_a_rollout(render):
    """The mesh's packing model (tests/mesh/test_sizing.py) with the application's pods as rendered."""
    from tests.mesh import test_sizing as sizing

    sidecar = render.manifests[ISTIOD_RELEASE_FILE]["values"]["global"]["proxy"]["resources"]["requests"]
    pods = {owner: found for owner, found in sizing.workload().items() if not owner.startswith("app-")}
    for deployment in objects(render, "Deployment", NAMESPACE):
        requests = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        pods[deployment["metadata"]["name"]] = sizing.pods_of(deployment["metadata"]["name"],
                                                             deployment["spec"]["replicas"], requests, sidecar)
    steady = [pod for owned in pods.values() for pod in owned]
    surge = [owned[0] for owned in pods.values()]
    assert sizing.pack(steady + surge, sizing.NODE_COUNT)
    assert sizing.pack(steady, sizing.NODE_COUNT - 1)
    # The sizing model packs what the shop plans; the render must ask for no more than that.
    planned = sizing.app_requests()
    for deployment in objects(render, "Deployment", NAMESPACE):
        requests = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        name = deployment["metadata"]["name"]
        assert sizing.cpu_millicores(requests["cpu"]) <= sizing.cpu_millicores(planned[name]["cpu"]), name
        assert sizing.memory_mebibytes(requests["memory"]) <= sizing.memory_mebibytes(planned[name]["memory"]), name


@pytest.mark.parametrize("service", APP_SERVICES)
def test_images_run_as_the_user_the_deployment_sets(render, service):
    """runAsUser overrides the image's USER; both name the same numeric user, so files the image
    made readable for it stay readable."""
    from tests.support import ROOT

    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    context = one(render, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert users and users[-1].split(":")[0] == str(context["runAsUser"])
