"""The smoke check (tools/smoke.py), offline: against the real services started as `make dev` starts
them, against an https stand-in for the load balancer that fails in each way a deploy can, and its
parts (waiting, the Pulumi CLI, the report) on their own. Everything listens on 127.0.0.1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.smoke_stub import (Behaviour, Certificates, ShopStub, SilentListener, make_certificates,
                                       tls_1_1_unavailable)
from tools import smoke

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
if str(SERVICES) not in sys.path:
    sys.path.insert(0, str(SERVICES))

from run_local import free_port, start_service, start_stack, stop_service, wait_ready  # noqa: E402


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = smoke.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def line_of(out: str, check: str) -> str:
    """The printed result line of one check."""
    lines = [line for line in out.splitlines() if re.match(rf"^(PASS|FAIL|SKIP)\s+{re.escape(check)}\s", line)]
    assert len(lines) == 1, out
    return lines[0]


# ---------------------------------------------------------------------------------------------
# The real services, as `make dev` runs them (services/run_local.py)


@pytest.fixture(scope="module")
def local_shop(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("smoke-service-logs")
    handles = {name: (log_dir / f"{name}.log").open("wb") for name in ("products", "orders", "graphql")}
    services = start_stack({name: free_port() for name in handles}, stdout_for=handles)
    try:
        yield services
    finally:
        for name in ("graphql", "products", "orders"):
            stop_service(services[name], grace=5)
        for handle in handles.values():
            handle.close()


def test_local_services_pass_and_the_report_says_why_tls_is_skipped(local_shop, capsys, tmp_path):
    report = tmp_path / "smoke.md"
    url = local_shop["graphql"].url
    code, out, err = run(capsys, url, "--timeout", "20", "--markdown", str(report))
    assert code == 0, out + err
    for check in ("reachable", "graphql", "playground", "/orders hidden", "/products hidden"):
        assert line_of(out, check).startswith("PASS"), out
    # The real query through the real services: orders, their items, each item's product.
    assert re.search(r"\d+ orders, \d+ items, each with its product", line_of(out, "graphql"))
    # The GraphQL port serves only GraphQL and the playground: the backends' paths are its 404s.
    assert "answered 404" in line_of(out, "/orders hidden")
    for check in ("tls", "https-redirect"):
        assert line_of(out, check).startswith("SKIP") and "http:// URL" in line_of(out, check)
    text = report.read_text()
    assert "Smoke check: ✅ passed" in text
    for shown in (f"- Shop: {url}", f"- GraphQL endpoint: {url}/graphql", f"- Playground: {url}/playground",
                  "| tls | ➖ skipped | - | http:// URL: no domain, so no TLS listener and no redirect |"):
        assert shown in text
    assert re.search(r"\| graphql \| ✅ pass \| \d+ ms \|", text), text


def test_a_backend_published_in_place_of_graphql_is_never_taken_for_the_shop(local_shop, capsys):
    # The orders service itself at the public address: its 404 for /playground is waited out, never "reachable".
    code, out, err = run(capsys, local_shop["orders"].url, "--timeout", "2")
    assert code == 1
    assert line_of(out, "reachable").startswith("FAIL") and "last: answered 404" in line_of(out, "reachable")
    assert line_of(out, "graphql").startswith("SKIP")
    assert "answered 404" in err


def test_graphql_errors_from_the_real_service_fail_the_check(local_shop, capsys, tmp_path):
    # A GraphQL service whose orders backend is gone answers 200 with errors: the check must not pass.
    log = (tmp_path / "graphql.log").open("wb")
    broken = start_service("graphql", free_port(), stdout=log, extra_env={
        "PRODUCTS_URL": local_shop["products"].url, "ORDERS_URL": f"http://127.0.0.1:{free_port()}"})
    try:
        wait_ready(broken)
        code, out, _ = run(capsys, broken.url, "--timeout", "10")
    finally:
        stop_service(broken, grace=5)
        log.close()
    assert code == 1
    assert "answered with errors:" in line_of(out, "graphql"), out


# ---------------------------------------------------------------------------------------------
# An https stand-in for the load balancer, failing in one way at a time


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("smoke-certificates"))


@pytest.fixture
def stub(certificates):
    started: list[ShopStub] = []

    def start(**behaviour) -> ShopStub:
        shop = ShopStub(certificates, Behaviour(**behaviour))
        started.append(shop)
        return shop

    yield start
    for shop in started:
        shop.close()


def check_stub(capsys, shop: ShopStub, certificates: Certificates, *extra: str) -> tuple[int, str, str]:
    return run(capsys, shop.base_url, "--http-url", shop.http_url, "--ca-file", str(certificates.ca),
               "--timeout", "5", *extra)


def test_a_healthy_https_shop_passes_every_check(stub, certificates, capsys):
    shop = stub()
    code, out, err = check_stub(capsys, shop, certificates)
    assert code == 0, out + err
    assert "SKIP" not in out
    assert re.search(r"^PASS\s+tls\s.*TLSv1\.[23] \(", out, re.M), out
    assert f"301 to {shop.base_url}/playground" in line_of(out, "https-redirect")
    assert "2 orders, 3 items, each with its product" in line_of(out, "graphql")
    # The check asked what a user asks: a POSTed query for orders, their items and products.
    posts = [body for method, path, body in shop.requests if method == "POST" and path == "/graphql"]
    assert len(posts) == 1 and all(word in posts[0].decode() for word in ("orders", "items", "product"))
    assert {path for method, path, _ in shop.requests if method == "GET"} >= {"/playground", "/orders", "/products"}
    # The playground's redirect to the endpoint is followed, and the page is judged there.
    assert line_of(out, "playground").endswith("200, an HTML page at /graphql"), out
    assert err.strip().splitlines() == [], err  # no progress lines: it answered at once


def test_a_playground_served_in_place_passes_too(stub, certificates, capsys):
    code, out, err = check_stub(capsys, stub(playground="in-place"), certificates)
    assert code == 0, out + err
    assert line_of(out, "playground").endswith("200, an HTML page"), out


def test_a_shop_that_answers_503_first_is_waited_for(stub, certificates, capsys):
    shop = stub(unavailable_for=1)
    code, out, err = check_stub(capsys, shop, certificates)
    assert code == 0, out + err
    assert "answered 302 (2 attempts)" in line_of(out, "reachable")
    assert re.search(rf"^waiting for {re.escape(shop.base_url)}/playground \.\.\. \d+s/5s: answered 503$", err, re.M), err


def test_a_route_not_programmed_yet_is_waited_for(stub, certificates, capsys):
    """The gateway answers 404 for /playground until its route exists: not yet reachable."""
    shop = stub(unavailable_for=2, unavailable_status=404)
    code, out, err = check_stub(capsys, shop, certificates)
    assert code == 0, out + err
    assert "answered 302 (3 attempts)" in line_of(out, "reachable")
    assert len(re.findall(r"/playground \.\.\. \d+s/5s: answered 404$", err, re.M)) == 2, err


def test_a_playground_that_stays_404_fails_reachable_with_the_reason(stub, certificates, capsys):
    code, out, _ = run(capsys, stub(playground="missing").base_url, "--ca-file", str(certificates.ca),
                       "--timeout", "1.5")
    assert code == 1
    assert "did not answer within 1.5s" in line_of(out, "reachable") and "last: answered 404" in line_of(out, "reachable")


@pytest.mark.parametrize("status, passes, reason", [
    (404, True, "answered 404 (not served)"),
    (403, True, "answered 403 (refused, not served)"),
    (503, False, "answered 503 (upstream connect error): a server error, not the gateway's 404, so whether /orders "
                 "is served cannot be told"),
    (500, False, "a server error"),
])
def test_hidden_paths_need_a_4xx_and_a_5xx_fails(stub, certificates, capsys, status, passes, reason):
    code, out, _ = check_stub(capsys, stub(hidden_status=status), certificates)
    assert code == (0 if passes else 1), out
    line = line_of(out, "/orders hidden")
    assert line.startswith("PASS" if passes else "FAIL") and reason in line, line


@pytest.mark.parametrize("behaviour, check, reason", [
    ({"redirect": "none"}, "https-redirect", "answered 200 (served the page over plain HTTP); expected a redirect to "),
    ({"redirect": "to-http"}, "https-redirect", "answered 301 to http://127.0.0.1:"),
    ({"redirect": "other-host"}, "https-redirect", "answered 301 to https://shop.example.com/playground; expected "),
    ({"redirect": "drops-path"}, "https-redirect", "/; expected https://127.0.0.1:"),
    ({"graphql": "errors"}, "graphql", "answered with errors: orders service unavailable"),
    ({"graphql": "empty"}, "graphql", "answered no orders (data.orders.nodes is empty)"),
    ({"playground": "json"}, "playground", "answered 200 with application/json, not an HTML page"),
    ({"playground": "off-site"}, "playground", "/playground: answered 302; expected 200 with the GraphiQL page"),
    ({"exposed": frozenset({"/orders"})}, "/orders hidden",
     "answered 200 with the service's JSON: /orders is reachable from outside"),
    ({"exposed": frozenset({"/products"})}, "/products hidden", "/products is reachable from outside"),
])
def test_each_way_of_failing_fails_with_its_reason(stub, certificates, capsys, behaviour, check, reason):
    code, out, err = check_stub(capsys, stub(**behaviour), certificates)
    assert code == 1
    assert line_of(out, check).startswith("FAIL") and reason in line_of(out, check), out
    # Only that check fails, and the summary names it.
    assert [line.split()[1] for line in out.splitlines() if line.startswith("FAIL")] == [check.split()[0]]
    assert re.search(rf"^smoke: FAILED \(.*\): {re.escape(check)}$", err, re.M), err


def test_tls_1_1_only_fails_and_names_the_version(stub, certificates, capsys):
    unavailable = tls_1_1_unavailable(certificates)
    if unavailable:
        pytest.skip(unavailable)
    code, out, _ = check_stub(capsys, stub(tls_1_1_only=True), certificates)
    assert code == 1
    assert "negotiated TLSv1.1; TLS 1.2 or 1.3 is required" in line_of(out, "tls"), out
    # Nothing more can be asked over that TLS; plain HTTP still can.
    assert line_of(out, "graphql").startswith("SKIP") and "see tls" in line_of(out, "graphql")
    assert line_of(out, "https-redirect").startswith("PASS")


def test_an_untrusted_certificate_fails_tls(stub, capsys):
    shop = stub()
    code, out, _ = run(capsys, shop.base_url, "--http-url", shop.http_url, "--timeout", "5")
    assert code == 1
    assert "certificate not trusted: unable to get local issuer certificate" in line_of(out, "tls"), out


def test_a_shop_that_never_answers_times_out(capsys, tmp_path):
    silent = SilentListener()
    try:
        code, out, err = run(capsys, silent.url, "--timeout", "1.5", "--markdown", str(tmp_path / "r.md"))
    finally:
        silent.close()
    assert code == 1
    # How many attempts fit in 1.5 s depends on the machine's load; the reason must not.
    assert re.search(rf"{re.escape(silent.url)}/playground did not answer within 1.5s \(\d+ attempts?\); "
                     rf"last: no answer within", line_of(out, "reachable")), out
    assert line_of(out, "graphql").startswith("SKIP") and "never answered" in line_of(out, "graphql")
    assert "waiting for" in err
    assert "❌ failed" in (tmp_path / "r.md").read_text()


def test_a_closed_port_is_retried_with_progress_until_the_timeout(capsys):
    url = f"https://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, url, "--timeout", "1.5")
    assert code == 1
    assert "last: connection refused" in line_of(out, "reachable")
    progress = re.findall(r"^waiting for .*/playground \.\.\. (\d+)s/1\.5s: connection refused$", err, re.M)
    # Tried at once, after 1 s of backoff, and once more when the time was up.
    assert len(progress) == 3, err


def test_python_dash_m_with_ssl_cert_file_exits_by_the_result(stub, certificates, tmp_path):
    # As the workflows run it: its own process, the CA given through OpenSSL's environment variable.
    env = {**os.environ, "SSL_CERT_FILE": str(certificates.ca)}
    for behaviour, expected in (({}, 0), ({"playground": "missing"}, 1)):
        shop = stub(**behaviour)
        done = subprocess.run([sys.executable, "-m", "tools.smoke", shop.base_url, "--http-url", shop.http_url,
                               "--timeout", "5"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == expected, done.stdout + done.stderr
        assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# The wait, with a clock that does not need real time


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RefusingHttp:
    def __init__(self, clock: FakeClock, answer_after: float | None = None) -> None:
        self.clock = clock
        self.answer_after = answer_after
        self.timeouts: list[float] = []

    def request(self, url: str, timeout: float, **_: object) -> smoke.Answer:
        self.timeouts.append(timeout)
        if self.answer_after is not None and self.clock.now >= self.answer_after:
            return smoke.Answer(302, {}, b"")
        self.clock.now += 0.1
        raise smoke.RequestFailed("the name does not resolve (Name or service not known)")


def wait(http: RefusingHttp, clock: FakeClock, timeout: float) -> tuple[bool, list[str], list[smoke.CheckResult]]:
    progress: list[str] = []
    check = smoke.SmokeCheck(smoke.parse_base_url("https://shop.example.com"), timeout, http, None,
                             progress=progress.append, on_result=lambda _: None, clock=lambda: clock.now,
                             sleep=clock.sleep)
    return check.wait_until_answers(), progress, check.results


def test_waiting_backs_off_to_15_seconds_and_stops_at_the_timeout():
    clock = FakeClock()
    http = RefusingHttp(clock)
    answered, progress, results = wait(http, clock, timeout=60)
    assert not answered
    assert clock.sleeps[:6] == [1, 2, 4, 8, 15, 15]
    assert clock.now <= 60 + 0.1  # the last request's own time is all it may overrun
    assert http.timeouts[0] == smoke.REQUEST_TIMEOUT_SECONDS
    assert http.timeouts[-1] <= 1  # the last request only gets the time that is left
    assert progress[0] == "waiting for https://shop.example.com/playground ... 0s/60s: " \
                          "the name does not resolve (Name or service not known)"
    assert results[0].outcome == smoke.FAIL and "did not answer within 60s" in results[0].detail


def test_waiting_ends_when_the_name_resolves():
    clock = FakeClock()
    answered, progress, results = wait(RefusingHttp(clock, answer_after=30), clock, timeout=900)
    assert answered and results[0].outcome == smoke.PASS
    assert "answered 302" in results[0].detail
    # Asked at 0, 1, 3, 7 and 15 s (each time it said why it was still waiting), then at 30 s.
    assert clock.sleeps == [1, 2, 4, 8, 15] and len(progress) == 5


# ---------------------------------------------------------------------------------------------
# The stack's URL through the Pulumi CLI


def fake_pulumi(directory: Path, script: str) -> None:
    path = directory / "pulumi"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_a_stack_name_reads_the_url_output_with_pulumi(local_shop, capsys, tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    fake_pulumi(tmp_path, f'echo "$PWD $*" >> {calls}\necho {local_shop["graphql"].url}\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    code, out, err = run(capsys, "dev", "--timeout", "10")
    assert code == 0, out + err
    assert calls.read_text().strip() == f"{REPO} stack output url --stack dev"
    assert f"checking {local_shop['graphql'].url}" in out


def test_a_stack_without_a_url_output_is_a_clear_error(capsys, tmp_path, monkeypatch):
    fake_pulumi(tmp_path, "echo \"error: current stack does not have output property 'url'\" >&2\nexit 255\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    report = tmp_path / "r.md"
    code, out, err = run(capsys, "pr-12", "--markdown", str(report))
    assert code == 2
    assert ("could not read the `url` output of stack 'pr-12' (`pulumi stack output url --stack pr-12`): "
            "error: current stack does not have output property 'url'") in err
    assert "Traceback" not in err
    assert "Could not run: could not read the `url` output" in report.read_text()


def test_no_pulumi_cli_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    code, _, err = run(capsys, "dev")
    assert code == 2
    assert "the Pulumi CLI is not installed" in err and "pass the shop's URL instead" in err


@pytest.mark.parametrize("argv, message", [
    (["ftp://shop.example.com"], "is neither a URL (http:// or https://) nor a stack name"),
    (["https://"], "has no host"),
    (["https://shop.example.com/?x=1"], "must be a base URL, without ?query or #fragment"),
    (["https://shop.example.com", "--http-url", "https://shop.example.com"], "--http-url"),
    (["https://shop.example.com", "--ca-file", "/nonexistent/ca.pem"], "--ca-file: cannot load"),
])
def test_bad_arguments_are_named(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_timeout_is_refused_by_name(capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        smoke.main(["https://shop.example.com", "--timeout", value])
    assert exit_info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Parts on their own


def test_the_markdown_report_is_appended(local_shop, capsys, tmp_path):
    report = tmp_path / "summary.md"
    report.write_text("# Demo stack pr-12\n\n")
    run(capsys, local_shop["graphql"].url, "--timeout", "10", "--markdown", str(report))
    run(capsys, local_shop["orders"].url, "--timeout", "1.5", "--markdown", str(report))
    text = report.read_text()
    assert text.startswith("# Demo stack pr-12\n")
    assert text.count("### Smoke check:") == 2
    assert text.index("✅ passed") < text.index("❌ failed")
    assert "| reachable | ❌ fail |" in text and "last: answered 404" in text


@pytest.mark.parametrize("location, passes", [
    ("https://shop.example.com/playground", True),
    ("https://SHOP.example.com:443/playground", True),
    ("https://shop.example.com:8443/playground", False),
    ("/playground", False),
    ("https://shop.example.com/playground/", False),
])
def test_the_redirect_must_keep_host_and_path(location, passes):
    urls = smoke.parse_base_url("https://shop.example.com")
    answer = smoke.Answer(301, {"location": location}, b"")
    assert smoke.judge_redirect(answer, urls, "/playground")[0] is passes


def test_orders_without_items_or_products_fail_graphql():
    body = b'{"data": {"orders": {"nodes": [{"id": "o1", "items": [{"productId": "p9", "product": null}]}]}}}'
    passed, detail = smoke.judge_graphql(smoke.Answer(200, {"content-type": "application/json"}, body))
    assert not passed and detail == "1 of 1 items have no product (productId p9)"
    body = b'{"data": {"orders": {"nodes": [{"id": "o1", "items": []}]}}}'
    passed, detail = smoke.judge_graphql(smoke.Answer(200, {"content-type": "application/json"}, body))
    assert not passed and detail == "answered orders without any items (1 orders)"
    passed, detail = smoke.judge_graphql(smoke.Answer(200, {"content-type": "text/html"}, b"<html>"))
    assert not passed and "not JSON" in detail


def test_the_checked_paths_are_the_programs_public_routes():
    from components.microservice import MeshRoute, virtual_service_spec
    from components.shop import GRAPHQL_PATH, PLAYGROUND_PATH, public_virtual_service_spec

    assert (smoke.GRAPHQL_PATH, smoke.PLAYGROUND_PATH) == (GRAPHQL_PATH, PLAYGROUND_PATH)
    spec = public_virtual_service_spec("shop.example.com", "e-commerce/shop", "graphql.e-commerce.svc", 8080)

    def routed(path: str) -> bool:
        for route in spec["http"]:
            for match in route.get("match", [{}]):
                uri = match.get("uri", {})
                if uri.get("exact") == path or path.startswith(uri.get("prefix", "\0")) or not uri:
                    return True
        return False

    assert routed(GRAPHQL_PATH) and routed(PLAYGROUND_PATH)
    assert not any(routed(path) for path in smoke.BACKEND_PATHS)
    # The backends' own routes are for the mesh only (no `gateways`), so the gateway cannot reach them.
    assert "gateways" not in virtual_service_spec("orders.e-commerce.svc", 8080, MeshRoute())
