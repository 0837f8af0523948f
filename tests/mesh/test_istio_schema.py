"""tools/istio_schema.py: strict validation of Istio objects and Istio Helm values."""

import copy

import jsonschema
import pytest

from tools import istio_schema

PEER_AUTHENTICATION = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "default", "namespace": "istio-system"},
    "spec": {"mtls": {"mode": "STRICT"}},
}

GATEWAY = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "shop", "namespace": "shop"},
    "spec": {
        "selector": {"istio": "ingressgateway"},
        "servers": [
            {"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]},
            {"port": {"number": 8081, "name": "http-redirect", "protocol": "HTTP"}, "hosts": ["*"],
             "tls": {"httpsRedirect": True}},
        ],
    },
}


def with_change(obj, path, value):
    changed = copy.deepcopy(obj)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def test_valid_objects_pass():
    assert istio_schema.validate_istio_object(PEER_AUTHENTICATION) == []
    assert istio_schema.validate_istio_object(GATEWAY) == []


def test_misspelt_field_is_rejected_at_any_depth():
    misspelt = with_change(PEER_AUTHENTICATION, ["spec", "mtls"], {"mod": "STRICT"})
    errors = istio_schema.validate_istio_object(misspelt)
    assert len(errors) == 1 and "'mod' was unexpected" in errors[0] and "spec.mtls" in errors[0]

    deep = copy.deepcopy(GATEWAY)
    deep["spec"]["servers"][1]["tls"]["httpRedirect"] = True
    errors = istio_schema.validate_istio_object(deep)
    assert any("spec.servers[1].tls" in e and "'httpRedirect' was unexpected" in e for e in errors)


def test_unknown_top_level_and_metadata_fields_are_rejected():
    obj = dict(PEER_AUTHENTICATION, status={})
    assert any("unknown top-level" in e for e in istio_schema.validate_istio_object(obj))
    obj = with_change(PEER_AUTHENTICATION, ["metadata", "lables"], {"a": "b"})
    assert any("metadata" in e and "'lables'" in e for e in istio_schema.validate_istio_object(obj))


def test_enum_and_type_errors():
    bad_mode = with_change(PEER_AUTHENTICATION, ["spec", "mtls", "mode"], "STRICTEST")
    assert any("STRICTEST" in e for e in istio_schema.validate_istio_object(bad_mode))
    bad_port = copy.deepcopy(GATEWAY)
    bad_port["spec"]["servers"][0]["port"]["number"] = "eighty"
    assert istio_schema.validate_istio_object(bad_port)


def test_unknown_kind_and_unserved_version_are_named():
    errors = istio_schema.validate_istio_object(dict(PEER_AUTHENTICATION, kind="PeerAuthenticaton"))
    assert "known kinds" in errors[0]
    errors = istio_schema.validate_istio_object(dict(PEER_AUTHENTICATION, apiVersion="security.istio.io/v2"))
    assert "served" in errors[0] and "security.istio.io/v1" in errors[0]


def test_strict_translation_of_structural_schema_markers():
    # In Istio 1.30 x-kubernetes-int-or-string only occurs under status, so check the translation itself.
    structural = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "maybe": {"type": "string", "nullable": True},
        },
    }
    validator = jsonschema.Draft7Validator(istio_schema.strict_json_schema(structural))
    assert validator.is_valid({"port": 8080, "labels": {"a": "b"}, "free": {"any": {"thing": 1}}, "maybe": None})
    assert validator.is_valid({"port": "http"})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"port": True})
    assert not validator.is_valid({"prot": 8080})
    assert not validator.is_valid({"labels": {"a": 1}})


def test_cel_rules_are_enforced():
    # portLevelMtls needs a workload selector (a CEL rule in the CRD, not a structural constraint).
    obj = with_change(PEER_AUTHENTICATION, ["spec", "portLevelMtls"], {"8080": {"mode": "DISABLE"}})
    assert any("portLevelMtls requires selector" in e for e in istio_schema.validate_istio_object(obj))
    with_selector = with_change(obj, ["spec", "selector"], {"matchLabels": {"app": "orders"}})
    assert istio_schema.validate_istio_object(with_selector) == []

    entry = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "payments", "namespace": "shop"},
        "spec": {"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
                 "resolution": "NONE", "endpoints": [{"address": "1.2.3.4"}]},
    }
    assert istio_schema.validate_istio_object(entry), "resolution NONE with endpoints must be rejected"
    entry["spec"]["resolution"] = "STATIC"
    assert istio_schema.validate_istio_object(entry) == []


def test_every_cel_rule_in_the_crds_has_a_translation():
    missing = set(istio_schema.cel_rules_in_crds()) - set(istio_schema.CEL_RULES)
    assert not missing, f"CEL rules without a translation: {sorted(missing)}"


def test_every_cel_rule_sits_where_the_validator_evaluates_it():
    assert istio_schema.cel_rules_in_crds(structural_only=True) == istio_schema.cel_rules_in_crds()


@pytest.mark.parametrize(
    ("text", "seconds"), [("1ms", 0.001), ("1.5s", 1.5), ("1h2m", 3720.0), ("0", 0.0), ("250us", 0.00025)]
)
def test_go_durations(text, seconds):
    assert istio_schema.go_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "5 s", "1d", "s"])
def test_bad_go_durations(text):
    with pytest.raises(ValueError):
        istio_schema.go_duration_seconds(text)


def test_duration_rule_rejects_sub_millisecond_timeouts():
    virtual_service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {"hosts": ["orders"], "http": [{"route": [{"destination": {"host": "orders"}}], "timeout": "10s"}]},
    }
    assert istio_schema.validate_istio_object(virtual_service) == []
    virtual_service["spec"]["http"][0]["timeout"] = "10us"
    assert istio_schema.validate_istio_object(virtual_service)


# ---- Helm values -------------------------------------------------------------------------------------


def test_gateway_values_accept_chart_keys_and_kubernetes_service_ports():
    values = {
        "labels": {"istio": "ingressgateway"},
        "replicaCount": 2,
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {"minAvailable": 1},
        "service": {"type": "NodePort", "ports": [
            {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP", "nodePort": 30021},
        ]},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }
    assert istio_schema.check_helm_values("gateway", values) == []


def test_gateway_values_reject_unknown_top_level_key():
    errors = istio_schema.check_helm_values("gateway", {"replicas": 2})
    assert any("replicas" in e for e in errors)


def test_gateway_values_reject_unknown_nested_key():
    errors = istio_schema.check_helm_values("gateway", {"podDisruptionBudget": {"minAvailabel": 1}})
    assert any("podDisruptionBudget.minAvailabel" in e for e in errors)
    errors = istio_schema.check_helm_values("gateway", {"autoscaling": {"enable": False}})
    assert any("autoscaling.enable" in e for e in errors)


def test_gateway_service_ports_are_checked_as_kubernetes_service_ports():
    errors = istio_schema.check_helm_values(
        "gateway", {"service": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodeport": 30080}]}}
    )
    assert any("nodeport" in e for e in errors)


def test_topology_spread_constraints_are_checked_as_kubernetes():
    good = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"istio": "ingressgateway"}}}]
    assert istio_schema.check_helm_values("gateway", {"topologySpreadConstraints": good}) == []
    bad = [dict(good[0], maxSkwe=1)]
    assert istio_schema.check_helm_values("gateway", {"topologySpreadConstraints": bad})


def test_istiod_values_reject_misspelt_keys_that_helm_would_ignore():
    assert istio_schema.check_helm_values("istiod", {"resources": {"requests": {"cpu": "200m"}}}) == []
    # pilot.* was the pre-1.24 layout; the 1.30 chart reads top-level keys and silently ignores this one.
    errors = istio_schema.check_helm_values("istiod", {"pilot": {"resources": {"requests": {"cpu": "200m"}}}})
    assert any("pilot" in e for e in errors)
    errors = istio_schema.check_helm_values("istiod", {"global": {"proxy": {"resourcess": {}}}})
    assert any("global.proxy.resourcess" in e for e in errors)


def test_empty_map_defaults_admit_children():
    # podAnnotations defaults to {} in istiod: anything may go in it.
    assert istio_schema.check_helm_values("istiod", {"podAnnotations": {"example.com/anything": "x"}}) == []


def test_istiod_mesh_config_is_checked_against_mesh_config_proto():
    good = {"meshConfig": {"accessLogFile": "/dev/stdout", "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
    assert istio_schema.check_helm_values("istiod", good) == []
    errors = istio_schema.check_helm_values("istiod", {"meshConfig": {"accessLogfile": "/dev/stdout"}})
    assert any("accessLogfile" in e for e in errors)
    errors = istio_schema.check_helm_values("istiod", {"meshConfig": {"outboundTrafficPolicy": {"mode": "DENY"}}})
    assert any("DENY" in e for e in errors)


def test_base_values():
    assert istio_schema.check_helm_values("base", {"defaultRevision": "default"}) == []
    assert istio_schema.check_helm_values("base", {"defaultRevison": "default"})


def test_unknown_chart_and_internal_defaults_key():
    assert "unknown Istio chart" in istio_schema.check_helm_values("istio-cni", {})[0]
    errors = istio_schema.check_helm_values("gateway", {"_internal_defaults_do_not_set": {"replicaCount": 2}})
    assert any("internal" in e for e in errors)


def test_unknown_istio_version_is_a_clear_error():
    with pytest.raises(ValueError, match="available"):
        istio_schema.schema_dir("0.1.0")
