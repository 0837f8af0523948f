"""Wall time of `make test`'s pytest run (a benchmark, not a test; the installs are not timed).

    python bench/tests_bench.py [--runs 3] [-- PYTEST_ARGS ...]

Runs the whole suite `--runs` times, one after the other, and prints each run's wall time, the CPU time of
pytest and everything it started, and the machine's load average before the run (on a machine shared
with other work, compare figures taken back to back), then the median wall time. PYTEST_ARGS are the
arguments `make test` gives pytest (`make bench-tests` passes them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(pytest_args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of this process's children so far, pytest's summary) of one run of the suite."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate()
    elapsed = time.perf_counter() - started
    children = os.times()  # pytest and all it started, once they have all been waited for
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    if process.returncode != 0:
        raise SystemExit(f"the suite failed ({process.returncode}):\n{output[-3000:]}")
    return elapsed, children.children_user + children.children_system, f"{summary} (load before: {load:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("pytest_args", nargs="*", help="pytest's arguments in `make test` (after --)")
    args = parser.parse_args()
    walls = []
    cpu_before = 0.0
    for run in range(1, args.runs + 1):
        wall, cpu_total, summary = one_run(args.pytest_args)
        walls.append(wall)
        print(f"run {run}: {wall:.1f} s wall, {cpu_total - cpu_before:.1f} s CPU; {summary}", flush=True)
        cpu_before = cpu_total
    print(f"median wall time of {args.runs} run(s) of pytest {' '.join(args.pytest_args)}: "
          f"{statistics.median(walls):.1f} s on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
