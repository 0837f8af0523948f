"""Istio HTTP routes: a timeout on every forwarding route, and retries that cannot repeat a mutation.

Plain functions over a route as Istio's HTTPRoute JSON (camelCase). The pack's
`virtualservice-timeouts-retries` policy applies them to every VirtualService, and the program's
components can call `retry_problems` / `retry_is_safe` on the routes they build, so that there is one
retry rule. Nothing here needs pulumi-policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

from .values import UNKNOWN, elements, get, number

# Envoy retry conditions under which the upstream has certainly not processed the request, so that a
# retry cannot repeat a GraphQL mutation (an order placed twice). Anything else (5xx, reset,
# gateway-error, retriable-status-codes, ...) is only safe when every match is an idempotent method.
SAFE_RETRY_ON = frozenset({"connect-failure", "refused-stream", "reset-before-request", "envoy-ratelimited"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_RETRY_ATTEMPTS = 3

_DURATION = re.compile(r"^(\d+(\.\d+)?(h|m|s|ms|us|µs|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration_seconds(text: Any) -> Optional[float]:
    """A protobuf/Go duration such as "10s" or "1m30s" in seconds; None if it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text):
        return None
    return sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))


_METHOD_ALTERNATION = re.compile(r"^\^?\(?([A-Z]+(?:\|[A-Z]+)*)\)?\$?$")


def match_methods(method: Any) -> Optional[set[str]]:
    """The HTTP methods a route match's `method` admits, when it names them (exact, or a regex like ^(GET|HEAD)$)."""
    exact, regex = get(method, "exact"), get(method, "regex")
    if isinstance(exact, str):
        return {exact.upper()}
    if isinstance(regex, str):
        found = _METHOD_ALTERNATION.match(regex)
        return set(found.group(1).split("|")) if found else None
    return None


def idempotent_only(route: Any) -> Any:
    """Whether every match of the route admits only idempotent methods; UNKNOWN when a match is unknown."""
    matches = get(route, "match")
    if matches is UNKNOWN:
        return UNKNOWN
    if not elements(matches):
        return False
    verdict: Any = True
    for match in elements(matches):
        method = get(match, "method")
        if UNKNOWN in (match, method, get(method, "exact"), get(method, "regex")):
            verdict = UNKNOWN
            continue
        methods = match_methods(method)
        if methods is None or not methods <= IDEMPOTENT_METHODS:
            return False
    return verdict


def _label(route: Any) -> str:
    name = get(route, "name")
    return f"route {name!r}" if isinstance(name, str) else "route"


def timeout_problems(route: Any, label: Optional[str] = None) -> list[str]:
    """What is wrong with a forwarding route's timeout: none, or not a positive duration."""
    label = label or _label(route)
    timeout = get(route, "timeout")
    if timeout is None:
        return [f"{label} has no timeout; without one a slow upstream holds the caller's connection "
                f"forever (Istio sets none by default)"]
    if timeout is not UNKNOWN and not duration_seconds(timeout):
        return [f"{label}: timeout {timeout!r} is not a positive duration such as '10s'"]
    return []


def retry_problems(route: Any, label: Optional[str] = None) -> list[str]:
    """What makes a route's retries unsafe; empty when they cannot repeat a request the upstream processed.

    Retries must be declared (Istio's default retries on 503); with attempts, at most MAX_RETRY_ATTEMPTS,
    a `retryOn` limited to SAFE_RETRY_ON unless every match is an idempotent method, and a
    `perTryTimeout` no longer than the route's timeout. A value not known yet passes.
    """
    label = label or _label(route)
    retries = get(route, "retries")
    if retries is UNKNOWN:
        return []
    if retries is None:
        return [f"{label} declares no retries, so Istio's default applies (2 attempts, including on "
                f"503), which can repeat a mutation; set retries.attempts 0 or a safe retryOn"]
    attempts = number(get(retries, "attempts", default=0))
    if attempts is UNKNOWN or not attempts:
        return []
    problems = []
    if attempts > MAX_RETRY_ATTEMPTS:
        problems.append(f"{label}: retries.attempts is {attempts:g}; at most {MAX_RETRY_ATTEMPTS}, so that "
                        f"retries cannot multiply load during an outage")
    retry_on = get(retries, "retryOn")
    if retry_on is UNKNOWN:
        return problems
    conditions = {c.strip() for c in str(retry_on or "").split(",") if c.strip()}
    unsafe = sorted(c for c in conditions if c not in SAFE_RETRY_ON)
    if not conditions:
        problems.append(f"{label}: retries.retryOn is not set, so Istio retries on 503 and resets too; list "
                        f"only {', '.join(sorted(SAFE_RETRY_ON))}")
    elif unsafe and idempotent_only(route) is False:
        problems.append(f"{label}: retries.retryOn includes {', '.join(unsafe)}, which can repeat a request "
                        f"the upstream already processed; only {', '.join(sorted(SAFE_RETRY_ON))} are safe "
                        f"unless every match is a {'/'.join(sorted(IDEMPOTENT_METHODS))} request")
    per_try = duration_seconds(get(retries, "perTryTimeout"))
    seconds = duration_seconds(get(route, "timeout"))
    if per_try and seconds and per_try > seconds:
        problems.append(f"{label}: retries.perTryTimeout is longer than the route's timeout")
    return problems


def retry_is_safe(route: Mapping[str, Any]) -> bool:
    """True when the route's retries pass the pack's retry rule (`retry_problems` finds nothing)."""
    return not retry_problems(route)


def http_route_problems(spec: Any) -> list[str]:
    """Timeout and retry problems of every forwarding HTTP route of a VirtualService spec."""
    problems = []
    for index, route in enumerate(elements(get(spec, "http"))):
        if route is UNKNOWN or get(route, "route") is None:
            continue  # redirects and direct responses forward nothing
        label = f"http[{index}]" + (f" ({get(route, 'name')})" if isinstance(get(route, "name"), str) else "")
        problems += timeout_problems(route, label) + retry_problems(route, label)
    return problems
