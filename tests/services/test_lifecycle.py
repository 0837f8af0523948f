"""Process behaviour: graceful shutdown, configuration errors, JSON logs, the local runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx

from tests.services.services_testkit import SERVICES, assert_no_traceback, read_log
from run_local import free_port, start_service, stop_service, wait_ready


def test_sigterm_lets_an_in_flight_query_finish(stack, stub_backend, tmp_path):
    log = (tmp_path / "gateway.log").open("wb")
    gateway = start_service("graphql", free_port(), stdout=log, extra_env={
        "PRODUCTS_URL": stub_backend.url("delay-1.5"), "ORDERS_URL": stack.url("orders"),
        "BACKEND_TIMEOUT_SECONDS": "5"})
    try:
        wait_ready(gateway)
        result: dict = {}

        def query() -> None:
            with httpx.Client(timeout=10, trust_env=False) as client:
                response = client.post(gateway.url + "/graphql",
                                       json={"query": "{ orders(first: 2) { nodes { items { product { id } } } } }"})
                result["status"], result["body"] = response.status_code, response.json()

        worker = threading.Thread(target=query)
        worker.start()
        time.sleep(0.5)  # the query is now waiting on the slow products backend
        gateway.process.send_signal(signal.SIGTERM)
        worker.join(timeout=10)
        assert result["status"] == 200 and "errors" not in result["body"]
        assert all(item["product"] for node in result["body"]["data"]["orders"]["nodes"] for item in node["items"])
        # uvicorn shuts down cleanly, then re-raises the captured SIGTERM, as a well-behaved
        # process does; the log shows the orderly shutdown.
        assert gateway.process.wait(timeout=10) in (0, -signal.SIGTERM)
    finally:
        stop_service(gateway)
        log.close()
    messages = [entry["msg"] for entry in read_log(gateway.log_path)]
    assert "Application shutdown complete." in messages and messages[-1].startswith("Finished server process")


def run_module(service: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app"], cwd=SERVICES / service, capture_output=True, text=True,
                          timeout=30, env={**os.environ, "PYTHONPATH": str(SERVICES / "common"), "HOST": "127.0.0.1", **env})


def test_bad_backend_timeout_is_named_without_traceback():
    result = run_module("graphql", {"BACKEND_TIMEOUT_SECONDS": "soon", "PORT": str(free_port())})
    assert result.returncode == 2
    assert "BACKEND_TIMEOUT_SECONDS" in result.stderr
    assert_no_traceback(result.stderr + result.stdout)


def test_bad_backend_url_is_named_without_traceback():
    result = run_module("graphql", {"PRODUCTS_URL": "products:8080", "PORT": str(free_port())})
    assert result.returncode == 2 and "PRODUCTS_URL" in result.stderr
    assert_no_traceback(result.stderr + result.stdout)


def test_bad_port_is_named_without_traceback():
    result = run_module("products", {"PORT": "99999"})
    assert result.returncode == 2 and "PORT" in result.stderr
    assert_no_traceback(result.stderr + result.stdout)


def test_every_log_line_is_json(stack, http, graphql_url):
    http.post(graphql_url, json={"query": "{ orders(first: 1) { nodes { items { product { id } } } } }"})
    http.get(stack.url("products") + "/products/none")
    time.sleep(0.2)
    for name in ("products", "orders", "graphql"):
        entries = read_log(stack.logs[name])  # raises if any line is not JSON
        assert entries, name
        for entry in entries:
            assert {"ts", "level", "logger", "msg", "service"} <= set(entry)
            assert entry["service"] == name
        access = [e for e in entries if e["logger"] == "access"]
        assert access and all({"method", "path", "status", "duration_ms"} <= set(e) for e in access)
    assert any(e["status"] == 404 for e in stack.access_entries("products"))


def test_local_runner_starts_all_three_and_stops_them_on_ctrl_c():
    ports = [free_port() for _ in range(3)]
    runner = subprocess.Popen(
        [sys.executable, str(SERVICES / "run_local.py"), "--graphql-port", str(ports[0]),
         "--products-port", str(ports[1]), "--orders-port", str(ports[2])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = runner.stdout.readline()
            lines.append(line)
            if "playground" in line.lower() or not line:
                break
        assert f"http://127.0.0.1:{ports[0]}/playground" in "".join(lines), "".join(lines[-20:])
        with httpx.Client(trust_env=False, timeout=5) as client:
            body = client.post(f"http://127.0.0.1:{ports[0]}/graphql",
                               json={"query": "{ orders(first: 1) { nodes { items { product { id } } } } }"}).json()
            assert body["data"]["orders"]["nodes"][0]["items"][0]["product"]["id"]
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=30)
        assert runner.returncode == 0
        assert "all services stopped" in output
        for port in ports:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1, trust_env=False)
                raise AssertionError(f"port {port} still answers")
            except httpx.ConnectError:
                pass
        finished = [json.loads(line) for line in output.splitlines() if line.startswith("{") and "Finished server process" in line]
        assert len(finished) == 3
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
