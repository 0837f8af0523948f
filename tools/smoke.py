"""Smoke check: does a deployed shop answer the way a user would use it?

    python -m tools.smoke <stack-or-url> [--timeout SECONDS] [--markdown PATH] [--ca-file PEM] [--http-url URL]

The argument is the shop's base URL when it starts with http:// or https://; otherwise it is a stack
name and the URL is the stack's `url` output (`pulumi stack output url --stack <name>`).

The checks, in order (each prints its result and timing as it finishes):
1. reachable: GET <base>/playground until it answers neither 404 nor 5xx, within --timeout (default
   900 s), retrying with backoff. Right after `pulumi up` the name may not resolve yet and the load
   balancer's targets take minutes to pass their health checks; the gateway answers 404 until the
   route is programmed and 503 until the service behind it is ready.
   The playground is asked because its answer comes from the GraphQL service, through the load
   balancer, the ingress gateway and the public routes: the whole path a user takes.
2. tls (https only): the negotiated TLS version must be 1.2 or 1.3. The certificate must verify.
3. https-redirect (https only): plain HTTP (port 80, or --http-url) must answer with a redirect
   to the same host and path over https.
4. graphql: POST <base>/graphql with a query for orders, their items and each item's product must
   answer 200 without errors, with at least one order, items, and a product for every item.
5. playground: GET <base>/playground must answer 200 with an HTML page, after at most one redirect
   within the shop (the GraphQL service sends it on to /graphql, where Strawberry serves GraphiQL).
6. /orders hidden, /products hidden: the backends' REST paths must not be served from outside: the
   gateway's 404 for a path without a route (or another 4xx refusal) passes; a 2xx means it is
   served, a 3xx may lead to it, and a 5xx says something failed, so none of them pass.

With an http:// URL (no domain: the load balancer has no TLS listener) the TLS and redirect checks
are skipped, and the report says why.

Certificates are verified against the system's CAs. `--ca-file PEM` adds CAs to those; the
SSL_CERT_FILE environment variable (read by OpenSSL) replaces the system's bundle.

Exit codes: 0 every check passed (or was skipped); 1 a check failed; 2 the check could not start
(bad argument, no Pulumi CLI, no `url` output, report not writable).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_TIMEOUT_SECONDS = 900.0
# One request's limit: above the public GraphQL route's timeout (10 s, components/shop.py), so the
# gateway's own answer arrives before the client gives up.
REQUEST_TIMEOUT_SECONDS = 15.0
# The playground answers these while the stack settles: 404 until the gateway's route is programmed,
# 5xx (503 "no healthy upstream") until the service behind it is ready. Every 5xx is waited on too.
WAITING_STATUSES = frozenset({404})
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 15.0
# Answers are small; anything larger is read only this far.
MAX_BODY_BYTES = 2_000_000

# The public routes (components/shop.py) and the backends' REST paths (services/graphql/app/schema.py).
GRAPHQL_PATH = "/graphql"
PLAYGROUND_PATH = "/playground"
BACKEND_PATHS = ("/orders", "/products")

ACCEPTED_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}

# Orders with their items and each item's product: the query that needs all three services.
SMOKE_QUERY = ("query SmokeCheck { orders(first: 5) { nodes { id items { productId quantity "
               "product { id name } } } } }")

PASS, FAIL, SKIP = "pass", "fail", "skip"

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")


class SetupError(Exception):
    """The check cannot start: the reason is printed as it is."""


# ---------------------------------------------------------------------------------------------
# The shop's URLs


@dataclass(frozen=True)
class ShopUrls:
    base: str  # scheme://host[:port][/prefix], no trailing slash
    http_url: str  # where plain HTTP is asked for the redirect (https only)

    @property
    def parts(self):
        return urlsplit(self.base)

    @property
    def is_https(self) -> bool:
        return self.parts.scheme == "https"

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    @property
    def port(self) -> int:
        return self.parts.port or DEFAULT_PORTS[self.parts.scheme]

    def at(self, path: str) -> str:
        return self.base + path

    @property
    def graphql(self) -> str:
        return self.at(GRAPHQL_PATH)

    @property
    def playground(self) -> str:
        return self.at(PLAYGROUND_PATH)


def parse_base_url(text: str, http_url: Optional[str] = None) -> ShopUrls:
    """The shop's URLs from its base URL; a clear error for anything that is not one."""
    parts = urlsplit(text.strip())
    if parts.scheme not in DEFAULT_PORTS:
        raise SetupError(f"url: {text!r} must start with http:// or https://")
    try:
        parts.port
    except ValueError:
        raise SetupError(f"url: {text!r} has an invalid port") from None
    if not parts.hostname:
        raise SetupError(f"url: {text!r} has no host")
    if parts.query or parts.fragment:
        raise SetupError(f"url: {text!r} must be a base URL, without ?query or #fragment")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    if http_url is None:
        # The load balancer's port 80 listener, on the same name.
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        http_url = f"http://{host}{parts.path.rstrip('/')}"
    else:
        http_parts = urlsplit(http_url.strip())
        if http_parts.scheme != "http" or not http_parts.hostname:
            raise SetupError(f"--http-url: {http_url!r} must be an http:// URL with a host")
        http_url = f"http://{http_parts.netloc}{http_parts.path.rstrip('/')}"
    return ShopUrls(base=base, http_url=http_url)


def stack_url(stack: str) -> str:
    """The stack's `url` output, read with the Pulumi CLI from the project directory."""
    if not _STACK_NAME.match(stack):
        raise SetupError(f"stack: {stack!r} is neither a URL (http:// or https://) nor a stack name "
                         "(letters, digits, _ . - /)")
    command = ["pulumi", "stack", "output", "url", "--stack", stack]
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SetupError("the Pulumi CLI is not installed (needed to read the stack's `url` output); "
                         "install it (https://www.pulumi.com/docs/install/) or pass the shop's URL instead") from None
    except subprocess.TimeoutExpired:
        raise SetupError(f"`{' '.join(command)}` did not finish within 120 s") from None
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit code {result.returncode}"
        raise SetupError(f"could not read the `url` output of stack {stack!r} "
                         f"(`{' '.join(command)}`): {why}")
    url = result.stdout.strip()
    if not url.startswith(("http://", "https://")):
        raise SetupError(f"stack {stack!r}: its `url` output is {url!r}, not an http(s) URL; "
                         "has `pulumi up` finished for this stack?")
    return url


# ---------------------------------------------------------------------------------------------
# HTTP, one connection per request (the redirect must be seen, not followed)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text_excerpt(self, limit: int = 160) -> str:
        text = " ".join(self.body.decode("utf-8", "replace").split())
        return text if len(text) <= limit else text[:limit] + "..."


class RequestFailed(Exception):
    """No HTTP answer. `at_tls` when the server answered but the TLS handshake failed: waiting longer
    does not mend that."""

    def __init__(self, reason: str, at_tls: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at_tls = at_tls


def describe_failure(error: BaseException, timeout: float) -> RequestFailed:
    """A short, human reason for a request that got no answer."""
    if isinstance(error, socket.gaierror):
        return RequestFailed(f"the name does not resolve ({error.strerror or error})")
    if isinstance(error, ssl.SSLCertVerificationError):
        return RequestFailed(f"certificate not trusted: {error.verify_message or error.reason}", at_tls=True)
    if isinstance(error, ssl.SSLError):
        return RequestFailed(f"TLS handshake failed: {error.reason or error}", at_tls=True)
    if isinstance(error, (socket.timeout, TimeoutError)):
        return RequestFailed(f"no answer within {timeout:g}s")
    if isinstance(error, ConnectionRefusedError):
        return RequestFailed("connection refused")
    if isinstance(error, ConnectionResetError):
        return RequestFailed("connection reset")
    if isinstance(error, http.client.RemoteDisconnected):
        return RequestFailed("connection closed without an answer")
    if isinstance(error, http.client.HTTPException):
        return RequestFailed(f"not an HTTP answer ({type(error).__name__})")
    if isinstance(error, OSError):
        return RequestFailed(error.strerror or str(error) or type(error).__name__)
    return RequestFailed(str(error) or type(error).__name__)


class Http:
    def __init__(self, tls_context: ssl.SSLContext) -> None:
        self.tls_context = tls_context

    def request(self, url: str, timeout: float, method: str = "GET", body: Optional[bytes] = None,
                headers: Optional[Mapping[str, str]] = None) -> Answer:
        parts = urlsplit(url)
        if parts.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=self.tls_context)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, target, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            data = response.read(MAX_BODY_BYTES)
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        except (OSError, http.client.HTTPException) as error:
            raise describe_failure(error, timeout) from error
        finally:
            connection.close()


def tls_context(ca_file: Optional[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise SetupError(f"--ca-file: cannot load {ca_file!r}: {getattr(error, 'strerror', None) or error}") from None
    return context


def any_version_context() -> ssl.SSLContext:
    """Only to learn which version a server that refused TLS 1.2 and 1.3 speaks: no verification, every
    protocol and cipher this machine's OpenSSL still has."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    return context


def negotiate(host: str, port: int, context: ssl.SSLContext, timeout: float) -> tuple[str, str]:
    """The TLS version and cipher a handshake settles on."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return tls.version() or "unknown", (tls.cipher() or ("unknown",))[0]
    except OSError as error:
        raise describe_failure(error, timeout) from error


# ---------------------------------------------------------------------------------------------
# Judging answers: plain functions, each returns (passed, one-line detail)


def judge_tls_version(version: str) -> tuple[bool, str]:
    if version in ACCEPTED_TLS_VERSIONS:
        return True, version
    return False, f"negotiated {version}; TLS 1.2 or 1.3 is required"


def expected_redirect(urls: ShopUrls, path: str) -> str:
    port = "" if urls.port == DEFAULT_PORTS["https"] else f":{urls.port}"
    host = f"[{urls.host}]" if ":" in urls.host else urls.host
    return f"https://{host}{port}{urlsplit(urls.base).path}{path}"


def judge_redirect(answer: Answer, urls: ShopUrls, path: str) -> tuple[bool, str]:
    """Plain HTTP must redirect to the same host and path over https (port 443, or the base URL's)."""
    expected = expected_redirect(urls, path)
    location = answer.headers.get("location", "")
    if answer.status not in REDIRECT_STATUSES:
        what = "served the page over plain HTTP" if 200 <= answer.status < 300 else "did not redirect"
        return False, f"answered {answer.status} ({what}); expected a redirect to {expected}"
    if not location:
        return False, f"answered {answer.status} without a Location; expected {expected}"
    target = urlsplit(location)
    target_port = target.port if target.scheme in DEFAULT_PORTS and target.port else DEFAULT_PORTS.get(target.scheme)
    if (target.scheme != "https" or (target.hostname or "").lower() != urls.host.lower()
            or target_port != urls.port or target.path != urlsplit(expected).path):
        return False, f"answered {answer.status} to {location}; expected {expected}"
    return True, f"{answer.status} to {location}"


def judge_graphql(answer: Answer) -> tuple[bool, str]:
    if answer.status != 200:
        return False, f"answered {answer.status}: {answer.text_excerpt()}"
    try:
        document = json.loads(answer.body)
    except ValueError:
        return False, f"answered 200 with something that is not JSON ({answer.content_type or 'no content type'}): " \
                      f"{answer.text_excerpt()}"
    if not isinstance(document, dict):
        return False, f"answered 200 with JSON that is not a GraphQL response: {answer.text_excerpt()}"
    errors = document.get("errors") or []
    if errors:
        messages = [str(error.get("message", error)) if isinstance(error, dict) else str(error) for error in errors]
        more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
        return False, f"answered with errors: {messages[0]}{more}"
    orders = ((document.get("data") or {}).get("orders") or {})
    nodes = orders.get("nodes") if isinstance(orders, dict) else None
    if not isinstance(nodes, list):
        return False, "answered without orders (data.orders.nodes is missing)"
    if not nodes:
        return False, "answered no orders (data.orders.nodes is empty)"
    items = [item for order in nodes for item in (order.get("items") or [])]
    if not items:
        return False, f"answered orders without any items ({len(nodes)} orders)"
    missing = [item.get("productId", "?") for item in items
               if not isinstance(item.get("product"), dict) or not item["product"].get("name")]
    if missing:
        return False, f"{len(missing)} of {len(items)} items have no product (productId {', '.join(map(str, missing[:3]))})"
    return True, f"{len(nodes)} orders, {len(items)} items, each with its product"


def redirect_within(answer: Answer, url: str) -> Optional[str]:
    """Where a redirect from `url` leads, if it stays on the same scheme, host and port."""
    location = answer.headers.get("location", "")
    if answer.status not in REDIRECT_STATUSES or not location:
        return None
    target = urljoin(url, location)
    here, there = urlsplit(url), urlsplit(target)
    return target if (there.scheme, there.netloc.lower()) == (here.scheme, here.netloc.lower()) else None


def judge_playground(answer: Answer) -> tuple[bool, str]:
    if answer.status != 200:
        return False, f"answered {answer.status}; expected 200 with the GraphiQL page"
    head = answer.body[:4096].lower()
    if answer.content_type != "text/html" or b"<html" not in head:
        return False, f"answered 200 with {answer.content_type or 'no content type'}, not an HTML page"
    return True, "200, an HTML page"


def judge_hidden(answer: Answer, path: str) -> tuple[bool, str]:
    """The backends' paths have no public route: the gateway answers 404 (another 4xx is a refusal too).
    A 2xx means something serves them from outside; a 3xx or 5xx proves nothing either way."""
    if 200 <= answer.status < 300:
        shown = "the service's JSON" if answer.content_type == "application/json" else answer.content_type or "a body"
        return False, f"answered {answer.status} with {shown}: {path} is reachable from outside"
    if answer.status >= 500:
        return False, (f"answered {answer.status} ({answer.text_excerpt(80) or 'no body'}): a server error, not the "
                       f"gateway's 404, so whether {path} is served cannot be told")
    if not 400 <= answer.status < 500:
        return False, f"answered {answer.status}, not the gateway's 404: {path} may be served elsewhere"
    if answer.status != 404:
        return True, f"answered {answer.status} (refused, not served)"
    return True, "answered 404 (not served)"


# ---------------------------------------------------------------------------------------------
# Running the checks


@dataclass
class CheckResult:
    name: str
    outcome: str  # PASS, FAIL or SKIP
    detail: str
    seconds: Optional[float] = None


@dataclass
class Report:
    urls: Optional[ShopUrls]
    results: list[CheckResult] = field(default_factory=list)
    setup_error: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.setup_error is None and all(result.outcome != FAIL for result in self.results)


def format_seconds(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def retry_delays(first: float = FIRST_RETRY_SECONDS, limit: float = MAX_RETRY_SECONDS):
    """1, 2, 4, 8, then every `limit` seconds."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, limit)


class SmokeCheck:
    def __init__(self, urls: ShopUrls, timeout: float, http: Http, tls: ssl.SSLContext,
                 progress: Callable[[str], None], on_result: Callable[[CheckResult], None],
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.urls = urls
        self.timeout = timeout
        self.http = http
        self.tls = tls
        self.progress = progress
        self.on_result = on_result
        self.clock = clock
        self.sleep = sleep
        self.results: list[CheckResult] = []

    def record(self, name: str, outcome: str, detail: str, started: Optional[float] = None) -> None:
        seconds = None if started is None else self.clock() - started
        result = CheckResult(name, outcome, detail, seconds)
        self.results.append(result)
        self.on_result(result)

    def timed(self, name: str, check: Callable[[], tuple[bool, str]]) -> bool:
        started = self.clock()
        try:
            passed, detail = check()
        except RequestFailed as failure:
            passed, detail = False, failure.reason
        self.record(name, PASS if passed else FAIL, detail, started)
        return passed

    def run(self) -> list[CheckResult]:
        answered = self.wait_until_answers()
        names = ["tls", "https-redirect", "graphql", "playground"] + [f"{path} hidden" for path in BACKEND_PATHS]
        if not answered:
            for name in names:
                self.record(name, SKIP, "not run: the shop never answered")
            return self.results

        no_tls = "http:// URL: no domain, so no TLS listener and no redirect"
        tls_ok = True
        if self.urls.is_https:
            tls_ok = self.timed("tls", self.check_tls)
            self.timed("https-redirect", self.check_redirect)
        else:
            self.record("tls", SKIP, no_tls)
            self.record("https-redirect", SKIP, no_tls)

        checks: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
            ("graphql", self.check_graphql), ("playground", self.check_playground)]
        checks += [(f"{path} hidden", lambda path=path: self.check_hidden(path)) for path in BACKEND_PATHS]
        for name, check in checks:
            if tls_ok:
                self.timed(name, check)
            else:
                self.record(name, SKIP, "not run: no usable TLS connection (see tls)")
        return self.results

    def wait_until_answers(self) -> bool:
        url = self.urls.playground
        started = self.clock()
        delays = retry_delays()
        attempts = 0
        while True:
            attempts += 1
            remaining = self.timeout - (self.clock() - started)
            try:
                answer = self.http.request(url, timeout=max(min(REQUEST_TIMEOUT_SECONDS, remaining), 0.5))
            except RequestFailed as failure:
                if failure.at_tls:
                    self.record("reachable", PASS, f"answers, but the TLS handshake failed ({failure.reason}); "
                                                   "see tls", started)
                    return True
                reason = failure.reason
            else:
                if answer.status not in WAITING_STATUSES and answer.status < 500:
                    self.record("reachable", PASS, f"{url} answered {answer.status} ({_attempts(attempts)})", started)
                    return True
                reason = f"answered {answer.status}"
            elapsed = self.clock() - started
            self.progress(f"waiting for {url} ... {elapsed:.0f}s/{self.timeout:g}s: {reason}")
            if elapsed >= self.timeout:
                self.record("reachable", FAIL, f"{url} did not answer within {self.timeout:g}s "
                                               f"({_attempts(attempts)}); last: {reason}", started)
                return False
            self.sleep(min(next(delays), self.timeout - elapsed))

    def check_tls(self) -> tuple[bool, str]:
        host, port = self.urls.host, self.urls.port
        try:
            version, cipher = negotiate(host, port, self.tls, REQUEST_TIMEOUT_SECONDS)
        except RequestFailed as failure:
            if not failure.at_tls or failure.reason.startswith("certificate"):
                return False, f"{host}:{port}: {failure.reason}"
            # Refused TLS 1.2 and 1.3: say what the server does speak, if this machine can speak it.
            try:
                version, _ = negotiate(host, port, any_version_context(), REQUEST_TIMEOUT_SECONDS)
            except RequestFailed:
                return False, f"{host}:{port}: {failure.reason}"
            return False, f"{host}:{port}: {judge_tls_version(version)[1]}"
        passed, detail = judge_tls_version(version)
        return passed, f"{detail} ({cipher})" if passed else f"{host}:{port}: {detail}"

    def check_redirect(self) -> tuple[bool, str]:
        url = self.urls.http_url + PLAYGROUND_PATH
        answer = self.http.request(url, timeout=REQUEST_TIMEOUT_SECONDS)
        passed, detail = judge_redirect(answer, self.urls, PLAYGROUND_PATH)
        return passed, f"GET {url}: {detail}"

    def check_graphql(self) -> tuple[bool, str]:
        body = json.dumps({"query": SMOKE_QUERY}).encode()
        answer = self.http.request(self.urls.graphql, timeout=REQUEST_TIMEOUT_SECONDS, method="POST", body=body,
                                   headers={"content-type": "application/json", "accept": "application/json"})
        passed, detail = judge_graphql(answer)
        return passed, detail if passed else f"POST {self.urls.graphql}: {detail}"

    def check_playground(self) -> tuple[bool, str]:
        url = self.urls.playground
        answer = self.http.request(url, timeout=REQUEST_TIMEOUT_SECONDS, headers={"accept": "text/html"})
        target = redirect_within(answer, url)
        if target is not None:
            url = target
            answer = self.http.request(url, timeout=REQUEST_TIMEOUT_SECONDS, headers={"accept": "text/html"})
        passed, detail = judge_playground(answer)
        if not passed:
            return False, f"GET {url}: {detail}"
        return True, detail if target is None else f"{detail} at {urlsplit(url).path}"

    def check_hidden(self, path: str) -> tuple[bool, str]:
        url = self.urls.at(path)
        answer = self.http.request(url, timeout=REQUEST_TIMEOUT_SECONDS)
        passed, detail = judge_hidden(answer, path)
        return passed, detail if passed else f"GET {url}: {detail}"


# ---------------------------------------------------------------------------------------------
# Output


def result_line(result: CheckResult) -> str:
    return f"{result.outcome.upper():<4}  {result.name:<16} {format_seconds(result.seconds):>10}  {result.detail}"


def summary_line(report: Report, total_seconds: float) -> str:
    if report.setup_error is not None:
        return f"smoke: could not run: {report.setup_error}"
    failed = [result.name for result in report.results if result.outcome == FAIL]
    counts = {outcome: sum(result.outcome == outcome for result in report.results) for outcome in (PASS, FAIL, SKIP)}
    tally = f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped, {format_seconds(total_seconds)}"
    if failed:
        return f"smoke: FAILED ({tally}): {', '.join(failed)}"
    return f"smoke: passed ({tally})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(report: Report, target: str, total_seconds: float) -> str:
    mark = "✅ passed" if report.passed else "❌ failed"
    lines = [f"### Smoke check: {mark}", ""]
    if report.urls is not None:
        lines += [f"- Shop: {report.urls.base}", f"- GraphQL endpoint: {report.urls.graphql}",
                  f"- Playground: {report.urls.playground}", ""]
    else:
        lines += [f"- Target: `{_cell(target)}`", ""]
    if report.setup_error is not None:
        lines += [f"Could not run: {_cell(report.setup_error)}", ""]
        return "\n".join(lines) + "\n"
    symbols = {PASS: "✅ pass", FAIL: "❌ fail", SKIP: "➖ skipped"}
    lines += ["| Check | Result | Time | Details |", "| --- | --- | ---: | --- |"]
    lines += [f"| {_cell(result.name)} | {symbols[result.outcome]} | {format_seconds(result.seconds)} | "
              f"{_cell(result.detail)} |" for result in report.results]
    lines += ["", f"Total: {format_seconds(total_seconds)}", ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.smoke",
        description="Wait until a deployed shop answers, then check it as a user would. Exit 0 when every "
                    "check passes.")
    parser.add_argument("target", metavar="stack-or-url",
                        help="the shop's base URL (http:// or https://...), or a stack name whose `url` "
                             "output is read with `pulumi stack output url --stack <name>`")
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
                        help=f"how long to wait for the shop to answer at all (default {DEFAULT_TIMEOUT_SECONDS:g})")
    parser.add_argument("--markdown", metavar="PATH",
                        help="append a Markdown report (result, URLs, each check with its timing) to PATH")
    parser.add_argument("--ca-file", metavar="PEM",
                        help="also trust the CA certificates in this PEM file (SSL_CERT_FILE replaces the "
                             "system's CAs instead)")
    parser.add_argument("--http-url", metavar="URL",
                        help="where plain HTTP is served, for the redirect check (default: the base URL's host "
                             "on port 80)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    report = Report(urls=None)
    try:
        base = args.target if args.target.startswith(("http://", "https://")) else stack_url(args.target)
        report.urls = parse_base_url(base, args.http_url)
        context = tls_context(args.ca_file)
    except SetupError as error:
        report.setup_error = str(error)
    else:
        print(f"smoke: checking {report.urls.base} (waiting up to {args.timeout:g}s for it to answer)", flush=True)
        check = SmokeCheck(report.urls, args.timeout, Http(context), context,
                           progress=lambda line: print(line, file=sys.stderr, flush=True),
                           on_result=lambda result: print(result_line(result), flush=True))
        try:
            report.results = check.run()
        except KeyboardInterrupt:
            print("smoke: interrupted", file=sys.stderr)
            return 130

    total = time.monotonic() - started
    summary = summary_line(report, total)
    print(summary, file=sys.stderr if not report.passed else sys.stdout, flush=True)
    if args.markdown:
        try:
            with open(args.markdown, "a", encoding="utf-8") as out:
                out.write(markdown_report(report, args.target, total))
        except OSError as error:
            print(f"smoke: error: --markdown: cannot write {args.markdown!r}: {error.strerror or error}",
                  file=sys.stderr)
            return 2
    if report.setup_error is not None:
        return 2
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
