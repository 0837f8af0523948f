"""Istio upgrades by revision: each step is one `pulumi up` with a setting changed, and the render says at each
step which istiod releases exist, where the revision tag points, how namespaces are labelled and which
revision the gateways join."""

import json

import pytest

from components import mesh
from components.microservice import PROXY_VERSION_ANNOTATION
from settings import PROJECT, REVISION_TAG, SettingsError, istio_revision_problems, load_settings
from tests.test_settings import engine_config
from tools import istio_schema

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
OLD, NEW, NEXT = "1.30.5", "1.31.0", "1.32.0"
TAG_LABELS = {"istio.io/rev": REVISION_TAG}
LEGACY_LABELS = {"istio-injection": "enabled"}


def revisions(**by_name) -> str:
    return "istioRevisions=" + json.dumps({name.replace("_", "-"): version for name, version in by_name.items()})


# From a stack installed before revisions existed (the unrevisioned `istiod`) to revision 1-31-0, then on to
# 1-32-0 by revision tag alone. Each step changes one or two settings of the one before.
STEPS = {
    "installed": (f"istioVersion={OLD}",),
    "a-canary-beside-unrevisioned": (f"istioVersion={NEW}", revisions(default=OLD, **{"1_31_0": NEW})),
    "b-workloads-on-canary": (f"istioVersion={NEW}", revisions(default=OLD, **{"1_31_0": NEW}),
                              "istioDefaultRevision=1-31-0"),
    "c-unrevisioned-removed": (f"istioVersion={NEW}", revisions(**{"1_31_0": NEW}), "istioDefaultRevision=1-31-0"),
    "a2-next-canary": (f"istioVersion={NEXT}", revisions(**{"1_31_0": NEW, "1_32_0": NEXT}),
                       "istioDefaultRevision=1-31-0"),
    "b2-tag-moved": (f"istioVersion={NEXT}", revisions(**{"1_31_0": NEW, "1_32_0": NEXT}),
                     "istioDefaultRevision=1-32-0"),
}

# What each step must show: istiod release -> (chart version, revision tags it renders); the revision the
# tag and the default validating webhook point at; the labels of the namespaces that get sidecars; the
# gateways' revision and chart version; the proxy the application's pods are annotated with.
EXPECTED = {
    "installed": ({"istiod": (OLD, None)}, None, LEGACY_LABELS, (None, OLD), OLD),
    "a-canary-beside-unrevisioned": ({"istiod": (OLD, None), "istiod-1-31-0": (NEW, [])}, None, LEGACY_LABELS,
                                     (None, OLD), OLD),
    "b-workloads-on-canary": ({"istiod": (OLD, None), "istiod-1-31-0": (NEW, [REVISION_TAG])}, "1-31-0",
                              TAG_LABELS, (REVISION_TAG, NEW), f"{NEW}/1-31-0"),
    "c-unrevisioned-removed": ({"istiod-1-31-0": (NEW, [REVISION_TAG])}, "1-31-0", TAG_LABELS,
                               (REVISION_TAG, NEW), f"{NEW}/1-31-0"),
    "a2-next-canary": ({"istiod-1-31-0": (NEW, [REVISION_TAG]), "istiod-1-32-0": (NEXT, [])}, "1-31-0",
                       TAG_LABELS, (REVISION_TAG, NEW), f"{NEW}/1-31-0"),
    "b2-tag-moved": ({"istiod-1-31-0": (NEW, []), "istiod-1-32-0": (NEXT, [REVISION_TAG])}, "1-32-0",
                     TAG_LABELS, (REVISION_TAG, NEXT), f"{NEXT}/1-32-0"),
}


def releases(render) -> dict[str, dict]:
    return {r["inputs"]["name"]: r for r in render.of_type(RELEASE)}


def pod_annotations(render) -> set[str]:
    return {d["inputs"]["spec"]["template"]["metadata"]["annotations"][PROXY_VERSION_ANNOTATION]
            for d in render.of_type(DEPLOYMENT)}


@pytest.mark.parametrize("step", list(STEPS))
def test_each_upgrade_step_renders_its_control_planes_tag_labels_and_gateways(render_variant, step):
    render = render_variant(sets=STEPS[step])
    istiods, tag_target, labels, (gateway_revision, gateway_version), proxy = EXPECTED[step]
    found = releases(render)

    assert {name: (r["inputs"]["version"], r["inputs"]["values"].get("revisionTags"))
            for name, r in found.items() if r["inputs"]["chart"] == "istiod"} == istiods
    for name, release in found.items():
        if release["inputs"]["chart"] == "istiod" and name != "istiod":
            assert release["inputs"]["values"]["revision"] == name.removeprefix("istiod-")
    assert found["istio-base"]["inputs"]["values"].get("defaultRevision") == tag_target
    assert found["istio-base"]["inputs"]["version"] == max(v for v, _ in istiods.values())

    namespaces = {n["inputs"]["metadata"]["name"]: n["inputs"]["metadata"].get("labels") for n in render.of_type(NAMESPACE)}
    for namespace in (mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE, "e-commerce"):
        assert namespaces[namespace] == labels, namespace
    assert not namespaces[mesh.ISTIO_NAMESPACE]

    for gateway in (mesh.INGRESS_RELEASE, mesh.EGRESS_RELEASE):
        inputs = found[gateway]["inputs"]
        assert inputs["values"].get("revision") == gateway_revision, gateway
        assert inputs["version"] == gateway_version, gateway
    assert pod_annotations(render) == {proxy}

    # The values are ones the charts define (against the vendored reference data of 1.30).
    for release in found.values():
        assert istio_schema.check_helm_values(release["inputs"]["chart"], release["inputs"]["values"], OLD) == []


def test_adding_a_canary_moves_no_workload_and_changes_no_running_release(render_variant):
    before, after = render_variant(sets=STEPS["installed"]), render_variant(sets=STEPS["a-canary-beside-unrevisioned"])
    for name in ("istiod", mesh.INGRESS_RELEASE, mesh.EGRESS_RELEASE):
        assert releases(before)[name]["inputs"] == releases(after)[name]["inputs"], name
    assert pod_annotations(before) == pod_annotations(after)


@pytest.mark.parametrize("before, after", [("a-canary-beside-unrevisioned", "b-workloads-on-canary"),
                                           ("a2-next-canary", "b2-tag-moved")])
def test_moving_the_tag_rolls_gateways_and_workloads(render_variant, before, after):
    old, new = render_variant(sets=STEPS[before]), render_variant(sets=STEPS[after])
    assert pod_annotations(old) != pod_annotations(new)
    for gateway in (mesh.INGRESS_RELEASE, mesh.EGRESS_RELEASE):
        template = lambda render: (releases(render)[gateway]["inputs"]["values"]["podAnnotations"],  # noqa: E731
                                   releases(render)[gateway]["inputs"]["values"].get("revision"))
        assert template(old) != template(new), gateway


def test_the_release_that_gains_the_tag_is_upgraded_after_the_one_that_loses_it(render_variant):
    for step in ("b-workloads-on-canary", "b2-tag-moved", "a2-next-canary"):
        render = render_variant(sets=STEPS[step])
        found = releases(render)
        target = next(r for r in found.values() if REVISION_TAG in (r["inputs"]["values"].get("revisionTags") or []))
        base = found["istio-base"]
        for release in found.values():
            if release["inputs"]["chart"] == "istiod":
                assert base["urn"] in release["dependencies"]
                if release is not target:
                    assert release["urn"] in target["dependencies"], step
                    assert not render.depends_on(release, target["urn"]), step
        # Gateways and mesh policy wait for the istiod that injects and validates them.
        for gateway in (mesh.INGRESS_RELEASE, mesh.EGRESS_RELEASE):
            assert target["urn"] in found[gateway]["dependencies"]


# ---- settings that describe an impossible or unsafe state -----------------------------------------------

def problems(**values) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings("dev", engine_config(**values))
    return raised.value.problems


def test_by_default_one_unrevisioned_control_plane_at_the_istio_version():
    mesh_settings = load_settings("dev", engine_config()).mesh
    assert mesh_settings.istio_revisions == {"default": mesh_settings.istio_version}
    assert mesh_settings.istio_default_revision == "default"


@pytest.mark.parametrize("revisions_value, default, version, key, accepted", [
    # the tag pointing at a revision that is not installed
    ({"1-31-0": NEW}, "1-32-0", NEW, "istioDefaultRevision", "a revision eks-istio-shop:istioRevisions installs: 1-31-0"),
    # removing the revision the workloads use
    ({"1-31-0": NEW}, "default", NEW, "istioDefaultRevision", "move the workloads to another revision"),
    ({}, "1-31-0", OLD, "istioDefaultRevision", "installs: default"),
    # further apart than a canary upgrade may jump
    ({"1-30-5": OLD, "1-33-0": "1.33.0"}, "1-30-5", "1.33.0", "istioRevisions",
     "at most 2 minor versions apart"),
    ({"1-30-5": OLD}, "1-30-5", "1.33.0", "istioRevisions", "at most 2 minor versions apart"),
    # the CRDs are upgraded first
    ({"default": OLD, "1-31-0": NEW}, "default", OLD, "istioVersion", "newest release of"),
    # names that are no DNS label, or the tag's own name
    ({"Canary_1": NEW}, "Canary_1", NEW, "istioRevisions.Canary_1", "DNS label"),
    ({REVISION_TAG: NEW}, REVISION_TAG, NEW, f"istioRevisions.{REVISION_TAG}", "other than the revision tag"),
    ({"1-31-0": "latest"}, "1-31-0", NEW, "istioRevisions.1-31-0", "Istio release such as"),
])
def test_impossible_or_unsafe_revisions_are_refused_by_name(revisions_value, default, version, key, accepted):
    found = problems(istioRevisions=json.dumps(revisions_value), istioDefaultRevision=default, istioVersion=version)
    assert len(found) == 1, found
    assert found[0].startswith(f"{PROJECT}:{key}:"), found
    assert accepted in found[0], found


def test_two_minor_versions_apart_is_a_supported_canary():
    assert istio_revision_problems({"1-30-5": OLD, "1-32-0": NEXT}, "1-30-5", NEXT) == []
    assert istio_revision_problems({"1-30-5": OLD, "1-33-0": "1.33.0"}, "1-30-5", "1.33.0") != []


def test_istio_revisions_must_be_a_map():
    found = problems(istioRevisions='["1.31.0"]')
    assert found[0].startswith(f"{PROJECT}:istioRevisions:") and "map of revision name" in found[0]


def test_network_policies_and_sidecars_cover_every_revision_unchanged(render_variant):
    """istiod is selected by `app: istiod`, which the chart gives the pods of every revision, and the tag's and
    each revision's Services (istiod-<name>) use the same ports: the policies need not change with revisions."""
    def isolation(render):
        return {r["name"]: r["inputs"] for r in render.resources
                if r["type"] in ("kubernetes:networking.k8s.io/v1:NetworkPolicy",
                                 "kubernetes:networking.istio.io/v1:Sidecar")}
    installed = isolation(render_variant(sets=STEPS["installed"]))
    assert installed
    istiod_policy = next(p for p in installed.values() if p["metadata"]["name"] == "istiod")
    assert istiod_policy["spec"]["podSelector"] == {"matchLabels": {"app": "istiod"}}
    for step in ("a-canary-beside-unrevisioned", "b-workloads-on-canary", "c-unrevisioned-removed"):
        assert isolation(render_variant(sets=STEPS[step])) == installed, step
