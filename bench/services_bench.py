"""Benchmark of the GraphQL service against calling the REST backends directly.

    python bench/services_bench.py [--seconds 6] [--window 1.5] [--clients 1,32] [--repeat 3] [--floor]

Starts the three services on free loopback ports (real processes, as deployed), then
for each client count runs a closed loop of each path for --seconds, --repeat times. The
paths take turns in windows of --window seconds (each window starting with a short,
unmeasured warm-up), so that a run's figures for every path come from the same minute:
this machine's speed drifts by up to a third over tens of seconds, and paths measured one
after the other for many seconds each compared one moment with another. The paths:
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


async def run_phase(kind: str, clients: int, seconds: float, ports: dict[str, int],
                    warmup: float = 0.0) -> tuple[list[float], list[str], int]:
    """Closed loops of `clients` for warmup + seconds: the latencies and failures of the
    queries started after the warm-up, and how many queries were sent in all."""
    latencies: list[float] = []
    failures: list[str] = []
    sent = 0
    measure_from = time.perf_counter() + warmup
    deadline = measure_from + seconds
    operation = {"graphql": graphql_query, "floor": floor_query, "direct": direct_query}[kind]

    async def client() -> None:
        nonlocal sent
        conns = {name: HttpConnection(port) for name, port in ports.items()}
        try:
            while (started := time.perf_counter()) < deadline:
                sent += 1
                try:
                    await operation(conns)
                except QueryFailed as failure:
                    if started >= measure_from:
                        failures.append(str(failure))
                    continue
                if started >= measure_from:
                    latencies.append(time.perf_counter() - started)
        finally:
            for conn in conns.values():
                conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, failures, sent


class BackendRequestCounter:
    """Counts the backends' access-log lines (not probes) written since it last counted."""

    def __init__(self, log_paths: list[Path]) -> None:
        self.offsets = {path: 0 for path in log_paths}

    def new_requests(self) -> int:
        count = 0
        for path, offset in self.offsets.items():
            with path.open("rb") as log:
                log.seek(offset)
                lines = log.read().split(b"\n")
            # A line still being written stays for the next count.
            self.offsets[path] = offset + sum(len(line) + 1 for line in lines[:-1])
            count += sum(1 for line in lines[:-1] if b'"logger":"access"' in line
                         and b'"path":"/healthz"' not in line and b'"path":"/readyz"' not in line)
        return count


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="measured seconds of each path per run and client count (default 6)")
    parser.add_argument("--window", type=float, default=1.5,
                        help="the paths take turns in windows of this many measured seconds (default 1.5)")
    parser.add_argument("--warmup", type=float, default=0.25,
                        help="unmeasured warm-up at the start of each window (default 0.25)")
    parser.add_argument("--clients", default="1,32", help="comma-separated concurrent client counts (default 1,32)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path and client count (default 3)")
    parser.add_argument("--graphql-workers", type=int, default=1,
                        help="GraphQL server processes (WORKERS; default 1, as in one pod)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure bench/floor_gateway.py: the same two calls through a bare ASGI app")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this JSON file")
    args = parser.parse_args()
    client_counts = [int(value) for value in args.clients.split(",")]
    if (not 0 < args.seconds <= 120 or not 0 < args.window <= args.seconds or not 0 <= args.warmup <= 10
            or any(not 0 < count <= 256 for count in client_counts) or not 1 <= args.repeat <= 20):
        parser.error("--seconds must be in (0, 120], --window in (0, --seconds], --warmup in [0, 10], "
                     "each client count in 1..256 and --repeat in 1..20")

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
    counter = BackendRequestCounter([workdir / "products.log", workdir / "orders.log"])
    load_before = os.getloadavg()
    try:
        for run in range(1, args.repeat + 1):
            for clients in client_counts:
                for row in measure(kinds, clients, args, ports, counter, run):
                    runs.append(row)
                    print(json.dumps(row), flush=True)
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


def measure(kinds: tuple[str, ...], clients: int, args: argparse.Namespace, ports: dict[str, int],
            counter: BackendRequestCounter, run: int) -> list[dict]:
    """One run at this client count: the paths take turns, a window each, in alternating
    order, until each has been measured for args.seconds."""
    windows = max(1, round(args.seconds / args.window))
    window = args.seconds / windows
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    failures: dict[str, list[str]] = {kind: [] for kind in kinds}
    queries_sent = dict.fromkeys(kinds, 0)
    backend_requests = dict.fromkeys(kinds, 0)
    for index in range(windows):
        for kind in kinds if index % 2 == 0 else kinds[::-1]:
            counter.new_requests()
            measured, failed, sent = uvloop.run(run_phase(kind, clients, window, ports, warmup=args.warmup))
            time.sleep(0.1)  # the backends write an access line right after each answer
            backend_requests[kind] += counter.new_requests()
            latencies[kind] += measured
            failures[kind] += failed
            queries_sent[kind] += sent
    rows = []
    for kind in kinds:
        measured = sorted(latencies[kind])
        rows.append({
            "kind": kind,
            "clients": clients,
            "run": run,
            "queries": len(measured),
            "failed": len(failures[kind]),
            "first_failure": failures[kind][0] if failures[kind] else None,
            "throughput_qps": round(len(measured) / args.seconds, 1),
            "p50_ms": round(percentile(measured, 0.50) * 1000, 2),
            "p99_ms": round(percentile(measured, 0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(measured) * 1000, 2),
            # Warm-up queries included: every query costs the same backend requests.
            "backend_requests_per_query": round(backend_requests[kind] / queries_sent[kind], 3),
        })
    return rows


if __name__ == "__main__":
    sys.exit(main())
