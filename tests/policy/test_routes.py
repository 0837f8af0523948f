"""The retry rule as plain functions: what the pack applies to every VirtualService and components call."""

from __future__ import annotations

import subprocess
import sys

import pytest

from policy.eks_istio_shop.routes import duration_seconds, http_route_problems, retry_is_safe, retry_problems
from tests.support import ROOT

DESTINATION = [{"destination": {"host": "orders"}}]


def route(retries, match=None, timeout="10s"):
    found = {"name": "r", "route": DESTINATION, "timeout": timeout, "retries": retries}
    if match is not None:
        found["match"] = match
    return found


@pytest.mark.parametrize("retries", [
    {"attempts": 0},
    {"attempts": 2, "perTryTimeout": "2s", "retryOn": "connect-failure,refused-stream,reset-before-request"},
    {"attempts": 3, "retryOn": "envoy-ratelimited"},
])
def test_retries_that_cannot_repeat_a_processed_request_are_safe_for_any_method(retries):
    assert retry_is_safe(route(retries))
    assert retry_is_safe(route(retries, match=[{"method": {"exact": "POST"}}]))


def test_retrying_errors_is_safe_only_when_every_match_is_idempotent():
    after_the_request = {"attempts": 2, "retryOn": "5xx,reset,gateway-error"}
    assert retry_is_safe(route(after_the_request, match=[{"method": {"regex": "^(GET|HEAD)$"}}]))
    assert retry_is_safe(route(after_the_request, match=[{"method": {"exact": "OPTIONS"}}]))
    for match in ([{"method": {"regex": "^(GET|POST)$"}}], [{"uri": {"prefix": "/"}}], None,
                  [{"method": {"exact": "GET"}}, {"uri": {"exact": "/graphql"}}]):
        [problem] = retry_problems(route(after_the_request, match=match))
        assert "5xx, gateway-error, reset" in problem and "route 'r'" in problem


@pytest.mark.parametrize("retries, expected", [
    (None, "declares no retries"),
    ({"attempts": 2}, "retryOn is not set"),
    ({"attempts": 4, "retryOn": "connect-failure"}, "at most 3"),
    ({"attempts": 2, "retryOn": "connect-failure", "perTryTimeout": "11s"}, "perTryTimeout is longer"),
])
def test_unsafe_or_undeclared_retries_are_named(retries, expected):
    problems = retry_problems(route(retries))
    assert len(problems) == 1 and expected in problems[0]
    assert not retry_is_safe(route(retries))


def test_only_forwarding_routes_need_a_positive_timeout():
    redirect = {"redirect": {"uri": "/graphql"}}
    safe = {"attempts": 0}
    assert http_route_problems({"http": [redirect, route(safe)]}) == []
    [problem] = http_route_problems({"http": [redirect, route(safe, timeout=None)]})
    assert problem.startswith("http[1] (r) has no timeout")
    assert "not a positive duration" in http_route_problems({"http": [route(safe, timeout="0s")]})[0]


@pytest.mark.parametrize("text, seconds", [("10s", 10.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5h", 5400.0),
                                           ("0s", 0.0), ("10", None), ("ten seconds", None), (10, None)])
def test_durations_read_as_seconds(text, seconds):
    assert duration_seconds(text) == seconds


def test_the_retry_rule_imports_without_pulumi_policy():
    """The Pulumi program's environment has no pulumi-policy; its components still call the pack's rule."""
    program = ("import sys; sys.modules['pulumi_policy'] = None\n"
               "from policy.eks_istio_shop.routes import retry_is_safe\n"
               "print(retry_is_safe({'route': [], 'timeout': '5s', 'retries': {'attempts': 0}}))")
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
