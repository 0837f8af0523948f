"""Benchmark of the GraphQL service, to size its deployment (`make bench-services`).

    python bench/services_bench.py [--runs 3] [--seconds 4] [--search-steps 5] [--json FILE]

Starts the three services on free loopback ports (real processes, one each, as in a pod) and,
in each of --runs runs, measures:
  (a) the representative query (20 orders with their items and each item's product) with one
      client (a closed loop), at fixed offered loads of 100 and 200 queries/s (an open loop:
      each query is sent at its scheduled time whatever the others do, and its latency counts
      from that time, so queueing shows as latency, not as fewer queries), and the highest
      offered load whose p99 stays under 50 ms (bisection in --search-steps steps);
  (b) the storefront query (20 orders: id, status, total, createdAt) with one client;
  (c) the GraphQL process's CPU time per query for both (from /proc/<pid>/stat);
  (d) backend requests per query, counted in the backends' access logs.
It prints every run, the median of the runs against the guards, and the queries/s one replica
serves at its CPU limit (from the CPU per query at 100 q/s). The load generator (a minimal
keep-alive HTTP/1.1 client on uvloop) runs on the same machine, as do the backends: the figures
hold for this machine and its load, which the script prints. Bounded: about 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
from run_local import LOOPBACK, free_port, start_stack, stop_service  # noqa: E402

REPRESENTATIVE = """query Recent {
  orders(first: 20) {
    nodes {
      id customerId status createdAt total currency
      items { quantity unitPrice product { id name price currency stock } }
    }
  }
}"""
STOREFRONT = "query Storefront { orders(first: 20) { nodes { id status total createdAt } } }"
P99_CEILING_MS = 50.0
# (figure, limit) as the issue sets them for this 2-core machine, met in the median of the runs.
GUARDS = [("representative p50 at 1 client, ms", 7.0), ("representative p99 at 100 q/s, ms", 20.0),
          ("storefront p50 at 1 client, ms", 2.5)]
CPU_LIMITS_MILLICORES = (500, 1000)


class HttpConnection:
    """Keep-alive HTTP/1.1, enough for uvicorn's answers (Content-Length)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
        self.writer.write(f"POST /graphql HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\nContent-Type: application/json"
                          f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
        return int(lines[0].split(b" ", 2)[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def checker(query: str) -> tuple[bytes, Callable[[int, bytes], bool]]:
    def answered(status: int, payload: bytes) -> bool:
        answer = orjson.loads(payload)
        return status == 200 and "errors" not in answer and len(answer["data"]["orders"]["nodes"]) == 20

    return orjson.dumps({"query": query}), answered


async def closed_loop(port: int, query: str, seconds: float) -> tuple[list[float], int]:
    """One client, one query after the other: latencies in seconds, and failures."""
    body, answered = checker(query)
    connection = HttpConnection(port)
    latencies, failures = [], 0
    deadline = time.perf_counter() + seconds
    try:
        while (started := time.perf_counter()) < deadline:
            status, payload = await connection.post(body)
            latency = time.perf_counter() - started
            if answered(status, payload):
                latencies.append(latency)
            else:
                failures += 1
    finally:
        connection.close()
    return latencies, failures


async def open_loop(port: int, query: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """`rate` queries/s for `seconds`, each sent at its time on an idle connection (a new one if
    none is idle): latencies from the scheduled time, and failures."""
    body, answered = checker(query)
    idle: list[HttpConnection] = []
    latencies: list[float] = []
    failures = 0
    loop = asyncio.get_running_loop()

    async def one(scheduled: float) -> None:
        nonlocal failures
        connection = idle.pop() if idle else HttpConnection(port)
        try:
            status, payload = await connection.post(body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            connection.close()
            failures += 1
            return
        latency = loop.time() - scheduled
        idle.append(connection)
        if answered(status, payload):
            latencies.append(latency)
        else:
            failures += 1

    start = loop.time() + 0.01
    tasks = []
    for index in range(round(rate * seconds)):
        scheduled = start + index / rate
        if scheduled > loop.time():
            await asyncio.sleep(scheduled - loop.time())
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    for connection in idle:
        connection.close()
    return latencies, failures


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendRequests:
    """Counts the backends' access-log lines (not probes) written since it last counted."""

    def __init__(self, log_paths: list[Path]) -> None:
        self.offsets = dict.fromkeys(log_paths, 0)

    def since_last(self) -> int:
        time.sleep(0.1)  # the backends write an access line right after each answer
        count = 0
        for path, offset in self.offsets.items():
            with path.open("rb") as log:
                log.seek(offset)
                lines = log.read().split(b"\n")
            self.offsets[path] = offset + sum(len(line) + 1 for line in lines[:-1])
            count += sum(1 for line in lines[:-1] if b'"logger":"access"' in line and b'"path":"/healthz"' not in line
                         and b'"path":"/readyz"' not in line)
        return count


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Bench:
    def __init__(self, port: int, pid: int, backend_requests: BackendRequests, seconds: float) -> None:
        self.port, self.pid, self.backend_requests, self.seconds = port, pid, backend_requests, seconds

    def phase(self, query: str, rate: float | None = None, seconds: float | None = None) -> dict:
        """One measured phase, after a short unmeasured warm-up: a closed loop of one client if
        rate is None, else an open loop at that rate."""
        seconds = seconds or self.seconds
        uvloop.run(closed_loop(self.port, query, 0.3))
        self.backend_requests.since_last()
        cpu_before = cpu_seconds(self.pid)
        if rate is None:
            latencies, failures = uvloop.run(closed_loop(self.port, query, seconds))
        else:
            latencies, failures = uvloop.run(open_loop(self.port, query, rate, seconds))
        cpu = cpu_seconds(self.pid) - cpu_before
        queries = len(latencies) + failures
        return {"queries": queries, "failures": failures,
                "p50_ms": round(percentile(latencies, 0.50) * 1000, 2) if latencies else None,
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
                "cpu_ms_per_query": round(cpu * 1000 / queries, 3) if queries else None,
                "backend_requests_per_query": round(self.backend_requests.since_last() / queries, 3) if queries else None}

    def highest_rate_under_ceiling(self, low: float, high: float, steps: int) -> tuple[float, list[dict]]:
        """Bisection of the offered load between `low` (p99 under the ceiling) and `high` (over
        it): the highest rate seen under the ceiling, and the phases tried."""
        tried = []
        for _ in range(steps):
            rate = round((low + high) / 2)
            row = {"rate": rate, **self.phase(REPRESENTATIVE, rate, seconds=max(2.0, self.seconds * 0.75))}
            tried.append(row)
            if row["failures"] == 0 and row["p99_ms"] is not None and row["p99_ms"] < P99_CEILING_MS:
                low = rate
            else:
                high = rate
        return low, tried


def one_run(bench: Bench, steps: int) -> dict:
    run = {"representative_1_client": bench.phase(REPRESENTATIVE),
           "representative_100_qps": bench.phase(REPRESENTATIVE, 100),
           "representative_200_qps": bench.phase(REPRESENTATIVE, 200),
           "storefront_1_client": bench.phase(STOREFRONT)}
    at_200 = run["representative_200_qps"]
    under_at_200 = at_200["failures"] == 0 and at_200["p99_ms"] < P99_CEILING_MS
    # The search's top: what the process's CPU could give at all, from the 1-client phase.
    capacity = 1000 / run["representative_1_client"]["cpu_ms_per_query"]
    low, high = (200, max(300, capacity * 1.2)) if under_at_200 else (0, 200)
    run["highest_qps_p99_under_50ms"], run["search"] = bench.highest_rate_under_ceiling(low, high, steps)
    return run


def summary(runs: list[dict]) -> dict:
    def median(phase: str, key: str) -> float:
        return statistics.median(run[phase][key] for run in runs)

    return {
        "representative p50 at 1 client, ms": median("representative_1_client", "p50_ms"),
        "representative p99 at 1 client, ms": median("representative_1_client", "p99_ms"),
        "representative p50 at 100 q/s, ms": median("representative_100_qps", "p50_ms"),
        "representative p99 at 100 q/s, ms": median("representative_100_qps", "p99_ms"),
        "representative p50 at 200 q/s, ms": median("representative_200_qps", "p50_ms"),
        "representative p99 at 200 q/s, ms": median("representative_200_qps", "p99_ms"),
        "representative highest q/s with p99 < 50 ms": statistics.median(run["highest_qps_p99_under_50ms"] for run in runs),
        "storefront p50 at 1 client, ms": median("storefront_1_client", "p50_ms"),
        "storefront p99 at 1 client, ms": median("storefront_1_client", "p99_ms"),
        "representative CPU ms per query at 1 client": median("representative_1_client", "cpu_ms_per_query"),
        "representative CPU ms per query at 100 q/s": median("representative_100_qps", "cpu_ms_per_query"),
        "storefront CPU ms per query at 1 client": median("storefront_1_client", "cpu_ms_per_query"),
        "representative backend requests per query": median("representative_100_qps", "backend_requests_per_query"),
        "storefront backend requests per query": median("storefront_1_client", "backend_requests_per_query"),
        "failed queries (all runs)": sum(phase["failures"] for run in runs for phase in
                                         [*(run[key] for key in run if isinstance(run[key], dict)), *run["search"]]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs, each of every phase (default 3; 1-9)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per phase (default 4; 1-60)")
    parser.add_argument("--search-steps", type=int, default=5,
                        help="bisection steps for the highest load with p99 < 50 ms (default 5; 1-10)")
    parser.add_argument("--json", type=Path, help="also write every run and the medians to this file")
    args = parser.parse_args()
    if not 1 <= args.runs <= 9 or not 1 <= args.seconds <= 60 or not 1 <= args.search_steps <= 10:
        parser.error("--runs must be 1-9, --seconds 1-60 and --search-steps 1-10")

    workdir = Path(tempfile.mkdtemp(prefix="services-bench-"))
    logs = {name: (workdir / f"{name}.log").open("wb") for name in ("graphql", "products", "orders")}
    services = start_stack({name: free_port() for name in logs}, stdout_for=logs)
    load_before = os.getloadavg()
    runs = []
    try:
        bench = Bench(services["graphql"].port, services["graphql"].process.pid,
                      BackendRequests([workdir / "products.log", workdir / "orders.log"]), args.seconds)
        for number in range(1, args.runs + 1):
            run = one_run(bench, args.search_steps)
            runs.append(run)
            print(json.dumps({"run": number, **run}), flush=True)
    finally:
        for name in ("graphql", "products", "orders"):
            stop_service(services[name])
        for log in logs.values():
            log.close()
    load_after = os.getloadavg()

    medians = summary(runs)
    print(f"\nmedian of {args.runs} run(s), {args.seconds:g} s per phase")
    for name, value in medians.items():
        print(f"  {name:48} {value:g}")
    print("\nguards (this 2-core machine, median of the runs):")
    for name, limit in GUARDS:
        print(f"  {name:48} {medians[name]:g} <= {limit:g}: {'met' if medians[name] <= limit else 'NOT MET'}")
    backend = medians["representative backend requests per query"]
    print(f"  {'representative backend requests per query':48} {backend:g} == 2: {'met' if backend == 2 else 'NOT MET'}")
    cpu = medians["representative CPU ms per query at 100 q/s"]
    print(f"\none replica, from {cpu:g} ms of CPU per representative query at 100 q/s:")
    for millicores in CPU_LIMITS_MILLICORES:
        print(f"  at a CPU limit of {millicores}m: {millicores / cpu:.0f} queries/s")
    print(f"\nmachine: {os.cpu_count()} CPUs; 1-minute load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
          "after (the benchmark itself adds about 1-1.5)")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "medians": medians,
                                         "load_average": [load_before[0], load_after[0]]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
