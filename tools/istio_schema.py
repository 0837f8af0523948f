"""Offline, strict checks of Istio objects and Istio Helm values against Istio's own definitions.

Two entry points, both returning a list of human-readable errors (empty means valid):

- ``validate_istio_object(obj)``: an Istio custom resource (apiVersion/kind/metadata/spec dict) against the
  openAPIV3Schema of its CRD version in the vendored ``crd-all.gen.yaml``. The API server prunes unknown
  fields silently, so a misspelt field would be *dropped*, not rejected; here every unknown field is an
  error. The CRDs' CEL rules (``x-kubernetes-validations``) are evaluated by Google's CEL runtime with the
  Kubernetes functions Istio's rules use registered on it; a rule that does not compile here (it uses a
  function not registered yet) is reported as an error, never skipped.
- ``check_helm_values(chart, values)``: values for Istio's ``base``, ``istiod`` and ``gateway`` charts.
  Every key path must be one the chart defines (its default values.yaml, and for ``gateway`` also its
  values.schema.json, which Helm enforces). A key whose default is an empty map (``labels: {}``) admits
  any children: the chart copies it verbatim. Values the charts copy verbatim into another API are checked
  as that API: ``meshConfig`` as Istio's MeshConfig (from the vendored config.proto), ``service.ports``
  as Kubernetes ServicePorts and ``topologySpreadConstraints`` as Kubernetes TopologySpreadConstraints.

The data lives in ``schemas/istio-<version>/`` (see its NOTICE.md); nothing here reads outside the repo. A
patch release without its own directory is checked against the newest vendored patch of its minor
(``reference_version``); ``reference_note`` says which data was used, and tools.validate prints it.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from cel_expr_python import cel
from cel_expr_python.ext import ext_strings
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from proto_schema_parser import ast as proto_ast
from proto_schema_parser.parser import Parser as ProtoParser

# DEFAULT_KUBERNETES_VERSION: the one whose OpenAPI schemas check values that Istio's charts copy into
# Kubernetes objects, unless a stack names its own.
from settings import DEFAULT_ISTIO_VERSION, DEFAULT_KUBERNETES_VERSION, istio_release as _release
SCHEMA_ROOT = Path(__file__).resolve().parent.parent / "schemas"

CHARTS = ("base", "istiod", "gateway")
_INTERNAL_DEFAULTS = "_internal_defaults_do_not_set"


def vendored_versions() -> list[str]:
    found = [p.name.removeprefix("istio-") for p in SCHEMA_ROOT.glob("istio-*") if p.is_dir()]
    return sorted((v for v in found if re.fullmatch(r"\d+\.\d+\.\d+", v)), key=_release)


def reference_version(istio_version: str = DEFAULT_ISTIO_VERSION) -> str:
    """The release whose vendored data checks `istio_version`: its own, or else the newest of its minor.

    A patch release changes no API or chart value on purpose (Istio's feature-status policy keeps
    those for minor releases), so the data of another patch of the same minor stands in for a patch
    whose own data is not vendored. Another minor's data never does.
    """
    vendored = vendored_versions()
    if istio_version in vendored:
        return istio_version
    if not re.fullmatch(r"\d+\.\d+\.\d+", istio_version):
        raise ValueError(f"{istio_version!r} is not an Istio release such as 1.30.5; vendored: {vendored}")
    minor = _release(istio_version)[:2]
    same_minor = [v for v in vendored if _release(v)[:2] == minor]
    if not same_minor:
        raise ValueError(f"no vendored Istio reference data for version {istio_version!r} or its minor "
                         f"{minor[0]}.{minor[1]}; available: {vendored}")
    return same_minor[-1]


def reference_note(istio_version: str = DEFAULT_ISTIO_VERSION) -> str:
    """Which data checks `istio_version`, in words, for tools to print."""
    used = reference_version(istio_version)
    if used == istio_version:
        return f"Istio {istio_version} (its own reference data, schemas/istio-{used})"
    return (f"Istio {istio_version} (reference data of {used}, the vendored patch of its minor: no data is "
            f"vendored for {istio_version}; schemas/istio-{used})")


def schema_dir(istio_version: str = DEFAULT_ISTIO_VERSION) -> Path:
    return SCHEMA_ROOT / f"istio-{reference_version(istio_version)}"


# --------------------------------------------------------------------------------------------------
# Istio custom resources
# --------------------------------------------------------------------------------------------------


@functools.cache
def crd_schemas(istio_version: str = DEFAULT_ISTIO_VERSION) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema, for every served version."""
    text = (schema_dir(istio_version) / "crd-all.gen.yaml").read_text()
    schemas: dict[tuple[str, str], dict] = {}
    # libyaml's loader when PyYAML has it: the same data, several times faster on this 1 MB file.
    for crd in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def strict_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """Translate a Kubernetes structural schema into a JSON Schema that rejects unknown fields.

    Object schemas get ``additionalProperties: false`` unless they keep unknown fields on purpose
    (``x-kubernetes-preserve-unknown-fields``) or declare their own ``additionalProperties`` (maps).
    An object with neither properties nor additionalProperties is the empty message: the API server
    would prune anything in it, so anything in it is an error here.
    ``oneOf``/``anyOf``/``allOf``/``not`` hold value validations only (no structure), so they are kept as is.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: strict_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = strict_json_schema(value)
        elif key.startswith("x-kubernetes-") or key == "nullable":
            continue
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    is_object = node.get("type") == "object" or "properties" in node
    if (
        is_object
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    return out


@functools.cache
def _spec_validator(istio_version: str, api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = crd_schemas(istio_version)[(api_version, kind)]
    spec_schema = schema.get("properties", {}).get("spec", {"type": "object"})
    return jsonschema.Draft7Validator(strict_json_schema(spec_schema))


_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# The metadata this project sets on custom resources; anything else is a mistake worth hearing about.
_METADATA_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _json_path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate_istio_object(obj: Mapping[str, Any], istio_version: str = DEFAULT_ISTIO_VERSION) -> list[str]:
    """Errors of one Istio object against its CRD (strict: unknown fields anywhere are errors)."""
    if not isinstance(obj, Mapping):
        return [f"expected a mapping with apiVersion, kind, metadata and spec, got {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    name = (obj.get("metadata") or {}).get("name", "?") if isinstance(obj.get("metadata"), Mapping) else "?"
    label = f"{kind}/{name}"
    schemas = crd_schemas(istio_version)
    if (api_version, kind) not in schemas:
        served = sorted({v for (v, k) in schemas if k == kind})
        if served:
            return [f"{label}: apiVersion {api_version!r} is not served for {kind}; served: {served}"]
        kinds = sorted({k for (_, k) in schemas})
        return [f"{label}: kind {kind!r} is not an Istio {istio_version} kind; known kinds: {kinds}"]

    errors: list[str] = []
    unknown_top = sorted(set(obj) - {"apiVersion", "kind", "metadata", "spec"})
    if unknown_top:
        errors.append(f"{label}: unknown top-level field(s) {unknown_top}")
    for error in jsonschema.Draft7Validator(_METADATA_SCHEMA).iter_errors(obj.get("metadata")):
        errors.append(f"{label}: {_json_path(['metadata', *error.absolute_path])}: {error.message}")

    spec = obj.get("spec", {})
    validator = _spec_validator(istio_version, api_version, kind)
    spec_errors = sorted(validator.iter_errors(spec), key=lambda e: list(map(str, e.absolute_path)))
    for error in spec_errors:
        errors.append(f"{label}: {_json_path(['spec', *error.absolute_path])}: {error.message}")
    if not spec_errors:
        # CEL rules assume a value that already passed the structural checks, as in the API server.
        spec_schema = schemas[(api_version, kind)].get("properties", {}).get("spec", {})
        errors.extend(f"{label}: {e}" for e in cel_errors(spec_schema, spec, ("spec",)))
    return errors


def cel_errors(schema: Mapping[str, Any], value: Any, path: tuple = ("spec",)) -> list[str]:
    """Errors of the CEL rules (``x-kubernetes-validations``) on `schema` and below it, for `value`.

    A rule that is false, or whose evaluation fails, rejects the value, as in the API server. A rule
    that cannot be compiled (it calls a Kubernetes CEL function not registered here) is an error too:
    a new rule is checked as soon as its Istio release is vendored, or it fails loudly.
    """
    errors: list[str] = []
    for validation in schema.get("x-kubernetes-validations", ()):
        rule = validation["rule"]
        where = _json_path(path)
        try:
            holds, reason = _evaluate_cel_rule(rule, value, schema)
        except CelRuleNotCompiled as error:
            errors.append(f"{where}: {error}")
            continue
        if not holds:
            message = validation.get("message") or f"failed rule: {rule}"
            errors.append(f"{where}: {message}" + (f" (rule evaluation error: {reason})" if reason else ""))
    if isinstance(value, Mapping):
        properties = schema.get("properties", {})
        for key, sub_value in value.items():
            sub_schema = properties.get(key)
            if sub_schema is None and isinstance(schema.get("additionalProperties"), Mapping):
                sub_schema = schema["additionalProperties"]
            if sub_schema is not None:
                errors.extend(cel_errors(sub_schema, sub_value, (*path, key)))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            errors.extend(cel_errors(schema["items"], item, (*path, index)))
    return errors


# ---- CEL: the rules are evaluated by Google's CEL runtime (cel-expr-python) ------------------------
#
# The API server compiles CRD rules in a CEL environment with Kubernetes' own libraries on top of the
# standard one. Registered here, as far as Istio's rules use them: the strings extension (substring,
# lowerAscii, ...) and Kubernetes' URL functions (url, isURL, getScheme). Any other Kubernetes function
# (ip(), cidr(), quantity(), format.*, ...) is an undeclared reference to the compiler, so a rule using
# it is reported by `uncompilable_cel_rules` and by every object it applies to: register it below.


class CelRuleNotCompiled(ValueError):
    """A CRD rule this environment cannot compile (a function the API server offers and we do not)."""


def _split_go_scheme(text: str) -> tuple[str, str]:
    """(scheme, rest) as Go's net/url splits them: a scheme is [a-zA-Z][a-zA-Z0-9+-.]* before a colon."""
    for index, char in enumerate(text):
        if "a" <= char <= "z" or "A" <= char <= "Z":
            continue
        if "0" <= char <= "9" or char in "+-.":
            if index == 0:
                return "", text
            continue
        if char == ":":
            if index == 0:
                raise ValueError("missing protocol scheme")
            return text[:index], text[index + 1:]
        return "", text
    return "", text


_HEX = set("0123456789abcdefABCDEF")
# Characters Go's URL parser accepts unescaped in a host (RFC 3986 reg-name and sub-delims, plus the
# port's ':' and an IPv6 literal's brackets); other ASCII characters make the host invalid.
_HOST_CHARACTERS = set("!$&'()*+,;=:[]<>\"-_.~")


def _host_character_ok(char: str) -> bool:
    return not char.isascii() or char.isalnum() or char in _HOST_CHARACTERS


def _check_escapes(text: str, host: bool = False, zone: bool = False) -> None:
    """Go's url.unescape checks: every % starts two hex digits; a host escapes only non-ASCII bytes."""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            digits = text[index + 1:index + 3]
            if len(digits) < 2 or not set(digits) <= _HEX:
                raise ValueError(f"invalid URL escape {text[index:index + 3]!r}")
            escaped = text[index:index + 3]
            byte = int(digits, 16)
            if host and byte < 0x80 and escaped != "%25":
                raise ValueError(f"invalid URL escape {escaped!r}")
            # A zone may escape only what a host could hold unescaped (and a space, for Windows).
            if zone and escaped != "%25" and byte != 0x20 and not (byte < 0x80 and _host_character_ok(chr(byte))):
                raise ValueError(f"invalid URL escape {escaped!r}")
            index += 3
            continue
        if (host or zone) and not _host_character_ok(char):
            raise ValueError(f"invalid character {char!r} in host name")
        index += 1


def _valid_optional_port(text: str) -> bool:
    return text == "" or (text.startswith(":") and all("0" <= c <= "9" for c in text[1:]))


def _check_host(host: str) -> None:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0:
            raise ValueError("missing ']' in host")
        if not _valid_optional_port(host[end + 1:]):
            raise ValueError(f"invalid port {host[end + 1:]!r} after host")
        zone = host.find("%25", 0, end)
        if zone >= 0:
            _check_escapes(host[:zone], host=True)
            _check_escapes(host[zone:end], zone=True)
            _check_escapes(host[end:], host=True)
            return
    elif ":" in host and not _valid_optional_port(host[host.rfind(":"):]):
        raise ValueError(f"invalid port {host[host.rfind(':'):]!r} after host")
    _check_escapes(host, host=True)


_USERINFO_CHARACTERS = set("-._:~!$&'()*+,;=%@")


def request_uri_scheme(text: str) -> str:
    """The scheme of `text` as Go's url.ParseRequestURI parses it, lower-cased ('' for an absolute path).

    This is the parser behind Kubernetes' CEL ``isURL()`` and ``url()``: an absolute URI or an absolute
    path, nothing relative. Raises ValueError where that parser returns an error.
    """
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise ValueError("invalid control character in URL")
    if text == "":
        raise ValueError("empty url")
    if text == "*":
        return ""
    scheme, rest = _split_go_scheme(text)
    scheme = scheme.lower()
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        if scheme:
            return scheme  # scheme:opaque
        raise ValueError("invalid URI for request")
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        userinfo, at, host = authority.rpartition("@")
        _check_host(host)
        if at:
            if not all(char.isascii() and (char.isalnum() or char in _USERINFO_CHARACTERS) for char in userinfo):
                raise ValueError("invalid userinfo")
            for part in userinfo.split(":", 1):
                _check_escapes(part)
    _check_escapes(rest)
    return scheme


def _is_url(text: str) -> bool:
    try:
        request_uri_scheme(text)
    except ValueError:
        return False
    return True


_URL_TYPE = "kubernetes.URL"


@functools.cache
def _cel_environment() -> tuple[Any, Callable[..., Any]]:
    """(CEL environment, URL message class). Kubernetes' URL type is a message holding what its getters return."""
    url_file = descriptor_pb2.FileDescriptorProto(name="kubernetes/url.proto", package="kubernetes", syntax="proto3")
    url_file.message_type.add(name="URL").field.add(
        name="scheme", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(url_file)
    url_message = message_factory.GetMessageClass(pool.FindMessageTypeByName(_URL_TYPE))
    url_type = cel.Type(_URL_TYPE)
    urls = cel.CelExtension("kubernetes.urls", [
        cel.FunctionDecl("url", [cel.Overload(
            "string_to_url", url_type, [cel.Type.STRING],
            impl=lambda text: url_message(scheme=_url_scheme_or_raise(text)))]),
        cel.FunctionDecl("isURL", [cel.Overload("is_url_string", cel.Type.BOOL, [cel.Type.STRING], impl=_is_url)]),
        cel.FunctionDecl("getScheme", [cel.Overload(
            "url_get_scheme", cel.Type.STRING, [url_type], is_member=True, impl=lambda url: url.scheme)]),
    ])
    environment = cel.NewEnv(pool, variables={"self": cel.Type.DYN},
                             extensions=[ext_strings.ExtStrings(), urls])
    return environment, url_message


def _url_scheme_or_raise(text: str) -> str:
    try:
        return request_uri_scheme(text)
    except ValueError as error:
        raise ValueError(f"URL parse error during conversion from string: {error}") from None


@functools.cache
def _compiled_cel_rule(rule: str) -> Any:
    environment, _ = _cel_environment()
    try:
        return environment.compile(rule)
    except RuntimeError as error:
        raise CelRuleNotCompiled(
            f"CEL rule {rule!r} does not compile here ({str(error).splitlines()[0]}); the API server's "
            f"environment has more Kubernetes functions than tools/istio_schema.py registers: register "
            f"the one it uses") from None


_CEL_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
})
_CEL_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


def cel_property_name(name: str) -> str | None:
    """A property's name as a CEL rule spells it (Kubernetes' escaping), or None if rules cannot reach it."""
    if not name or name[0].isdigit() or not re.fullmatch(r"[a-zA-Z0-9_./-]+", name):
        return None
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return re.sub(r"__|[./-]", lambda match: _CEL_ESCAPES[match.group()], name)


def _cel_value(schema: Mapping[str, Any], value: Any) -> Any:
    """`value` as the API server hands it to a rule: object properties under their escaped names."""
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        if properties:
            converted = {}
            for key, sub_value in value.items():
                name = cel_property_name(key)
                if name is not None:
                    converted[name] = _cel_value(properties.get(key, {}), sub_value)
            return converted
        additional = schema.get("additionalProperties")
        item_schema = additional if isinstance(additional, Mapping) else {}
        return {key: _cel_value(item_schema, sub_value) for key, sub_value in value.items()}
    if isinstance(value, list):
        item_schema = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
        return [_cel_value(item_schema, item) for item in value]
    return value


def _evaluate_cel_rule(rule: str, value: Any, schema: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(holds, evaluation error). Raises CelRuleNotCompiled if the rule does not compile."""
    result = _compiled_cel_rule(rule).eval(data={"self": _cel_value(schema, value)})
    if result.type() == cel.Type.ERROR:
        return False, str(result.value())
    if result.type() != cel.Type.BOOL:
        return False, f"the rule gives a {result.type().name()}, not a bool"
    return result.value() is True, None


def cel_rule_holds(rule: str, value: Any, schema: Mapping[str, Any] | None = None) -> bool:
    """Whether `value` (at a node with `schema`) satisfies one CEL rule; an evaluation error does not."""
    return _evaluate_cel_rule(rule, value, schema or {})[0]


def uncompilable_cel_rules(istio_version: str = DEFAULT_ISTIO_VERSION) -> dict[str, str]:
    """Rule text -> why it does not compile, for every rule of the vendored CRDs (empty when all do)."""
    found = {}
    for rule in cel_rules_in_crds(istio_version):
        try:
            _compiled_cel_rule(rule)
        except CelRuleNotCompiled as error:
            found[rule] = str(error)
    return found


def cel_rules_in_crds(istio_version: str = DEFAULT_ISTIO_VERSION, structural_only: bool = False) -> Counter:
    """How often each CEL rule text occurs in the vendored CRDs.

    With ``structural_only``, only rules on nodes the validator walks (properties, items,
    additionalProperties) count; comparing both proves no rule hides where it would not be evaluated.
    """
    found: Counter = Counter()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for validation in node.get("x-kubernetes-validations", ()):
                found[validation["rule"]] += 1
            if structural_only:
                children = [*node.get("properties", {}).values(), node.get("items"), node.get("additionalProperties")]
            else:
                children = list(node.values())
            for child in children:
                walk(child)
        elif isinstance(node, list) and not structural_only:
            for value in node:
                walk(value)

    for schema in crd_schemas(istio_version).values():
        walk(schema)
    return found


# --------------------------------------------------------------------------------------------------
# Helm values
# --------------------------------------------------------------------------------------------------


@functools.cache
def chart_defaults(chart: str, istio_version: str = DEFAULT_ISTIO_VERSION) -> dict[str, Any]:
    """A chart's effective defaults: ``_internal_defaults_do_not_set`` merged with the top-level keys."""
    if chart not in CHARTS:
        raise ValueError(f"unknown Istio chart {chart!r}; accepted: {list(CHARTS)}")
    document = yaml.safe_load((schema_dir(istio_version) / f"{chart}.values.yaml").read_text()) or {}
    defaults = copy.deepcopy(document.get(_INTERNAL_DEFAULTS) or {})
    for key, value in document.items():
        if key != _INTERNAL_DEFAULTS:
            defaults.setdefault(key, value)
    return defaults


@functools.cache
def gateway_values_schema(istio_version: str = DEFAULT_ISTIO_VERSION) -> dict[str, Any]:
    return json.loads((schema_dir(istio_version) / "gateway.values.schema.json").read_text())


def _schema_node(schema: Mapping[str, Any] | None, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Follow a local ``$ref`` (the gateway schema's root is ``{"$ref": "#/$defs/values"}``)."""
    while schema is not None and "$ref" in schema and str(schema["$ref"]).startswith("#/"):
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        schema = target
    return schema


def _kubernetes_errors(obj: dict, where: str, kubernetes_version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        inner = error.caused_by if hasattr(error, "caused_by") else error
        path = _json_path(getattr(inner, "absolute_path", ()))
        return [f"{where}: {path}: {getattr(inner, 'message', str(error))}"]
    return []


def _service_ports(value: Any, where: str, kubernetes_version: str, _istio_version: str) -> list[str]:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "check"},
               "spec": {"type": "NodePort", "ports": value}}
    return _kubernetes_errors(service, f"{where} (as Service spec.ports)", kubernetes_version)


def _topology_spread(value: Any, where: str, kubernetes_version: str, _istio_version: str) -> list[str]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [{"name": "check", "image": "check"}], "topologySpreadConstraints": value}}
    return _kubernetes_errors(pod, f"{where} (as Pod spec.topologySpreadConstraints)", kubernetes_version)


def _resource_requirements(value: Any, where: str, kubernetes_version: str, _istio_version: str) -> list[str]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [{"name": "check", "image": "check", "resources": value}]}}
    return _kubernetes_errors(pod, f"{where} (as container resources)", kubernetes_version)


# Values a chart copies verbatim into another API: checked as that API instead of against defaults.
_VERBATIM: dict[str, dict[tuple[str, ...], Callable[..., list[str]]]] = {
    "gateway": {
        ("service", "ports"): _service_ports,
        ("topologySpreadConstraints",): _topology_spread,
        ("resources",): _resource_requirements,
    },
    "istiod": {
        ("meshConfig",): lambda value, where, _kubernetes_version, istio_version: mesh_config_errors(
            value, where, istio_version
        ),
        ("topologySpreadConstraints",): _topology_spread,
        ("resources",): _resource_requirements,
        ("global", "proxy", "resources"): _resource_requirements,
    },
    "base": {},
}


def check_helm_values(
    chart: str,
    values: Mapping[str, Any],
    istio_version: str = DEFAULT_ISTIO_VERSION,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
) -> list[str]:
    """Errors for values passed to one of Istio's charts (empty list: every key is one the chart defines)."""
    if chart not in CHARTS:
        return [f"unknown Istio chart {chart!r}; accepted: {list(CHARTS)}"]
    if not isinstance(values, Mapping):
        return [f"{chart} values: expected a mapping, got {type(values).__name__}"]
    errors: list[str] = []
    if _INTERNAL_DEFAULTS in values:
        errors.append(f"{chart} values: {_INTERNAL_DEFAULTS} is internal to the chart; set its keys directly")
    schema_root: Mapping[str, Any] | None = None
    if chart == "gateway":
        schema_root = gateway_values_schema(istio_version)
        validator = jsonschema.Draft202012Validator(schema_root)
        for error in sorted(validator.iter_errors(dict(values)), key=lambda e: list(map(str, e.absolute_path))):
            errors.append(f"{chart} values: {_json_path(error.absolute_path) or '<root>'}: {error.message}")
    _walk_values(
        chart, values, chart_defaults(chart, istio_version), _schema_node(schema_root, schema_root or {}),
        schema_root or {}, (), errors, istio_version, kubernetes_version,
    )
    return errors


def _walk_values(chart, values, defaults, schema, schema_root, path, errors, istio_version, kubernetes_version):
    properties = (schema or {}).get("properties", {})
    for key, value in values.items():
        key_path = (*path, key)
        where = f"{chart} values: {'.'.join(key_path)}"
        verbatim = _VERBATIM[chart].get(key_path)
        if verbatim is not None:
            errors.extend(verbatim(value, where, kubernetes_version, istio_version))
            continue
        in_defaults = isinstance(defaults, Mapping) and key in defaults
        sub_schema = _schema_node(properties.get(key), schema_root)
        if not in_defaults and sub_schema is None:
            known = sorted((set(defaults if isinstance(defaults, Mapping) else ()) | set(properties))
                           - {_INTERNAL_DEFAULTS})
            errors.append(f"{where} is not a value the chart defines; known keys here: {known}")
            continue
        default = defaults.get(key) if in_defaults else None
        if key in _METADATA_MAPS and isinstance(value, Mapping):
            errors.extend(f"{where}.{name}: an annotation or label value must be a string, got {item!r}"
                          for name, item in value.items() if not isinstance(item, str))
            continue
        if isinstance(value, Mapping):
            if _is_free_form(default, sub_schema):
                continue
            if default is not None and not isinstance(default, Mapping):
                errors.append(f"{where}: the chart expects a {type(default).__name__} here, not a mapping")
                continue
            _walk_values(chart, value, default or {}, sub_schema, schema_root, key_path, errors,
                         istio_version, kubernetes_version)
        elif isinstance(value, list):
            _walk_list(chart, value, default, sub_schema, schema_root, key_path, errors,
                       istio_version, kubernetes_version)


# Values the charts copy verbatim into an object's metadata: any key is theirs to hold, even where the
# chart's defaults or schema list a few (the gateway's podAnnotations), as long as the values are strings.
_METADATA_MAPS = frozenset({"podAnnotations", "annotations", "podLabels", "labels"})


def _is_free_form(default: Any, schema: Mapping[str, Any] | None) -> bool:
    """Children of this key are the chart's business, not ours: it copies them verbatim.

    True for an empty-map default (``podAnnotations: {}``) and for a schema object that lists no
    properties (the gateway schema's ``labels``, ``affinity``, ...). A schema with properties is strict.
    """
    if schema is not None:
        if schema.get("properties"):
            return False
        types = schema.get("type")
        types = types if isinstance(types, list) else [types]
        if "object" in types:
            return True
    return isinstance(default, Mapping) and len(default) == 0


def _walk_list(chart, items, default, schema, schema_root, path, errors, istio_version, kubernetes_version):
    item_defaults = [item for item in (default or []) if isinstance(item, Mapping)]
    item_schema = _schema_node((schema or {}).get("items"), schema_root)
    known = set().union(*(item.keys() for item in item_defaults)) | set((item_schema or {}).get("properties", {}))
    if not known:
        return  # an empty default list (tolerations, volumes, ...) is copied verbatim
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        for key in item:
            if key not in known:
                errors.append(
                    f"{chart} values: {'.'.join(path)}[{index}].{key} is not a field the chart defines; "
                    f"known: {sorted(known)}"
                )


# --------------------------------------------------------------------------------------------------
# MeshConfig (istiod's meshConfig value), checked against the vendored config.proto
# --------------------------------------------------------------------------------------------------

_PROTO_SCALARS = {
    "string": str, "bool": bool, "int32": int, "int64": int, "uint32": int, "uint64": int,
    "float": (int, float), "double": (int, float), "bytes": str,
}
# Well-known wrapper/struct types: their JSON form is the wrapped value or free-form JSON.
_PROTO_WELL_KNOWN = {
    "google.protobuf.Duration": str, "google.protobuf.BoolValue": bool, "google.protobuf.UInt32Value": int,
    "google.protobuf.Int32Value": int, "google.protobuf.Int64Value": int, "google.protobuf.UInt64Value": int,
    "google.protobuf.DoubleValue": (int, float), "google.protobuf.FloatValue": (int, float),
    "google.protobuf.StringValue": str, "google.protobuf.Struct": dict, "google.protobuf.Value": object,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@functools.cache
def mesh_config_messages(istio_version: str = DEFAULT_ISTIO_VERSION) -> dict[str, dict]:
    """Messages and enums of mesh/v1alpha1/config.proto: name (qualified within the file) -> description.

    The file is parsed by proto-schema-parser. It is not compiled to descriptors: it imports Istio protos
    that are not vendored (proxy.proto, destination_rule.proto, ...), so fields of their types are
    checked by name only (see mesh_config_errors).
    """
    document = ProtoParser().parse((schema_dir(istio_version) / "mesh-config.proto").read_text())
    types: dict[str, dict] = {}

    def add_fields(elements: list, message: str) -> None:
        for element in elements:
            if isinstance(element, proto_ast.OneOf):
                add_fields(element.elements, message)  # a oneof's fields are the message's own in JSON
            elif isinstance(element, proto_ast.Field):
                repeated = element.cardinality == proto_ast.FieldCardinality.REPEATED
                types[message]["fields"][_camel(element.name)] = {
                    "type": element.type, "repeated": repeated, "scope": message}
            elif isinstance(element, proto_ast.MapField):
                types[message]["fields"][_camel(element.name)] = {"type": "map", "repeated": False, "scope": message}

    def add_types(elements: list, scope: str) -> None:
        for element in elements:
            if not isinstance(element, (proto_ast.Message, proto_ast.Enum)):
                continue
            qualified = f"{scope}.{element.name}" if scope else element.name
            if isinstance(element, proto_ast.Message):
                types[qualified] = {"kind": "message", "fields": {}, "values": set()}
                add_fields(element.elements, qualified)
                add_types(element.elements, qualified)
            else:
                values = {value.name for value in element.elements if isinstance(value, proto_ast.EnumValue)}
                types[qualified] = {"kind": "enum", "fields": {}, "values": values}

    add_types(document.file_elements, "")
    return types


def _resolve_proto_type(name: str, scope: str, types: Mapping[str, dict]) -> str | None:
    parts = scope.split(".") if scope else []
    while True:
        candidate = ".".join([*parts, name]) if parts else name
        if candidate in types:
            return candidate
        if not parts:
            return None
        parts.pop()


def mesh_config_errors(value: Any, where: str = "meshConfig", istio_version: str = DEFAULT_ISTIO_VERSION) -> list[str]:
    """Errors of a meshConfig value against MeshConfig in config.proto.

    Fields of messages defined in config.proto are checked strictly (unknown fields, enum values, scalar
    types). Fields whose type is defined in another proto file (e.g. ``defaultConfig``: ProxyConfig in
    proxy.proto) are accepted as given: only their name is checked.
    """
    return _check_message(value, "MeshConfig", mesh_config_messages(istio_version), where)


def _check_message(value: Any, message: str, types: Mapping[str, dict], where: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where}: expected a mapping ({message}), got {type(value).__name__}"]
    errors: list[str] = []
    fields = types[message]["fields"]
    for key, sub_value in value.items():
        field = fields.get(key)
        if field is None:
            errors.append(f"{where}.{key} is not a field of {message}; fields: {sorted(fields)}")
            continue
        items = sub_value if field["repeated"] else [sub_value]
        if field["repeated"] and not isinstance(sub_value, list):
            errors.append(f"{where}.{key}: expected a list")
            continue
        for item in items:
            errors.extend(_check_field(item, field, types, f"{where}.{key}"))
    return errors


def _check_field(value: Any, field: Mapping[str, Any], types: Mapping[str, dict], where: str) -> list[str]:
    field_type = field["type"]
    if field_type == "map":
        return [] if isinstance(value, Mapping) else [f"{where}: expected a mapping"]
    python_type = _PROTO_SCALARS.get(field_type) or _PROTO_WELL_KNOWN.get(field_type)
    if python_type is not None:
        ok = python_type is object or (isinstance(value, python_type) and not (
            python_type is not bool and isinstance(value, bool)))
        if python_type in (int, (int, float)) and isinstance(value, float) and not math.isfinite(value):
            ok = False
        return [] if ok else [f"{where}: expected {field_type}, got {value!r}"]
    resolved = _resolve_proto_type(field_type, field["scope"], types)
    if resolved is None:
        return []  # defined in another proto file: only the field name was checked
    if types[resolved]["kind"] == "enum":
        allowed = types[resolved]["values"]
        return [] if value in allowed else [f"{where}: {value!r} is not one of {sorted(allowed)}"]
    return _check_message(value, resolved, types, where)
