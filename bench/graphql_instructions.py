"""Instructions the GraphQL service executes per query, counted by valgrind (callgrind).

    python bench/graphql_instructions.py [--queries 300] [--floor]

On this machine timings of the same code vary by up to 15% from one minute to the next, so a
change of a few percent in the service's CPU per query cannot be seen by timing it. An
instruction count can: repeated counts agree within about 0.5%. (Instructions are not time:
C code such as orjson runs many per nanosecond, the interpreter fewer. Use this to compare two
versions of the code, and services_bench.py for what a client sees.)

The products and orders services run as usual, on free loopback ports. The GraphQL service's
ASGI app (app.main.app, the access log included, written to /dev/null) runs in a process of its
own under callgrind, and answers the benchmark's query in process, with no HTTP server in front:
a warm-up, then N queries. It runs twice, with a few queries and with N more, and the difference
is divided by N, so start-up and warm-up cancel out. With --floor, bench/floor_gateway.py is
counted the same way instead. valgrind must be on PATH (Debian's `valgrind` package).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 50
BASE_QUERIES = 100


def inner(kind: str, queries: int) -> None:
    """Runs in the counted process: WARM_UP + queries answers of the benchmark's query."""
    sys.path[:0] = [str(ROOT / "services" / "graphql"), str(ROOT / "services" / "common"), str(ROOT / "bench")]
    import orjson
    import uvloop
    from services_bench import QUERY

    body = orjson.dumps({"query": QUERY})
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"graphql"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080)}
    if kind == "floor":
        import floor_gateway
        app, lifespan = floor_gateway.app, None
    else:
        import logging.config

        from app.main import app
        from service_kit.jsonlog import logging_config
        logging.config.dictConfig(logging_config("info"))
        sink = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process
        for handler in logging.getLogger().handlers:
            handler.setStream(sink)
        lifespan = app.service.router.lifespan_context(app.service)

    async def answer() -> None:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app({**scope, "state": {}}, receive, send)
        if sent[0]["status"] != 200 or b'"errors"' in sent[1]["body"]:
            raise SystemExit(f"the query failed: {sent[:2]!r}"[:500])

    async def run() -> None:
        if lifespan is None:
            for _ in range(WARM_UP + queries):
                await answer()
            return
        async with lifespan:
            for _ in range(WARM_UP + queries):
                await answer()

    uvloop.run(run())


def count(kind: str, queries: int, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as work:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/callgrind.out",
             sys.executable, __file__, "--inner", kind, "--queries", str(queries)],
            env=env, capture_output=True, text=True, check=False)
    collected = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or collected is None:
        raise SystemExit(f"the counted run failed (exit {result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return int(collected.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=300, help="queries counted (default 300)")
    parser.add_argument("--floor", action="store_true", help="count bench/floor_gateway.py instead")
    parser.add_argument("--inner", choices=["graphql", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.queries < 1:
        parser.error("--queries must be at least 1")
    if args.inner:
        inner(args.inner, args.queries)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH; install it (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2

    sys.path.insert(0, str(ROOT / "services"))
    from run_local import free_port, start_service, stop_service, wait_ready

    kind = "floor" if args.floor else "graphql"
    with tempfile.TemporaryDirectory() as logs:
        backends = {}
        log_files = []
        try:
            for name in ("products", "orders"):
                log_files.append((Path(logs) / f"{name}.log").open("wb"))
                backends[name] = start_service(name, free_port(), stdout=log_files[-1])
                wait_ready(backends[name])
            env = {**os.environ, "PRODUCTS_URL": backends["products"].url, "ORDERS_URL": backends["orders"].url}
            few = count(kind, BASE_QUERIES, env)
            more = count(kind, BASE_QUERIES + args.queries, env)
        finally:
            for service in backends.values():
                stop_service(service)
            for log_file in log_files:
                log_file.close()
    print(f"{kind}: {(more - few) / args.queries / 1e6:.3f} million instructions per query "
          f"({args.queries} queries counted, in process, real backends on loopback)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
