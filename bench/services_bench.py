"""Benchmark of the GraphQL service against calling the REST backends directly.

    python bench/services_bench.py [--seconds 6] [--clients 1,32] [--repeat 3] [--floor]

Starts the three services on free loopback ports (real processes, as deployed), then
for each client count runs a closed loop for a fixed time, --repeat times, alternating
the two paths so that both see the same background load:
  graphql  one POST /graphql: 20 orders with items and each item's product
  direct   the same data the way a client without the gateway gets it:
           GET /orders?limit=20, then GET /products?ids=<distinct ids>, joined client-side
  floor    (with --floor) the same page through bench/floor_gateway.py: a bare ASGI app
           making the same two calls with the GraphQL service's HTTP client, no GraphQL;
           what one more Python hop costs here before any GraphQL work
It prints throughput, p50/p99 latency and backend requests per query (counted from the
backends' access logs) for every run, then the median of the runs for each figure (the
p99's range across runs too): on a small shared machine one run can differ from the next
by a third. The load generator is a minimal keep-alive HTTP/1.1 client on
uvloop, so that as little CPU as possible is taken from the services on a small machine.
Everything stops by itself: the phases are time-bounded and the services are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
from run_local import LOOPBACK, SERVICES_DIR, RunningService, free_port, start_stack, stop_service, wait_ready  # noqa: E402

QUERY = """
query Recent {
  orders(first: 20) {
    nodes {
      id customerId status createdAt total currency
      items { quantity unitPrice product { id name price currency stock } }
    }
  }
}
"""


class QueryFailed(Exception):
    pass


class HttpConnection:
    """Keep-alive HTTP/1.1; enough for uvicorn's responses (Content-Length or chunked)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
        head = (f"{method} {target} HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw_head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if b":" in line:
                name, value = line.split(b":", 1)
                headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            payload = await self.reader.readexactly(int(headers[b"content-length"]))
        else:
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            payload = b"".join(chunks)
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def graphql_query(conns: dict[str, HttpConnection]) -> None:
    status, payload = await conns["graphql"].request("POST", "/graphql", orjson.dumps({"query": QUERY}))
    result = orjson.loads(payload)
    if status != 200 or result.get("errors") or len(result["data"]["orders"]["nodes"]) != 20:
        raise QueryFailed(f"HTTP {status} {result.get('errors', [])[:1]}")


async def floor_query(conns: dict[str, HttpConnection]) -> None:
    status, payload = await conns["floor"].request("POST", "/", orjson.dumps({"query": QUERY}))
    if status != 200 or len(orjson.loads(payload)["data"]["orders"]["nodes"]) != 20:
        raise QueryFailed(f"HTTP {status}")


def start_floor_gateway(port: int, orders_url: str, products_url: str, stdout: object) -> RunningService:
    env = {**os.environ, "PYTHONPATH": str(SERVICES_DIR / "graphql"), "ORDERS_URL": orders_url,
           "PRODUCTS_URL": products_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "floor_gateway:app", "--app-dir", str(Path(__file__).resolve().parent),
         "--host", LOOPBACK, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
         "--no-access-log", "--log-level", "warning"],
        env=env, stdout=stdout, stderr=subprocess.STDOUT)
    service = RunningService("floor", port, process)
    wait_ready(service)
    return service


async def direct_query(conns: dict[str, HttpConnection]) -> None:
    status, payload = await conns["orders"].request("GET", "/orders?limit=20")
    orders = orjson.loads(payload)["items"]
    product_ids = list(dict.fromkeys(item["product_id"] for order in orders for item in order["items"]))
    status2, payload2 = await conns["products"].request(
        "GET", f"/products?ids={','.join(product_ids)}&limit={len(product_ids)}")
    products = {product["id"]: product for product in orjson.loads(payload2)["items"]}
    joined = [{**order, "items": [{**item, "product": products.get(item["product_id"])} for item in order["items"]]}
              for order in orders]
    if status != 200 or status2 != 200 or len(joined) != 20:
        raise QueryFailed(f"HTTP {status}/{status2}")


async def run_phase(kind: str, clients: int, seconds: float, ports: dict[str, int]) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    operation = {"graphql": graphql_query, "floor": floor_query, "direct": direct_query}[kind]

    async def client() -> None:
        conns = {name: HttpConnection(port) for name, port in ports.items()}
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await operation(conns)
                except QueryFailed as failure:
                    failures.append(str(failure))
                    continue
                latencies.append(time.perf_counter() - started)
        finally:
            for conn in conns.values():
                conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, failures


def count_backend_requests(log_path: Path) -> int:
    count = 0
    with log_path.open("rb") as log:
        for line in log:
            if b'"logger":"access"' in line and b'"path":"/healthz"' not in line and b'"path":"/readyz"' not in line:
                count += 1
    return count


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each measured run (default 6)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up before each run (default 2)")
    parser.add_argument("--clients", default="1,32", help="comma-separated concurrent client counts (default 1,32)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path and client count (default 3)")
    parser.add_argument("--graphql-workers", type=int, default=1,
                        help="GraphQL server processes (WORKERS; default 1, as in one pod)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure bench/floor_gateway.py: the same two calls through a bare ASGI app")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this JSON file")
    args = parser.parse_args()
    client_counts = [int(value) for value in args.clients.split(",")]
    if not 0 < args.seconds <= 120 or any(not 0 < count <= 256 for count in client_counts) or not 1 <= args.repeat <= 20:
        parser.error("--seconds must be in (0, 120], each client count in 1..256 and --repeat in 1..20")

    kinds = ("graphql", "floor", "direct") if args.floor else ("graphql", "direct")
    ports = {name: free_port() for name in ("graphql", "products", "orders", "floor")}
    workdir = Path(tempfile.mkdtemp(prefix="services-bench-"))
    logs = {name: (workdir / f"{name}.log").open("wb") for name in ports}
    services = start_stack({name: ports[name] for name in ("graphql", "products", "orders")}, stdout_for=logs,
                           graphql_env={"WORKERS": str(args.graphql_workers)})
    if args.floor:
        services["floor"] = start_floor_gateway(ports["floor"], services["orders"].url, services["products"].url,
                                                logs["floor"])
    runs: list[dict] = []
    load_before = os.getloadavg()
    try:
        for run in range(1, args.repeat + 1):
            for clients in client_counts:
                for kind in kinds:
                    runs.append(measure(kind, clients, args, ports, workdir, run))
                    print(json.dumps(runs[-1]), flush=True)
    finally:
        for name in ("floor", "graphql", "products", "orders"):
            if name in services:
                stop_service(services[name])
        for log in logs.values():
            log.close()

    medians = {}
    for clients in client_counts:
        for kind in kinds:
            mine = [row for row in runs if row["kind"] == kind and row["clients"] == clients]
            medians[(kind, clients)] = {
                **{key: statistics.median(row[key] for row in mine)
                   for key in ("queries", "failed", "throughput_qps", "p50_ms", "p99_ms", "backend_requests_per_query")},
                "p99_range": (min(row["p99_ms"] for row in mine), max(row["p99_ms"] for row in mine)),
            }

    print(f"\nmedian of {args.repeat} run(s) of {args.seconds:g} s each")
    print(f"{'path':8} {'clients':>7} {'queries':>8} {'failed':>6} {'q/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99 range':>15} {'backend req/q':>14}")
    for (kind, clients), row in medians.items():
        low, high = row["p99_range"]
        print(f"{kind:8} {clients:>7} {row['queries']:>8g} {row['failed']:>6g} {row['throughput_qps']:>8.1f} "
              f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {f'{low:.1f}-{high:.1f}':>15} "
              f"{row['backend_requests_per_query']:>14.3f}")
    load_after = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} CPUs; 1-minute load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (the services and this load generator account for most of it "
          f"only if nothing else runs)")
    print()
    for clients in client_counts:
        direct = medians[("direct", clients)]
        for kind in kinds[:-1]:
            row = medians[(kind, clients)]
            print(f"{clients:>3} clients: {kind}/direct latency ratio p50 {row['p50_ms'] / direct['p50_ms']:.2f}, "
                  f"p99 {row['p99_ms'] / direct['p99_ms']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


def measure(kind: str, clients: int, args: argparse.Namespace, ports: dict[str, int], workdir: Path,
            run: int) -> dict:
    uvloop.run(run_phase(kind, clients, args.warmup, ports))
    before = {name: count_backend_requests(workdir / f"{name}.log") for name in ("products", "orders")}
    started = time.perf_counter()
    latencies, failures = uvloop.run(run_phase(kind, clients, args.seconds, ports))
    elapsed = time.perf_counter() - started
    time.sleep(0.3)  # let the last access lines reach the log files
    after = {name: count_backend_requests(workdir / f"{name}.log") for name in ("products", "orders")}
    latencies.sort()
    backend_calls = sum(after[name] - before[name] for name in after)
    return {
        "kind": kind,
        "clients": clients,
        "run": run,
        "queries": len(latencies),
        "failed": len(failures),
        "first_failure": failures[0] if failures else None,
        "throughput_qps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "backend_requests_per_query": round(backend_calls / (len(latencies) + len(failures)), 3),
    }


if __name__ == "__main__":
    sys.exit(main())
