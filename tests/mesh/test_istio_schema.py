"""tools/istio_schema.py: strict validation of Istio objects and Istio Helm values."""

import copy
import itertools
import json
import re

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


def test_valid_peer_authentication_and_gateway_pass():
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


def test_a_value_outside_the_enum_or_of_the_wrong_type_is_rejected():
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


def test_structural_markers_are_honoured_and_unknown_fields_still_rejected():
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


def test_cel_rules_reject_port_level_mtls_without_selector_and_endpoints_without_resolution():
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


def test_every_cel_rule_in_every_vendored_istio_release_compiles():
    versions = [p.name.removeprefix("istio-") for p in istio_schema.SCHEMA_ROOT.glob("istio-*")]
    assert versions
    for version in versions:
        assert istio_schema.uncompilable_cel_rules(version) == {}, version


def test_a_rule_with_a_function_not_registered_here_fails_loudly():
    # isIP() is a Kubernetes CEL function no Istio 1.30 rule uses, so it is not registered.
    schema = {"type": "string", "x-kubernetes-validations": [{"rule": "isIP(self)", "message": "must be an IP"}]}
    [error] = istio_schema.cel_errors(schema, "10.0.0.1")
    assert "isIP" in error and "does not compile" in error and "register" in error
    assert "must be an IP" not in error


def test_every_cel_rule_sits_where_the_validator_evaluates_it():
    assert istio_schema.cel_rules_in_crds(structural_only=True) == istio_schema.cel_rules_in_crds()


@pytest.mark.parametrize(("timeout", "accepted"), [
    ("10s", True), ("1.5s", True), ("1h2m", True), ("1ms", True),
    ("10us", False), ("0", False), ("1d", False), ("5 s", False), ("10", False),
])
def test_route_timeouts_are_go_durations_of_at_least_a_millisecond(timeout, accepted):
    virtual_service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {"hosts": ["orders"], "http": [{"route": [{"destination": {"host": "orders"}}], "timeout": timeout}]},
    }
    assert (istio_schema.validate_istio_object(virtual_service) == []) is accepted


def test_a_rule_that_fails_to_evaluate_rejects_the_object_with_the_reason():
    entry = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "local", "namespace": "shop"},
        "spec": {"hosts": ["local.example"], "resolution": "STATIC",
                 "endpoints": [{"address": "unix:///var/run/app.sock"}]},
    }
    assert istio_schema.validate_istio_object(entry) == []
    # substring(7, 8) of "unix://" is out of range: an evaluation error, which the API server rejects.
    entry["spec"]["endpoints"][0]["address"] = "unix://"
    errors = istio_schema.validate_istio_object(entry)
    assert any("spec.endpoints[0].address" in e and "rule evaluation error" in e for e in errors)


@pytest.mark.parametrize(("url", "accepted"), [
    ("oci://registry.example/filters/auth:1.0", True),
    ("https://example.com/auth.wasm", True),
    ("file:///opt/filters/auth.wasm", True),
    ("registry.example/filters/auth:1.0", True),  # no scheme: read as http://registry.example/...
    ("ftp://example.com/auth.wasm", False),
    # Go's parser reads "localhost:5000/..." as scheme "localhost", so the API server refuses it.
    ("localhost:5000/filters/auth:1.0", False),
])
def test_wasm_plugin_urls_are_judged_by_kubernetes_url_functions(url, accepted):
    plugin = {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
              "metadata": {"name": "auth", "namespace": "shop"}, "spec": {"url": url}}
    assert (istio_schema.validate_istio_object(plugin) == []) is accepted


# Kubernetes' documented examples of its URL functions (k8s.io/apiserver/pkg/cel/library/urls.go).
@pytest.mark.parametrize(("rule", "value", "holds"), [
    ("isURL(self)", "https://user:pass@example.com:80/path?query=val#fragment", True),
    ("isURL(self)", "/absolute-path", True),
    ("isURL(self)", "https://a:b:c/", False),
    ("isURL(self)", "../relative-path", False),
    ("url(self).getScheme() == ''", "/path", True),
    ("url(self).getScheme() == 'https'", "https://example.com/", True),
    ("url(self).getScheme() == 'https'", "https://a:b:c/", False),  # an error: the URL does not parse
])
def test_kubernetes_url_functions_match_the_documented_examples(rule, value, holds):
    assert istio_schema.cel_rule_holds(rule, value) is holds


def test_rules_see_property_names_escaped_as_the_api_server_escapes_them():
    schema = {"type": "object", "properties": {"namespace": {"type": "string"}, "x-y": {"type": "string"}}}
    assert istio_schema.cel_property_name("namespace") == "__namespace__"
    assert istio_schema.cel_rule_holds("has(self.__namespace__) && self.x__dash__y == 'b'",
                                       {"namespace": "a", "x-y": "b"}, schema)
    # Keys of a map are data, not property names: they stay as they are.
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    assert istio_schema.cel_rule_holds("'app.kubernetes.io/name' in self", {"app.kubernetes.io/name": "x"}, labels)


# ---- Every rule, on samples generated from its node's schema and its own text --------------------

ABSENT = object()
_STRINGS = ("", "a", "*", "a/b", "web-1", "-web", "x" * 63, "10s", "1h2m", "10us", "0s", "1d",
            "http://example.com", "https://example.com/jwks.json", "ftp://example.com", "oci://registry.example/f:1",
            "file:///f.wasm", "registry.example/f:1", "localhost:5000/f", "example.com")
_INTEGERS = (-1, 0, 1, 80, 65535, 65536)
_MAP_KEYS = ("", "*", "a", "80", "0", "65536", "a-b", "x" * 63)


def _rule_literals(rule):
    """The string literals of a rule, then each with something around it ("unix://" -> "unix:///x", ...)."""
    literals = sorted({a or b for a, b in re.findall(r'"([^"]*)"|\'([^\']*)\'', rule)}, key=lambda t: (not t, t))
    variants = [variant for literal in literals
                for variant in (literal + "x", literal + "/", literal + "/x", literal + "@x", "x" + literal)]
    return list(dict.fromkeys([*literals, *variants]))


def _samples(schema, rule, depth=0):
    """Values for a node with `schema`: generic ones of its type, its enum, the rule's literals and
    variants of them, and for objects every combination of the fields the rule names."""
    limit = None if depth == 0 else 6
    kind = schema.get("type")
    if "enum" in schema:
        found = list(schema["enum"])
    elif kind == "string":
        found = [*_rule_literals(rule), *_STRINGS]
    elif kind == "integer":
        found = list(_INTEGERS)
    elif kind == "number":
        found = [0.5, *_INTEGERS]
    elif kind == "boolean":
        found = [True, False]
    elif kind == "array":
        items = _samples(schema.get("items", {}), rule, depth + 1)[:4] or [{}]
        found = [[], *([item] for item in items), [items[0], items[0]], items[:2]]
    elif kind == "object" and schema.get("properties"):
        named = set(re.findall(r"\w+", rule))
        fields = [(name, sub) for name, sub in schema["properties"].items() if name in named]
        choices = [[ABSENT, *_samples(sub, rule, depth + 1)[:3 if len(fields) > 3 else 6]] for _, sub in fields]
        found = [{name: value for (name, _), value in zip(fields, combination) if value is not ABSENT}
                 for combination in itertools.product(*choices)]
    elif kind == "object":
        values = _samples(schema.get("additionalProperties") or {"type": "string"}, rule, depth + 1)[:2]
        found = [{}, *({key: values[0]} for key in _MAP_KEYS), {"a": values[0], "b": values[-1]}]
    else:
        found = [*_STRINGS[:3], *_INTEGERS[:2], {}, []]
    return found[:limit]


def _without_descriptions(node):
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


def _rule_sites():
    """(where, node schema, rule): each CEL rule under a spec, once per distinct node schema."""
    sites = {}

    def walk(node, where):
        for validation in node.get("x-kubernetes-validations", ()):
            key = (validation["rule"], json.dumps(_without_descriptions(node), sort_keys=True))
            sites.setdefault(key, (where, node, validation["rule"]))
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{where}.{name}")
        for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
            if isinstance(node.get(key), dict):
                walk(node[key], where + suffix)

    for (api_version, kind), schema in sorted(istio_schema.crd_schemas().items()):
        walk(schema.get("properties", {}).get("spec", {}), f"{kind}({api_version}).spec")
    return list(sites.values())


RULE_SITES = _rule_sites()


def test_the_generated_rule_sites_cover_every_rule_in_the_crds():
    assert {rule for _, _, rule in RULE_SITES} == set(istio_schema.cel_rules_in_crds())


@pytest.mark.parametrize(("where", "schema", "rule"), RULE_SITES, ids=[where for where, _, _ in RULE_SITES])
def test_each_cel_rule_accepts_a_generated_sample_and_rejects_another(where, schema, rule):
    verdicts = {}
    for sample in _samples(schema, rule):
        verdicts.setdefault(istio_schema.cel_rule_holds(rule, sample, schema), sample)
    assert set(verdicts) == {True, False}, f"{where}: {rule!r} gave only {verdicts}"


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


def test_mesh_config_nested_oneof_repeated_and_map_fields_follow_the_proto():
    provider = {"name": "ext-authz", "envoyExtAuthzHttp": {
        "service": "authz.e-commerce.svc.cluster.local", "port": 8000, "timeout": "2s", "failOpen": False,
        "includeRequestHeadersInCheck": ["authorization"], "includeAdditionalHeadersInCheck": {"x-shop": "1"}}}
    assert istio_schema.mesh_config_errors({"extensionProviders": [provider]}) == []
    # A field of a oneof is the message's own in JSON; inside it, fields are as strict as anywhere.
    misspelt = {"name": "ext-authz", "envoyExtAuthzHttp": {**provider["envoyExtAuthzHttp"], "failopen": False}}
    [error] = istio_schema.mesh_config_errors({"extensionProviders": [misspelt]})
    assert "extensionProviders.envoyExtAuthzHttp.failopen" in error and "EnvoyExternalAuthorizationHttpProvider" in error
    assert "expected a list" in istio_schema.mesh_config_errors({"extensionProviders": provider})[0]
    wrong_type = {"name": "ext-authz", "envoyExtAuthzHttp": {"service": "authz", "port": "8000"}}
    assert "expected uint32" in istio_schema.mesh_config_errors({"extensionProviders": [wrong_type]})[0]


def test_base_values_reject_a_misspelt_key():
    assert istio_schema.check_helm_values("base", {"defaultRevision": "default"}) == []
    assert istio_schema.check_helm_values("base", {"defaultRevison": "default"})


def test_an_unknown_chart_or_the_internal_defaults_key_is_refused():
    assert "unknown Istio chart" in istio_schema.check_helm_values("istio-cni", {})[0]
    errors = istio_schema.check_helm_values("gateway", {"_internal_defaults_do_not_set": {"replicaCount": 2}})
    assert any("internal" in e for e in errors)


def test_unknown_istio_version_is_a_clear_error():
    with pytest.raises(ValueError, match="available"):
        istio_schema.schema_dir("0.1.0")


# ---- which reference data checks which release ---------------------------------------------------------


@pytest.fixture
def made_up_schema_root(tmp_path, monkeypatch):
    """A schema root vendoring 1.7.2, 1.7.10 and 1.8.0 (plus what is not reference data), instead of the
    project's own, so that vendoring another release never changes what these tests hold."""
    for name in ("istio-1.7.2", "istio-1.7.10", "istio-1.8.0", "istio-1.9.x", "kubernetes-1.35"):
        (tmp_path / name).mkdir()
    (tmp_path / "istio-1.9.0").write_text("a file, not a directory of data")
    monkeypatch.setattr(istio_schema, "SCHEMA_ROOT", tmp_path)
    return tmp_path


def test_only_release_directories_are_vendored_versions_in_release_order(made_up_schema_root):
    assert istio_schema.vendored_versions() == ["1.7.2", "1.7.10", "1.8.0"]


def test_a_patch_without_its_own_data_is_checked_against_its_minors_newest_and_says_so(made_up_schema_root):
    assert istio_schema.reference_version("1.7.2") == "1.7.2"
    assert istio_schema.reference_version("1.7.3") == "1.7.10"
    assert istio_schema.reference_version("1.7.11") == "1.7.10"
    assert istio_schema.schema_dir("1.7.3") == made_up_schema_root / "istio-1.7.10"
    assert istio_schema.schema_dir("1.8.0") == made_up_schema_root / "istio-1.8.0"
    assert "reference data of 1.7.10" in istio_schema.reference_note("1.7.3")
    assert "its own reference data" in istio_schema.reference_note("1.7.2")


@pytest.mark.parametrize("version", ["1.9.0", "1.6.9", "2.7.2"])
def test_another_minors_data_never_stands_in(made_up_schema_root, version):
    with pytest.raises(ValueError, match="no vendored Istio reference data"):
        istio_schema.reference_version(version)
