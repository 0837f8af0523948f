"""Fixtures that run the real services as subprocesses on free loopback ports.

The session stack (products, orders, GraphQL) is started once; tests that need a
GraphQL service with broken backends start their own with `start_gateway`, pointed at
a closed port or at the in-process `stub_backend`. Every process is stopped at teardown.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.services.services_testkit import Stack, StubBackend
from run_local import LOOPBACK, RunningService, free_port, start_service, start_stack, stop_service, wait_ready


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("service-logs")
    logs = {name: log_dir / f"{name}.log" for name in ("products", "orders", "graphql")}
    handles = {name: path.open("wb") for name, path in logs.items()}
    ports = {name: free_port() for name in logs}
    services = start_stack(ports, stdout_for=handles)
    try:
        yield Stack(services, logs)
    finally:
        for name in ("graphql", "products", "orders"):
            stop_service(services[name], grace=5)
        for handle in handles.values():
            handle.close()


@pytest.fixture(scope="session")
def products_url(stack: Stack) -> str:
    return stack.url("products")


@pytest.fixture(scope="session")
def orders_url(stack: Stack) -> str:
    return stack.url("orders")


@pytest.fixture(scope="session")
def graphql_url(stack: Stack) -> str:
    return stack.url("graphql") + "/graphql"


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def stub_backend() -> Iterator[StubBackend]:
    stub = StubBackend()
    try:
        yield stub
    finally:
        stub.close()


@pytest.fixture(scope="session")
def closed_port_url() -> Iterator[str]:
    # A port held bound and never listened on: connection refused, and no other test (nor another
    # pytest-xdist worker) can be given it while this session lasts.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind((LOOPBACK, 0))
        yield f"http://{LOOPBACK}:{held.getsockname()[1]}"


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningService]]:
    """Starts an extra GraphQL service with the given environment; all stopped at session end."""
    started: list[RunningService] = []
    log_dir = tmp_path_factory.mktemp("gateway-logs")

    def start(**env: str) -> RunningService:
        log = (log_dir / f"gateway-{len(started)}.log").open("wb")
        service = start_service("graphql", free_port(), extra_env=env, stdout=log)
        started.append(service)
        wait_ready(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            stop_service(service, grace=5)
