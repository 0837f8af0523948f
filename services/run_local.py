"""Runs the three shop services on loopback for local development (`make dev`).

    python services/run_local.py

GraphQL on 127.0.0.1:8080 (playground at /playground), products on 8081, orders on 8082.
Ctrl-C (or SIGTERM) stops all three: each gets SIGTERM and may finish in-flight requests.
Needs the packages of services/graphql/requirements.txt (a superset of the other two).

The process helpers here are also used by tests/services/conftest.py and
bench/services_bench.py, so all three start the services exactly the same way.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SERVICES_DIR = Path(__file__).resolve().parent
COMMON_DIR = SERVICES_DIR / "common"
LOOPBACK = "127.0.0.1"
LOCAL_PORTS = {"graphql": 8080, "products": 8081, "orders": 8082}


@dataclass
class RunningService:
    name: str
    port: int
    process: subprocess.Popen
    extra_env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((LOOPBACK, port)) == 0


def start_service(
    name: str,
    port: int,
    extra_env: dict[str, str] | None = None,
    stdout: IO | int | None = None,
    python: str = sys.executable,
) -> RunningService:
    env = {
        **os.environ,
        "PYTHONPATH": str(COMMON_DIR),
        "PYTHONUNBUFFERED": "1",
        "HOST": LOOPBACK,
        "PORT": str(port),
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [python, "-m", "app"],
        cwd=SERVICES_DIR / name,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        # Own process group: a terminal's Ctrl-C reaches only the runner, which then
        # stops the services in order instead of all of them racing.
        start_new_session=True,
    )
    log_path = Path(stdout.name) if hasattr(stdout, "name") and isinstance(stdout.name, str) else None
    return RunningService(name, port, process, extra_env or {}, log_path)


def wait_ready(service: RunningService, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            tail = ""
            if service.log_path is not None and service.log_path.exists():
                tail = "; last output:\n" + "\n".join(service.log_path.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"{service.name} exited with code {service.process.returncode} before it was ready{tail}")
        try:
            with urllib.request.urlopen(f"{service.url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{service.name} not ready on port {service.port} within {timeout}s")


def stop_service(service: RunningService, grace: float = 10.0) -> int | None:
    process = service.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


def start_stack(
    ports: dict[str, int], stdout_for: dict[str, IO | int | None] | None = None, graphql_env: dict[str, str] | None = None
) -> dict[str, RunningService]:
    """Starts products and orders, then GraphQL pointed at them; waits until all are ready."""
    stdout_for = stdout_for or {}
    started: dict[str, RunningService] = {}
    try:
        for name in ("products", "orders"):
            started[name] = start_service(name, ports[name], stdout=stdout_for.get(name))
        env = {
            "PRODUCTS_URL": started["products"].url,
            "ORDERS_URL": started["orders"].url,
            **(graphql_env or {}),
        }
        started["graphql"] = start_service("graphql", ports["graphql"], extra_env=env, stdout=stdout_for.get("graphql"))
        for service in started.values():
            wait_ready(service)
    except BaseException:
        for service in started.values():
            stop_service(service, grace=2)
        raise
    return started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the three shop services on loopback.")
    for name, port in LOCAL_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port, metavar="PORT", help=f"default {port}")
    args = parser.parse_args(argv)
    ports = {name: getattr(args, f"{name}_port") for name in LOCAL_PORTS}
    busy = [f"{name} ({port})" for name, port in ports.items() if port_in_use(port)]
    if busy:
        print(f"ports already in use on {LOOPBACK}: {', '.join(busy)}; stop whatever holds them", file=sys.stderr)
        return 1
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        services = start_stack(ports)
    except RuntimeError as error:
        print(f"could not start the services: {error}", file=sys.stderr)
        return 1
    print(f"\nGraphQL playground: {services['graphql'].url}/playground", flush=True)
    print(f"GraphQL endpoint:   {services['graphql'].url}/graphql", flush=True)
    print(f"products: {services['products'].url}/products   orders: {services['orders'].url}/orders", flush=True)
    print("Ctrl-C stops all three.\n", flush=True)
    exit_code = 0
    while not stop_requested:
        exited = [service for service in services.values() if service.process.poll() is not None]
        if exited:
            print(f"{exited[0].name} exited with code {exited[0].process.returncode}; stopping the others", file=sys.stderr)
            exit_code = 1
            break
        time.sleep(0.2)
    # GraphQL first, so that it does not serve errors while its backends go away.
    for name in ("graphql", "products", "orders"):
        stop_service(services[name])
    print("all services stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
